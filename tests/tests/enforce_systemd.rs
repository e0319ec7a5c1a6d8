//! `curfew enforce` under a real systemd (issue 18): the unit is `active
//! (running)` only once the enforcer said READY=1, and a hung enforcer (a
//! SIGSTOPped process, which stops its WATCHDOG=1 pings) is killed and
//! restarted by systemd's watchdog.
//!
//! systemd boots as PID 1 of private namespaces (tests/src/systemd_ns.rs).
//! The units take `Type=`, `NotifyAccess=` and `Restart=` from the shipped
//! `examples/systemd/curfew-enforce.service` (the package's unit); only
//! `WatchdogSec=` is shortened to 3 s, and the hardening is left out (its
//! read-only mounts would hide the test's store directory).

use std::time::Duration;

use curfew_e2e::common::{curfew_bin, wait_for, write_file};
use curfew_e2e::systemd_ns::{all_text, shared_dir, SystemdNs};

/// `KEY=value` lines of the shipped unit for the keys that decide readiness
/// and restarts.
fn shipped_service_lines() -> Vec<String> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/systemd/curfew-enforce.service"
    ))
    .expect("read the shipped unit");
    let lines: Vec<String> = unit
        .lines()
        .filter(|l| {
            ["Type=", "NotifyAccess=", "Restart="]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(str::to_owned)
        .collect();
    assert!(lines.contains(&"Type=notify".to_owned()), "{unit}");
    assert!(
        unit.lines().any(|l| l.starts_with("WatchdogSec=")),
        "{unit}"
    );
    lines
}

fn show(ns: &SystemdNs, unit: &str, prop: &str) -> String {
    let out = ns.run(&format!("systemctl show -p {prop} --value {unit}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs root: boots systemd in private namespaces"]
fn enforcer_is_ready_only_after_notifying_and_restarted_by_the_watchdog() {
    let shared = shared_dir();
    let dir = shared.path();
    let store = dir.join("state");
    std::fs::create_dir(&store).expect("mkdir store dir");
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod store dir");
    let policy = write_file(
        dir,
        "policy.yaml",
        &format!(
            "version: 1\nstore: {{ backend: sqlite, path: {}/state.db }}\n",
            store.display()
        ),
    );
    let exec = format!(
        "ExecStart={} enforce --policy {} --interval 1s",
        curfew_bin().display(),
        policy.display()
    );
    let shipped = shipped_service_lines().join("\n");
    // The shipped unit's readiness and restart settings, a short watchdog.
    let notify_unit =
        format!("[Service]\n{shipped}\nWatchdogSec=3s\nRestartSec=1s\nTimeoutStopSec=2s\n{exec}\n");
    // The control: the same daemon with no way to notify (its
    // $NOTIFY_SOCKET removed; env execs it, so it is still the main
    // process) never becomes active; the start times out.
    let deaf_exec = exec.replacen("ExecStart=", "ExecStart=/usr/bin/env -u NOTIFY_SOCKET ", 1);
    let deaf_unit = format!(
        "[Service]\nType=notify\nNotifyAccess=main\nTimeoutStartSec=4s\nRestart=no\n{deaf_exec}\n"
    );
    let ns = SystemdNs::boot(
        dir,
        &[
            ("curfew-enforce-test.service", &notify_unit),
            ("curfew-enforce-deaf.service", &deaf_unit),
        ],
    );

    // Ready: `systemctl start` of a Type=notify unit returns once READY=1 came.
    let unit = "curfew-enforce-test.service";
    let start = ns.run(&format!("systemctl start {unit}"));
    assert!(start.status.success(), "start: {}", all_text(&start));
    assert_eq!(show(&ns, unit, "ActiveState"), "active");
    assert_eq!(show(&ns, unit, "SubState"), "running");
    let journal = all_text(&ns.run(&format!("journalctl --no-pager -o cat -u {unit}")));
    let said = journal
        .find("enforcing the PAM sessions")
        .unwrap_or_else(|| panic!("no start line: {journal}"));
    let started = journal
        .find("Started curfew-enforce-test.service")
        .unwrap_or_else(|| panic!("no Started line: {journal}"));
    assert!(
        said < started,
        "systemd said Started before the enforcer ran: {journal}"
    );

    // Not ready without the notification.
    let deaf = "curfew-enforce-deaf.service";
    let _ = ns.run(&format!("systemctl start --no-block {deaf}"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        show(&ns, deaf, "ActiveState"),
        "activating",
        "{deaf} before its timeout"
    );
    let failed = wait_for(Duration::from_secs(10), || {
        (show(&ns, deaf, "ActiveState") == "failed").then_some(())
    });
    assert!(
        failed.is_some(),
        "{}",
        all_text(&ns.run(&format!("systemctl status {deaf}")))
    );
    assert_eq!(show(&ns, deaf, "Result"), "timeout");

    // Hung: stop the enforcer; the watchdog kills it and systemd restarts it.
    let first = show(&ns, unit, "MainPID");
    assert_ne!(first, "0");
    assert_eq!(show(&ns, unit, "NRestarts"), "0");
    let stop = ns.run(&format!("kill -STOP {first}"));
    assert!(stop.status.success(), "{}", all_text(&stop));
    let restarted = wait_for(Duration::from_secs(20), || {
        let pid = show(&ns, unit, "MainPID");
        (show(&ns, unit, "NRestarts") == "1"
            && pid != first
            && pid != "0"
            && show(&ns, unit, "ActiveState") == "active")
            .then_some(pid)
    });
    let journal = all_text(&ns.run(&format!("journalctl --no-pager -o cat -u {unit}")));
    assert!(restarted.is_some(), "not restarted: {journal}");
    assert!(journal.contains("Watchdog timeout"), "{journal}");
}

/// `curfew hook serve` in a unit shaped like the shipped
/// `curfew-hook.service`: active once it listens (READY=1), and its
/// watchdog pings keep it running past several watchdog periods.
#[test]
#[ignore = "needs root: boots systemd in private namespaces"]
fn hook_service_is_ready_once_listening_and_keeps_its_watchdog_fed() {
    let shared = shared_dir();
    let dir = shared.path();
    let store = dir.join("state");
    std::fs::create_dir(&store).expect("mkdir store dir");
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod store dir");
    let policy = write_file(
        dir,
        "policy.yaml",
        &format!(
            "version: 1\nstore: {{ backend: sqlite, path: {}/state.db }}\n",
            store.display()
        ),
    );
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/systemd/curfew-hook.service"
    ))
    .expect("read the shipped hook unit");
    assert!(shipped.lines().any(|l| l == "Type=notify"), "{shipped}");
    let unit_text = format!(
        "[Service]\nType=notify\nNotifyAccess=main\nWatchdogSec=2s\nRestart=always\n\
         ExecStart={} hook serve --policy {} --listen 127.0.0.1:18787\n",
        curfew_bin().display(),
        policy.display()
    );
    let ns = SystemdNs::boot(dir, &[("curfew-hook-test.service", &unit_text)]);
    let unit = "curfew-hook-test.service";
    let start = ns.run(&format!("systemctl start {unit}"));
    assert!(start.status.success(), "start: {}", all_text(&start));
    assert_eq!(show(&ns, unit, "ActiveState"), "active");
    // Listening when systemd says it is ready (the namespace's own loopback).
    let health = ns.run(
        "curl -fsS http://127.0.0.1:18787/healthz || wget -qO- http://127.0.0.1:18787/healthz",
    );
    assert!(health.status.success(), "healthz: {}", all_text(&health));
    let pid = show(&ns, unit, "MainPID");
    // Three watchdog periods later: still the same process, never restarted.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(show(&ns, unit, "ActiveState"), "active");
    assert_eq!(show(&ns, unit, "NRestarts"), "0");
    assert_eq!(show(&ns, unit, "MainPID"), pid);
}
