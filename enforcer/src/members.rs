//! Which processes belong to a session, and which must never be touched.
//!
//! A session's processes are those whose kernel audit session id
//! (`/proc/PID/sessionid`, set by pam_loginuid and inherited by every child,
//! unchangeable without CAP_AUDIT_CONTROL) is the one the PAM module
//! recorded. Without an audit session id (no pam_loginuid in the stack, or a
//! kernel without audit), the fallback is the process tree of the pid the
//! PAM module recorded, with the POSIX sessions its members lead; a process
//! that double-forks away from that tree and out of those sessions escapes
//! the fallback, and the README says so.
//!
//! Neither way lets a record point the enforcer at someone else's processes
//! (a record forged by a peer of a Redis fleet, or a host sharing a name):
//! an audit session is used only when every process in it has the
//! session's user as its login uid (`/proc/PID/loginuid`, set with the
//! audit session and as unchangeable), and the tree fallback only yields
//! processes whose real uid is the session's user's, never starts from a
//! protected process (init, kernel threads, the enforcer's ancestry), and
//! never from a process that started after the session did.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use curfew_policy::Session;

use crate::procfs::{ProcId, Snapshot};

/// How a session's processes are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Every process with this audit session id, all of them with this
    /// login uid.
    Audit {
        /// The audit session id.
        id: u32,
        /// The uid of the session's user: a process in the audit session
        /// with another login uid is never a member.
        loginuid: u32,
    },
    /// The processes of the session's user (real uid) among the recorded
    /// process, its descendants, and the POSIX sessions they lead
    /// (`leaders`, by pid).
    Tree {
        /// The recorded process.
        leader: ProcId,
        /// Session leaders among the members: their sessions' processes
        /// belong too, even when reparented away from the tree.
        leaders: BTreeSet<i32>,
        /// The uid of the session's user: only its processes are members.
        uid: u32,
    },
    /// Nothing to go by: no process of this session is touched.
    Unknown(Unfound),
}

/// Why a session's processes cannot be identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfound {
    /// The session started before this boot: none of its processes exist,
    /// and its audit session id may name a new session.
    PreviousBoot,
    /// The record has neither an audit session id nor a pid.
    NoIdentity,
    /// The recorded pid is not running.
    LeaderGone,
    /// The process with the recorded pid started after the session did: the
    /// pid was reused by an unrelated process.
    PidReused,
    /// The recorded audit session id is shared with processes older than
    /// the session (it was inherited from an enclosing login), and the
    /// recorded process that would narrow it down is gone.
    SharedAudit,
    /// The session's user has no account on this host (or the user
    /// database could not be asked): there is no uid to check processes
    /// against.
    NoAccount,
    /// The recorded audit session belongs to another user (a process in it
    /// has another login uid), and there is no recorded process of this
    /// session to narrow it down.
    ForeignAudit,
    /// The recorded pid is a process the enforcer never signals (init, a
    /// kernel thread, the enforcer or one of its ancestors).
    ProtectedLeader,
}

impl std::fmt::Display for Unfound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unfound::PreviousBoot => "it started before this boot",
            Unfound::NoIdentity => "its record has neither an audit session id nor a pid",
            Unfound::LeaderGone => "its recorded process is gone",
            Unfound::PidReused => "its recorded pid now belongs to a process started later",
            Unfound::SharedAudit => {
                "its audit session id is shared with older processes and its recorded process is gone"
            }
            Unfound::NoAccount => "its user has no account on this host",
            Unfound::ForeignAudit => {
                "its audit session belongs to another user and its recorded process is gone"
            }
            Unfound::ProtectedLeader => "its recorded pid is a process that is never signalled",
        })
    }
}

/// Processes the enforcer never signals, whatever a record says: init,
/// kernel threads, the enforcer itself and its ancestors.
#[derive(Debug, Clone)]
pub struct Guard {
    protected: HashSet<i32>,
}

