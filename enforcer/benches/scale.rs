//! The enforcer on a busy host (issue 17): N live PAM sessions of this host
//! in a SQLite store, each a real kernel audit session with 10 running
//! processes (a shell that became an audit session leader by writing its
//! uid to `/proc/self/loginuid`, as pam_loginuid does, and 9 `sleep`s, all
//! running as a throwaway user), for N = 100, 500 and 1,000 (10,000
//! processes).
//!
//! For each N, in one run:
//!
//! - **baseline**: the bare cost of looking at every process, a `readdir`
//!   of /proc and a read of each `/proc/PID/stat` (what any tool that
//!   lists processes pays);
//! - **one pass**: `Enforcer::pass` with the daemon's own `LinuxHost`, CPU
//!   time of the thread (`CLOCK_THREAD_CPUTIME_ID`) and wall time,
//!   interleaved with the baseline round by round, three ways: with a full
//!   look at /proc at every pass (every process's `stat` and `sessionid`),
//!   with the light look the daemon takes at every timer pass, its turn
//!   of the rolling full look included (see
//!   `curfew_enforce::linux::FULL_LOOK_EVERY`), and the light look under a
//!   policy where traffic does not count (`activity: [input, output]`: no
//!   `/proc/PID/io` reads);
//! - **the daemon**: this binary re-executed as the daemon
//!   (`curfew_enforce::daemon::run`, exactly what `curfew enforce
//!   --interval 1s` runs), its user+system CPU read from `/proc/PID/stat`
//!   over a window of `--seconds` seconds after a warm-up, as a share of
//!   one core, under each of the two policies (a window of 30 s or more
//!   holds a whole round of the rolling full look).
//!
//! Needs root (a throwaway user, audit sessions). Everything it starts is
//! stopped by PID and the user is deleted when it ends, also on a panic.
//!
//! The passes measured in process are given times one second apart (round
//! r at r seconds after the warm-up), as the daemon's at --interval 1s, so
//! that what the enforcer does only every so many seconds (a session's
//! traffic readings while its idle deadline is far) falls over the rounds
//! as over the daemon's passes.
//!
//! scripts/bench-enforce-scale [--sizes 100,500,1000] [--seconds 30]
//!     [--passes 10] [--perf FILE [--perf-seconds 20]]

#![allow(missing_docs)]
// A benchmark reads the clock: it is its own entry point.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use curfew_enforce::daemon::{self, Options};
use curfew_enforce::enforcer::Enforcer;
use curfew_enforce::linux::LinuxHost;
use curfew_enforce::signal::Grace;
use curfew_policy::policy_source::PolicySource;
use curfew_policy::{Session, SessionKind, Store};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Processes per session: the leader shell and 9 sleeps.
const PROCS_PER_SESSION: usize = 10;
/// Environment variable that makes this binary the daemon.
const DAEMON_ENV: &str = "CURFEW_SCALE_BENCH_DAEMON";

fn main() {
    if let Ok(policy) = std::env::var(DAEMON_ENV) {
        run_daemon(PathBuf::from(policy));
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; ignore what is not ours.
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "100,500,1000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("--sizes: numbers separated by commas")
        })
        .collect();
    let seconds: u64 = arg("--seconds")
        .map(|s| s.parse().expect("--seconds: a number"))
        .unwrap_or(30);
    let passes: usize = arg("--passes")
        .map(|s| s.parse().expect("--passes: a number"))
        .unwrap_or(15);
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the scale bench needs root (a throwaway user, audit sessions); skipped");
        return;
    }
    // `--perf FILE`: after the last size, `perf record -g` this process
    // over `--perf-seconds` of light-look passes (the profile in
    // BENCHMARKS.md).
    let perf = arg("--perf").map(PathBuf::from);
    let perf_seconds: u64 = arg("--perf-seconds")
        .map(|s| s.parse().expect("--perf-seconds: a number"))
        .unwrap_or(20);
    let mut bench = Bench::new();
    println!(
        "enforcer at scale: {PROCS_PER_SESSION} processes per session, {passes} passes per size, daemon at --interval 1s over {seconds} s"
    );
    for &n in &sizes {
        bench.grow_to(n);
        bench.measure(n, passes, Duration::from_secs(seconds));
    }
    if let Some(out) = perf {
        bench.profile_light(&out, Duration::from_secs(perf_seconds));
    }
}

