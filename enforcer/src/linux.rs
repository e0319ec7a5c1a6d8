//! The enforcer's [`Host`] on Linux: /proc, the terminals under /dev, signals.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use curfew_policy::Session;

use crate::activity::{self, Io};

use crate::enforcer::{Host, Observation};
use crate::error::ProcError;
use crate::members::{self, BootClock, Guard, Members, Membership, Unfound};
use crate::procfs::{Procfs, Snapshot};
use crate::signal::{self, Ended, Grace, Target};
use crate::tty;

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
    notified: bool,
    /// The mtime each terminal (by device number) had right after the
    /// enforcer's own last notice: the notice is output too, and must not
    /// count as the session's activity.
    own_output: HashMap<u64, DateTime<Utc>>,
}

/// Time for a notice written just before an end to reach the user: sshd
/// relays the terminal's output asynchronously, and a SIGHUP at once would
/// lose the line.
const NOTICE_DELIVERY: Duration = Duration::from_millis(150);

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
            notified: false,
            own_output: HashMap::new(),
        }
    }
}

impl Host for LinuxHost {
    fn refresh(&mut self) -> Result<(), ProcError> {
        self.notified = false;
        self.snap = self.procfs.scan()?;
        self.clock = Some(BootClock {
            boot_time: self.procfs.boot_time()?,
            ticks_per_second: rustix::param::clock_ticks_per_second(),
        });
        self.guard = Some(Guard::new(&self.snap, self.me));
        Ok(())
    }

    fn observe(&mut self, session: &Session) -> Observation {
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
        let members = members::find(session, &self.snap, clock, guard);
        let ttys: Vec<tty::Tty> = members
            .tty_nrs
            .iter()
            .filter_map(|&nr| tty::resolve(nr))
            .map(|mut t| {
                if t.last_output.is_some() && t.last_output == self.own_output.get(&t.rdev).copied()
                {
                    // Nothing written since our notice.
                    t.last_output = None;
                }
                t
            })
            .collect();
        // A terminal decides for a session that has one; the counters are
        // read only for the others.
        let io = if ttys.is_empty() {
            activity::sample(&self.procfs, &members.procs)
        } else {
            Io::NotMeasured
        };
        Observation { members, ttys, io }
    }

    fn groups(&mut self, user: &str) -> Vec<String> {
        if let Some((at, g)) = self.groups.get(user) {
            if at.elapsed() < GROUPS_TTL {
                return g.clone();
            }
        }
        let g = system_groups(user);
        self.groups
            .insert(user.to_owned(), (Instant::now(), g.clone()));
        g
    }

    fn notify(&mut self, observation: &Observation, line: &str) -> usize {
        let mut n = 0;
        for t in &observation.ttys {
            if tty::write_notice(t, line).is_ok() {
                n += 1;
                if let Some((_, mtime)) = tty::read_times(&t.path, t.rdev) {
                    self.own_output.insert(t.rdev, mtime);
                }
            }
        }
        self.notified |= n > 0;
        n
    }

    fn end(&mut self, sessions: &[Observation]) -> Vec<Ended> {
        if std::mem::take(&mut self.notified) {
            std::thread::sleep(NOTICE_DELIVERY);
        }
        let targets = sessions
            .iter()
            .map(|o| Target {
                membership: o.members.membership.clone(),
                procs: o.members.procs.clone(),
            })
            .collect();
        signal::end_sessions(&self.procfs, self.me, targets, self.grace)
    }
}

/// A user's groups from the system (getgrouplist); empty if the user is
/// unknown here.
fn system_groups(user: &str) -> Vec<String> {
    let Ok(Some(u)) = nix::unistd::User::from_name(user) else {
        return Vec::new();
    };
    let Ok(cname) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&cname, u.gid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| nix::unistd::Group::from_gid(g).ok().flatten())
        .map(|g| g.name)
        .collect()
}
