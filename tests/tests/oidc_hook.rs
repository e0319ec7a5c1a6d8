//! `curfew hook serve`, the real binary, answering Hydra-shaped token-hook
//! requests: allow with claims, deny, and the policy's values in them;
//! revocations through the real `curfew revoke`; health, metrics, the body
//! limit, the admin token, and reloading the policy file (keeping the last
//! good one when the new one is invalid).
//!
//! Times are carried by the requests (`auth_time`), so no clock is moved;
//! inactivity, which needs one, is covered in process by
//! `oidc_hook/tests/hook.rs` with a hand-set clock.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use curfew_e2e::common::{curfew_bin, wait_for, write_file, ChildGuard};
use curfew_e2e::oidc::spawn_listening;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-0123456789abcdef";

fn policy_text(dir: &Path, banner: &str) -> String {
    format!(
        r#"version: 1
session:
  max_duration: 1h
  inactivity: 10m
  warn_before: 2m
  remember_me: {{ max_duration: 1d }}
banner: {{ text: "{banner}" }}
rules:
  - name: admins
    match: {{ groups: [wheel] }}
    session: {{ inactivity: 5m }}
    banner: {{ text: "Admins: every command is recorded." }}
  - name: ci
    match: {{ clients: [ci] }}
    session: {{ max_duration: 20m }}
store: {{ backend: sqlite, path: {}/state.db }}
"#,
        dir.display()
    )
}

struct Hook {
    _guard: ChildGuard,
    base: String,
    policy: PathBuf,
    http: reqwest::blocking::Client,
    dir: tempfile::TempDir,
}

