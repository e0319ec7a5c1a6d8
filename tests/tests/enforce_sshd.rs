//! `curfew enforce` against real interactive ssh sessions: a loopback sshd
//! with libpam_curfew.so in its stack, a throwaway user, and the enforcer
//! running beside them (harness: curfew_e2e::enforce).
//!
//! Every test checks, after a session is ended, that its end is recorded
//! with its reason, that no process of its audit session is left, and that
//! a process of the same user outside the session survived.

use std::time::{Duration, Instant};

use curfew_e2e::common::wait_for;
use curfew_e2e::enforce::{audit_session_processes, EnforceFixture, Interactive};

/// Waits up to `limit` for every process of the session to be gone.
fn gone_within(shell: &Interactive, limit: Duration) -> bool {
    let audit = shell.audit_session().expect("an audit session id");
    wait_for(limit, || {
        audit_session_processes(audit).is_empty().then_some(())
    })
    .is_some()
}

/// Checks what every ended session must show: the record's end and reason,
/// no process left, the client disconnected.
fn assert_ended(f: &EnforceFixture, shell: &mut Interactive, reason: &str) {
    let id = shell.id();
    // The enforcer records the end once the last process is gone; sshd's
    // close_session may record the logout the signals caused a moment
    // earlier, and the enforcer's reason then replaces it.
    let rec = wait_for(Duration::from_secs(5), || {
        let r = f.record(&id);
        (r["end_reason"] == reason).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "session {id} has no end with reason {reason} recorded: {}\n{}",
            f.record(&id),
            f.logs()
        )
    });
    assert!(rec["ended_at"].is_string(), "{rec}");
    assert!(
        rec["terminate_requested_at"].is_string(),
        "the end was requested before the signals: {rec}"
    );
    let audit = shell.audit_session().expect("an audit session id");
    assert_eq!(
        audit_session_processes(audit),
        Vec::<i32>::new(),
        "no process of the session is left"
    );
    let closed = wait_for(Duration::from_secs(10), || shell.exited());
    assert!(closed.is_some(), "the ssh client was disconnected");
    // The enforcer logs the end once the last process is gone.
    let logged = wait_for(Duration::from_secs(5), || {
        f.enforcer_log_text()
            .contains(&format!("ended session {id}"))
            .then_some(())
    });
    assert!(logged.is_some(), "{}", f.logs());
}

#[test]
#[ignore = "needs root: real sshd, a throwaway user and the enforcer; run by scripts/test as root"]
fn revoking_the_user_ends_a_live_session_within_two_seconds() {
    let f = EnforceFixture::start("{ inactivity: 30m }");
    let mut shell = f.login();
    let mut outsider = f.outsider();
    // The session gets a job and a daemon that leaves the process tree.
    shell.send("sleep 1001 &\n");
    shell.send("(setsid sleep 1002 &)\n");
    let audit = shell
        .audit_session()
        .expect("pam_loginuid gave the session an audit session id");
    let procs = wait_for(Duration::from_secs(10), || {
        let p = audit_session_processes(audit);
        (p.len() >= 5).then_some(p)
    });
    assert!(
        procs.is_some(),
        "sshd x2, sh, two sleeps: {:?}",
        audit_session_processes(audit)
    );
    assert!(shell.answers(Duration::from_secs(10)));

    f.curfew(&["revoke", "user", &f.user.name, "--reason", "e2e"]);
    let started = Instant::now();
    assert!(
        gone_within(&shell, Duration::from_secs(2)),
        "every process of the session was gone within 2 s of the revocation; left: {:?}\n{}",
        audit_session_processes(audit),
        f.logs()
    );
    eprintln!("revoke to last process gone: {:?}", started.elapsed());
    assert_ended(&f, &mut shell, "revoked");
    assert!(
        shell
            .output()
            .contains("this session is being closed now: access was revoked"),
        "{}",
        shell.output()
    );
    assert_eq!(
        outsider.child.try_wait().unwrap(),
        None,
        "the user's process outside the session survives"
    );
    eprintln!("{}", f.enforcer_log_text());
}

