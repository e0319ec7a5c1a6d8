//! A fleet sharing one Redis (issue 6), end to end: hosts with their own
//! policy file, PAM service directory and `curfew enforce`, logins through
//! the real libpam and `libpam_curfew.so` (pamtester under pam_wrapper), a
//! private redis-server on a unix socket, and an administrator's `curfew`
//! elsewhere. See `curfew_e2e::fleet` for how two hosts live on one machine.
//!
//! The benchmark (`revocation_reaches_two_hosts_bench`) is run by
//! scripts/bench-fleet; its numbers are in BENCHMARKS.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use curfew_e2e::common::{curfew_bin, wait_for};
use curfew_e2e::fleet::{AdminConsole, FleetHost, Identity, LiveSession};
use curfew_e2e::pam::text;
use curfew_policy::store::testing::RedisServer;

/// What a user reads when the store cannot be used (pam_module/README.md,
/// "When something is wrong"; docs/fleet.md, "When Redis is unreachable").
const UNAVAILABLE_MESSAGE: &str =
    "Access denied: the login policy cannot be applied. Contact your administrator.";

fn two_hosts(url: &str) -> (FleetHost, FleetHost) {
    let tag = std::process::id();
    let a = FleetHost::new(Identity::Namespace(format!("fleet-a-{tag}")), url, "");
    let b = FleetHost::new(Identity::Namespace(format!("fleet-b-{tag}")), url, "");
    (a, b)
}

fn logs(hosts: &[&FleetHost], sessions: &[&LiveSession]) -> String {
    let mut out = String::new();
    for h in hosts {
        out.push_str(&format!(
            "--- curfew enforce on {} ---\n{}\n",
            h.hostname(),
            h.enforcer_log()
        ));
    }
    for s in sessions {
        out.push_str(&format!(
            "--- pamtester of session {} ---\n{}\n",
            s.id(),
            s.output()
        ));
    }
    out
}

#[test]
#[ignore = "needs root: each host runs in its own UTS namespace (unshare --uts, hostname); run by scripts/test as root"]
fn one_revocation_ends_the_sessions_on_both_hosts() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let (mut a, mut b) = two_hosts(&url);
    let admin = AdminConsole::new(&url);
    a.start_enforcer();
    b.start_enforcer();

    let mut on_a = a.open_session("daemon");
    let mut on_b = b.open_session("daemon");
    // A session of another user on host a: the revocation is not about it.
    let mut bystander = a.open_session("bin");

    // One store, two hosts: the admin sees both sessions, each under the
    // host name its own PAM module recorded.
    assert_ne!(a.hostname(), b.hostname());
    let live: Vec<_> = admin
        .sessions()
        .into_iter()
        .filter(|s| s["user"] == "daemon" && s["ended_at"].is_null())
        .collect();
    assert_eq!(live.len(), 2, "{live:#?}");
    for (host, session) in [(&a, &on_a), (&b, &on_b)] {
        let record = admin.record(&session.id());
        assert_eq!(record["host"], host.hostname().as_str(), "{record:#}");
        assert_eq!(record["service"], curfew_e2e::fleet::SERVICE);
        assert_eq!(record["pid"], session.pid());
    }

    admin.curfew(&["revoke", "user", "daemon", "--reason", "offboarding"]);
    let ended = wait_for(Duration::from_secs(2), || {
        (on_a.gone() && on_b.gone()).then_some(())
    });
    assert!(
        ended.is_some(),
        "the sessions outlived the revocation by 2 s: {}",
        logs(&[&a, &b], &[&on_a, &on_b])
    );

    for (host, other, session) in [(&a, &b, &on_a), (&b, &a, &on_b)] {
        let id = session.id();
        // The enforcer records the end once the last process is gone.
        let record = wait_for(Duration::from_secs(5), || {
            let r = admin.record(&id);
            (r["end_reason"] == "revoked").then_some(r)
        })
        .unwrap_or_else(|| panic!("{:#}", admin.record(&id)));
        assert!(record["ended_at"].is_string(), "{record:#}");
        // Each host's enforcer ended its own host's session, and only that:
        // both of its processes (pamtester and its child).
        let line = format!("ended session {id} (user daemon): revoked");
        assert!(
            host.enforcer_logged(&line, Duration::from_secs(5)),
            "{}",
            logs(&[host], &[])
        );
        let log = host.enforcer_log();
        let ended = log.lines().find(|l| l.contains(&line)).unwrap_or_default();
        assert!(ended.contains("; 2 processes signalled"), "{ended}");
        assert!(
            !other.enforcer_log().contains(&id),
            "{}",
            logs(&[other], &[])
        );
    }
    assert!(!bystander.gone(), "{}", logs(&[&a], &[&bystander]));
    assert!(admin.record(&bystander.id())["ended_at"].is_null());

    // The lock holds on every host: new logins of the user are refused.
    for host in [&a, &b] {
        let out = host.pamtester("daemon", &["acct_mgmt"]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("Access denied: user daemon is revoked"),
            "{stderr}"
        );
    }

    assert!(a.stop_enforcer(), "{}", a.enforcer_log());
    assert!(b.stop_enforcer(), "{}", b.enforcer_log());
}

