//! 200 logins at once through real libpam (no pam_wrapper: it cannot start
//! that many processes at once, see `curfew_e2e::pam::wrapper_start_lock`),
//! each its own pamtester process: every session is registered, all 200
//! are live together, then every one is ended, with nothing lost and no
//! "database is locked".
//!
//! libpam reads service files from /etc/pam.d only, so this adds one
//! (`curfew-concurrency-PID`, removed when the test ends) and needs root.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use curfew_e2e::common::{is_root, wait_for, write_file, ChildGuard};
use curfew_e2e::pam::{AddedFile, PamSandbox, PAM_MATRIX};

const LOGINS: usize = 200;

const POLICY: &str = r#"
version: 1
session: { max_duration: 8h, inactivity: 15m }
banner:
  text: "Authorized use only."
"#;

#[test]
#[ignore = "needs root: a service file under /etc/pam.d; run by scripts/test as root"]
fn two_hundred_concurrent_logins_are_all_registered_then_all_ended() {
    assert!(is_root(), "run as root (scripts/test does when uid is 0)");
    let sb = PamSandbox::new(POLICY);
    let service = format!("curfew-concurrency-{}", std::process::id());
    // pam_matrix's password prompt holds each pamtester between
    // open_session and close_session.
    let passdb = write_file(sb.dir.path(), "passdb", &format!("daemon:gate:{service}\n"));
    let stack = [
        format!("auth required {PAM_MATRIX} passdb={}", passdb.display()),
        sb.module_line("account", ""),
        sb.module_line("session", ""),
    ]
    .join("\n")
        + "\n";
    let _service_file =
        AddedFile::create(&std::path::Path::new("/etc/pam.d").join(&service), &stack);

    // Every process waits for a line on stdin before it starts, so that the
    // 200 open_sessions race each other.
    let mut children: Vec<ChildGuard> = (0..LOGINS)
        .map(|i| {
            let child = Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"read go; exec pamtester -v "$0" daemon acct_mgmt open_session authenticate close_session"#)
                .arg(&service)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn login {i}: {e}"));
            ChildGuard::new("pamtester", child)
        })
        .collect();
    let pids: HashSet<u64> = children.iter().map(|c| u64::from(c.pid())).collect();
    for c in &mut children {
        c.child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("start a login");
    }

    // All 200 registered and live at the same time.
    let live = wait_for(Duration::from_secs(240), || {
        let live: Vec<_> = sb
            .sessions()
            .into_iter()
            .filter(|s| s["ended_at"].is_null())
            .collect();
        (live.len() >= LOGINS).then_some(live)
    });
    let Some(live) = live else {
        let sessions = sb.sessions();
        let mut report = String::new();
        for c in &mut children {
            let _ = c.child.kill();
            let mut err = String::new();
            if let Some(mut e) = c.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !err.contains("successfully opened a session") {
                report.push_str(&err);
            }
        }
        panic!(
            "only {} of {LOGINS} sessions were registered; failed logins said:\n{report}",
            sessions.len()
        );
    };
    assert_eq!(live.len(), LOGINS);
    let session_pids: HashSet<u64> = live.iter().filter_map(|s| s["pid"].as_u64()).collect();
    assert_eq!(session_pids, pids, "one session per pamtester process");
    let ids: HashSet<&str> = live.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), LOGINS, "distinct session ids");

    // Now let every one close its session.
    for c in &mut children {
        let mut stdin = c.child.stdin.take().expect("stdin");
        stdin.write_all(b"gate\n").expect("let a login close");
    }
    let mut failures = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        let mut out = String::new();
        let mut err = String::new();
        c.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        c.child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        let status = c.child.wait().expect("wait pamtester");
        if !status.success() || err.contains("locked") || !out.contains("Authorized use only.") {
            failures.push(format!("login {i} ({status}):\n{out}\n{err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let sessions = sb.sessions();
    assert_eq!(sessions.len(), LOGINS, "nothing lost, nothing extra");
    for s in &sessions {
        assert_eq!(s["end_reason"], "logout", "{s}");
        assert!(s["ended_at"].is_string(), "{s}");
    }
}