impl Hook {
    fn start() -> Hook {
        Hook::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Hook {
        Hook::start_on(extra, None)
    }

    /// With `store` (a policy's `store:` line) in place of the SQLite file.
    fn start_on(extra: &[&str], store: Option<&str>) -> Hook {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = policy_text(dir.path(), "Authorized use only.");
        if let Some(store) = store {
            let at = text.find("store:").expect("a store line");
            text.truncate(at);
            text.push_str(store);
            text.push('\n');
        }
        let policy = write_file(dir.path(), "policy.yaml", &text);
        let token = dir.path().join("admin-token");
        std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).expect("write token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut cmd = Command::new(curfew_bin());
        cmd.arg("--policy")
            .arg(&policy)
            .args([
                "hook",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--reload-interval",
                "50ms",
                "--remember-me-claim",
                "curfew_remember_me",
            ])
            .arg("--admin-token-file")
            .arg(&token)
            .args(extra)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH");
        let (guard, base) = spawn_listening(cmd, "curfew hook serve", &dir.path().join("hook.err"));
        Hook {
            _guard: guard,
            base,
            policy,
            // A fresh connection per request: a pooled connection the hook
            // has closed (it closes after answers given before the body
            // was read, and at its timeouts) made a later request fail now
            // and then with IncompleteMessage, which says nothing about
            // the answer under test.
            http: reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
            dir,
        }
    }

    fn post_raw(&self, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/token-hook", self.base))
            .header("content-type", "application/json; charset=UTF-8")
            .body(body)
            .send()
            .expect("POST /token-hook");
        let status = r.status().as_u16();
        let text = r.text().expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .expect("GET");
        (r.status().as_u16(), r.text().expect("body"))
    }

    /// `/healthz`: 200 with `"status": "ok"`, or 503 with
    /// `"status": "policy_reload_failing"` while a reload fails.
    fn healthz(&self) -> Value {
        let (status, body) = self.get("/healthz");
        let v: Value = serde_json::from_str(&body).expect("healthz JSON");
        let failing = !v["policy"]["last_error"].is_null();
        assert_eq!(status, if failing { 503 } else { 200 }, "{v}");
        assert_eq!(
            v["status"],
            if failing {
                "policy_reload_failing"
            } else {
                "ok"
            }
        );
        v
    }

    fn curfew(&self, args: &[&str]) {
        let out = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .output()
            .expect("run curfew");
        assert!(
            out.status.success(),
            "curfew {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn now() -> DateTime<Utc> {
    #[allow(clippy::disallowed_methods)] // the test is an entry point
    Utc::now()
}

/// What Hydra posts (the shape of its own test snapshots).
fn hydra(
    subject: &str,
    client: &str,
    auth_time: DateTime<Utc>,
    grant: &str,
    scopes: &[&str],
) -> Value {
    json!({
        "session": {
            "id_token": {
                "id_token_claims": {
                    "jti": "", "iss": "http://127.0.0.1:4444/", "sub": subject, "aud": [client],
                    "nonce": "", "at_hash": "", "acr": "1", "amr": null, "c_hash": "",
                    "exp": "0001-01-01T00:00:00Z",
                    "iat": auth_time.to_rfc3339(), "rat": auth_time.to_rfc3339(),
                    "auth_time": auth_time.to_rfc3339(),
                    "ext": {"sid": format!("hydra-{subject}")}
                },
                "headers": {"extra": {}},
                "expires_at": {},
                "subject": subject
            },
            "extra": {},
            "kid": "", "client_id": client, "consent_challenge": "",
            "exclude_not_before_claim": false, "allowed_top_level_claims": [],
            "mirror_top_level_claims": true, "preserve_ext_claims": false
        },
        "request": {
            "client_id": client,
            "requested_scopes": scopes,
            "granted_scopes": scopes,
            "granted_audience": [],
            "grant_types": [grant],
            "payload": {"grant_type": [grant]}
        }
    })
}

fn claim(v: &Value, token: &str, name: &str) -> Value {
    v["session"][token][name].clone()
}

#[test]
fn curfew_hook_serve_allows_denies_and_adds_claims_per_the_policy() {
    let h = Hook::start();
    let login = now() - chrono::Duration::seconds(60);

    // Allow: 200 with the session claims in both tokens.
    let before = now().timestamp();
    let (status, v) = h.post(&hydra(
        "alice",
        "web",
        login,
        "authorization_code",
        &["openid", "offline"],
    ));
    let after = now().timestamp();
    assert_eq!(status, 200, "{v}");
    let sid = claim(&v, "access_token", "sid");
    assert_eq!(sid.as_str().expect("sid").len(), 32);
    assert_eq!(
        claim(&v, "id_token", "sid"),
        "hydra-alice",
        "Hydra's own sid is kept"
    );
    assert_eq!(claim(&v, "id_token", "curfew_sid"), sid);
    assert_eq!(
        claim(&v, "access_token", "curfew_absolute_deadline"),
        login.timestamp() + 3600,
        "max_duration 1h from auth_time"
    );
    let idle = claim(&v, "access_token", "curfew_idle_deadline")
        .as_i64()
        .expect("idle");
    assert!(
        (before + 600..=after + 600).contains(&idle),
        "inactivity 10m from now"
    );
    assert_eq!(claim(&v, "access_token", "curfew_warn_at"), idle - 120);
    assert_eq!(
        claim(&v, "access_token", "curfew_banner"),
        "Authorized use only."
    );
    assert_eq!(
        claim(&v, "id_token", "curfew_banner"),
        "Authorized use only."
    );

    // The refresh of the same login is the same session.
    let (status, v) = h.post(&hydra(
        "alice",
        "web",
        login,
        "refresh_token",
        &["openid", "offline"],
    ));
    assert_eq!(status, 200, "{v}");
    assert_eq!(claim(&v, "access_token", "sid"), sid);

    // A group rule, from the groups claim.
    let mut root = hydra("root", "web", login, "authorization_code", &["openid"]);
    root["session"]["id_token"]["id_token_claims"]["ext"]["groups"] = json!(["wheel"]);
    let (status, v) = h.post(&root);
    assert_eq!(status, 200, "{v}");
    let idle = claim(&v, "access_token", "curfew_idle_deadline")
        .as_i64()
        .expect("idle");
    assert!(
        (before + 300..=now().timestamp() + 300).contains(&idle),
        "admins: inactivity 5m"
    );
    assert_eq!(
        claim(&v, "id_token", "curfew_banner"),
        "Admins: every command is recorded."
    );

    // A client rule: ci sessions live 20 minutes.
    let (status, v) = h.post(&hydra("deploy", "ci", login, "authorization_code", &[]));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        claim(&v, "access_token", "curfew_absolute_deadline"),
        login.timestamp() + 1200
    );

    // A refresh of a session the hook never saw is refused (a forged or
    // stale session id never starts a session).
    let old = now() - chrono::Duration::hours(2);
    let (status, v) = h.post(&hydra(
        "bob",
        "web",
        old,
        "refresh_token",
        &["openid", "offline"],
    ));
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["curfew_reason"], "ended", "{v}");
    // Deny: a login older than max_duration, unless it asked to be remembered.
    let (status, v) = h.post(&hydra(
        "bob",
        "web",
        old,
        "authorization_code",
        &["openid", "offline"],
    ));
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"], "access_denied");
    assert_eq!(v["curfew_reason"], "max_duration");
    // Nor with offline_access: the refresh scope is no "remember me"...
    let (status, v) = h.post(&hydra(
        "bob",
        "web",
        old,
        "authorization_code",
        &["openid", "offline_access"],
    ));
    assert_eq!(status, 403, "{v}");
    // ...the configured claim is (--remember-me-claim curfew_remember_me).
    let mut remembered = hydra(
        "bob",
        "web",
        old,
        "authorization_code",
        &["openid", "offline"],
    );
    remembered["session"]["id_token"]["id_token_claims"]["ext"]["curfew_remember_me"] = json!(true);
    let (status, v) = h.post(&remembered);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        claim(&v, "access_token", "curfew_absolute_deadline"),
        old.timestamp() + 86_400
    );

