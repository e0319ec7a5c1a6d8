//! One scripted day on one host, and the JSON audit file it leaves behind
//! (issue 11: "the JSON audit file of one host answers who logged in where,
//! who was refused and why, who revoked whom, which session the enforcer
//! ended").
//!
//! Every part is the real one, writing to one audit file named by one
//! policy: `libpam_curfew.so` through real libpam (pam_wrapper + pamtester,
//! no root, nothing under /etc), the `curfew` CLI for the admin's actions,
//! `curfew enforce --once` for the enforcer, and `curfew hook serve` over
//! HTTP on 127.0.0.1 for the OIDC side. The two logins the enforcer ends
//! are the test's own user's (the enforcer signals only processes of a
//! session's own uid, and pamtester runs as the test); the others are system
//! accounts every Debian host has (`sys`, `bin`), so no account is created.
//! Every process started here is stopped by PID.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use curfew_e2e::common::{curfew_bin, pam_module, wait_for, write_file, ChildGuard};
use curfew_e2e::oidc::spawn_listening;
use curfew_e2e::pam::{text, wrapper_start_lock, PamSandbox, PAM_MATRIX, PAM_SET_ITEMS};
use curfew_policy::audit::{AuditEvent, AuditLine, Grant, RefusalReason, StoreOutcome};
use curfew_policy::Target;
use serde_json::{json, Value};

const SERVICE: &str = "curfew-day";
const SERVICE_SHIFT: &str = "curfew-day-shift";
const SERVICE_DOWN: &str = "curfew-day-down";
const RHOST: &str = "192.0.2.10";

/// The policy of the day: logins through the shift service have an idle end
/// announced from the first second on (so the enforcer's first pass warns).
fn policy_body(audit: &Path) -> String {
    format!(
        "version: 1\n\
         session: {{ max_duration: 12h, inactivity: 30m, warn_before: 2m }}\n\
         rules:\n  \
           - name: short-shift\n    \
             match: {{ services: [{SERVICE_SHIFT}] }}\n    \
             session: {{ inactivity: 10m, warn_before: 9m59s }}\n\
         audit: {{ syslog: false, file: {} }}\n",
        audit.display()
    )
}

/// The name of the user running the test.
fn me() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the test's user has a name")
}

fn now() -> DateTime<Utc> {
    #[allow(clippy::disallowed_methods)] // the test is an entry point
    Utc::now()
}

/// The day's host: the sandbox (policy, store, audit file, PAM services)
/// and the token hook.
struct Host {
    sb: PamSandbox,
    audit: PathBuf,
    hook: Option<(ChildGuard, String)>,
    http: reqwest::blocking::Client,
}

impl Host {
    fn new() -> Host {
        // The audit file lives in the sandbox's private directory.
        let sb = PamSandbox::new("version: 1\n");
        let audit = sb.dir.path().join("audit.jsonl");
        sb.write_policy(&policy_body(&audit), "");
        let passdb = write_file(
            sb.dir.path(),
            "passdb",
            &format!(
                "{me}:gate:{SERVICE}\n{me}:gate:{SERVICE_SHIFT}\n",
                me = me()
            ),
        );
        // pam_matrix's password prompt (after open_session) holds pamtester
        // in a live session for as long as the test wants.
        for service in [SERVICE, SERVICE_SHIFT] {
            sb.service(
                service,
                &[
                    format!("auth required {PAM_MATRIX} passdb={}", passdb.display()),
                    sb.module_line("account", ""),
                    format!("session required {PAM_SET_ITEMS}"),
                    sb.module_line("session", ""),
                ],
            );
        }
        // The same host, through a policy whose store cannot be reached and
        // that lets logins through then (on_unavailable: allow).
        let down = write_file(
            sb.dir.path(),
            "policy-down.yaml",
            &format!(
                "{}store: {{ path: /nonexistent-curfew-dir/state.db, on_unavailable: allow }}\n",
                policy_body(&audit)
            ),
        );
        let module = |kind: &str| {
            format!(
                "{kind} required {} policy={}",
                pam_module().display(),
                down.display()
            )
        };
        sb.service(SERVICE_DOWN, &[module("account"), module("session")]);
        Host {
            sb,
            audit,
            hook: None,
            http: reqwest::blocking::Client::new(),
        }
    }

