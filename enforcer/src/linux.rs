//! The enforcer's [`Host`] on Linux: /proc, the terminals under /dev, signals.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

use curfew_policy::Session;

use crate::activity::{self, Io};

use crate::enforcer::{Host, Observation};
use crate::error::ProcError;
use crate::members::{self, BootClock, Guard, Members, Membership, Unfound};
use crate::procfs::{self, Procfs, Snapshot};
use crate::signal::{self, Ended, Grace, Target};
use crate::tty;
use curfew_policy::host::{self, Account, HostError};

/// How long a user's groups are cached (NSS may be a network service).
const GROUPS_TTL: Duration = Duration::from_secs(60);

/// This machine.
pub struct LinuxHost {
    procfs: Procfs,
    me: i32,
    grace: Grace,
    snap: Snapshot,
    clock: Option<BootClock>,
    guard: Option<Guard>,
    groups: HashMap<String, (Instant, Vec<String>)>,
    accounts: HashMap<String, (Instant, Account)>,
    /// The terminals (device numbers) a notice was written to in this pass.
    notified: HashSet<u64>,
    /// Per terminal (by device number): its mtime right after the
    /// enforcer's own last notice, and the output time it had before. The
    /// notice is output too, and must not count as the session's activity:
    /// while the mtime is still the notice's, the earlier time stands.
    own_output: HashMap<u64, (DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Whether the last look at the processes was a full one.
    full: bool,
    /// When every process was last read in full: the last full look, or
    /// the end of the last round of the rolling full look.
    last_full: Option<Instant>,
    /// Within how long every process is read in full again.
    full_every: Duration,
    /// The daemon's interval between passes: the rolling full look's round
    /// is `full_every / interval` light looks.
    interval: Duration,
    /// Light looks taken since the last full look (the rolling full look's
    /// turn).
    light_looks: u64,
}

/// Within how long the enforcer reads every process in full again (its
/// `/proc/PID/stat` and `/proc/PID/sessionid`); it also reads every
/// process in full at its first pass and before it ends a session (a full
/// look). The reading is rolling: each pass's light look also reads in full
/// the known processes whose turn it is, the pids spread by a hash over
/// the `FULL_LOOK_EVERY / --interval` passes of a round (30 at the default
/// 1 s), so that every process is read in full once a round and no timer
/// pass reads them all at once ([`Procfs::scan_rolling`]). Should the
/// passes fall behind (each slower than the interval), a full look is
/// taken once twice this time has gone by without a complete round.
///
/// Besides its turn, a light look
/// ([`Procfs::scan_light`]) is a `readdir` of /proc, and for a pid whose
/// directory has the same inode number as at the last look (the same
/// process, see [`procfs::UNKNOWN_INO`]) nothing more: what the last look
/// knew of it stands. A new pid, or a pid with a new inode number (a new
/// process, or a pid reused), is read: its `stat`, and its `sessionid`
/// unless it is the same process (pid and start time) seen before in an
/// audit session. So a process that exited and was reaped, or a pid
/// reused by a new process, is seen at once.
///
/// What a light look may get wrong about a process it already knows, until
/// the process's turn in the rolling full look (at most this long at the
/// daemon's interval) or the next full look, and why that is safe:
///
/// - **its audit session id**, when the process itself writes its login
///   uid, which a process already in an audit session may do only with
///   `CAP_AUDIT_CONTROL` (root): only such a process can be taken for a
///   member of a session it has just left;
/// - **its state**: a process that exited and is not reaped yet (a zombie)
///   still looks alive (a reaped one leaves the listing at once): its
///   session looks as if it had one more process;
/// - **its parent** after it was re-parented (its parent exited): the
///   ancestry of a process is only used to find a session's processes by
///   its leader where no audit session names them;
/// - **its POSIX session and terminal** after it called `setsid` or took a
///   controlling terminal in place (a new process is read at once, and most
///   programs fork before `setsid`): the session may be judged by a
///   terminal it has left, or without one it has just taken.
///
/// Nothing is ended or signalled on a light look: before any end the pass
/// takes a full look ([`crate::enforcer::Host::look_in_full`]), which reads
/// every process, finds the members again, and drops a newly decided end
/// for idleness if the session's terminals are not those the light look
/// saw (the next pass decides again on fresh data; an end already under
/// way is carried out whatever the terminals); the signalling itself
/// reads every process's `stat` at each of its looks
/// ([`Procfs::scan_with`]). A warning is written only to a terminal that a
/// member of the session still has, read again from its `stat`
/// ([`crate::enforcer::Host::notify`]).
pub const FULL_LOOK_EVERY: Duration = Duration::from_secs(30);

impl LinuxHost {
    /// The host, ending sessions with these grace periods.
    pub fn new(grace: Grace) -> Self {
        LinuxHost {
            procfs: Procfs::default(),
            me: std::process::id() as i32,
            grace,
            snap: Snapshot::default(),
            clock: None,
            guard: None,
            groups: HashMap::new(),
            accounts: HashMap::new(),
            notified: HashSet::new(),
            own_output: HashMap::new(),
            full: false,
            last_full: None,
            full_every: FULL_LOOK_EVERY,
            interval: Duration::from_secs(1),
            light_looks: 0,
        }
    }
}

impl Host for LinuxHost {
    fn refresh(&mut self) -> Result<(), ProcError> {
        self.notified.clear();
        // A full look at the first pass, and when the rolling one fell
        // behind (passes slower than the interval): never more than twice
        // `full_every` without every process read again.
        let full = self.full_every.is_zero()
            || self
                .last_full
                .is_none_or(|at| at.elapsed() >= 2 * self.full_every);
        self.look(full)
    }

