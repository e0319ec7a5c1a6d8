//! Ending sessions: SIGHUP, then SIGTERM, then SIGKILL, each after a short
//! grace period, to every process of each session, found again before every
//! signal so that a process forked meanwhile is not missed.
//!
//! A signal goes through a pidfd opened *before* the process is checked
//! (same pid, same start time): if the pid was reused in between, the pidfd
//! names the old, dead process and the signal fails, so a process outside the
//! session is never hit by a stale pid.
//!
//! No step sleeps for a fixed time: after each signal the enforcer waits on
//! the processes' pidfds (readable when the process has exited) and goes on
//! as soon as they are gone, looking /proc over again at least every
//! [`RESCAN`] for processes forked meanwhile.
//!
//! When a closing notice was written to the session's terminal, the
//! processes on that terminal (the shell and its jobs) get the first SIGHUP,
//! and the others (the sshd that relays the terminal to the user) are left
//! to follow: sshd sends what the terminal still holds, the notice with it,
//! and leaves when the shell is gone. Those still running [`NOTICE_DELIVERY`]
//! after the terminal's processes are gone get their SIGHUP then.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::members::{collect, Guard, Membership};
use crate::procfs::{Proc, ProcId, Procfs, Snapshot};

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

/// The longest time the processes that relay a session's terminal (sshd)
/// are left to leave by themselves once the processes on the terminal are
/// gone, so that the closing notice reaches the user before their SIGHUP.
/// sshd leaves within milliseconds once the shell is gone; this bound only
/// matters for a relay that does not.
pub const NOTICE_DELIVERY: Duration = Duration::from_millis(150);

/// The longest wait on pidfds between two looks at /proc for processes
/// forked meanwhile.
pub const RESCAN: Duration = Duration::from_millis(50);

