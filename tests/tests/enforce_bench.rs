//! How long `curfew revoke user U` takes to end a live ssh session: from
//! launching the command to the last process of the session's audit session
//! being gone, over several runs. Run by scripts/bench-enforce (as root),
//! which prints the median of 9 runs for BENCHMARKS.md (3 runs when the
//! whole suite runs it as root).

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

#[test]
#[ignore = "benchmark, needs root: real sshd and a throwaway user; run by scripts/bench-enforce"]
fn revoke_to_last_process_gone() {
    let f = EnforceFixture::start("{ inactivity: 30m }");
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

        let start = Instant::now();
        let status = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&f.sandbox.policy)
            .args(["revoke", "user", &f.user.name, "--reason", "bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run curfew revoke");
        assert!(status.success());
        let mut gone = false;
        while start.elapsed() < Duration::from_secs(10) {
            if audit_session_processes(audit).is_empty() {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = start.elapsed();
        assert!(gone, "the session outlived the revocation: {}", f.logs());
        eprintln!("run {run}: {:.0} ms", took.as_secs_f64() * 1000.0);
        times.push(took);

        // Lift the lock for the next run's login (the ended session stays ended).
        let out = f.curfew(&["revocations", "list", "--format", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        for r in list.as_array().expect("a list") {
            f.curfew(&["unrevoke", r["id"].as_str().expect("an id")]);
        }
        let ended = wait_for(Duration::from_secs(10), || shell.exited());
        assert!(ended.is_some());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "revoke -> last process gone over {} runs: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}
