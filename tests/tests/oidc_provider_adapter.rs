//! panva's `oidc-provider` (npm, pinned in tests/node/package-lock.json)
//! running live on 127.0.0.1 with curfew's adapter
//! (`oidc_hook/adapters/oidc-provider`, installed into tests/node by
//! `npm ci`) and `curfew hook serve` (issue 14):
//!
//! - a user signs in (openid-client as the relying party, fetch with a
//!   cookie jar as the browser, oidc-provider's devInteractions as the login
//!   page) and refreshes; the access token carries curfew's claims and
//!   lifetime;
//! - `curfew revoke user` (the real CLI against the hook's store): the
//!   provider's session and grant end without any request from the user
//!   (the hook's ends feed), as the provider's own models report; the
//!   access token is no longer active at the provider's introspection;
//!   the refresh fails with `invalid_grant`; the client's back-channel
//!   logout URI gets a logout token; and a new authorization request
//!   shows the login prompt instead of silently issuing a code; another
//!   user's login is untouched until `curfew sessions terminate` ends it
//!   the same way;
//! - with the ends feed off, the hook's refusal alone does the same at the
//!   next refresh (`invalid_grant` naming curfew's reason), a client
//!   revocation refuses client credentials, and with the hook stopped no
//!   token is issued (`500 server_error`: fail closed).
//!
//! The scripts: tests/node/oidc_provider_curfew.mjs (the provider) and
//! tests/node/oidc_provider_rp.mjs (the relying party and the user).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use curfew_e2e::common::{curfew_bin, wait_for, write_file, ChildGuard};
use curfew_e2e::node::{node, node_dir, spawn_node};
use curfew_e2e::oidc::{spawn_listening, Receiver};
use serde_json::Value;

const HOOK_TOKEN: &str = "hook-0123456789abcdef";
const CLIENT: &str = "web";
const SECRET: &str = "web-secret-0123456789";
const MACHINE: &str = "ci";
const MACHINE_SECRET: &str = "ci-secret-0123456789";
const REDIRECT: &str = "http://127.0.0.1:1/cb";

struct Live {
    dir: tempfile::TempDir,
    policy: PathBuf,
    issuer: String,
    receiver: Receiver,
    http: reqwest::blocking::Client,
    provider: ChildGuard,
    hook: Option<ChildGuard>,
}

/// The adapter as installed in tests/node must be the one in the tree
/// (`npm ci` copies it): otherwise the test would run stale code.
fn adapter_is_current() {
    let installed = node_dir().join("node_modules/curfew-oidc-provider/index.js");
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../oidc_hook/adapters/oidc-provider/index.js");
    let a = std::fs::read(&installed).unwrap_or_default();
    let b = std::fs::read(&source).expect("read the adapter's source");
    assert!(
        a == b,
        "{} differs from {}: run scripts/setup-node (npm ci installs the adapter)",
        installed.display(),
        source.display()
    );
}

impl Live {
    fn start(ends: bool) -> Live {
        adapter_is_current();
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = write_file(
            dir.path(),
            "policy.yaml",
            &format!(
                "version: 1\n\
                 session:\n  timeout: {{ default: 5m, min: 1m, max: 1h }}\n  max_duration: 1h\n  inactivity: 10m\n  warn_before: 1m\n\
                 store: {{ backend: sqlite, path: {d}/state.db }}\n\
                 audit: {{ syslog: false, file: {d}/audit.jsonl }}\n",
                d = dir.path().display()
            ),
        );
        let token = dir.path().join("hook-token");
        std::fs::write(&token, format!("{HOOK_TOKEN}\n")).expect("write token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut cmd = Command::new(curfew_bin());
        cmd.arg("--policy")
            .arg(&policy)
            .args([
                "hook",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--sweep-interval",
            ])
            // Without the feed, no sweep either: the refusal of a token
            // request is the only way an end is found.
            .arg(if ends { "200ms" } else { "0s" })
            .arg("--hook-token-file")
            .arg(&token)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH");
        let (hook_guard, hook) =
            spawn_listening(cmd, "curfew hook serve", &dir.path().join("hook.err"));
        let receiver = Receiver::start();
        let (op_guard, issuer) = spawn_node(
            "oidc_provider_curfew.mjs",
            &[
                ("HOOK_URL", &hook),
                ("HOOK_TOKEN", HOOK_TOKEN),
                ("CURFEW_ENDS", if ends { "1" } else { "0" }),
                ("CLIENT_ID", CLIENT),
                ("CLIENT_SECRET", SECRET),
                ("REDIRECT_URI", REDIRECT),
                ("BACKCHANNEL_URI", &receiver.url),
                ("MACHINE_ID", MACHINE),
                ("MACHINE_SECRET", MACHINE_SECRET),
            ],
            &dir.path().join("provider.err"),
        );
        Live {
            dir,
            policy,
            issuer,
            receiver,
            http: reqwest::blocking::Client::new(),
            provider: op_guard,
            hook: Some(hook_guard),
        }
    }

    /// Stops the hook (by its PID, through its guard).
    fn stop_hook(&mut self) {
        drop(self.hook.take());
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "provider stderr:\n{}\nhook stderr:\n{}",
            read("provider.err"),
            read("hook.err")
        )
    }