/// Issue 11: `curfew revoke client SERVICE` refused new logins of the
/// service but never ended the ones open; the kernel's client key for a PAM
/// session is its service.
#[test]
#[ignore = "needs root: real sshd, a throwaway user and the enforcer; run by scripts/test as root"]
fn revoking_the_pam_service_as_a_client_ends_its_live_sessions() {
    let f = EnforceFixture::start("{ inactivity: 30m }");
    let mut shell = f.login();
    let mut outsider = f.outsider();
    shell.send("(setsid sleep 1003 &)\n");
    assert!(shell.answers(Duration::from_secs(10)));
    let audit = shell.audit_session().expect("an audit session id");

    f.curfew(&["revoke", "client", &f.service, "--reason", "e2e"]);
    assert!(
        gone_within(&shell, Duration::from_secs(2)),
        "every process of the session was gone within 2 s of the revocation; left: {:?}\n{}",
        audit_session_processes(audit),
        f.logs()
    );
    assert_ended(&f, &mut shell, "revoked");
    assert_eq!(
        outsider.child.try_wait().unwrap(),
        None,
        "the user's process outside the session survives"
    );
}

#[test]
#[ignore = "needs root: real sshd, a throwaway user and the enforcer; run by scripts/test as root"]
fn an_idle_session_is_warned_kept_alive_by_keystrokes_then_ended() {
    let mut f = EnforceFixture::start("{ inactivity: 30s, warn_before: 10s }");
    let mut shell = f.login();
    let mut outsider = f.outsider();
    let warning = "this session is idle and will be closed at";

    // Idle: warned warn_before ahead of the deadline (30 s after the last
    // input, as the kernel records it, to 8 s).
    let warned = wait_for(Duration::from_secs(60), || {
        shell.output().contains(warning).then_some(())
    });
    assert!(
        warned.is_some(),
        "no idle warning: {}\n{}",
        shell.output(),
        f.logs()
    );
    assert!(
        shell.output().contains("Press Enter at the prompt"),
        "{}",
        shell.output()
    );
    assert!(f
        .live_sessions()
        .iter()
        .any(|s| s["id"] == shell.id().as_str()));

    // A keystroke before the deadline: the session lives past the deadline
    // it was warned of (at most 10 s away), and the shell still answers.
    assert!(shell.answers(Duration::from_secs(5)), "{}", shell.output());
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        f.live_sessions()
            .iter()
            .any(|s| s["id"] == shell.id().as_str()),
        "input kept the session: {}",
        f.logs()
    );
    assert!(shell.answers(Duration::from_secs(5)), "{}", shell.output());
    let warnings_so_far = shell.output().matches(warning).count();
    assert_eq!(warnings_so_far, 1, "{}", shell.output());

    // Then idle again: warned again, and ended.
    let ended = wait_for(Duration::from_secs(60), || shell.exited());
    assert!(
        ended.is_some(),
        "the idle session was never ended: {}",
        f.logs()
    );
    assert!(
        shell.output().matches(warning).count() >= 2,
        "warned again first: {}",
        shell.output()
    );
    assert!(gone_within(&shell, Duration::from_secs(5)), "{}", f.logs());
    assert_ended(&f, &mut shell, "idle");
    assert!(
        shell.output().contains("it was idle too long"),
        "{}",
        shell.output()
    );
    assert_eq!(
        outsider.child.try_wait().unwrap(),
        None,
        "the outsider survives"
    );
    assert!(f.enforcer_running());
}