impl Guard {
    /// The guard for the process `me` in `snap`.
    pub fn new(snap: &Snapshot, me: i32) -> Self {
        let mut protected: HashSet<i32> = snap.ancestry(me).into_iter().collect();
        protected.extend([0, 1, 2, me]);
        Guard { protected }
    }

    /// Whether `p` may be signalled at all.
    pub fn allows(&self, snap: &Snapshot, pid: i32) -> bool {
        if self.protected.contains(&pid) {
            return false;
        }
        // Kernel threads are children of kthreadd (pid 2).
        snap.get(pid).is_some_and(|p| p.ppid != 2)
    }
}

/// The clock of /proc: boot time and tick rate, to turn a process start
/// time into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    /// Boot time, seconds since the epoch.
    pub boot_time: i64,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    pub ticks_per_second: u64,
}

impl BootClock {
    /// When a process that started `ticks` after boot started.
    pub fn started(&self, ticks: u64) -> DateTime<Utc> {
        let secs = self.boot_time + (ticks / self.ticks_per_second.max(1)) as i64;
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    /// Boot time.
    pub fn boot(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.boot_time, 0).unwrap_or_default()
    }
}

/// Slack for comparing a process start time with a recorded time: boot time
/// is known to the second and moves with clock adjustments.
const SLACK: chrono::Duration = chrono::Duration::seconds(2);
/// How long before its registration the process opening a session may have
/// started (sshd's LoginGraceTime is 2 minutes by default).
const LOGIN_GRACE: chrono::Duration = chrono::Duration::minutes(10);
/// A session that started this long before boot is from an earlier boot.
const PREVIOUS_BOOT: chrono::Duration = chrono::Duration::seconds(60);

/// A session's processes at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// How they were found.
    pub membership: Membership,
    /// The processes, alive, each allowed by the guard.
    pub procs: Vec<ProcId>,
    /// Their controlling terminals (/proc `tty_nr`), without duplicates.
    pub tty_nrs: Vec<u32>,
}

/// Finds the processes of `session` in `snap`. `uid` is the uid of the
/// session's user on this host (`None`: unknown, and nothing is a member).
pub fn find(
    session: &Session,
    uid: Option<u32>,
    snap: &Snapshot,
    clock: BootClock,
    guard: &Guard,
) -> Members {
    let membership = match uid {
        Some(uid) => membership(session, uid, snap, clock, guard),
        None => Membership::Unknown(Unfound::NoAccount),
    };
    collect(membership, snap, guard, &[])
}

fn membership(
    session: &Session,
    uid: u32,
    snap: &Snapshot,
    clock: BootClock,
    guard: &Guard,
) -> Membership {
    if session.started_at < clock.boot() - PREVIOUS_BOOT {
        return Membership::Unknown(Unfound::PreviousBoot);
    }
    let leader = leader(session, snap, clock).and_then(|l| {
        if guard.allows(snap, l.pid) {
            Ok(l)
        } else {
            Err(Unfound::ProtectedLeader)
        }
    });
    let Some(id) = session
        .audit_session_id
        .filter(|&id| id != crate::procfs::NO_AUDIT_SESSION)
    else {
        return match leader {
            Ok(leader) => Membership::Tree {
                leader: leader.id(),
                leaders: BTreeSet::new(),
                uid,
            },
            Err(why) => Membership::Unknown(why),
        };
    };
    // pam_loginuid makes a new audit session in the process that opens the
    // PAM session (the recorded pid): every process of it is that process
    // or started after it. A member that is older means the id was
    // inherited from an enclosing login (su, sudo, or a stack without
    // pam_loginuid), and belongs to more than this session.
    let in_audit = || snap.in_audit(id);
    // pam_loginuid sets the login uid with the audit session: a process in
    // it with another login uid means the id is not this user's session.
    let users = in_audit().all(|p| p.loginuid == Some(uid));
    match leader {
        Ok(leader) => {
            let own = users
                && leader.audit_session == Some(id)
                && in_audit().all(|p| p.start_ticks >= leader.start_ticks);
            if own {
                Membership::Audit { id, loginuid: uid }
            } else {
                Membership::Tree {
                    leader: leader.id(),
                    leaders: BTreeSet::new(),
                    uid,
                }
            }
        }
        Err(Unfound::ProtectedLeader) => Membership::Unknown(Unfound::ProtectedLeader),
        Err(_) if !users => Membership::Unknown(Unfound::ForeignAudit),
        Err(_) => {
            let earliest = session.started_at - LOGIN_GRACE;
            if in_audit().all(|p| clock.started(p.start_ticks) >= earliest) {
                Membership::Audit { id, loginuid: uid }
            } else {
                Membership::Unknown(Unfound::SharedAudit)
            }
        }
    }
}

