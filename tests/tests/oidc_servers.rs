//! curfew's token hook plugged into real OIDC server contracts (issue 14):
//!
//! - Hydra's admin API: a stand-in (tests/node/hydra-admin-standin.cjs) that
//!   accepts only the methods, paths and query parameters of Hydra's
//!   published API as the pinned `@ory/hydra-client` package builds them,
//!   and records every request. `curfew hook serve --hydra-admin-url` must
//!   make the right calls on revoke, terminate, idle and max_duration ends,
//!   retry failures and audit every call.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use curfew_e2e::common::{curfew_bin, wait_for, write_file, ChildGuard};
use curfew_e2e::node::spawn_node;
use curfew_e2e::oidc::spawn_listening;
use serde_json::{json, Value};

const HOOK_TOKEN: &str = "hook-0123456789abcdef";
const ADMIN_TOKEN: &str = "hydra-admin-0123456789abcdef";

fn now() -> DateTime<Utc> {
    #[allow(clippy::disallowed_methods)] // the test is an entry point
    Utc::now()
}

fn secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn policy(dir: &Path) -> PathBuf {
    write_file(
        dir,
        "policy.yaml",
        &format!(
            r#"version: 1
session:
  max_duration: 1h
  inactivity: 10m
  warn_before: 1s
rules:
  - name: kiosk
    match: {{ clients: [kiosk] }}
    session: {{ inactivity: 2s }}
store: {{ backend: sqlite, path: {d}/state.db }}
audit: {{ syslog: false, file: {d}/audit.jsonl }}
"#,
            d = dir.display()
        ),
    )
}

struct Setup {
    dir: tempfile::TempDir,
    policy: PathBuf,
    hook: String,
    standin: String,
    http: reqwest::blocking::Client,
    _guards: Vec<ChildGuard>,
}

impl Setup {
    fn start() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = policy(dir.path());
        let (standin_guard, standin) = spawn_node(
            "hydra-admin-standin.cjs",
            &[("STANDIN_TOKEN", ADMIN_TOKEN)],
            &dir.path().join("standin.err"),
        );
        let hook_token = secret(dir.path(), "hook-token", HOOK_TOKEN);
        let admin_token = secret(dir.path(), "hydra-admin-token", ADMIN_TOKEN);
        let mut cmd = Command::new(curfew_bin());
        cmd.arg("--policy")
            .arg(&policy)
            .args([
                "hook",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--sweep-interval",
                "200ms",
            ])
            .arg("--hook-token-file")
            .arg(&hook_token)
            .args(["--hydra-admin-url", &standin])
            .arg("--hydra-admin-token-file")
            .arg(&admin_token)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH");
        let (hook_guard, hook) =
            spawn_listening(cmd, "curfew hook serve", &dir.path().join("hook.err"));
        Setup {
            dir,
            policy,
            hook,
            standin,
            http: reqwest::blocking::Client::new(),
            _guards: vec![hook_guard, standin_guard],
        }
    }

    fn token_hook(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/token-hook", self.hook))
            .bearer_auth(HOOK_TOKEN)
            .json(body)
            .send()
            .expect("POST /token-hook");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn curfew(&self, args: &[&str]) -> String {
        let out = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .env_remove("CURFEW_POLICY")
            .output()
            .expect("run curfew");
        assert!(
            out.status.success(),
            "curfew {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn calls(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/__calls", self.standin))
            .send()
            .expect("GET /__calls")
            .json()
            .expect("calls")
    }

    /// Waits until the stand-in has seen calls satisfying `pred` for `who`.
    fn wait_calls(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        wait_for(Duration::from_secs(15), || {
            let c = self.calls();
            pred(&c).then_some(c)
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: the stand-in saw {:#?}\nhook stderr:\n{}",
                self.calls(),
                std::fs::read_to_string(self.dir.path().join("hook.err")).unwrap_or_default()
            )
        })
    }

    fn fail_next(&self, n: u32) {
        self.http
            .post(format!("{}/__fail", self.standin))
            .json(&json!({"count": n}))
            .send()
            .expect("POST /__fail");
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit JSON"))
            .collect()
    }
}

/// A login as Hydra posts it.
fn hydra(subject: &str, client: &str, sid: &str, auth_time: DateTime<Utc>, grant: &str) -> Value {
    json!({
        "session": {
            "id_token": {
                "id_token_claims": {
                    "iss": "http://127.0.0.1:4444/", "sub": subject, "aud": [client],
                    "auth_time": auth_time.to_rfc3339(), "iat": now().to_rfc3339(),
                    "ext": {"sid": sid}
                },
                "headers": {"extra": {}}, "subject": subject
            },
            "extra": {}, "client_id": client
        },
        "request": {"client_id": client, "granted_scopes": ["openid", "offline"],
                    "grant_types": [grant], "payload": {"grant_type": [grant]}}
    })
}

fn query(call: &Value, k: &str) -> Option<String> {
    call["query"][k].as_str().map(str::to_owned)
}

fn calls_for<'a>(calls: &'a [Value], key: &str, value: &str) -> Vec<&'a Value> {
    calls
        .iter()
        .filter(|c| query(c, key).as_deref() == Some(value))
        .collect()
}

