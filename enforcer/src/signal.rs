//! Ending sessions: SIGHUP, then SIGTERM, then SIGKILL, each after a short
//! grace period, to every process of each session, found again before every
//! signal so that a process forked meanwhile is not missed.
//!
//! A signal goes through a pidfd opened *before* the process is checked
//! (same pid, same start time): if the pid was reused in between, the pidfd
//! names the old, dead process and the signal fails, so a process outside the
//! session is never hit by a stale pid.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::members::{collect, Guard, Membership};
use crate::procfs::{ProcId, Procfs, Snapshot};

/// How long each signal is given before the next, stronger one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    /// After SIGHUP (shells save history, editors their buffers).
    pub hangup: Duration,
    /// After SIGTERM.
    pub terminate: Duration,
    /// After SIGKILL: how long to keep finding and killing stragglers
    /// (processes forked while the session was being ended).
    pub kill: Duration,
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            hangup: Duration::from_millis(300),
            terminate: Duration::from_millis(300),
            kill: Duration::from_secs(2),
        }
    }
}

/// A session to end.
#[derive(Debug, Clone)]
pub struct Target {
    /// How its processes are found.
    pub membership: Membership,
    /// Its processes when the decision was taken.
    pub procs: Vec<ProcId>,
}

/// What ending one session took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// Every process signalled at least once.
    pub signalled: BTreeSet<ProcId>,
    /// The strongest signal that was needed: 0 none, 1 HUP, 2 TERM, 3 KILL.
    pub strongest: u8,
    /// Processes still running when the enforcer gave up (should be none).
    pub left: Vec<ProcId>,
}

impl Ended {
    /// The strongest signal sent, by name.
    pub fn strongest_name(&self) -> &'static str {
        match self.strongest {
            0 => "none",
            1 => "SIGHUP",
            2 => "SIGTERM",
            _ => "SIGKILL",
        }
    }
}

/// The result of one signal to one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Delivered,
    Gone,
}