/// The recorded process, if it is still the one that opened the session.
fn leader<'s>(
    session: &Session,
    snap: &'s Snapshot,
    clock: BootClock,
) -> Result<&'s crate::procfs::Proc, Unfound> {
    let pid = session
        .pid
        .and_then(|p| i32::try_from(p).ok())
        .ok_or(Unfound::NoIdentity)?;
    let leader = snap
        .get(pid)
        .filter(|p| !p.exited)
        .ok_or(Unfound::LeaderGone)?;
    // The process that opened the session started before it registered.
    if clock.started(leader.start_ticks) > session.started_at + SLACK {
        return Err(Unfound::PidReused);
    }
    Ok(leader)
}

/// The members of `membership` in `snap`. `known` are processes found
/// earlier (during an escalation): in a tree, they and their descendants stay
/// members after the leader has died and they were reparented.
pub fn collect(
    membership: Membership,
    snap: &Snapshot,
    guard: &Guard,
    known: &[ProcId],
) -> Members {
    let alive = |id: &ProcId| {
        snap.get(id.pid)
            .is_some_and(|p| p.start_ticks == id.start_ticks && !p.exited)
    };
    let (membership, pids): (Membership, Vec<i32>) = match membership {
        Membership::Audit { id, loginuid } => {
            let pids = snap
                .in_audit(id)
                .filter(|p| p.loginuid == Some(loginuid) && !p.exited)
                .map(|p| p.pid)
                .collect();
            (Membership::Audit { id, loginuid }, pids)
        }
        Membership::Tree {
            leader,
            mut leaders,
            uid,
        } => {
            let mut seen: BTreeSet<i32> = BTreeSet::new();
            let mut queue: Vec<i32> = std::iter::once(leader)
                .chain(known.iter().copied())
                .filter(alive)
                .map(|id| id.pid)
                .collect();
            loop {
                while let Some(pid) = queue.pop() {
                    if !seen.insert(pid) {
                        continue;
                    }
                    if let Some(p) = snap.get(pid) {
                        if p.sid == p.pid {
                            leaders.insert(p.pid);
                        }
                    }
                    queue.extend(snap.children(pid));
                }
                // Processes of a POSIX session a member leads (or led).
                let more: Vec<i32> = snap
                    .all()
                    .iter()
                    .filter(|p| leaders.contains(&p.sid) && !seen.contains(&p.pid))
                    .map(|p| p.pid)
                    .collect();
                if more.is_empty() {
                    break;
                }
                queue = more;
            }
            let pids = seen
                .into_iter()
                .filter(|&pid| {
                    snap.get(pid).is_some_and(|p| !p.exited) && snap.uid(pid) == Some(uid)
                })
                .collect();
            (
                Membership::Tree {
                    leader,
                    leaders,
                    uid,
                },
                pids,
            )
        }
        m @ Membership::Unknown(_) => (m, Vec::new()),
    };
    let mut procs = Vec::new();
    let mut tty_nrs = Vec::new();
    for pid in pids {
        if !guard.allows(snap, pid) {
            continue;
        }
        if let Some(p) = snap.get(pid) {
            procs.push(p.id());
            if p.tty_nr != 0 && !tty_nrs.contains(&p.tty_nr) {
                tty_nrs.push(p.tty_nr);
            }
        }
    }
    procs.sort();
    Members {
        membership,
        procs,
        tty_nrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::Proc;
    use chrono::TimeZone;
    use curfew_policy::SessionKind;

    const BOOT: i64 = 1_767_225_600;
    const CLOCK: BootClock = BootClock {
        boot_time: BOOT,
        ticks_per_second: 100,
    };

    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;

    /// A process; alice owns 201-299 (her shell, jobs and daemons), bob
    /// 301-399, root the rest (sshd's privileged process of a connection
    /// included). Audit session 5 is alice's login, 6 bob's.
    fn p(pid: i32, ppid: i32, sid: i32, tty_nr: u32, start_s: u64, audit: Option<u32>) -> Proc {
        Proc {
            pid,
            ppid,
            sid,
            tty_nr,
            start_ticks: start_s * 100,
            audit_session: audit,
            loginuid: match audit {
                Some(5) | Some(9) => Some(ALICE),
                Some(6) => Some(BOB),
                _ => None,
            },
            uid: Some(match pid {
                201..=299 => ALICE,
                301..=399 => BOB,
                _ => 0,
            }),
            exited: false,
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(BOOT + s, 0).unwrap()
    }

    /// init, the enforcer (900) under a shell (899), sshd listening (100),
    /// one sshd connection (200, audit session 5) with a shell (201) on
    /// pts/1, a job (202), a daemon that left the tree (203, reparented to
    /// init, still in sid 201), a double-forked daemon in its own sid (204,
    /// still audit session 5), and another user's connection (300, audit 6).
    fn host() -> Snapshot {
        Snapshot::new(vec![
            p(1, 0, 1, 0, 0, None),
            p(2, 0, 0, 0, 0, None),
            p(3, 2, 0, 0, 0, None),
            p(100, 1, 100, 0, 5, None),
            p(200, 100, 200, 0, 1000, Some(5)),
            p(201, 200, 201, 34817, 1001, Some(5)),
            p(202, 201, 201, 34817, 1002, Some(5)),
            p(203, 1, 201, 0, 1003, Some(5)),
            p(204, 1, 204, 0, 1004, Some(5)),
            p(300, 100, 300, 0, 1100, Some(6)),
            p(301, 300, 301, 34818, 1101, Some(6)),
            p(899, 1, 899, 34819, 10, None),
            p(900, 899, 899, 34819, 11, None),
        ])
    }

    fn session(audit: Option<u32>, pid: Option<u32>, started: i64) -> Session {
        let mut s = Session::start(
            SessionKind::Pam,
            "alice",
            at(started),
            std::time::Duration::from_secs(300),
        )
        .unwrap();
        s.audit_session_id = audit;
        s.pid = pid;
        s
    }

    /// [`find`] for a session of alice.
    fn find_(session: &Session, snap: &Snapshot, clock: BootClock, guard: &Guard) -> Members {
        find(session, Some(ALICE), snap, clock, guard)
    }

    fn pids(m: &Members) -> Vec<i32> {
        m.procs.iter().map(|p| p.pid).collect()
    }

    #[test]
    fn the_audit_session_finds_every_process_even_escaped_ones() {
        let snap = host();
        let guard = Guard::new(&snap, 900);
        let m = find_(&session(Some(5), Some(200), 1000), &snap, CLOCK, &guard);
        assert_eq!(
            m.membership,
            Membership::Audit {
                id: 5,
                loginuid: ALICE
            }
        );
        assert_eq!(pids(&m), vec![200, 201, 202, 203, 204]);
        assert_eq!(m.tty_nrs, vec![34817]);
    }

    #[test]
    fn without_an_audit_id_the_tree_and_the_sessions_it_leads_are_found() {
        let snap = host();
        let guard = Guard::new(&snap, 900);
        for unset in [None, Some(u32::MAX)] {
            let m = find_(&session(unset, Some(200), 1000), &snap, CLOCK, &guard);
            assert!(matches!(m.membership, Membership::Tree { .. }), "{m:?}");
            // 203 left the tree but stays in sid 201; 204 escaped both;
            // 200 is sshd's privileged process (root), not alice's.
            assert_eq!(pids(&m), vec![201, 202, 203]);
        }
    }

    #[test]
    fn the_tree_of_a_connection_that_is_no_session_leader_stays_inside_it() {
        // The connection process (200) shares sid 100 with the listener: the
        // listener's session must not be pulled in.
        let mut procs = host().all().to_vec();
        for q in &mut procs {
            if q.pid == 200 {
                q.sid = 100;
            }
        }
        let snap = Snapshot::new(procs);
        let guard = Guard::new(&snap, 900);
        let m = find_(&session(None, Some(200), 1000), &snap, CLOCK, &guard);
        assert_eq!(pids(&m), vec![201, 202, 203]);
    }

    #[test]
    fn a_forged_record_finds_nothing_outside_its_users_session() {
        let snap = host();
        let guard = Guard::new(&snap, 900);
        // alice's record naming bob's audit session and bob's connection:
        // the audit session is not alice's, and bob's tree has no process
        // of hers.
        let m = find_(&session(Some(6), Some(300), 1100), &snap, CLOCK, &guard);
        assert!(m.procs.is_empty(), "{m:?}");
        // ... with the connection gone: the audit session is refused.
        let m = find_(&session(Some(6), Some(4242), 1100), &snap, CLOCK, &guard);
        assert_eq!(m.membership, Membership::Unknown(Unfound::ForeignAudit));
        assert!(m.procs.is_empty());
        // Naming init, a kernel thread or the enforcer's tree as its process.
        for pid in [1, 2, 3, 899, 900] {
            let m = find_(&session(None, Some(pid), 1000), &snap, CLOCK, &guard);
            assert_eq!(
                m.membership,
                Membership::Unknown(Unfound::ProtectedLeader),
                "pid {pid}"
            );
            assert!(m.procs.is_empty());
        }
        // A record of bob's for alice's audit session and process.
        let m = find(
            &session(Some(5), Some(200), 1000),
            Some(BOB),
            &snap,
            CLOCK,
            &guard,
        );
        assert!(m.procs.is_empty(), "{m:?}");
        // A user without an account here: nothing.
        let m = find(
            &session(Some(5), Some(200), 1000),
            None,
            &snap,
            CLOCK,
            &guard,
        );
        assert_eq!(m.membership, Membership::Unknown(Unfound::NoAccount));
        assert!(m.procs.is_empty());
        // Another user's process that joined... cannot: but a process in
        // alice's audit session with another login uid spoils the session.
        let mut procs = snap.all().to_vec();
        procs.push(Proc {
            loginuid: Some(BOB),
            ..p(210, 1, 210, 0, 1005, Some(5))
        });
        let odd = Snapshot::new(procs);
        let m = find_(&session(Some(5), Some(4242), 1000), &odd, CLOCK, &guard);
        assert_eq!(m.membership, Membership::Unknown(Unfound::ForeignAudit));
    }

    #[test]
    fn an_inherited_audit_id_narrows_to_the_process_tree() {
        // `su` inside the connection: its PAM session records the enclosing
        // audit session (5) and its own pid, 202, which started after 200.
        let snap = host();
        let guard = Guard::new(&snap, 900);
        let m = find_(&session(Some(5), Some(202), 1002), &snap, CLOCK, &guard);
        assert!(matches!(m.membership, Membership::Tree { .. }), "{m:?}");
        assert_eq!(pids(&m), vec![202], "not the enclosing login");
        // Its leader gone, the shared id is not used at all.
        let m = find_(
            &session(Some(5), Some(4242), 1002 + 3600),
            &snap,
            CLOCK,
            &guard,
        );
        assert_eq!(m.membership, Membership::Unknown(Unfound::SharedAudit));
        assert!(m.procs.is_empty());
        // The connection's own session still uses it, leader gone or not.
        let m = find_(&session(Some(5), Some(4242), 1000), &snap, CLOCK, &guard);
        assert_eq!(
            m.membership,
            Membership::Audit {
                id: 5,
                loginuid: ALICE
            }
        );
    }

    #[test]
    fn a_reused_or_missing_pid_finds_nothing() {
        let snap = host();
        let guard = Guard::new(&snap, 900);
        // pid 300 started at +1100 s; a session recorded at +900 s cannot be its.
        let m = find_(&session(None, Some(300), 900), &snap, CLOCK, &guard);
        assert_eq!(m.membership, Membership::Unknown(Unfound::PidReused));
        assert!(m.procs.is_empty());
        let m = find_(&session(None, Some(4242), 1000), &snap, CLOCK, &guard);
        assert_eq!(m.membership, Membership::Unknown(Unfound::LeaderGone));
        let m = find_(&session(None, None, 1000), &snap, CLOCK, &guard);
        assert_eq!(m.membership, Membership::Unknown(Unfound::NoIdentity));
    }

    #[test]
    fn a_session_from_an_earlier_boot_finds_nothing_even_with_a_live_audit_id() {
        let snap = host();
        let guard = Guard::new(&snap, 900);
        let m = find_(&session(Some(5), Some(200), -3600), &snap, CLOCK, &guard);
        assert_eq!(m.membership, Membership::Unknown(Unfound::PreviousBoot));
        assert!(m.procs.is_empty());
    }

    #[test]
    fn the_enforcer_its_ancestors_init_and_kernel_threads_are_never_members() {
        // A broken record that names the enforcer's own audit session and tree.
        let mut procs = host().all().to_vec();
        for q in &mut procs {
            if [1, 3, 899, 900].contains(&q.pid) {
                q.audit_session = Some(9);
            }
        }
        let snap = Snapshot::new(procs);
        let guard = Guard::new(&snap, 900);
        let m = find_(&session(Some(9), None, 1000), &snap, CLOCK, &guard);
        assert!(m.procs.is_empty(), "{m:?}");
        let m = find_(&session(None, Some(899), 1000), &snap, CLOCK, &guard);
        assert!(m.procs.is_empty(), "{m:?}");
        // Even the enforcer's tree as a member of alice's: 899 and 900 run
        // as alice here, still never members.
        let mut procs = snap.all().to_vec();
        for q in &mut procs {
            if [899, 900].contains(&q.pid) {
                q.uid = Some(ALICE);
            }
        }
        let snap = Snapshot::new(procs);
        let m = find_(&session(Some(9), None, 1000), &snap, CLOCK, &guard);
        assert!(m.procs.is_empty(), "{m:?}");
    }

    #[test]
    fn a_rescan_keeps_reparented_members_after_the_leader_died() {
        let snap = host();
        let guard = Guard::new(&snap, 900);
        let first = find_(&session(None, Some(200), 1000), &snap, CLOCK, &guard);
        // 200 and 201 died; 202 was reparented to init and forked 205.
        let mut procs: Vec<Proc> = snap
            .all()
            .iter()
            .copied()
            .filter(|q| ![200, 201].contains(&q.pid))
            .collect();
        for q in &mut procs {
            if q.pid == 202 {
                q.ppid = 1;
            }
        }
        procs.push(p(205, 202, 201, 0, 1010, None));
        let later = Snapshot::new(procs);
        let again = collect(first.membership.clone(), &later, &guard, &first.procs);
        assert_eq!(pids(&again), vec![202, 203, 205]);
    }
}