    fn refresh_in_full(&mut self) -> Result<(), ProcError> {
        self.notified.clear();
        self.look(true)
    }

    fn look_in_full(&mut self) -> Result<bool, ProcError> {
        if self.full {
            return Ok(false);
        }
        self.look(true)?;
        Ok(true)
    }

    fn account(&mut self, user: &str) -> Result<Account, HostError> {
        self.lookup_account(user)
    }

    fn groups(&mut self, account: &Account) -> Result<Vec<String>, HostError> {
        if let Some((at, g)) = self.groups.get(&account.name) {
            if at.elapsed() < GROUPS_TTL {
                return Ok(g.clone());
            }
        }
        // Failures are not cached: the next pass asks again.
        let g = host::groups(account)?;
        self.groups
            .insert(account.name.clone(), (Instant::now(), g.clone()));
        Ok(g)
    }

    fn observe(&mut self, session: &Session, uid: Option<u32>, traffic: bool) -> Observation {
        let (Some(clock), Some(guard)) = (self.clock, self.guard.as_ref()) else {
            // Only reached if refresh() failed, and then the pass stops first.
            return Observation {
                members: Members {
                    membership: Membership::Unknown(Unfound::NoIdentity),
                    procs: Vec::new(),
                    tty_nrs: Vec::new(),
                },
                ttys: Vec::new(),
                io: Io::NotMeasured,
            };
        };
        let members = members::find(session, uid, &self.snap, clock, guard);
        let ttys: Vec<tty::Tty> = members
            .tty_nrs
            .iter()
            .filter_map(|&nr| tty::resolve(nr))
            .map(|mut t| {
                if let Some((after, before)) = self.own_output.get(&t.rdev) {
                    if t.last_output == Some(*after) {
                        // Nothing written since our notice.
                        t.last_output = *before;
                    }
                }
                t
            })
            .collect();
        // A terminal decides for a session that has one; the counters are
        // read only for the others, and only when traffic counts.
        let io = if ttys.is_empty() && traffic {
            activity::sample(&self.procfs, &members.procs)
        } else {
            Io::NotMeasured
        };
        Observation { members, ttys, io }
    }

    fn io(&mut self, procs: &[procfs::ProcId]) -> Io {
        activity::sample(&self.procfs, procs)
    }

    fn audit_sessions(&self) -> HashSet<u32> {
        self.snap
            .all()
            .iter()
            .filter(|p| !p.exited)
            .filter_map(|p| p.audit_session)
            .collect()
    }

    fn boot_time(&self) -> Option<DateTime<Utc>> {
        self.clock.map(|c| c.boot())
    }

    fn notify(&mut self, observation: &Observation, line: &str) -> usize {
        // After a light look a member's terminal may be one it has left
        // (FULL_LOOK_EVERY): the terminals the members have now, read
        // again (a handful of `stat`s, only when there is a notice).
        let now_ttys: Option<HashSet<u64>> = (!self.full).then(|| {
            observation
                .members
                .procs
                .iter()
                .filter_map(|id| self.procfs.read_stat(id.pid).map(|s| (id, s)))
                .filter(|(id, s)| s.start_ticks == id.start_ticks && s.tty_nr != 0)
                .map(|(_, s)| procfs::tty_rdev(s.tty_nr))
                .collect()
        });
        let mut n = 0;
        for t in &observation.ttys {
            if now_ttys.as_ref().is_some_and(|now| !now.contains(&t.rdev)) {
                continue;
            }
            if tty::write_notice(t, line).is_ok() {
                n += 1;
                self.notified.insert(t.rdev);
                if let Some((_, mtime)) = tty::read_times(&t.path, t.rdev) {
                    self.own_output.insert(t.rdev, (mtime, t.last_output));
                }
            }
        }
        n
    }

