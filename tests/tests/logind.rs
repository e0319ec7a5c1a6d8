//! The logind hand-off against a real systemd-logind (issue 12): pam_curfew
//! hands `systemd.runtime_max_sec` to pam_systemd, and logind ends the
//! session's scope at `max_duration` with no enforcer running.
//!
//! systemd boots as PID 1 of private namespaces (tests/src/systemd_ns.rs);
//! a test sshd on the namespace's own loopback logs a throwaway user in
//! through Debian's sshd stack with the module spliced in.

use std::time::{Duration, Instant};

use curfew_e2e::common::{wait_for, write_file};
use curfew_e2e::sshd::SshdSetup;
use curfew_e2e::systemd_ns::{all_text, shared_dir, SystemdNs};

const PASSWORD: &str = "logind-test-pw-7";

#[test]
#[ignore = "needs root: boots systemd in private namespaces, creates a user and /etc/pam.d/curfew-logind"]
fn logind_ends_the_scope_at_max_duration_without_an_enforcer() {
    let shared = shared_dir();
    let dir = shared.path();
    let store = dir.join("state");
    std::fs::create_dir(&store).expect("mkdir store dir");
    let policy = write_file(
        dir,
        "policy.yaml",
        &format!(
            "version: 1\n\
             session: {{ max_duration: 20s, inactivity: 20s, warn_before: 5s }}\n\
             store: {{ backend: sqlite, path: {}/state.db }}\n",
            store.display()
        ),
    );
    let sshd_dir = dir.join("sshd");
    std::fs::create_dir(&sshd_dir).expect("mkdir sshd dir");
    let user = format!("cflogind{}", std::process::id() % 100_000);
    let setup = SshdSetup::prepare(&sshd_dir, &policy, &user, "curfew-logind", PASSWORD);

    let ns = SystemdNs::boot(dir, &[]);
    let log = dir.join("sshd.log");
    let mut sshd = ns
        .command(&format!(
            "exec {} > {} 2>&1",
            setup.shell_command(),
            log.display()
        ))
        .spawn()
        .expect("start sshd in the namespace");
    let listening = wait_for(Duration::from_secs(10), || {
        let out = ns.run(&format!(
            "ss -ltn 'sport = :{}' | grep -q LISTEN",
            setup.port
        ));
        out.status.success().then_some(())
    });
    assert!(
        listening.is_some(),
        "sshd did not listen: {:?}",
        std::fs::read_to_string(&log)
    );

    let started = Instant::now();
    let mut client = ns
        .command(&format!(
            "exec sshpass -p {PASSWORD} ssh -F /dev/null -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no \
             -o PreferredAuthentications=password -p {} {user}@127.0.0.1 'echo logged-in; sleep 120'",
            setup.port
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ssh in the namespace");

    // logind registers the session, with the scope's runtime limit.
    let session = wait_for(Duration::from_secs(15), || {
        let out = ns.run(&format!(
            "loginctl --no-legend list-sessions | awk '$3 == \"{user}\" {{print $1}}'"
        ));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (!id.is_empty()).then_some(id)
    })
    .unwrap_or_else(|| {
        panic!(
            "no logind session for {user}: {}\nsshd: {:?}",
            all_text(&ns.run("loginctl list-sessions; journalctl --no-pager -n 40")),
            std::fs::read_to_string(&log)
        )
    });
    let limit = ns.run(&format!(
        "systemctl show session-{session}.scope -p RuntimeMaxUSec"
    ));
    assert_eq!(
        String::from_utf8_lossy(&limit.stdout).trim(),
        "RuntimeMaxUSec=20s",
        "{}",
        all_text(&limit)
    );

    // No enforcer runs: logind alone ends the scope, and the login with it.
    let ended = wait_for(Duration::from_secs(60), || client.try_wait().ok().flatten());
    let elapsed = started.elapsed();
    let status = ended.unwrap_or_else(|| {
        let _ = client.kill();
        panic!(
            "the login outlived max_duration by far: {}",
            all_text(&ns.run("loginctl list-sessions"))
        )
    });
    let output = client.wait_with_output().expect("client output");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("logged-in"),
        "the login never got in: {status:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        elapsed < Duration::from_secs(100),
        "ended only after {elapsed:?}: the sleep ran out, not the limit"
    );
    let gone = wait_for(Duration::from_secs(10), || {
        let out = ns.run(&format!(
            "loginctl --no-legend list-sessions | grep -w {session}"
        ));
        (!out.status.success()).then_some(())
    });
    assert!(gone.is_some(), "session {session} still listed");
    let journal = ns.run(&format!("journalctl --no-pager -u session-{session}.scope"));
    let journal = all_text(&journal);
    assert!(
        journal.contains("runtime time limit"),
        "logind/systemd did not say why: {journal}"
    );
    let _ = sshd.kill();
    let _ = sshd.wait();
    drop(ns);
    drop(setup);
}