#[test]
fn hydra_admin_api_is_told_of_every_end_with_retries_and_audit() {
    let s = Setup::start();
    let login = now() - chrono::Duration::seconds(5);

    // Four logins, each to end a different way.
    for (user, client, sid, at) in [
        ("alice", "web", "op-alice", login),
        ("bob", "web", "op-bob", login),
        ("carol", "kiosk", "op-carol", login),
        // max_duration 1h: this login is 2 s from its end.
        (
            "dave",
            "web",
            "op-dave",
            now() - chrono::Duration::seconds(3598),
        ),
    ] {
        let (status, v) = s.token_hook(&hydra(user, client, sid, at, "authorization_code"));
        assert_eq!(status, 200, "{user}: {v}");
    }
    let bob_session = s
        .token_hook(&hydra("bob", "web", "op-bob", login, "refresh_token"))
        .1["session"]["access_token"]["curfew_sid"]
        .as_str()
        .expect("bob's curfew_sid")
        .to_owned();

    // A failure on the first call is retried.
    s.fail_next(2);
    s.curfew(&["revoke", "user", "alice", "--reason", "offboarding"]);
    s.curfew(&["sessions", "terminate", &bob_session, "--yes"]);

    // Each end is several calls (login session by sid, then consents), sent
    // one after another: wait for the last of every user's, not the first.
    let consent_told = |c: &[Value], user: &str, client: &str| {
        c.iter().any(|x| {
            x["operation"] == "revokeOAuth2ConsentSessions"
                && query(x, "subject").as_deref() == Some(user)
                && x["status"] == 204
                && (query(x, "client").as_deref() == Some(client)
                    || (client == "*" && query(x, "all").as_deref() == Some("true")))
        })
    };
    let calls = s.wait_calls("every end told", |c| {
        ["op-alice", "op-bob", "op-carol", "op-dave"]
            .iter()
            .all(|sid| {
                c.iter()
                    .any(|x| query(x, "sid").as_deref() == Some(sid) && x["status"] == 204)
            })
            && [
                ("alice", "*"),
                ("bob", "web"),
                ("carol", "kiosk"),
                ("dave", "web"),
            ]
            .iter()
            .all(|(user, client)| consent_told(c, user, client))
            && c.iter().any(|x| {
                x["operation"] == "revokeOAuth2LoginSessions"
                    && query(x, "subject").as_deref() == Some("alice")
                    && x["status"] == 204
            })
    });

    // Every request is one of Hydra's published operations, authenticated.
    for c in &calls {
        assert!(c["operation"].is_string(), "not in Hydra's API: {c}");
        assert_eq!(c["authorized"], true, "{c}");
        assert_eq!(c["method"], "DELETE", "{c}");
    }

    // alice (user revoked): her login session by sid and by subject, and
    // every consent of hers (all=true).
    let alice = calls_for(&calls, "subject", "alice");
    assert!(
        alice
            .iter()
            .any(|c| c["operation"] == "revokeOAuth2LoginSessions"),
        "{alice:#?}"
    );
    assert!(
        alice
            .iter()
            .any(|c| c["operation"] == "revokeOAuth2ConsentSessions"
                && query(c, "all").as_deref() == Some("true")),
        "{alice:#?}"
    );
    // bob (terminated), carol (idle), dave (max_duration): the login
    // session by sid, the consent of that subject at that client.
    for (user, client) in [("bob", "web"), ("carol", "kiosk"), ("dave", "web")] {
        let mine = calls_for(&calls, "subject", user);
        assert!(
            mine.iter()
                .any(|c| c["operation"] == "revokeOAuth2ConsentSessions"
                    && query(c, "client").as_deref() == Some(client)
                    && c["status"] == 204),
            "{user}: {mine:#?}"
        );
    }
    let retried: Vec<&Value> = calls.iter().filter(|c| c["status"] == 503).collect();
    assert_eq!(retried.len(), 2, "the two failures: {calls:#?}");

    // The reasons, in the store and in the audit trail (one event per call,
    // written after the call returns: wait until every call has its event).
    let (calls, audit) = wait_for(Duration::from_secs(15), || {
        let a = s.audit();
        let c = s.calls();
        let audited = a
            .iter()
            .filter(|e| e["event"] == "oidc_server_call" && e["ok"] == true)
            .count();
        let told = c.iter().filter(|x| x["status"] == 204).count();
        (audited == told).then_some((c, a))
    })
    .unwrap_or_else(|| (s.calls(), s.audit()));
    let successful = calls.iter().filter(|c| c["status"] == 204).count();
    let server_calls: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "oidc_server_call")
        .collect();
    let ok = |user: &str, reason: &str| {
        server_calls
            .iter()
            .any(|e| e["user"] == user && e["reason"] == reason && e["ok"] == true)
    };
    assert!(ok("alice", "revoked"), "{server_calls:#?}");
    assert!(ok("bob", "terminated"), "{server_calls:#?}");
    assert!(ok("carol", "idle"), "{server_calls:#?}");
    assert!(ok("dave", "max_duration"), "{server_calls:#?}");
    assert!(
        server_calls
            .iter()
            .any(|e| e["attempts"] == 3 && e["ok"] == true),
        "a call that succeeded on its third attempt: {server_calls:#?}"
    );
    assert_eq!(server_calls.len(), successful, "one audit event per call");

    // A call that keeps failing is given up after its attempts and audited
    // as failed.
    s.fail_next(1000);
    let (status, _) = s.token_hook(&hydra(
        "erin",
        "web",
        "op-erin",
        now(),
        "authorization_code",
    ));
    assert_eq!(status, 200);
    s.curfew(&["revoke", "user", "erin"]);
    let failed = wait_for(Duration::from_secs(15), || {
        let a = s.audit();
        let f: Vec<Value> = a
            .into_iter()
            .filter(|e| e["event"] == "oidc_server_call" && e["user"] == "erin" && e["ok"] == false)
            .collect();
        (!f.is_empty()).then_some(f)
    })
    .expect("a failed call is audited");
    assert_eq!(failed[0]["attempts"], 3, "{failed:#?}");
    assert_eq!(failed[0]["status"], 503, "{failed:#?}");
}