#[test]
fn logins_while_redis_is_down_follow_on_unavailable_and_recover_without_restarts() {
    let mut redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let mut deny = FleetHost::new(Identity::ThisMachine, &url, "");
    let allow = FleetHost::new(Identity::ThisMachine, &url, "on_unavailable: allow");
    let admin = AdminConsole::new(&url);
    // An enforcer that lives through the outage, and is not restarted.
    deny.start_enforcer();
    let login = ["acct_mgmt", "open_session", "close_session"];

    for host in [&deny, &allow] {
        let out = host.pamtester("daemon", &login);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    assert_eq!(admin.sessions().len(), 2, "both logins registered");

    redis.stop();

    // on_unavailable: deny (the default): refused, with the documented
    // message through the conversation and the cause in the log.
    for ops in [&login[..], &["open_session"][..]] {
        let out = deny.pamtester("daemon", ops);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{ops:?}: {stdout}\n{stderr}");
        assert!(stderr.contains("System error"), "{ops:?}: {stderr}");
        assert!(
            stderr.contains(UNAVAILABLE_MESSAGE),
            "{ops:?}: the user is told: {stderr}"
        );
        assert!(
            stderr.contains(&format!("the store at {url} is unavailable"))
                && stderr.contains("refusing the login (store.on_unavailable: deny)"),
            "{ops:?}: the log names the store and the cause: {stderr}"
        );
        assert!(!stdout.contains("Fleet host:"), "no banner: {stdout}");
    }

    // on_unavailable: allow: the login goes through, unchecked and
    // unregistered, and the log says so.
    let out = allow.pamtester("daemon", &login);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains(UNAVAILABLE_MESSAGE), "{stderr}");
    assert!(
        stdout.contains("Fleet host: authorized use only."),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("the store at {url} is unavailable"))
            && stderr.contains("letting the login through WITHOUT checking revocations"),
        "{stderr}"
    );

    // Redis comes back on the same socket (empty: the test server keeps
    // nothing on disk); nothing else is restarted.
    redis.restart().expect("restart redis-server");
    let out = deny.pamtester("daemon", &login);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Fleet host: authorized use only."),
        "{stdout}"
    );
    let sessions = admin.sessions();
    assert_eq!(sessions.len(), 1, "the login was registered: {sessions:#?}");
    assert_eq!(sessions[0]["end_reason"], "logout");

    // The enforcer that saw the outage is subscribed again, and acts on the
    // restarted store.
    assert!(
        deny.enforcer_logged("the store's change feed is back", Duration::from_secs(10)),
        "{}",
        deny.enforcer_log()
    );
    assert!(
        deny.enforcer_log()
            .contains("the store's change feed is down"),
        "{}",
        deny.enforcer_log()
    );
    let mut held = deny.open_session("daemon");
    admin.curfew(&["revoke", "user", "daemon", "--reason", "after the outage"]);
    let ended = wait_for(Duration::from_secs(10), || held.gone().then_some(()));
    assert!(ended.is_some(), "{}", logs(&[&deny], &[&held]));
    let recorded = wait_for(Duration::from_secs(5), || {
        (admin.record(&held.id())["end_reason"] == "revoked").then_some(())
    });
    assert!(recorded.is_some(), "{:#}", admin.record(&held.id()));
    let line = format!("ended session {} (user daemon): revoked", held.id());
    assert!(
        deny.enforcer_logged(&line, Duration::from_secs(5)),
        "{}",
        deny.enforcer_log()
    );
    assert!(
        deny.stop_enforcer(),
        "the enforcer ran all along: {}",
        deny.enforcer_log()
    );
}

fn runs() -> usize {
    std::env::var("CURFEW_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(label: &str, mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "{label} over {} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    )
}

#[test]
#[ignore = "benchmark, needs root: each host runs in its own UTS namespace; run by scripts/bench-fleet"]
fn revocation_reaches_two_hosts_bench() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let (mut a, mut b) = two_hosts(&url);
    let admin = AdminConsole::new(&url);
    a.start_enforcer();
    b.start_enforcer();
    let (mut both, mut cli) = (Vec::new(), Vec::new());
    for run in 0..runs() {
        let mut on_a = a.open_session("daemon");
        let mut on_b = b.open_session("daemon");
        // Spread the runs over the enforcers' 1 s interval.
        std::thread::sleep(Duration::from_millis(137 * run as u64 % 1000));

        let launched = Instant::now();
        let status = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&admin.policy)
            .args(["revoke", "user", "daemon", "--reason", "bench"])
            .env_remove("CURFEW_POLICY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run curfew revoke");
        let returned = Instant::now();
        assert!(status.success());
        let (mut at_a, mut at_b) = (None, None);
        while returned.elapsed() < Duration::from_secs(10) && (at_a.is_none() || at_b.is_none()) {
            if at_a.is_none() && on_a.gone() {
                at_a = Some(returned.elapsed());
            }
            if at_b.is_none() && on_b.gone() {
                at_b = Some(returned.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let (Some(at_a), Some(at_b)) = (at_a, at_b) else {
            panic!(
                "a session outlived the revocation: {}",
                logs(&[&a, &b], &[&on_a, &on_b])
            );
        };
        eprintln!(
            "run {run}: revoke took {:.1} ms; host a's session gone {:.1} ms after it returned, host b's {:.1} ms",
            ms(returned - launched),
            ms(at_a),
            ms(at_b)
        );
        both.push(at_a.max(at_b));
        cli.push(returned - launched);
        admin.unrevoke_all();
    }
    println!(
        "{}",
        summary("revoke returned -> both hosts' sessions gone", both)
    );
    println!("{}", summary("curfew revoke itself", cli));
    assert!(a.stop_enforcer() && b.stop_enforcer());
}