/// Sends `sig` to exactly the process `id`.
fn send(procfs: &Procfs, id: ProcId, sig: Signal) -> std::io::Result<Sent> {
    let Some(pid) = Pid::from_raw(id.pid) else {
        return Ok(Sent::Gone);
    };
    match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => {
            // Checked after the pidfd was opened: if this is the process we
            // mean, the pidfd is it.
            if !procfs.is_running(id) {
                return Ok(Sent::Gone);
            }
            match rustix::process::pidfd_send_signal(&fd, sig) {
                Ok(()) => Ok(Sent::Delivered),
                Err(Errno::SRCH) => Ok(Sent::Gone),
                Err(e) => Err(e.into()),
            }
        }
        Err(Errno::SRCH) => Ok(Sent::Gone),
        // Kernels before 5.3: check, then kill by pid (a window of
        // microseconds for pid reuse, which needs a full pid wrap-around).
        Err(Errno::NOSYS) => {
            if !procfs.is_running(id) {
                return Ok(Sent::Gone);
            }
            match rustix::process::kill_process(pid, sig) {
                Ok(()) => Ok(Sent::Delivered),
                Err(Errno::SRCH) => Ok(Sent::Gone),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Ends every target at once (in parallel phases), never signalling a
/// process the guard protects. `me` is the enforcer's pid.
pub fn end_sessions(procfs: &Procfs, me: i32, targets: Vec<Target>, grace: Grace) -> Vec<Ended> {
    let mut known: Vec<Vec<ProcId>> = targets.iter().map(|t| t.procs.clone()).collect();
    let mut memberships: Vec<Membership> = targets.into_iter().map(|t| t.membership).collect();
    let mut ended: Vec<Ended> = vec![Ended::default(); memberships.len()];

    let scan = || procfs.scan().unwrap_or_default();
    // The members of every target now; remembers them for later rescans.
    let members_now =
        |snap: &Snapshot, known: &mut Vec<Vec<ProcId>>, memberships: &mut Vec<Membership>| {
            let guard = Guard::new(snap, me);
            let mut out = Vec::with_capacity(memberships.len());
            for (i, m) in memberships.iter_mut().enumerate() {
                let found = collect(m.clone(), snap, &guard, &known[i]);
                *m = found.membership;
                for p in &found.procs {
                    if !known[i].contains(p) {
                        known[i].push(*p);
                    }
                }
                out.push(found.procs);
            }
            out
        };

    let phases = [
        (1u8, Signal::HUP, grace.hangup),
        (2, Signal::TERM, grace.terminate),
        (3, Signal::KILL, grace.kill),
    ];
    for (level, sig, wait) in phases {
        let snap = scan();
        let now = members_now(&snap, &mut known, &mut memberships);
        if now.iter().all(Vec::is_empty) {
            break;
        }
        for (i, procs) in now.iter().enumerate() {
            if procs.is_empty() {
                continue;
            }
            for &p in procs {
                if let Ok(Sent::Delivered) = send(procfs, p, sig) {
                    ended[i].signalled.insert(p);
                    ended[i].strongest = ended[i].strongest.max(level);
                    // A stopped process only acts on HUP/TERM once continued.
                    if level < 3 {
                        let _ = send(procfs, p, Signal::CONT);
                    }
                }
            }
        }
        let start = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let snap = scan();
            let now = members_now(&snap, &mut known, &mut memberships);
            if now.iter().all(Vec::is_empty) {
                break;
            }
            if level == 3 {
                // Stragglers forked while we were at it get the same.
                for (i, procs) in now.iter().enumerate() {
                    for &p in procs {
                        if let Ok(Sent::Delivered) = send(procfs, p, sig) {
                            ended[i].signalled.insert(p);
                        }
                    }
                }
            }
            if start.elapsed() >= wait {
                break;
            }
        }
    }
    let snap = scan();
    let left = members_now(&snap, &mut known, &mut memberships);
    for (e, l) in ended.iter_mut().zip(left) {
        e.left = l;
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::{find, BootClock};
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    /// A child that is killed and reaped when the test ends, however it ends.
    struct Reaped(Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn clock() -> BootClock {
        BootClock {
            boot_time: Procfs::default().boot_time().unwrap(),
            ticks_per_second: rustix::param::clock_ticks_per_second(),
        }
    }

    /// The pids of the descendants of `pid` that are running `sleep`.
    fn wait_for_sleepers(pid: i32, n: usize) -> Vec<i32> {
        for _ in 0..250 {
            let snap = Procfs::default().scan().unwrap();
            let mut found = Vec::new();
            let mut queue = vec![pid];
            while let Some(p) = queue.pop() {
                queue.extend(snap.children(p));
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    found.push(p);
                }
            }
            if found.len() >= n {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the test's sleepers did not start");
    }

    #[test]
    fn a_process_tree_is_ended_and_a_process_outside_it_survives() {
        // The "session": a shell in its own process group with two jobs,
        // one of which ignores SIGHUP and SIGTERM.
        let session = Reaped(
            Command::new("sh")
                .args([
                    "-c",
                    "sleep 600 & (trap '' HUP TERM; exec sleep 601) & wait",
                ])
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        // Not in the session: the same kind of process, started beside it.
        let mut outsider = Reaped(Command::new("sleep").arg("602").spawn().unwrap());
        let leader = session.0.id() as i32;
        wait_for_sleepers(leader, 2);

        let procfs = Procfs::default();
        let snap = procfs.scan().unwrap();
        let me = std::process::id() as i32;
        let mut record = curfew_policy::Session::start(
            curfew_policy::SessionKind::Pam,
            "alice",
            chrono::DateTime::from_timestamp(clock().boot_time, 0).unwrap()
                + chrono::Duration::days(10_000),
            Duration::from_secs(300),
        )
        .unwrap();
        record.pid = Some(leader as u32);
        // The record "started" far in the future, so the leader qualifies;
        // its user is whoever runs the test.
        let uid = nix::unistd::getuid().as_raw();
        let members = find(&record, Some(uid), &snap, clock(), &Guard::new(&snap, me));
        assert_eq!(members.procs.len(), 3, "{members:?}");

        let ended = end_sessions(
            &procfs,
            me,
            vec![Target {
                membership: members.membership,
                procs: members.procs.clone(),
            }],
            Grace {
                hangup: Duration::from_millis(200),
                terminate: Duration::from_millis(200),
                kill: Duration::from_secs(2),
            },
        );
        assert_eq!(ended.len(), 1);
        assert!(ended[0].left.is_empty(), "{:?}", ended[0]);
        assert_eq!(
            ended[0].strongest_name(),
            "SIGKILL",
            "one job ignored HUP and TERM"
        );
        for p in &members.procs {
            assert!(!procfs.is_running(*p), "{p:?} still runs");
        }
        assert_eq!(
            outsider.0.try_wait().unwrap(),
            None,
            "the outsider survives"
        );
    }

    #[test]
    #[ignore = "needs root: writes /proc/self/loginuid to open a real audit session; run by scripts/test as root"]
    fn an_audit_session_is_ended_whole_even_a_daemon_that_left_the_tree() {
        // A fresh audit session, as pam_loginuid makes one at login; in it a
        // job and a daemon that double-forked into its own POSIX session.
        let session = Reaped(
            Command::new("sh")
                .args([
                    "-c",
                    "echo 65534 > /proc/self/loginuid || exit 1; (setsid sleep 700 &); sleep 701 & wait",
                ])
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let outsider = Reaped(Command::new("sleep").arg("702").spawn().unwrap());
        let leader = session.0.id() as i32;
        let procfs = Procfs::default();
        // Wait for both sleepers of the new audit session.
        let mut audit = None;
        for _ in 0..250 {
            let snap = procfs.scan().unwrap();
            audit = snap.get(leader).and_then(|p| p.audit_session);
            let n = audit.map_or(0, |a| {
                snap.all()
                    .iter()
                    .filter(|p| p.audit_session == Some(a) && p.pid != leader)
                    .filter(|p| {
                        std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                            .is_ok_and(|c| c.trim() == "sleep")
                    })
                    .count()
            });
            if n == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let audit = audit.expect("the shell got an audit session id");
        assert_ne!(
            Some(audit),
            procfs
                .read(std::process::id() as i32)
                .unwrap()
                .audit_session,
            "a new session, not ours"
        );

        let me = std::process::id() as i32;
        let snap = procfs.scan().unwrap();
        let mut record = curfew_policy::Session::start(
            curfew_policy::SessionKind::Pam,
            "nobody",
            chrono::DateTime::from_timestamp(clock().boot_time, 0).unwrap()
                + chrono::Duration::days(10_000),
            Duration::from_secs(300),
        )
        .unwrap();
        record.audit_session_id = Some(audit);
        record.pid = Some(leader as u32);
        // pam_loginuid's work: the audit session is nobody's (65534).
        let members = find(&record, Some(65534), &snap, clock(), &Guard::new(&snap, me));
        assert_eq!(
            members.membership,
            Membership::Audit {
                id: audit,
                loginuid: 65534
            }
        );
        assert_eq!(
            members.procs.len(),
            3,
            "the shell and both sleepers: {members:?}"
        );
        // The tree fallback would have missed the daemon.
        let mut no_audit = record.clone();
        no_audit.audit_session_id = None;
        // (Its processes run as root here: the tree holds the uid's.)
        assert_eq!(
            find(&no_audit, Some(0), &snap, clock(), &Guard::new(&snap, me))
                .procs
                .len(),
            2
        );
        // Recorded for another user than the audit session's: nothing.
        assert!(
            find(&record, Some(4242), &snap, clock(), &Guard::new(&snap, me))
                .procs
                .is_empty()
        );

        let ended = end_sessions(
            &procfs,
            me,
            vec![Target {
                membership: members.membership,
                procs: members.procs.clone(),
            }],
            Grace::default(),
        );
        assert!(ended[0].left.is_empty(), "{:?}", ended[0]);
        let snap = procfs.scan().unwrap();
        let left: Vec<_> = snap
            .all()
            .iter()
            .filter(|p| p.audit_session == Some(audit) && !p.exited)
            .collect();
        assert!(
            left.is_empty(),
            "no process of the audit session is left: {left:?}"
        );
        let mut outsider = outsider;
        assert_eq!(
            outsider.0.try_wait().unwrap(),
            None,
            "the outsider survives"
        );
    }

    #[test]
    fn a_reused_pid_is_not_signalled() {
        let mut other = Reaped(Command::new("sleep").arg("603").spawn().unwrap());
        let pid = other.0.id() as i32;
        let real = Procfs::default().read(pid).unwrap();
        // The same pid with another start time is another process.
        let stale = ProcId {
            pid,
            start_ticks: real.start_ticks.wrapping_sub(1),
        };
        assert_eq!(
            send(&Procfs::default(), stale, Signal::KILL).unwrap(),
            Sent::Gone
        );
        assert_eq!(other.0.try_wait().unwrap(), None, "still running");
    }

    #[test]
    fn an_unknown_membership_signals_nothing() {
        let ended = end_sessions(
            &Procfs::default(),
            std::process::id() as i32,
            vec![Target {
                membership: Membership::Unknown(crate::members::Unfound::LeaderGone),
                procs: Vec::new(),
            }],
            Grace::default(),
        );
        assert_eq!(ended[0], Ended::default());
    }
}