    /// One step of the relying party for `user` (its cookies and tokens
    /// live in a state file per user).
    fn rp(&self, user: &str, step: &str) -> Value {
        let out = node("oidc_provider_rp.mjs")
            .arg(step)
            .env("ISSUER", &self.issuer)
            .env("CLIENT_ID", CLIENT)
            .env("CLIENT_SECRET", SECRET)
            .env("REDIRECT_URI", REDIRECT)
            .env("MACHINE_ID", MACHINE)
            .env("MACHINE_SECRET", MACHINE_SECRET)
            .env("USERNAME", user)
            .env(
                "STATE_FILE",
                self.dir.path().join(format!("rp-{user}.json")),
            )
            .output()
            .expect("run node");
        assert!(
            out.status.success(),
            "rp {step}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        let line = out
            .stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .unwrap_or_else(|| panic!("rp {step}: no JSON line\n{}", self.logs()));
        serde_json::from_slice(line).expect("JSON")
    }

    fn curfew(&self, args: &[&str]) -> String {
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The logins the provider issued tokens for, with whether its own
    /// models still find their Session and Grant.
    fn logins(&self, user: &str) -> Vec<Value> {
        let all: Vec<Value> = self
            .http
            .get(format!("{}/__logins", self.issuer))
            .send()
            .expect("GET /__logins")
            .json()
            .expect("logins JSON");
        all.into_iter().filter(|l| l["accountId"] == user).collect()
    }

    fn ends(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/__ends", self.issuer))
            .send()
            .expect("GET /__ends")
            .json()
            .expect("ends JSON")
    }

    /// Signs `user` in and refreshes once; returns the login's claims.
    fn sign_in_and_refresh(&self, user: &str) -> Value {
        let login = self.rp(user, "login");
        assert_eq!(login["ok"], true, "login: {login}\n{}", self.logs());
        assert_eq!(login["claims"]["sub"], user);
        assert_eq!(login["has_refresh_token"], true, "{login}");
        let refreshed = self.rp(user, "refresh");
        assert_eq!(
            refreshed["ok"],
            true,
            "refresh: {refreshed}\n{}",
            self.logs()
        );
        assert_eq!(refreshed["claims"]["sub"], user);
        let logins = self.logins(user);
        assert_eq!(logins.len(), 1, "{logins:?}");
        assert_eq!(logins[0]["session"], true, "{logins:?}");
        assert_eq!(logins[0]["grant"], true, "{logins:?}");
        refreshed
    }
}

#[test]
fn revoke_user_ends_the_providers_session_and_grant_and_asks_for_a_fresh_login() {
    let live = Live::start(true);
    live.sign_in_and_refresh("alice");
    live.sign_in_and_refresh("bob");

    // The access token carries curfew's claims and curfew's lifetime (5 min
    // by the policy; the provider's own setting is an hour).
    let intro = live.rp("alice", "introspect");
    assert_eq!(intro["active"], true, "{intro}");
    let sid = intro["curfew_sid"].as_str().expect("curfew_sid").to_owned();
    assert_eq!(sid.len(), 32, "{intro}");
    let (iat, exp) = (
        intro["iat"].as_i64().expect("iat"),
        intro["exp"].as_i64().expect("exp"),
    );
    assert!(exp - iat <= 300 && exp - iat > 0, "lifetime {}", exp - iat);
    assert!(intro["curfew_idle_deadline"].as_i64().is_some(), "{intro}");
    assert!(
        intro["curfew_absolute_deadline"].as_i64().is_some(),
        "{intro}"
    );
    // Before the revocation, a new authorization request is answered
    // silently with a code (the provider's SSO session), the baseline the
    // login prompt below is measured against.
    let silent = live.rp("alice", "authorize");
    assert_eq!(silent["landed"], "redirect", "{silent}");

    let revoked_at = std::time::Instant::now();
    live.curfew(&["revoke", "user", "alice"]);

    // No request from the user: the hook's sweep sees the revocation, the
    // adapter's poll of /v1/ends destroys the provider's session and grant.
    let gone = wait_for(Duration::from_secs(15), || {
        let l = live.logins("alice");
        (l.len() == 1 && l[0]["session"] == false && l[0]["grant"] == false).then_some(l)
    });
    assert!(
        gone.is_some(),
        "the provider still has alice's session or grant: {:?}\n{}",
        live.logins("alice"),
        live.logs()
    );
    // Reported, not asserted (the bound above is a wait, not a timing test).
    eprintln!(
        "curfew revoke to the provider's session and grant gone: {} ms (hook sweep 200 ms, polled every 20 ms)",
        revoked_at.elapsed().as_millis()
    );
    // The adapter reports each end once it is applied (after the
    // back-channel logouts).
    let end = wait_for(Duration::from_secs(15), || {
        live.ends()
            .into_iter()
            .find(|e| e["end"]["subject"] == "alice")
    })
    .unwrap_or_else(|| panic!("no end reported for alice\n{}", live.logs()));
    assert_eq!(end["ok"], true, "{end}");
    assert_eq!(end["end"]["reason"], "revoked", "{end}");
    assert_eq!(end["end"]["session_id"], sid.as_str(), "{end}");
    assert_eq!(end["sessions"], 1, "{end}");
    assert_eq!(end["grants"], 1, "{end}");
    // The relying party is told through the provider's back-channel logout.
    let logout = wait_for(Duration::from_secs(10), || {
        live.receiver
            .received()
            .into_iter()
            .find(|r| r.body.contains("logout_token="))
    });
    assert!(logout.is_some(), "no logout token\n{}", live.logs());

    // The provider itself no longer knows the access token.
    let intro = live.rp("alice", "introspect");
    assert_eq!(intro["active"], false, "{intro}");
    // The next refresh fails.
    let refresh = live.rp("alice", "refresh");
    assert_eq!(refresh["ok"], false, "{refresh}");
    assert_eq!(refresh["error"], "invalid_grant", "{refresh}");
    // A new authorization request (no prompt) asks for a login: no code.
    let again = live.rp("alice", "authorize");
    assert_eq!(again["landed"], "interaction", "{again}");
    assert_eq!(again["prompt"], "login", "{again}");

    // Bob is untouched.
    let bob = live.logins("bob");
    assert_eq!(bob[0]["session"], true, "{bob:?}");
    assert_eq!(bob[0]["grant"], true, "{bob:?}");
    let refresh = live.rp("bob", "refresh");
    assert_eq!(refresh["ok"], true, "{refresh}");

    // Another end: an administrator terminates bob's curfew session.
    let intro = live.rp("bob", "introspect");
    let bob_sid = intro["curfew_sid"].as_str().expect("curfew_sid").to_owned();
    live.curfew(&["sessions", "terminate", "--yes", &bob_sid]);
    let gone = wait_for(Duration::from_secs(15), || {
        let l = live.logins("bob");
        (l[0]["session"] == false && l[0]["grant"] == false).then_some(())
    });
    assert!(
        gone.is_some(),
        "bob's session or grant is still there: {:?}\n{}",
        live.logins("bob"),
        live.logs()
    );
    let refresh = live.rp("bob", "refresh");
    assert_eq!(refresh["error"], "invalid_grant", "{refresh}");
    let again = live.rp("bob", "authorize");
    assert_eq!(again["landed"], "interaction", "{again}");
    assert_eq!(again["prompt"], "login", "{again}");
    drop(live.provider);
}

#[test]
fn a_refused_refresh_alone_ends_the_login_and_a_revoked_client_gets_no_tokens() {
    // The ends feed and the hook's sweep are off: only the hook's answer to
    // the token request acts.
    let mut live = Live::start(false);
    live.sign_in_and_refresh("carol");
    live.sign_in_and_refresh("dave");
    let machine = live.rp("carol", "machine");
    assert_eq!(machine["ok"], true, "{machine}");

    live.curfew(&["revoke", "user", "carol"]);
    let refresh = live.rp("carol", "refresh");
    assert_eq!(refresh["ok"], false, "{refresh}");
    assert_eq!(refresh["error"], "invalid_grant", "{refresh}");
    assert_eq!(refresh["status"], 400, "{refresh}");
    assert_eq!(
        refresh["error_description"], "curfew: revoked; access_denied",
        "{refresh}"
    );
    let logins = live.logins("carol");
    assert_eq!(logins[0]["session"], false, "{logins:?}");
    assert_eq!(logins[0]["grant"], false, "{logins:?}");
    let again = live.rp("carol", "authorize");
    assert_eq!(again["landed"], "interaction", "{again}");
    assert_eq!(again["prompt"], "login", "{again}");

    // A machine client is refused only for a revocation of the client.
    live.curfew(&["revoke", "client", MACHINE]);
    let machine = live.rp("carol", "machine");
    assert_eq!(machine["ok"], false, "{machine}");
    assert_eq!(machine["error"], "invalid_grant", "{machine}");

    // Without the hook's answer, no tokens (fail closed).
    live.stop_hook();
    let refresh = live.rp("dave", "refresh");
    assert_eq!(refresh["ok"], false, "{refresh}");
    assert_eq!(refresh["status"], 500, "server_error: {refresh}");
    assert!(
        live.logs().contains("did not answer"),
        "the adapter names the cause in the provider's log\n{}",
        live.logs()
    );
}