    // `curfew revoke user` ends alice's session and locks her out; bob goes on.
    h.curfew(&["revoke", "user", "alice", "--reason", "e2e"]);
    let (status, v) = h.post(&hydra(
        "alice",
        "web",
        login,
        "refresh_token",
        &["openid", "offline"],
    ));
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["curfew_reason"], "revoked");
    let (status, _) = h.post(&hydra("alice", "web", now(), "authorization_code", &[]));
    assert_eq!(status, 403, "a new login of a revoked user is refused too");
    let (status, _) = h.post(&hydra("bob", "web", now(), "authorization_code", &[]));
    assert_eq!(status, 200);

    // Client credentials: no user, 204; refused once the client is revoked.
    let cc = json!({"session": {"id_token": {"id_token_claims": {"auth_time": "0001-01-01T00:00:00Z"}},
                                "client_id": "batch"},
                    "request": {"client_id": "batch", "grant_types": ["client_credentials"]}});
    assert_eq!(h.post(&cc).0, 204);
    h.curfew(&["revoke", "client", "batch"]);
    assert_eq!(h.post(&cc).0, 403);

    // Unreadable and oversized requests.
    assert_eq!(h.post_raw("{not json".into()).0, 400);
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(h.post_raw(big).0, 413);

    // Health and metrics.
    let health = h.healthz();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["policy"]["generation"], 1);
    let (status, metrics) = h.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("curfew_hook_requests_total{outcome=\"allow\"} 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("curfew_hook_requests_total{outcome=\"deny\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("curfew_hook_denials_total{reason=\"revoked\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("curfew_hook_requests_total{outcome=\"bad_request\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("curfew_hook_request_duration_seconds_count 15"),
        "{metrics}"
    );

    // The admin route needs the token.
    let r = h
        .http
        .post(format!("{}/admin/reload", h.base))
        .send()
        .expect("POST /admin/reload");
    assert_eq!(r.status().as_u16(), 401);
    let r = h
        .http
        .post(format!("{}/admin/reload", h.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("POST /admin/reload");
    assert_eq!(r.status().as_u16(), 200);
}

/// Issue 14: `curfew unrevoke` lets new logins in and never revives a
/// session the revocation ended, whether or not the session made a token
/// request while the revocation was in force; on SQLite and on a real
/// redis-server.
fn unrevoke_keeps_the_old_session_ended(h: &Hook) {
    let login = now() - chrono::Duration::seconds(60);
    // Two sessions of alice (two Hydra login sessions), both allowed.
    let mut touched = hydra("alice", "web", login, "authorization_code", &["offline"]);
    touched["session"]["id_token"]["id_token_claims"]["ext"]["sid"] = json!("sid-touched");
    let mut quiet = touched.clone();
    quiet["session"]["id_token"]["id_token_claims"]["ext"]["sid"] = json!("sid-quiet");
    for body in [&touched, &quiet] {
        let (status, v) = h.post(body);
        assert_eq!(status, 200, "{v}");
    }
    let refresh = |body: &Value| {
        let mut b = body.clone();
        b["request"]["grant_types"] = json!(["refresh_token"]);
        b["request"]["payload"]["grant_type"] = json!(["refresh_token"]);
        b
    };
    let (status, v) = h.post(&refresh(&touched));
    assert_eq!(status, 200, "a refresh before the revocation: {v}");

    h.curfew(&["revoke", "user", "alice", "--reason", "e2e"]);
    // One session runs into the revocation while it is in force; the other
    // makes no request until after the unrevoke.
    let (status, v) = h.post(&refresh(&touched));
    assert_eq!(status, 403, "{v}");
    let out = Command::new(curfew_bin())
        .arg("--policy")
        .arg(&h.policy)
        .args(["revocations", "list", "--format", "json"])
        .output()
        .expect("run curfew");
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = list[0]["id"].as_str().expect("an id").to_owned();
    h.curfew(&["unrevoke", &id]);

    for (which, body) in [("touched", &touched), ("quiet", &quiet)] {
        let (status, v) = h.post(&refresh(body));
        assert_eq!(status, 403, "{which}: the old session stays ended: {v}");
        assert!(
            ["revoked", "ended"].contains(&v["curfew_reason"].as_str().unwrap_or_default()),
            "{which}: {v}"
        );
    }
    // A fresh login works, and so do its refreshes.
    let mut fresh = hydra("alice", "web", now(), "authorization_code", &["offline"]);
    fresh["session"]["id_token"]["id_token_claims"]["ext"]["sid"] = json!("sid-fresh");
    let (status, v) = h.post(&fresh);
    assert_eq!(status, 200, "a new login after the unrevoke: {v}");
    let (status, v) = h.post(&refresh(&fresh));
    assert_eq!(status, 200, "{v}");
}

#[test]
fn unrevoke_never_revives_an_oidc_session_on_sqlite() {
    unrevoke_keeps_the_old_session_ended(&Hook::start());
}

#[test]
fn unrevoke_never_revives_an_oidc_session_on_redis() {
    let server = curfew_policy::store::testing::RedisServer::start().expect("start redis-server");
    let store = format!("store: {{ backend: redis, url: \"{}\" }}", server.url());
    unrevoke_keeps_the_old_session_ended(&Hook::start_on(&[], Some(&store)));
}

#[test]
fn curfew_hook_serve_reloads_the_policy_and_keeps_the_last_good_one() {
    let h = Hook::start();
    let request = || hydra("carol", "web", now(), "authorization_code", &[]);
    let (status, v) = h.post(&request());
    assert_eq!(status, 200);
    assert_eq!(
        claim(&v, "access_token", "curfew_banner"),
        "Authorized use only."
    );

    // An invalid edit: the hook says so and keeps deciding with the last good policy.
    std::fs::write(&h.policy, "version: 1\nsession: { inactivity: 3h }\n").expect("write");
    let health = wait_for(Duration::from_secs(20), || {
        let v = h.healthz();
        (!v["policy"]["last_error"].is_null()).then_some(v)
    })
    .expect("the hook reports the rejected policy");
    assert!(health["policy"]["last_error"]
        .as_str()
        .expect("error")
        .contains("inactivity"));
    assert_eq!(health["policy"]["generation"], 1);
    let (status, v) = h.post(&request());
    assert_eq!(status, 200);
    assert_eq!(
        claim(&v, "access_token", "curfew_banner"),
        "Authorized use only."
    );
    let (_, metrics) = h.get("/metrics");
    assert!(
        metrics.contains("curfew_policy_reload_failing 1"),
        "{metrics}"
    );

    // A valid edit is put in force.
    std::fs::write(&h.policy, policy_text(h.dir.path(), "Reloaded banner.")).expect("write");
    wait_for(Duration::from_secs(20), || {
        (h.healthz()["policy"]["generation"] == 2).then_some(())
    })
    .expect("the hook reloads the valid policy");
    assert!(h.healthz()["policy"]["last_error"].is_null());
    let (status, v) = h.post(&request());
    assert_eq!(status, 200);
    assert_eq!(
        claim(&v, "access_token", "curfew_banner"),
        "Reloaded banner."
    );
}

const HOOK_TOKEN: &str = "hook-0123456789abcdef";

/// Opens `n` connections that send half a request line and stall.
fn half_open(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write as _;
    (0..n)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
            s.write_all(b"POST /token-hook HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
            s
        })
        .collect()
}

/// Raises this process's open-file limit to its hard limit, for the
/// thousand client sockets.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

#[test]
fn curfew_hook_serve_answers_while_a_thousand_connections_stall() {
    raise_nofile();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("hook-token");
    std::fs::write(&token, format!("{HOOK_TOKEN}\n")).expect("write token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let token = token.display().to_string();
    let h = Hook::start_with(&["--hook-token-file", &token, "--header-timeout", "3s"]);
    let addr = h.base.trim_start_matches("http://").to_owned();
    let request = || hydra("dave", "web", now(), "authorization_code", &["openid"]);
    let timed = |label: &str| {
        let t = std::time::Instant::now();
        let r = h
            .http
            .post(format!("{}/token-hook", h.base))
            .bearer_auth(HOOK_TOKEN)
            .json(&request())
            .send()
            .expect("POST /token-hook");
        let took = t.elapsed();
        println!(
            "{label}: authenticated request answered {} in {took:?}",
            r.status()
        );
        (r.status().as_u16(), took)
    };
    // Baseline, same run.
    let (status, _) = timed("no stalled connections");
    assert_eq!(status, 200);

    let stalled = half_open(&addr, 1000);
    let (status, took) = timed("1000 stalled connections");
    assert_eq!(
        status, 200,
        "the hook answers despite 1000 stalled connections"
    );
    // Generous: a functional bound, not a benchmark (BENCHMARKS.md has the numbers).
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The bearer token is checked before the body is read: a request that
    // announces a body and never sends it is refused at once.
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s.write_all(
        b"POST /token-hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{",
    )
    .expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("an answer before the body");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Stalled connections are closed after the header timeout.
    let mut first = stalled.into_iter().next().expect("one");
    first
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let t = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = first.read_to_end(&mut rest);
    assert!(
        closed.is_ok() && t.elapsed() < Duration::from_secs(14),
        "the hook closes a connection that stalls past --header-timeout: {closed:?} after {:?}",
        t.elapsed()
    );
}
