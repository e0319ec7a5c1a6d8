//! How long `curfew revoke user U` takes to end a live ssh session: from
//! `curfew revoke` returning (and from launching it) to the last process of
//! the session's audit session being gone, over several runs, with the
//! enforcer at its default 1 s interval on a SQLite store. Two fixtures in
//! the same run: the enforcer serving its local API (the CLI wakes it after
//! writing the revocation), and the baseline with the API off (the
//! revocation waits for the next pass). Every run checks that the closing
//! notice reached the ssh client. Run by scripts/bench-enforce (as
//! root), which prints the medians of 9 runs for BENCHMARKS.md (3 runs when
//! the whole suite runs it as root).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use curfew_e2e::common::{curfew_bin, wait_for};
use curfew_e2e::enforce::{audit_session_processes, EnforceFixture};

fn runs() -> usize {
    std::env::var("CURFEW_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// (from launch, from return) for each run.
fn measure(f: &EnforceFixture) -> Vec<(Duration, Duration)> {
    let mut times = Vec::new();
    for run in 0..runs() {
        let mut shell = f.login();
        shell.send("sleep 1001 &\n");
        let audit = shell.audit_session().expect("an audit session id");
        assert!(
            wait_for(Duration::from_secs(10), || {
                (audit_session_processes(audit).len() >= 4).then_some(())
            })
            .is_some(),
            "the session's processes: {:?}",
            audit_session_processes(audit)
        );
        assert!(shell.answers(Duration::from_secs(10)));
        // Spread the runs over the enforcer's interval, as real revocations are.
        std::thread::sleep(Duration::from_millis(137 * run as u64 % 1000));

        let launched = Instant::now();
        let status = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&f.sandbox.policy)
            .args(["revoke", "user", &f.user.name, "--reason", "bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run curfew revoke");
        let returned = Instant::now();
        assert!(status.success());
        let mut gone = false;
        while launched.elapsed() < Duration::from_secs(10) {
            if audit_session_processes(audit).is_empty() {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let at = Instant::now();
        assert!(gone, "the session outlived the revocation: {}", f.logs());
        let (from_launch, from_return) = (at - launched, at.saturating_duration_since(returned));
        eprintln!(
            "run {run}: {:.0} ms after curfew revoke returned ({:.0} ms after it started)",
            from_return.as_secs_f64() * 1000.0,
            from_launch.as_secs_f64() * 1000.0
        );
        times.push((from_launch, from_return));

        // Lift the lock for the next run's login (the ended session stays ended).
        let out = f.curfew(&["revocations", "list", "--format", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        for r in list.as_array().expect("a list") {
            f.curfew(&["unrevoke", r["id"].as_str().expect("an id")]);
        }
        let ended = wait_for(Duration::from_secs(10), || shell.exited());
        assert!(ended.is_some());
        // What is measured includes the closing notice reaching the user.
        assert!(
            shell
                .output()
                .contains("this session is being closed now: access was revoked"),
            "run {run}: the closing notice did not reach the client: {}",
            shell.output()
        );
    }
    times
}

fn report(label: &str, mut times: Vec<(Duration, Duration)>) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = times.len();
    times.sort_by_key(|t| t.1);
    let (lo, med, hi) = (times[0].1, times[n / 2].1, times[n - 1].1);
    times.sort_by_key(|t| t.0);
    println!(
        "{label}: revoke returned -> last process gone over {n} runs: median {:.0} ms, min {:.0} ms, max {:.0} ms (from launch: median {:.0} ms)",
        ms(med),
        ms(lo),
        ms(hi),
        ms(times[n / 2].0)
    );
}

#[test]
#[ignore = "benchmark, needs root: real sshd and a throwaway user; run by scripts/bench-enforce"]
fn revoke_to_last_process_gone() {
    let with_api = {
        let f = EnforceFixture::start("{ inactivity: 30m }");
        measure(&f)
    };
    let baseline = {
        let f = EnforceFixture::start_without_api("{ inactivity: 30m }");
        measure(&f)
    };
    report("woken through the local API", with_api);
    report("baseline, API off (next pass)", baseline);
}