    fn curfew_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(curfew_bin());
        cmd.arg("--policy")
            .arg(&self.sb.policy)
            .args(args)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            // The actor is then the user running the test, by uid.
            .env_remove("SUDO_USER")
            .stdin(Stdio::null());
        cmd
    }

    /// An admin command; it must succeed.
    fn curfew(&self, args: &[&str]) -> Output {
        let out = self.curfew_cmd(args).output().expect("run curfew");
        assert!(
            out.status.success(),
            "curfew {args:?} failed: {:?}",
            text(&out)
        );
        out
    }

    /// `curfew revoke user NAME --reason REASON`; returns the revocation id.
    fn revoke_user(&self, name: &str, reason: &str) -> String {
        let out = self.curfew(&[
            "revoke", "user", name, "--reason", reason, "--format", "json",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("revoke JSON");
        v["id"].as_str().expect("revocation id").to_owned()
    }

    /// A login that stays open: pamtester waits at the password prompt
    /// after open_session. Returns it and the session it registered.
    fn hold_login(&self, service: &str, user: &str) -> (ChildGuard, String) {
        let before: BTreeSet<String> = self.session_ids();
        let mut cmd = self.sb.pamtester_cmd(
            service,
            user,
            &["acct_mgmt", "open_session", "authenticate", "close_session"],
        );
        cmd.env("PAM_RHOST", RHOST)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let start = wrapper_start_lock();
        let guard = ChildGuard::new("pamtester", cmd.spawn().expect("spawn pamtester"));
        let id = wait_for(Duration::from_secs(60), || {
            self.sb
                .sessions()
                .into_iter()
                .find(|s| {
                    s["user"] == user
                        && s["service"] == service
                        && !before.contains(s["id"].as_str().unwrap_or(""))
                })
                .and_then(|s| s["id"].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| panic!("the login of {user} was not registered"));
        drop(start);
        (guard, id)
    }

    fn session_ids(&self) -> BTreeSet<String> {
        self.sb
            .sessions()
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// A login and a logout at once.
    fn login_logout(&self, service: &str, user: &str) {
        let out = self.sb.pamtester(
            service,
            user,
            &["acct_mgmt", "open_session", "close_session"],
        );
        assert!(
            out.status.success(),
            "{user} on {service}: {:?}",
            text(&out)
        );
    }

    fn enforce_once(&self) {
        let out = self
            .curfew_cmd(&["enforce", "--once"])
            .output()
            .expect("run curfew enforce --once");
        assert!(
            out.status.success(),
            "curfew enforce --once: {:?}",
            text(&out)
        );
    }

    /// `curfew enforce --once` as systemd would run it: stderr is a stream
    /// that `$JOURNAL_STREAM` names (here a file). Returns what it wrote.
    fn enforce_once_under_journal(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let path = self.sb.dir.path().join("enforce.journal");
        let file = std::fs::File::create(&path).expect("create the stream");
        let meta = file.metadata().expect("stat the stream");
        let status = self
            .curfew_cmd(&["enforce", "--once"])
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stdout(Stdio::null())
            .stderr(file)
            .status()
            .expect("run curfew enforce --once");
        let written = std::fs::read_to_string(&path).expect("read the stream");
        assert!(status.success(), "curfew enforce --once: {written}");
        written
    }

    fn start_hook(&mut self) {
        let mut cmd = self.curfew_cmd(&[
            "hook",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--reload-interval",
            "50ms",
        ]);
        cmd.stdin(Stdio::null());
        self.hook = Some(spawn_listening(
            cmd,
            "curfew hook serve",
            &self.sb.dir.path().join("hook.err"),
        ));
    }

    /// A Hydra token-hook request for `subject` at `client`, of the login
    /// at `auth_time`.
    fn token(
        &self,
        subject: &str,
        client: &str,
        auth_time: DateTime<Utc>,
        grant: &str,
    ) -> (u16, Value) {
        let body = json!({
            "session": {
                "id_token": {
                    "id_token_claims": {
                        "sub": subject, "aud": [client],
                        "auth_time": auth_time.to_rfc3339(),
                        "ext": {"sid": format!("hydra-{subject}")}
                    },
                    "subject": subject
                },
                "client_id": client
            },
            "request": {
                "client_id": client,
                "granted_scopes": ["openid"],
                "grant_types": [grant]
            }
        });
        let base = &self.hook.as_ref().expect("the hook runs").1;
        let r = self
            .http
            .post(format!("{base}/token-hook"))
            .json(&body)
            .send()
            .expect("POST /token-hook");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn lines(&self) -> Vec<AuditLine> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    /// Waits until the audit file has a line that `f` accepts.
    fn wait_line(&self, what: &str, f: impl Fn(&AuditLine) -> bool) {
        let found = wait_for(Duration::from_secs(20), || {
            self.lines().iter().any(&f).then_some(())
        });
        assert!(
            found.is_some(),
            "no {what} in the audit file: {:#?}",
            self.lines()
        );
    }
}

fn wait_exit(child: &mut ChildGuard, what: &str) {
    let gone = wait_for(Duration::from_secs(20), || {
        child.child.try_wait().ok().flatten()
    });
    assert!(gone.is_some(), "{what} is still running");
}

#[test]
fn the_audit_file_of_one_host_tells_the_whole_day() {
    let mut host = Host::new();
    let started = now();
    let hostname = nix::unistd::gethostname()
        .expect("hostname")
        .to_string_lossy()
        .into_owned();
    let me = me();
    host.start_hook();

    // Morning: two logins that stay (at the office, and on a shift), one
    // that comes and goes.
    let (mut office_pam, office_sid) = host.hold_login(SERVICE, &me);
    let shift_login = now();
    let (mut shift_pam, shift_sid) = host.hold_login(SERVICE_SHIFT, &me);
    host.login_logout(SERVICE, "bin");

    // sys is locked out, and tries anyway.
    let sys_rev = host.revoke_user("sys", "laptop stolen");
    let out = host.sb.pamtester(SERVICE, "sys", &["acct_mgmt"]);
    assert!(
        !out.status.success(),
        "a revoked user got in: {:?}",
        text(&out)
    );

    // bin chooses a shorter token lifetime (an admin sets it here).
    host.curfew(&["timeout", "set", "--user", "bin", "10m"]);

    // carol signs in on the web: tokens issued, refreshed, then refused.
    let auth_time = now() - chrono::Duration::seconds(30);
    let (status, v) = host.token("carol", "web", auth_time, "authorization_code");
    assert_eq!(status, 200, "{v}");
    let carol_sid = v["session"]["access_token"]["sid"]
        .as_str()
        .expect("sid claim")
        .to_owned();
    let (status, v) = host.token("carol", "web", auth_time, "refresh_token");
    assert_eq!(status, 200, "{v}");
    let carol_rev = host.revoke_user("carol", "phished");
    let (status, v) = host.token("carol", "web", auth_time, "refresh_token");
    assert_eq!(status, 403, "{v}");

    // The office session is revoked; the enforcer ends it and warns the
    // shift (whose warning is due one second after the login: policy times
    // are whole seconds).
    let out = host.curfew(&[
        "revoke",
        "session",
        &office_sid,
        "--reason",
        "left the desk unlocked",
        "--format",
        "json",
    ]);
    let office_rev = serde_json::from_slice::<Value>(&out.stdout).expect("revoke JSON")["id"]
        .as_str()
        .expect("revocation id")
        .to_owned();
    let warn_due = shift_login + chrono::Duration::milliseconds(1500);
    if let Ok(wait) = (warn_due - now()).to_std() {
        std::thread::sleep(wait);
    }
    let journal = host.enforce_once_under_journal();
    wait_exit(&mut office_pam, "the office login");
    // Issue 18: under systemd each line carries the priority of its event.
    for (prefix, what) in [
        ("<5>curfew enforce: ended session ", office_sid.as_str()),
        ("<6>curfew enforce: warned session ", shift_sid.as_str()),
        ("<6>curfew enforce: policy loaded", ""),
    ] {
        assert!(
            journal
                .lines()
                .any(|l| l.starts_with(prefix) && l.contains(what)),
            "no {prefix:?} line for {what:?} in:\n{journal}"
        );
    }
    assert!(
        matches!(shift_pam.child.try_wait(), Ok(None)),
        "the shift is only warned"
    );

    // An admin terminates the shift's session; the enforcer ends it.
    host.curfew(&["sessions", "terminate", &shift_sid, "--yes"]);
    host.enforce_once();
    wait_exit(&mut shift_pam, "the shift login");

    // sys is let back in, and logs in and out.
    host.curfew(&["unrevoke", &sys_rev]);
    host.login_logout(SERVICE, "sys");

    // The store is out of reach for one login, which the policy lets through.
    host.login_logout(SERVICE_DOWN, "bin");

    // A bad edit of the policy, then the fix: the hook keeps the last good
    // policy meanwhile, and says both.
    let good = std::fs::read_to_string(&host.sb.policy).expect("read policy");
    write_file(
        host.sb.dir.path(),
        "policy.yaml",
        "version: 1\nsession: { inactivity: 3h }\n",
    );
    host.wait_line("policy_reload_failed", |l| {
        matches!(l.event, AuditEvent::PolicyReloadFailed { .. })
    });
    write_file(host.sb.dir.path(), "policy.yaml", &good);
    host.wait_line("policy_reloaded from the hook", |l| {
        l.source == "curfew-oidc" && matches!(l.event, AuditEvent::PolicyReloaded { .. })
    });
    host.hook = None;
    let ended = now();

    // ---- what the file says --------------------------------------------------
    let raw = std::fs::read_to_string(&host.audit).expect("the audit file");
    let lines = host.lines();
    let kinds: BTreeSet<&str> = lines.iter().map(|l| l.event.name()).collect();
    let every: BTreeSet<&str> = [
        "login",
        "login_refused",
        "logout",
        "token_issued",
        "refresh_refused",
        "revoke",
        "unrevoke",
        "terminate",
        "timeout_set",
        "enforcer_warning",
        "enforcer_end",
        "policy_reloaded",
        "policy_reload_failed",
        "store_unavailable",
    ]
    .into();
    assert_eq!(kinds, every, "{raw}");

    // The shape: event, at (RFC 3339), host, source first; one host; in order.
    for l in raw.lines() {
        assert!(l.starts_with(r#"{"event":""#), "{l}");
        let v: Value = serde_json::from_str(l).expect("JSON");
        assert!(
            DateTime::parse_from_rfc3339(v["at"].as_str().expect("at")).is_ok(),
            "{l}"
        );
    }
    let mut last = started - chrono::Duration::seconds(1);
    for l in &lines {
        assert_eq!(l.host.as_deref(), Some(hostname.as_str()), "{l:?}");
        assert!(l.at >= last && l.at <= ended, "out of order or time: {l:?}");
        last = l.at;
    }
    let from = |source: &'static str| lines.iter().filter(move |l| l.source == source);

    // Who logged in where.
    let logins: Vec<(&str, Option<&str>, Option<&str>)> = from("pam_curfew")
        .filter_map(|l| match &l.event {
            AuditEvent::Login {
                user,
                service,
                session,
                ..
            } => Some((user.as_str(), service.as_deref(), session.as_deref())),
            _ => None,
        })
        .collect();
    assert!(logins.contains(&(me.as_str(), Some(SERVICE), Some(office_sid.as_str()))));
    assert!(logins.contains(&(me.as_str(), Some(SERVICE_SHIFT), Some(shift_sid.as_str()))));
    assert!(logins.iter().any(|l| l.0 == "sys" && l.2.is_some()));
    assert!(
        logins.contains(&("bin", Some(SERVICE_DOWN), None)),
        "the unchecked login is there, unregistered: {logins:?}"
    );
    let office_login = lines
        .iter()
        .find(
            |l| matches!(&l.event, AuditEvent::Login { session: Some(s), .. } if *s == office_sid),
        )
        .expect("the office login");
    assert!(
        matches!(&office_login.event, AuditEvent::Login { rhost: Some(r), max_duration: 43200, rule: None, .. } if r == RHOST),
        "{office_login:?}"
    );
    assert!(lines.iter().any(|l| matches!(&l.event,
        AuditEvent::Login { session: Some(s), rule: Some(r), inactivity: 600, .. } if *s == shift_sid && r == "short-shift")));
    let logouts: Vec<&str> = lines
        .iter()
        .filter_map(|l| match &l.event {
            AuditEvent::Logout { user, .. } => Some(user.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(logouts, ["bin", "sys"], "{raw}");

    // Who was refused, and why.
    assert!(
        lines.iter().any(|l| l.source == "pam_curfew"
            && matches!(&l.event, AuditEvent::LoginRefused {
                user, service: Some(s), reason: RefusalReason::Revoked, revocation: Some(r), detail, ..
            } if user == "sys" && s == SERVICE && *r == sys_rev && detail.contains("laptop stolen"))),
        "{raw}"
    );
    assert!(
        lines.iter().any(|l| l.source == "curfew-oidc"
            && matches!(&l.event, AuditEvent::RefreshRefused {
                user, client, session: Some(s), reason: RefusalReason::Revoked, revocation: Some(r), ..
            } if user == "carol" && client == "web" && *s == carol_sid && *r == carol_rev)),
        "{raw}"
    );

    // Tokens issued, to whom, for which client and session.
    let grants: Vec<Grant> = lines
        .iter()
        .filter_map(|l| match &l.event {
            AuditEvent::TokenIssued {
                user,
                client,
                session,
                grant,
                recorded: true,
                ..
            } if user == "carol" && client == "web" && *session == carol_sid => Some(*grant),
            _ => None,
        })
        .collect();
    assert_eq!(grants, [Grant::Issue, Grant::Refresh], "{raw}");

    // Who revoked whom, who lifted what, who terminated which session.
    for (whom, id, why) in [
        ("sys", &sys_rev, "laptop stolen"),
        ("carol", &carol_rev, "phished"),
    ] {
        assert!(
            lines.iter().any(|l| l.source == "curfew"
                && matches!(&l.event, AuditEvent::Revoke {
                    actor, revocation, target: Target::User(u), user: Some(u2), reason: Some(r), ..
                } if *actor == me && revocation == id && u == whom && u2 == whom && r == why)),
            "revoke of {whom}: {raw}"
        );
    }
    assert!(
        lines.iter().any(|l| matches!(&l.event, AuditEvent::Revoke {
            actor, revocation, target: Target::Session(t), session: Some(s), user: None, ..
        } if *actor == me && *revocation == office_rev && *t == office_sid && *s == office_sid)),
        "revoke of the office session: {raw}"
    );
    assert!(lines.iter().any(|l| matches!(&l.event,
        AuditEvent::Unrevoke { actor, revocation, user: Some(u), revoked_by, .. }
            if *actor == me && *revocation == sys_rev && u == "sys" && *revoked_by == me)));
    assert!(lines.iter().any(|l| matches!(&l.event,
        AuditEvent::Terminate { actor, user, session, service: Some(s), session_host: Some(h), .. }
            if *actor == me && *user == me && *session == shift_sid && s == SERVICE_SHIFT && *h == hostname)));
    assert!(lines.iter().any(|l| matches!(&l.event,
        AuditEvent::TimeoutSet { actor, user, timeout: Some(600) } if *actor == me && user == "bin")));

    // Which session the enforcer ended, why, and what it took.
    let ends: Vec<&AuditEvent> = from("curfew-enforce")
        .map(|l| &l.event)
        .filter(|e| matches!(e, AuditEvent::EnforcerEnd { .. }))
        .collect();
    assert_eq!(ends.len(), 2, "{raw}");
    assert!(
        matches!(ends[0], AuditEvent::EnforcerEnd {
            user, session, service: Some(s), reason: RefusalReason::Revoked, revocation: Some(r),
            processes, recorded: true, detail, ..
        } if *user == me && *session == office_sid && s == SERVICE && *r == office_rev
            && *processes >= 1 && detail.contains("left the desk unlocked")),
        "{:?}",
        ends[0]
    );
    assert!(
        matches!(ends[1], AuditEvent::EnforcerEnd {
            user, session, reason: RefusalReason::Terminated, processes, ..
        } if *user == me && *session == shift_sid && *processes >= 1),
        "{:?}",
        ends[1]
    );
    assert!(
        lines.iter().any(|l| matches!(&l.event,
            AuditEvent::EnforcerWarning { user, session, end, .. }
                if *user == me && *session == shift_sid && end == "idle")),
        "{raw}"
    );

    // The part that ran without the store, and the policy's reloads.
    assert!(lines.iter().any(|l| l.source == "pam_curfew"
        && matches!(&l.event, AuditEvent::StoreUnavailable {
            outcome: StoreOutcome::Degraded, user: Some(u), client: Some(s), store: Some(st), ..
        } if u == "bin" && s == SERVICE_DOWN && st.contains("/nonexistent-curfew-dir"))));
    assert!(lines.iter().any(|l| l.source == "curfew-oidc"
        && matches!(&l.event, AuditEvent::PolicyReloadFailed { file, error }
            if *file == host.sb.policy && error.contains("inactivity"))));
    assert!(from("curfew-enforce").any(|l| matches!(&l.event,
        AuditEvent::PolicyReloaded { file, .. } if *file == host.sb.policy)));
}

/// The audit file's own checks, through the real binaries: a symlink
/// planted at its path is refused by the CLI and by the PAM module, with
/// the file and the reason, and neither the revocation nor the login is
/// refused for it.
#[test]
fn a_planted_symlink_is_refused_by_every_writer_and_decides_nothing() {
    let host = Host::new();
    let target = host.sb.dir.path().join("precious");
    std::fs::write(&target, "keep me\n").expect("write");
    std::os::unix::fs::symlink(&target, &host.audit).expect("symlink");

    let out = host.curfew(&["revoke", "user", "sys"]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(&host.audit.display().to_string()) && stderr.contains("symbolic link"),
        "{stderr}"
    );

    let out = host.sb.pamtester(
        SERVICE_DOWN,
        "bin",
        &["acct_mgmt", "open_session", "close_session"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // pam_wrapper prints LOG_ERR syslog lines on stderr.
    assert!(
        stderr.contains("symbolic link") && stderr.contains("audit.jsonl"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me\n");
}