    fn end(&mut self, sessions: &[Observation]) -> Vec<Ended> {
        // No pause after a closing notice: the processes on the terminal it
        // was written to get the first SIGHUP, and sshd, which relays the
        // terminal to the user, sends the notice and leaves after them
        // (see crate::signal).
        let notified = std::mem::take(&mut self.notified);
        let targets = sessions
            .iter()
            .map(|o| Target {
                membership: o.members.membership.clone(),
                procs: o.members.procs.clone(),
                notified: o
                    .members
                    .tty_nrs
                    .iter()
                    .copied()
                    .filter(|&nr| notified.contains(&procfs::tty_rdev(nr)))
                    .collect(),
            })
            .collect();
        // The pass's look is a full one here (see Host::look_in_full).
        let seen = if self.full {
            self.snap.clone()
        } else {
            Snapshot::default()
        };
        signal::end_sessions_after(&self.procfs, self.me, targets, self.grace, seen)
    }
}

/// Which light look of a round of `round` reads process `pid` in full
/// (Fibonacci hashing: consecutive pids fall in different turns).
fn rolling_turn(pid: i32, round: u64) -> u64 {
    (u64::from(pid as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % round
}

impl LinuxHost {
    /// A look at the processes: a full one reads every process's `stat`
    /// and audit session id, a light one only what may have changed (see
    /// [`Procfs::scan_light`] and [`FULL_LOOK_EVERY`]).
    fn look(&mut self, full: bool) -> Result<(), ProcError> {
        let previous = std::mem::take(&mut self.snap);
        let round = self.rolling_round();
        let turn = self.light_looks % round;
        let scanned = if full {
            self.procfs.scan_after(&previous)
        } else {
            self.procfs
                .scan_rolling(&previous, &|pid| rolling_turn(pid, round) == turn)
        };
        self.snap = match scanned {
            Ok(snap) => snap,
            Err(e) => {
                self.snap = previous;
                self.full = false;
                return Err(e);
            }
        };
        self.clock = Some(BootClock {
            boot_time: self.procfs.boot_time()?,
            ticks_per_second: rustix::param::clock_ticks_per_second(),
        });
        self.guard = Some(Guard::new(&self.snap, self.me));
        self.full = full;
        if full {
            self.last_full = Some(Instant::now());
            self.light_looks = 0;
        } else {
            self.light_looks += 1;
            if self.light_looks.is_multiple_of(round) {
                // A round of the rolling full look is complete.
                self.last_full = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Light looks in one round of the rolling full look: `full_every`
    /// divided by the interval, rounded up (at least 1).
    fn rolling_round(&self) -> u64 {
        let interval = self.interval.as_millis().max(1);
        (self.full_every.as_millis().div_ceil(interval) as u64).max(1)
    }

    /// The interval between the daemon's passes (default 1 s): the rolling
    /// full look reads every process again within `full_every` when the
    /// passes come this often.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How often a pass takes a full look at the processes (see
    /// [`FULL_LOOK_EVERY`]); `Duration::ZERO`: at every pass.
    pub fn with_full_look_every(mut self, every: Duration) -> Self {
        self.full_every = every;
        self
    }

    /// The account of `user`, cached like the groups.
    fn lookup_account(&mut self, user: &str) -> Result<Account, HostError> {
        if let Some((at, a)) = self.accounts.get(user) {
            if at.elapsed() < GROUPS_TTL {
                return Ok(a.clone());
            }
        }
        let a = host::account(user)?;
        self.accounts
            .insert(user.to_owned(), (Instant::now(), a.clone()));
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rolling full look's round follows the interval, and its turns
    /// spread consecutive pids evenly.
    #[test]
    fn the_rolling_full_look_spreads_every_pid_over_one_round() {
        let host =
            |ms: u64| LinuxHost::new(Grace::default()).with_interval(Duration::from_millis(ms));
        assert_eq!(host(1000).rolling_round(), 30);
        assert_eq!(host(100).rolling_round(), 300);
        assert_eq!(host(7000).rolling_round(), 5, "rounded up: within 30 s");
        assert_eq!(host(60_000).rolling_round(), 1, "every pass reads all");
        let mut per_turn = [0u32; 30];
        for pid in 1..=30_000 {
            per_turn[rolling_turn(pid, 30) as usize] += 1;
        }
        assert!(
            per_turn.iter().all(|&n| (800..=1200).contains(&n)),
            "{per_turn:?}"
        );
    }

    /// On the real /proc: the first look is full, the next ones light, and
    /// a round of light looks reads every known process again (the clock
    /// of the last complete reading moves).
    #[test]
    fn a_round_of_light_looks_reads_every_process_in_full_once() {
        let mut host = LinuxHost::new(Grace::default()).with_interval(Duration::from_secs(10));
        assert_eq!(host.rolling_round(), 3);
        host.refresh().unwrap();
        assert!(host.full);
        let first = host.last_full.unwrap();
        host.refresh().unwrap();
        host.refresh().unwrap();
        assert!(!host.full);
        assert_eq!(host.last_full, Some(first), "the round is not complete");
        host.refresh().unwrap();
        assert!(!host.full);
        assert!(host.last_full.unwrap() > first, "a complete round");
        let me = std::process::id() as i32;
        assert!(host.snap.get(me).is_some());
    }
}