#[test]
#[ignore = "needs root: real sshd, a throwaway user and the enforcer; run by scripts/test as root"]
fn a_busy_session_is_warned_and_ended_at_max_duration() {
    let f = EnforceFixture::start("{ max_duration: 30s, inactivity: 20s, warn_before: 10s }");
    let mut shell = f.login();
    let started_at =
        chrono::DateTime::parse_from_rfc3339(shell.session["started_at"].as_str().unwrap())
            .unwrap();
    // Busy: the user types every second, so inactivity (20 s) never ends it.
    let ended = wait_for(Duration::from_secs(60), || {
        shell.send("true\n");
        std::thread::sleep(Duration::from_millis(980));
        shell.exited()
    });
    assert!(
        ended.is_some(),
        "the session outlived max_duration: {}",
        f.logs()
    );
    assert!(
        shell
            .output()
            .contains("reaches its maximum duration and will be closed at"),
        "warned first: {}",
        shell.output()
    );
    assert_ended(&f, &mut shell, "max_duration");
    let rec = f.record(&shell.id());
    let ended_at = chrono::DateTime::parse_from_rfc3339(rec["ended_at"].as_str().unwrap()).unwrap();
    assert!(
        ended_at >= started_at + chrono::Duration::seconds(30),
        "never before max_duration: started {started_at}, ended {ended_at}"
    );
}

#[test]
#[ignore = "needs root: real sshd, a throwaway user and the enforcer; run by scripts/test as root"]
fn terminate_other_sessions_keeps_the_one_named() {
    let f = EnforceFixture::start("{ inactivity: 30m }");
    let mut keep = f.login();
    let mut other = f.login();
    assert_ne!(keep.id(), other.id());
    f.curfew(&[
        "sessions",
        "terminate",
        "--user",
        &f.user.name,
        "--except",
        &keep.id(),
        "--yes",
    ]);
    assert!(
        gone_within(&other, Duration::from_secs(2)),
        "the other session was ended within 2 s: {}",
        f.logs()
    );
    assert_ended(&f, &mut other, "terminated");
    // The one kept lives on through several more passes.
    std::thread::sleep(Duration::from_secs(3));
    assert!(keep.answers(Duration::from_secs(5)), "{}", keep.output());
    assert!(f
        .live_sessions()
        .iter()
        .any(|s| s["id"] == keep.id().as_str()));
    assert!(!audit_session_processes(keep.audit_session().unwrap()).is_empty());

    // And a termination by id acts the same way.
    f.curfew(&["sessions", "terminate", &keep.id(), "--yes"]);
    assert!(gone_within(&keep, Duration::from_secs(2)), "{}", f.logs());
    assert_ended(&f, &mut keep, "terminated");
}

/// Issue 12, class 3: processes a user leaves running after logging out
/// (`setsid nohup ...`, still in the login's audit session) are reached by a
/// later revocation of the user.
#[test]
#[ignore = "needs root: real sshd, a throwaway user and the enforcer; run by scripts/test as root"]
fn a_revoked_users_processes_left_behind_after_logout_are_ended() {
    let f = EnforceFixture::start("{ inactivity: 30m }");
    let mut shell = f.login();
    let mut outsider = f.outsider();
    let id = shell.id();
    let audit = shell.audit_session().expect("an audit session id");
    shell.send("setsid nohup sleep 1005 >/dev/null 2>&1 </dev/null &\n");
    assert!(shell.answers(Duration::from_secs(10)));
    shell.send("exit\n");
    let logged_out = wait_for(Duration::from_secs(10), || {
        (f.record(&id)["end_reason"] == "logout" && shell.exited().is_some()).then_some(())
    });
    assert!(logged_out.is_some(), "{}\n{}", f.record(&id), f.logs());
    // Its job lives on in the login's audit session, past a few passes.
    std::thread::sleep(Duration::from_secs(3));
    let left = audit_session_processes(audit);
    assert!(!left.is_empty(), "the job outlived the logout");

    f.curfew(&["revoke", "user", &f.user.name, "--reason", "e2e"]);
    assert!(
        gone_within(&shell, Duration::from_secs(3)),
        "the job was ended; left: {:?}\n{}",
        audit_session_processes(audit),
        f.logs()
    );
    let logged = wait_for(Duration::from_secs(5), || {
        f.enforcer_log_text()
            .contains(&format!(
                "ended the processes left behind by logged-out session {id}"
            ))
            .then_some(())
    });
    assert!(logged.is_some(), "{}", f.logs());
    assert_eq!(
        f.record(&id)["end_reason"],
        "logout",
        "the login itself ended by logout"
    );
    assert_eq!(
        outsider.child.try_wait().unwrap(),
        None,
        "the user's process outside the session survives"
    );
}