/// A session to end.
#[derive(Debug, Clone)]
pub struct Target {
    /// How its processes are found.
    pub membership: Membership,
    /// Its processes when the decision was taken.
    pub procs: Vec<ProcId>,
    /// The controlling terminals (/proc `tty_nr`) its closing notice was
    /// written to: the processes on them get the first SIGHUP, the rest
    /// follow (see the module's documentation). Empty: every process gets
    /// it at once.
    pub notified: Vec<u32>,
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
#[cfg(test)]
fn send(procfs: &Procfs, id: ProcId, sig: Signal) -> std::io::Result<Sent> {
    send_both(procfs, id, sig, false)
}

/// Sends `sig` to exactly the process `id`, and SIGCONT after it when
/// `and_continue` (a stopped process only acts on HUP/TERM once continued).
fn send_both(
    procfs: &Procfs,
    id: ProcId,
    sig: Signal,
    and_continue: bool,
) -> std::io::Result<Sent> {
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
                Ok(()) => {
                    if and_continue {
                        let _ = rustix::process::pidfd_send_signal(&fd, Signal::CONT);
                    }
                    Ok(Sent::Delivered)
                }
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
                Ok(()) => {
                    if and_continue {
                        let _ = rustix::process::kill_process(pid, Signal::CONT);
                    }
                    Ok(Sent::Delivered)
                }
                Err(Errno::SRCH) => Ok(Sent::Gone),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits until every process of `ids` has exited (then `true`), or until
/// `until` (`false`).
///
/// Waiting is all this does with the pidfds: a pid reused meanwhile only
/// makes the wait last until `until`. On a kernel without pidfds it polls
/// /proc every 10 ms.
fn wait_gone(procfs: &Procfs, ids: &[ProcId], until: Instant) -> bool {
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(pid) = Pid::from_raw(id.pid) else {
            continue;
        };
        match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fds.push(fd),
            Err(Errno::SRCH) => {}
            Err(_) => {
                // No pidfds (or out of descriptors): look at /proc instead.
                loop {
                    if !ids.iter().any(|p| procfs.is_running(*p)) {
                        return true;
                    }
                    if Instant::now() >= until {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    while !fds.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut polled: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        match rustix::event::poll(&mut polled, Some(&timeout)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => {
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
        }
        let exited: Vec<bool> = polled.iter().map(|p| !p.revents().is_empty()).collect();
        drop(polled);
        let mut i = 0;
        fds.retain(|_| {
            let keep = !exited[i];
            i += 1;
            keep
        });
    }
    true
}

/// The state of one [`end_sessions`] call.
struct Ending<'p> {
    procfs: &'p Procfs,
    me: i32,
    /// The last look at /proc: each new look reads the audit session id
    /// only of processes new since (see [`Procfs::scan_with`]).
    last: Snapshot,
    /// Per target, every process ever found a member.
    known: Vec<Vec<ProcId>>,
    memberships: Vec<Membership>,
    ended: Vec<Ended>,
}

impl Ending<'_> {
    /// The members of every target now, from a new look at /proc; remembers
    /// them for later looks.
    fn scan(&mut self) -> Vec<Vec<Proc>> {
        // A light look: the ending lasts at most the grace periods (under
        // 2 s) after the full look the decision was checked against, and
        // a process joins an audit session only by being forked in it.
        let snap = self
            .procfs
            .scan_with(&self.last, !self.last.all().is_empty())
            .unwrap_or_default();
        self.last = snap.clone();
        let guard = Guard::new(&snap, self.me);
        let mut out = Vec::with_capacity(self.memberships.len());
        for (i, m) in self.memberships.iter_mut().enumerate() {
            let found = collect(m.clone(), &snap, &guard, &self.known[i]);
            *m = found.membership;
            for p in &found.procs {
                if !self.known[i].contains(p) {
                    self.known[i].push(*p);
                }
            }
            out.push(
                found
                    .procs
                    .iter()
                    .filter_map(|p| snap.get(p.pid).copied())
                    .collect(),
            );
        }
        out
    }

    /// The processes found when the decision was taken that still run,
    /// each read on its own (no look at the whole of /proc).
    fn known_running(&self) -> Vec<Vec<Proc>> {
        self.known
            .iter()
            .map(|procs| {
                procs
                    .iter()
                    .filter_map(|id| {
                        self.procfs
                            .read(id.pid)
                            .filter(|p| p.start_ticks == id.start_ticks && !p.exited)
                    })
                    .collect()
            })
            .collect()
    }

    fn signal(&mut self, target: usize, p: ProcId, sig: Signal, level: u8) {
        if let Ok(Sent::Delivered) = send_both(self.procfs, p, sig, level < 3) {
            let e = &mut self.ended[target];
            e.signalled.insert(p);
            e.strongest = e.strongest.max(level);
        }
    }

    /// Waits until `until` for the members to go, looking at /proc again
    /// at least every [`RESCAN`]; at `level` 3 stragglers get SIGKILL too.
    /// Returns the members still running.
    fn settle(&mut self, mut now: Vec<Vec<Proc>>, level: u8, until: Instant) -> Vec<Vec<Proc>> {
        loop {
            if now.iter().all(Vec::is_empty) || Instant::now() >= until {
                return now;
            }
            let ids: Vec<ProcId> = now.iter().flatten().map(Proc::id).collect();
            wait_gone(self.procfs, &ids, until.min(Instant::now() + RESCAN));
            now = self.scan();
            if level == 3 {
                // Stragglers forked while we were at it get the same.
                for (i, procs) in now.iter().enumerate() {
                    for p in procs {
                        self.signal(i, p.id(), Signal::KILL, 3);
                    }
                }
            }
        }
    }
}

/// Ends every target at once (in parallel phases), never signalling a
/// process the guard protects. `me` is the enforcer's pid.
pub fn end_sessions(procfs: &Procfs, me: i32, targets: Vec<Target>, grace: Grace) -> Vec<Ended> {
    end_sessions_after(procfs, me, targets, grace, Snapshot::default())
}

/// [`end_sessions`], where `seen` is the full look at /proc the targets
/// were found in, moments ago: the looks at /proc while the sessions end
/// read the audit session id only of the processes new since (a process
/// joins an audit session only by being forked in it).
pub fn end_sessions_after(
    procfs: &Procfs,
    me: i32,
    targets: Vec<Target>,
    grace: Grace,
    seen: Snapshot,
) -> Vec<Ended> {
    let notified: Vec<Vec<u32>> = targets.iter().map(|t| t.notified.clone()).collect();
    let mut e = Ending {
        procfs,
        me,
        last: seen,
        known: targets.iter().map(|t| t.procs.clone()).collect(),
        memberships: targets.into_iter().map(|t| t.membership).collect(),
        ended: Vec::new(),
    };
    e.ended = vec![Ended::default(); e.memberships.len()];

    // SIGHUP, at once to the processes the decision was taken on (read
    // again one by one, not with a new look at all of /proc; one forked
    // since is found by the looks that follow).
    let started = Instant::now();
    let first = e.known_running();
    let mut relays: Vec<ProcId> = Vec::new();
    for (i, procs) in first.iter().enumerate() {
        for p in procs {
            if notified[i].is_empty() || notified[i].contains(&p.tty_nr) {
                e.signal(i, p.id(), Signal::HUP, 1);
            } else {
                relays.push(p.id());
            }
        }
    }
    let mut now = if relays.is_empty() {
        e.scan()
    } else {
        // The terminal's processes go first; the relays then have
        // NOTICE_DELIVERY to send what the terminal holds and leave.
        let on_terminal: Vec<ProcId> = first
            .iter()
            .flatten()
            .map(Proc::id)
            .filter(|p| !relays.contains(p))
            .collect();
        // (If they outlast their grace, the notice has had that long.)
        if wait_gone(procfs, &on_terminal, started + grace.hangup) {
            wait_gone(procfs, &relays, Instant::now() + NOTICE_DELIVERY);
        }
        let now = e.scan();
        for (i, procs) in now.iter().enumerate() {
            for p in procs {
                if !e.ended[i].signalled.contains(&p.id()) {
                    e.signal(i, p.id(), Signal::HUP, 1);
                }
            }
        }
        now
    };
    // A relay that got its SIGHUP just now has its grace too.
    let hangup_until = if relays.is_empty() {
        started + grace.hangup
    } else {
        Instant::now() + grace.hangup
    };
    now = e.settle(now, 1, hangup_until);

    for (level, sig, wait) in [
        (2u8, Signal::TERM, grace.terminate),
        (3, Signal::KILL, grace.kill),
    ] {
        if now.iter().all(Vec::is_empty) {
            break;
        }
        for (i, procs) in now.iter().enumerate() {
            for p in procs {
                e.signal(i, p.id(), sig, level);
            }
        }
        let until = Instant::now() + wait;
        let found = e.scan();
        now = e.settle(found, level, until);
    }
    let mut ended = e.ended;
    for (x, left) in ended.iter_mut().zip(now) {
        x.left = left.iter().map(Proc::id).collect();
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
                notified: Vec::new(),
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
    fn the_terminals_processes_go_first_and_its_relay_leaves_by_itself() {
        // script(1) is what sshd is to an ssh login: it holds the master of
        // a new pty and relays it; `sleep` runs with that pty as its
        // controlling terminal. The notice was "written" to that terminal.
        // `exec`: whatever $SHELL script(1) runs (dash forks for `-c cmd`),
        // the shell becomes `sleep`.
        let mut relay = Reaped(
            Command::new("script")
                .args(["-qefc", "exec sleep 604", "/dev/null"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let leader = relay.0.id() as i32;
        let sleeper = wait_for_sleepers(leader, 1)[0];
        let procfs = Procfs::default();
        let snap = procfs.scan().unwrap();
        let tty = snap.get(sleeper).unwrap().tty_nr;
        assert_ne!(tty, 0, "sleep runs on script's terminal");
        assert_ne!(snap.get(leader).unwrap().tty_nr, tty, "script is not on it");
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
        let uid = nix::unistd::getuid().as_raw();
        let members = find(&record, Some(uid), &snap, clock(), &Guard::new(&snap, me));
        assert_eq!(members.procs.len(), 2, "{members:?}");
        assert_eq!(members.tty_nrs, vec![tty]);

        let ended = end_sessions(
            &procfs,
            me,
            vec![Target {
                membership: members.membership,
                procs: members.procs.clone(),
                notified: vec![tty],
            }],
            Grace::default(),
        );
        assert!(ended[0].left.is_empty(), "{:?}", ended[0]);
        assert_eq!(ended[0].strongest_name(), "SIGHUP");
        let signalled: Vec<i32> = ended[0].signalled.iter().map(|p| p.pid).collect();
        assert_eq!(
            signalled,
            vec![sleeper],
            "only the terminal's process was signalled; the relay left by itself"
        );
        // script -e exits with its child's status: killed by SIGHUP.
        let status = relay.0.wait().unwrap();
        assert!(!status.success(), "{status:?}");
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
                notified: Vec::new(),
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
                notified: Vec::new(),
            }],
            Grace::default(),
        );
        assert_eq!(ended[0], Ended::default());
    }
}