/// The daemon, as `curfew enforce --interval 1s --policy P` runs it.
fn run_daemon(policy: PathBuf) {
    let options = Options {
        once: false,
        interval: Duration::from_secs(1),
        policy_path: Some(policy),
        store_path: None,
    };
    let _ = daemon::run(
        &options,
        Box::new(|p| curfew_policy::store::open(&p.store)),
        &Utc::now,
    );
}

/// The throwaway user; deleted on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl User {
    fn create() -> User {
        let name = format!("curfew-scale-{}", std::process::id());
        let out = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", "--home-dir", "/nonexistent"])
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd: {out:?}");
        let u = nix::unistd::User::from_name(&name)
            .expect("getpwnam")
            .expect("the new user exists");
        User {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // userdel refuses while a process of the user is still being reaped.
        for _ in 0..20 {
            let done = Command::new("userdel")
                .arg(&self.name)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!("could not delete the user {}: run userdel {0}", self.name);
    }
}

/// One session: its leader (the shell the 9 sleeps are children of).
struct Leader {
    child: Child,
    audit: u32,
}

struct Bench {
    // Field order is drop order: processes first, then the user and files.
    leaders: Vec<Leader>,
    daemon: Option<Child>,
    store: Box<dyn Store>,
    policy: PathBuf,
    /// The policy with `activity: [input, output]`.
    no_traffic: PathBuf,
    hostname: String,
    machine_id: Option<String>,
    user: User,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::Builder::new()
            .prefix("curfew-scale-")
            .tempdir()
            .expect("temp dir");
        let store_path = dir.path().join("state.db");
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "version: 1\n\
                 session: {{ max_duration: 12h, inactivity: 30m, warn_before: 2m }}\n\
                 store: {{ backend: sqlite, path: {} }}\n\
                 audit: {{ syslog: false }}\n\
                 api: {{ enabled: false }}\n",
                store_path.display()
            ),
        )
        .expect("write the policy");
        // The same, where traffic does not count (no /proc/PID/io reads).
        let no_traffic = dir.path().join("policy-no-traffic.yaml");
        std::fs::write(
            &no_traffic,
            std::fs::read_to_string(&policy)
                .expect("read the policy")
                .replace(
                    "warn_before: 2m }",
                    "warn_before: 2m, activity: [input, output] }",
                ),
        )
        .expect("write the second policy");
        curfew_policy::Policy::load(&no_traffic).expect("the second bench policy is valid");
        let parsed = curfew_policy::Policy::load(&policy).expect("the bench policy is valid");
        let store = curfew_policy::store::open(&parsed.store).expect("open the store");
        let user = User::create();
        Bench {
            leaders: Vec::new(),
            daemon: None,
            store,
            policy,
            no_traffic,
            hostname: curfew_policy::host::hostname().expect("host name"),
            machine_id: curfew_policy::host::machine_id(),
            user,
            _dir: dir,
        }
    }

    /// Starts sessions until there are `n`, and records them in the store.
    fn grow_to(&mut self, n: usize) {
        let started = Instant::now();
        let script = format!(
            "echo {uid} > /proc/self/loginuid || exit 1; \
             exec setpriv --reuid={uid} --regid={gid} --clear-groups \
             sh -c 'i=1; while [ $i -lt {PROCS_PER_SESSION} ]; do sleep 100000 & i=$((i+1)); done; wait'",
            uid = self.user.uid,
            gid = self.user.gid,
        );
        let mut new = Vec::new();
        while self.leaders.len() + new.len() < n {
            let child = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start a session");
            new.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut made = Vec::new();
        for child in new {
            let pid = child.id();
            // The audit session is set by the shell itself, first thing.
            let audit = loop {
                match curfew_policy::host::audit_session_id(Some(pid)) {
                    Some(a) if a != u32::MAX => break a,
                    _ => {
                        assert!(Instant::now() < deadline, "session {pid} never started");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            };
            made.push(Leader { child, audit });
        }
        // Wait for every session's processes.
        loop {
            let counts = audit_counts();
            let short = made
                .iter()
                .filter(|l| counts.get(&l.audit).copied().unwrap_or(0) < PROCS_PER_SESSION)
                .count();
            if short == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{short} sessions never got their processes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = Utc::now();
        for l in &made {
            let mut s = Session::start(
                SessionKind::Pam,
                &self.user.name,
                now,
                Duration::from_secs(1800),
            )
            .expect("a session id");
            s.service = Some("sshd".into());
            s.host = Some(self.hostname.clone());
            s.machine_id = self.machine_id.clone();
            s.pid = Some(l.child.id());
            s.audit_session_id = Some(l.audit);
            s.rhost = Some("192.0.2.1".into());
            self.store.create_session(&s).expect("record the session");
        }
        self.leaders.extend(made);
        eprintln!(
            "{} sessions running ({} processes in them), set up in {:.1} s",
            self.leaders.len(),
            self.leaders.len() * PROCS_PER_SESSION,
            started.elapsed().as_secs_f64()
        );
    }

    fn measure(&mut self, n: usize, passes: usize, window: Duration) {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let total_procs = std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_str()
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .count()
            })
            .unwrap_or(0);

        // In process: the baseline and each kind of pass, interleaved
        // round by round.
        let variants: [(&str, &PathBuf, Duration); 3] = [
            ("pass, full look every pass", &self.policy, Duration::ZERO),
            (
                "pass, light look (daemon)",
                &self.policy,
                curfew_enforce::linux::FULL_LOOK_EVERY,
            ),
            (
                "pass, light, no traffic",
                &self.no_traffic,
                curfew_enforce::linux::FULL_LOOK_EVERY,
            ),
        ];
        let start = Utc::now();
        let mut enforcers: Vec<_> = variants
            .iter()
            .map(|(_, policy, every)| self.enforcer(policy, *every, start))
            .collect();
        let (mut base_cpu, mut base_wall) = (Vec::new(), Vec::new());
        let mut pass_cpu = vec![Vec::new(); variants.len()];
        let mut pass_wall = vec![Vec::new(); variants.len()];
        // Round r's passes are given the time `r` seconds after the
        // warm-up, as the daemon's would be at --interval 1s: what an
        // enforcer does every so many seconds (its traffic readings) is
        // spread over the rounds as over the daemon's passes.
        for round in 0..passes {
            let now = start + chrono::Duration::seconds(round as i64 + 1);
            let (c, w) = timed(|| {
                std::hint::black_box(bare_proc_listing());
            });
            base_cpu.push(c);
            base_wall.push(w);
            for (i, enforcer) in enforcers.iter_mut().enumerate() {
                let mut pass = None;
                let (c, w) = timed(|| pass = Some(enforcer.pass(now)));
                let pass = pass.expect("a pass");
                assert!(pass.complete, "an incomplete pass: {:?}", pass.events);
                assert!(
                    pass.events.is_empty(),
                    "a pass that did something: {:?}",
                    pass.events
                );
                pass_cpu[i].push(c);
                pass_wall[i].push(w);
            }
        }
        drop(enforcers);

        // The daemon, over the window, with each policy.
        let mut daemons = Vec::new();
        for policy in [self.policy.clone(), self.no_traffic.clone()] {
            let daemon = Command::new(std::env::current_exe().expect("own path"))
                .env(DAEMON_ENV, &policy)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the daemon");
            let pid = daemon.id();
            self.daemon = Some(daemon);
            std::thread::sleep(Duration::from_secs(3));
            let (t0, c0) = (Instant::now(), cpu_ticks(pid));
            std::thread::sleep(window);
            let (t1, c1) = (Instant::now(), cpu_ticks(pid));
            let rss = rss_kib(pid);
            if let Some(mut d) = self.daemon.take() {
                let _ = kill(Pid::from_raw(d.id() as i32), Signal::SIGKILL);
                let _ = d.wait();
            }
            daemons.push((c1 - c0, (t1 - t0).as_secs_f64(), rss));
        }
        let tick = ticks_per_second();
        let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let p90 = |v: &Vec<Duration>| v[(v.len() * 9 / 10).min(v.len() - 1)];
        let (bc, bw) = (med(&mut base_cpu), med(&mut base_wall));
        println!(
            "N={n} sessions, {} processes in them, {total_procs} processes on the host; load before {} after {}",
            n * PROCS_PER_SESSION,
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        );
        println!(
            "  baseline, readdir /proc + every /proc/PID/stat: CPU median {:.1} ms (p90 {:.1}), wall median {:.1} ms",
            ms(bc),
            ms(p90(&base_cpu)),
            ms(bw)
        );
        for (i, (label, _, _)) in variants.iter().enumerate() {
            let (pc, pw) = (med(&mut pass_cpu[i]), med(&mut pass_wall[i]));
            println!(
                "  {label:<33} CPU median {:.1} ms (p90 {:.1}), wall median {:.1} ms; {:.2} x the baseline's CPU",
                ms(pc),
                ms(p90(&pass_cpu[i])),
                ms(pw),
                ms(pc) / ms(bc).max(0.001)
            );
        }
        for ((ticks, elapsed, rss), label) in daemons.iter().zip(["default policy", "no traffic"]) {
            let cpu = *ticks as f64 / tick;
            println!(
                "  daemon at --interval 1s, {label}: {:.2} s CPU in {:.1} s = {:.1} % of one core (RSS {} KiB)",
                cpu,
                elapsed,
                100.0 * cpu / elapsed,
                rss
            );
        }
    }
}

impl Bench {
    /// An enforcer as the daemon's, taking a full look every `every`,
    /// after its warm-up pass at `start` (it opens the store, looks users
    /// up, takes the traffic baseline, and the one full look).
    fn enforcer(
        &self,
        policy: &Path,
        every: Duration,
        start: chrono::DateTime<Utc>,
    ) -> Enforcer<'static, LinuxHost> {
        let mut enforcer = Enforcer::new(
            LinuxHost::new(Grace::default()).with_full_look_every(every),
            PolicySource::new(Some(policy.to_owned())),
            self.hostname.clone(),
            Box::new(|p| curfew_policy::store::open(&p.store)),
        )
        .with_machine_id(self.machine_id.clone());
        let first = enforcer.pass(start);
        assert!(
            first.complete,
            "the first pass was incomplete: {:?}",
            first.events
        );
        enforcer
    }

    /// `perf record -g` of this process (`perf` from PATH) over `window` of
    /// light-look passes under the default policy, one after the other,
    /// each given a time one second after the last (as the daemon's at
    /// --interval 1s), into `out`.
    fn profile_light(&self, out: &Path, window: Duration) {
        let start = Utc::now();
        let mut enforcer =
            self.enforcer(&self.policy, curfew_enforce::linux::FULL_LOOK_EVERY, start);
        let mut perf = Command::new("perf")
            .args(["record", "-g", "-o"])
            .arg(out)
            .args(["-p", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("run perf record");
        std::thread::sleep(Duration::from_secs(2));
        let began = Instant::now();
        let mut n = 0i64;
        while began.elapsed() < window {
            n += 1;
            let pass = enforcer.pass(start + chrono::Duration::seconds(n));
            assert!(pass.complete && pass.events.is_empty(), "{:?}", pass.events);
        }
        let _ = kill(Pid::from_raw(perf.id() as i32), Signal::SIGINT);
        let _ = perf.wait();
        println!(
            "profile: {n} light-look passes in {:.1} s recorded into {}",
            window.as_secs_f64(),
            out.display()
        );
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = kill(Pid::from_raw(d.id() as i32), Signal::SIGKILL);
            let _ = d.wait();
        }
        // Every process of the bench's audit sessions, by PID, then the leaders reaped.
        let ours: HashSet<u32> = self.leaders.iter().map(|l| l.audit).collect();
        for _ in 0..3 {
            for (pid, audit) in audit_sessions() {
                if ours.contains(&audit) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for l in &mut self.leaders {
            let _ = l.child.wait();
        }
    }
}

/// CPU and wall time of `f` on this thread. The CPU time is the
/// scheduler's own count of the thread's run time
/// (`CLOCK_THREAD_CPUTIME_ID`, nanoseconds): `getrusage`'s user and system
/// times are counted in scheduler ticks (4 ms here), too coarse for a pass
/// of a few milliseconds.
fn timed(f: impl FnOnce()) -> (Duration, Duration) {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let (c0, w0) = (cpu(), Instant::now());
    f();
    (cpu() - c0, w0.elapsed())
}

/// The baseline: list /proc and read every process's stat.
fn bare_proc_listing() -> usize {
    let mut n = 0;
    let mut buf = String::with_capacity(512);
    for e in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        buf.clear();
        if let Ok(mut f) = std::fs::File::open(Path::new("/proc").join(pid).join("stat")) {
            if f.read_to_string(&mut buf).is_ok() {
                n += buf.len();
            }
        }
    }
    n
}

/// (pid, audit session) of every process in an audit session.
fn audit_sessions() -> Vec<(i32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let a = curfew_policy::host::audit_session_id(Some(pid))?;
            (a != u32::MAX).then_some((pid as i32, a))
        })
        .collect()
}

/// Processes per audit session.
fn audit_counts() -> HashMap<u32, usize> {
    let mut m = HashMap::new();
    for (_, a) in audit_sessions() {
        *m.entry(a).or_insert(0) += 1;
    }
    m
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon runs");
    let rest = &stat[stat.rfind(')').expect("a stat line") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ... utime(11) stime(12).
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}
