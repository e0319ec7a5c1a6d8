//! One pass of the enforcer over this host's live PAM sessions.
//!
//! The pass reads the policy (keeping the last good one), lists the sessions,
//! asks the [`Host`] what it sees of each (processes, terminals), lets the
//! [`timeline`] decide, and acts: writes activity back, warns, or ends the
//! session and, once its processes are gone, records the end. Time is an
//! argument; the host is a trait, so the whole pass is tested with a memory
//! store and a scripted host.
//!
//! Each session is looked at on its own: a fault in one record (a panic
//! anywhere in its handling, a store error on its revocations) costs that
//! record for this pass, is logged once, and the pass goes on with the
//! others.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::{DateTime, Utc};
use curfew_policy::admission::{GroupsLookup, StoreAnswer, Who};
use curfew_policy::host::{Account, HostError};
use curfew_policy::policy_source::{PolicyEvent, PolicySource};
use curfew_policy::time::{self, MAX_SKEW};
use curfew_policy::{
    ActivityKind, ActivitySet, Deny, Policy, RevocationKeys, Session, SessionFilter, SessionKind,
    Store, StoreConfig, StoreError, Target,
};

use curfew_policy::audit::Priority;

use crate::activity::{Io, IoDenied, TrafficMeter, NEAR_DEADLINE};
use crate::procfs::ProcId;

use crate::error::ProcError;
use crate::members::Members;
use crate::notice;
use crate::signal::Ended;
use crate::text::escape;
use crate::timeline::{self, latest_input, Action, Activity, Warned, Warning};
use crate::tty::Tty;

/// What the enforcer sees of one session on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Its processes.
    pub members: Members,
    /// The controlling terminals of its processes.
    pub ttys: Vec<Tty>,
    /// The I/O counters of its processes, read only when it has no
    /// terminal.
    pub io: Io,
}

impl Observation {
    /// Its activity at `now`, counting what `counts` lists: for a session
    /// with terminals, the latest input (atime, as `w` reads it) and output
    /// (mtime) on any of them; without, `moved` (whether its processes
    /// moved data since the last pass; `None` when their counters could not
    /// be read). Every terminal time goes through
    /// [`curfew_policy::time::observed`]: a time set into the future (a
    /// user can `touch` their own terminal) is no news, neither activity nor
    /// a reason to stop measuring.
    pub fn activity(
        &self,
        counts: ActivitySet,
        moved: Option<bool>,
        now: DateTime<Utc>,
    ) -> Activity {
        if self.ttys.is_empty() {
            return match moved {
                _ if !counts.traffic => Activity::NoTty,
                None => Activity::Unreadable,
                Some(true) => Activity::Traffic { at: now },
                Some(false) => Activity::NoTty,
            };
        }
        let mut latest: Option<(DateTime<Utc>, ActivityKind)> = None;
        for t in &self.ttys {
            if counts.input {
                match t.last_input {
                    None => return Activity::Unreadable,
                    Some(at) => {
                        if let Some(at) = time::observed(at, now) {
                            latest = latest.max(Some((at, ActivityKind::Input)));
                        }
                    }
                }
            }
            if counts.output {
                // `None`: unreadable, or the enforcer's own notice; the
                // input time (read from the same stat) says which.
                if t.last_input.is_none() && !counts.input {
                    return Activity::Unreadable;
                }
                if let Some(at) = t.last_output.and_then(|at| time::observed(at, now)) {
                    latest = latest.max(Some((at, ActivityKind::Output)));
                }
            }
        }
        match latest {
            Some((recorded, kind)) => Activity::Tty {
                recorded,
                latest: latest_input(recorded),
                kind,
            },
            // Terminals with only times set by hand: no news.
            None => Activity::NoNews,
        }
    }
}

/// This machine, as the enforcer uses it.
pub trait Host {
    /// Called at the start of every pass: take a fresh look at the processes.
    /// The look may be a light one that trusts what an earlier full look
    /// learned of a process that has not changed (see
    /// [`crate::linux::LinuxHost`]); [`Host::look_in_full`] is called before
    /// anything is ended.
    ///
    /// # Errors
    ///
    /// When the processes cannot be read; the pass then ends nothing.
    fn refresh(&mut self) -> Result<(), ProcError>;
    /// Called before a pass ends any session: when the last look at the
    /// processes was a light one, takes a full one and returns `true`
    /// (the sessions to end are then observed again, so that every one of
    /// their processes is found and nothing else is); `false` when the last
    /// look was full already. The default: every look is full.
    ///
    /// # Errors
    ///
    /// When the processes cannot be read; nothing is ended this pass.
    fn look_in_full(&mut self) -> Result<bool, ProcError> {
        Ok(false)
    }
    /// Like [`Host::refresh`], but always a full look: for a pass that is
    /// likely to end something (woken for a revocation or a termination
    /// request that names a session here), so that the full look before
    /// the end is not a second one. The default: [`Host::refresh`].
    ///
    /// # Errors
    ///
    /// As [`Host::refresh`].
    fn refresh_in_full(&mut self) -> Result<(), ProcError> {
        self.refresh()
    }
    /// The account of `user` on this host (`curfew_policy::host::account`,
    /// cached).
    ///
    /// # Errors
    ///
    /// [`HostError::UnknownUser`] when no account has the name,
    /// [`HostError::Lookup`] when the user database could not answer.
    fn account(&mut self, user: &str) -> Result<Account, HostError>;
    /// The account's groups, for rule matching
    /// (`curfew_policy::host::groups`, cached).
    ///
    /// # Errors
    ///
    /// As [`Host::account`].
    fn groups(&mut self, account: &Account) -> Result<Vec<String>, HostError>;
    /// The processes and terminals of `session`, as of the last refresh;
    /// `uid` is its user's uid (`None`: unknown, so no process is a member).
    /// `traffic`: whether the session's effective policy counts traffic as
    /// activity; when it does not, the I/O counters of a session without a
    /// terminal are not read ([`Io::NotMeasured`]).
    fn observe(&mut self, session: &Session, uid: Option<u32>, traffic: bool) -> Observation;
    /// The I/O counters of `procs` now (processes of one session, from an
    /// observation of this pass that did not read them).
    fn io(&mut self, procs: &[ProcId]) -> Io;
    /// The audit session ids of the running processes, as of the last
    /// refresh.
    fn audit_sessions(&self) -> HashSet<u32>;
    /// When this host booted, if known: sessions that started before are
    /// from an earlier boot, whose audit session ids mean nothing now.
    fn boot_time(&self) -> Option<DateTime<Utc>>;
    /// Writes a one-line notice to the session's terminals; returns how many
    /// got it.
    fn notify(&mut self, observation: &Observation, line: &str) -> usize;
    /// Ends the sessions (SIGHUP, SIGTERM, SIGKILL), all at once.
    fn end(&mut self, sessions: &[Observation]) -> Vec<Ended>;
}

/// Why a session's activity could not be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmeasured {
    /// Its terminal's times could not be read.
    Terminal,
    /// It has no terminal, and its processes' I/O counters
    /// (`/proc/PID/io`) could not be read: this one, and why.
    Traffic(IoDenied),
}

/// Something the enforcer did or noticed, one log line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// About the policy.
    Policy(PolicyEvent),
    /// The store could not be opened or read.
    Store(String),
    /// The processes could not be read.
    Host(String),
    /// The audit trail could not be written.
    Audit(String),
    /// A user was warned of a forced end.
    Warned {
        /// The session.
        session: String,
        /// Its user.
        user: String,
        /// The coming end.
        warning: Warning,
        /// How many terminals got the notice (0: the session has none).
        delivered: usize,
    },
    /// A session is past its idle deadline by its record, but its activity
    /// cannot be measured: it is not ended for idleness. Said once per
    /// session.
    IdleUnmeasured {
        /// The session.
        session: String,
        /// What could not be read.
        cause: Unmeasured,
    },
    /// The user's groups could not be looked up and none are known from
    /// earlier: the session is only ended for what does not depend on groups
    /// (a revocation, a termination request). Said once per user until the
    /// lookup works again.
    GroupsUnknown {
        /// The user.
        user: String,
        /// Why the lookup failed.
        error: String,
    },
    /// One session's handling failed (a panic, a bad record): that session
    /// was skipped this pass. Said once per session and fault.
    Fault {
        /// The session.
        session: String,
        /// What went wrong.
        detail: String,
    },
    /// A session was ended.
    Ended {
        /// The session.
        session: String,
        /// Its user.
        user: String,
        /// Its PAM service.
        service: Option<String>,
        /// Why.
        deny: Deny,
        /// Whether the end was recorded: only once no process of it is left
        /// (until then the record shows the termination request, and the next
        /// pass tries again).
        recorded: bool,
        /// The session had ended (its user logged out): what was ended are
        /// the processes it left running.
        after_logout: bool,
        /// What ending it took; `None` when nothing of it could be found.
        ended: Ended,
        /// How its processes were found, or why they could not be.
        membership: String,
    },
    /// A session the decision ended was found ended already (a logout raced
    /// the enforcer): left alone.
    AlreadyEnded {
        /// The session.
        session: String,
    },
}

impl Event {
    /// The syslog priority of the event's log line (the journal files it so,
    /// see `curfew_policy::journal`): what is broken is `err`, what could
    /// not be measured `warning`, a forced end `notice`, the routine `info`.
    pub fn priority(&self) -> Priority {
        match self {
            Event::Policy(PolicyEvent::Loaded { .. }) => Priority::Info,
            Event::Policy(_)
            | Event::Store(_)
            | Event::Host(_)
            | Event::Audit(_)
            | Event::GroupsUnknown { .. }
            | Event::Fault { .. } => Priority::Err,
            Event::IdleUnmeasured { .. } => Priority::Warning,
            Event::Ended { .. } => Priority::Notice,
            Event::Warned { .. } | Event::AlreadyEnded { .. } => Priority::Info,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Policy(e) => write!(f, "{e}"),
            Event::Store(e) => write!(f, "store: {e}; retrying at the next pass"),
            Event::Host(e) => write!(f, "cannot read the processes: {e}; nothing ended this pass"),
            Event::Audit(e) => write!(f, "audit trail: {e}"),
            Event::Warned {
                session,
                user,
                warning,
                delivered,
            } => write!(
                f,
                "warned session {session} (user {}): {} end at {} ({})",
                escape(user),
                match warning.kind {
                    curfew_policy::NextEnd::Idle => "idle",
                    curfew_policy::NextEnd::MaxDuration => "max_duration",
                },
                warning.deadline.to_rfc3339(),
                match delivered {
                    0 => "no terminal to write to".to_string(),
                    1 => "1 terminal".to_string(),
                    n => format!("{n} terminals"),
                }
            ),
            Event::IdleUnmeasured {
                session,
                cause: Unmeasured::Terminal,
            } => write!(
                f,
                "session {session} looks idle past its deadline, but its terminal cannot be read: not ending it for idleness"
            ),
            Event::IdleUnmeasured {
                session,
                cause: Unmeasured::Traffic(denied),
            } => write!(
                f,
                "session {session} has no terminal and looks idle past its deadline by its record's last_seen, \
                 but the data it moves cannot be counted: {denied}. Its traffic is not counted, so it is \
                 not ended for idleness while that lasts (revocations, terminations and max_duration still apply)"
            ),
            Event::GroupsUnknown { user, error } => write!(
                f,
                "cannot look up the groups of user {}: {}; none known from earlier: its sessions are only ended for revocations and termination requests until the lookup works",
                escape(user),
                escape(error)
            ),
            Event::Fault { session, detail } => write!(
                f,
                "session {}: {}; skipped this session, the others go on",
                escape(session),
                escape(detail)
            ),
            Event::Ended {
                session,
                user,
                deny,
                recorded,
                after_logout,
                ended,
                membership,
                ..
            } => {
                write!(
                    f,
                    "ended {}session {session} (user {}): {}; {} process{} signalled ({}, strongest {})",
                    if *after_logout {
                        "the processes left behind by logged-out "
                    } else {
                        ""
                    },
                    escape(user),
                    escape(&deny.to_string()),
                    ended.signalled.len(),
                    if ended.signalled.len() == 1 { "" } else { "es" },
                    membership,
                    ended.strongest_name()
                )?;
                if !ended.left.is_empty() {
                    let pids: Vec<String> = ended.left.iter().map(|p| p.pid.to_string()).collect();
                    write!(
                        f,
                        "; STILL RUNNING: {}; the end is retried at the next pass",
                        pids.join(" ")
                    )?;
                }
                if !recorded && !after_logout {
                    write!(f, "; the end is not recorded yet")?;
                }
                Ok(())
            }
            Event::AlreadyEnded { session } => {
                write!(f, "session {session} had already ended; left alone")
            }
        }
    }
}

/// Opens the store a policy names.
pub type StoreOpener<'a> = Box<dyn Fn(&Policy) -> Result<Box<dyn Store>, StoreError> + 'a>;

/// A session decided to end this pass.
struct ToEnd {
    session: Session,
    /// Its user's uid on this host, to observe it again.
    uid: Option<u32>,
    observation: Observation,
    deny: Deny,
    /// Its user logged out: these are the processes it left behind.
    after_logout: bool,
}

/// How often an audit session id that no session of this host was
/// registered under (a cron job's, a console login without curfew) is
/// looked up again (a session registered in the instant between the
/// audit session's start and the lookup is found then).
pub const UNREGISTERED_RECHECK: chrono::Duration = chrono::Duration::seconds(60);

/// A session that started this long before boot is from an earlier boot
/// (audit session ids start again at each boot).
const PREVIOUS_BOOT: chrono::Duration = chrono::Duration::seconds(60);

/// The enforcer's state between passes.
pub struct Enforcer<'a, H: Host> {
    /// The machine.
    pub host: H,
    policy: PolicySource,
    store: Option<(StoreConfig, Box<dyn Store>)>,
    open_store: StoreOpener<'a>,
    hostname: String,
    /// This host's machine id: sessions recorded with another one belong to
    /// another host that shares the name.
    machine_id: Option<String>,
    warned: HashMap<String, Warned>,
    unmeasured: HashSet<String>,
    traffic: TrafficMeter,
    /// Ends decided but not carried out yet (processes left, or the record
    /// not written): carried out at the next pass with the same reason.
    ending: HashMap<String, Deny>,
    /// The groups each user had at the last lookup that worked.
    known_groups: HashMap<String, Vec<String>>,
    /// Users whose failed group lookup was logged (until it works again).
    groups_failing: HashSet<String>,
    /// Faults logged, per session, so each is said once.
    faults: HashMap<String, String>,
    /// Ended sessions of this boot, by audit session id, while processes
    /// of that audit session run.
    leftovers: HashMap<u32, Vec<Session>>,
    /// Audit session ids of processes that no session of this host was
    /// found under, and when that was looked up.
    unregistered: HashMap<u32, DateTime<Utc>>,
    /// The audit session ids of the live sessions that had processes at
    /// the last pass that looked at them: one missing from a later listing
    /// ended meanwhile, and may have left processes behind.
    live_audit: HashSet<u32>,
    /// When the last whole pass (one that looked at the processes) began:
    /// a session of this host that started and ended after it may have
    /// left processes no pass has seen yet.
    whole_at: Option<DateTime<Utc>>,
    /// The sessions this enforcer ended, every process gone, since the last
    /// whole pass began: their ends leave nothing behind.
    ended_clean: HashSet<String>,
    last_store_error: Option<String>,
    store_generation: u64,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Everything worth a log line.
    pub events: Vec<Event>,
    /// Whether the pass could look at every session (a policy, a store and
    /// the processes were at hand, and no session's handling failed).
    pub complete: bool,
    /// Whether it was a whole pass (it looked at the processes), not a
    /// woken pass cut short because what woke it names no session of this
    /// host: the daemon times its next whole pass from the last one, so
    /// that a stream of events for other hosts cannot put it off.
    pub whole: bool,
}

/// What the handling of one session came to.
enum Verdict {
    Continue,
    End(Box<ToEnd>),
}

impl<'a, H: Host> Enforcer<'a, H> {
    /// An enforcer for the sessions of `hostname`.
    pub fn new(
        host: H,
        policy: PolicySource,
        hostname: String,
        open_store: StoreOpener<'a>,
    ) -> Self {
        Enforcer {
            host,
            policy,
            store: None,
            open_store,
            hostname,
            machine_id: None,
            warned: HashMap::new(),
            unmeasured: HashSet::new(),
            traffic: TrafficMeter::default(),
            ending: HashMap::new(),
            known_groups: HashMap::new(),
            groups_failing: HashSet::new(),
            faults: HashMap::new(),
            leftovers: HashMap::new(),
            unregistered: HashMap::new(),
            live_audit: HashSet::new(),
            whole_at: None,
            ended_clean: HashSet::new(),
            last_store_error: None,
            store_generation: 0,
        }
    }

    /// Sets this host's machine id (`curfew_policy::host::machine_id`): a
    /// session recorded under this host's name but another machine id is
    /// another host's (two hosts sharing a name), and is never touched. A
    /// record without a machine id (written before curfew recorded one) is
    /// matched by the host name alone.
    pub fn with_machine_id(mut self, machine_id: Option<String>) -> Self {
        self.machine_id = machine_id;
        self
    }

    /// Whether `s` was recorded on this very machine (see
    /// [`Enforcer::with_machine_id`]).
    fn is_ours(&self, s: &Session) -> bool {
        match (&s.machine_id, &self.machine_id) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        }
    }

    /// Counts the stores opened so far, so a caller can tell when to
    /// subscribe again to a new one's changes.
    pub fn store_generation(&self) -> u64 {
        self.store_generation
    }

    /// The store in use, once one is open.
    pub fn store(&self) -> Option<&dyn Store> {
        self.store.as_ref().map(|(_, s)| s.as_ref())
    }

    fn store_error(&mut self, events: &mut Vec<Event>, e: String) {
        if self.last_store_error.as_deref() != Some(e.as_str()) {
            self.last_store_error = Some(e.clone());
            events.push(Event::Store(e));
        }
        // Reopen at the next pass: a connection may have gone bad.
        self.store = None;
    }

    /// Logs a fault of one session once (until it changes or clears).
    fn fault(&mut self, events: &mut Vec<Event>, session: &str, detail: String) {
        if self.faults.get(session) != Some(&detail) {
            self.faults.insert(session.to_owned(), detail.clone());
            events.push(Event::Fault {
                session: session.to_owned(),
                detail,
            });
        }
    }

    /// One pass at `now`. Its warnings, ends, policy reloads and the start
    /// of a store outage go to the policy's audit trail.
    pub fn pass(&mut self, now: DateTime<Utc>) -> Pass {
        self.pass_for(now, None)
    }

    /// A pass woken by the store's change feed for `named` (the targets of
    /// the revocations added, and `session` targets for the termination
    /// requests, since the last pass). When none of them names a session of
    /// this host (a live one, one whose processes were left behind by a
    /// logout, or one that ended since the last pass while its processes
    /// ran), nothing can have to end now: the pass only lists the host's
    /// sessions (one store read) and neither looks at the processes nor
    /// reads any revocation. Otherwise it is a whole [`Enforcer::pass`].
    /// On a fleet, every enforcer is woken by every revocation; most have
    /// nothing of it.
    pub fn pass_woken(&mut self, now: DateTime<Utc>, named: &[Target]) -> Pass {
        self.pass_for(now, Some(named))
    }

    fn pass_for(&mut self, now: DateTime<Utc>, named: Option<&[Target]>) -> Pass {
        let mut pass = self.pass_unaudited(now, named);
        if let Some(policy) = self.policy.current() {
            audit(
                policy,
                &self.hostname,
                self.last_store_error.as_deref(),
                &mut pass.events,
                now,
            );
        }
        pass
    }

    fn pass_unaudited(&mut self, now: DateTime<Utc>, named: Option<&[Target]>) -> Pass {
        let mut pass = Pass::default();
        if let Some(e) = self.policy.refresh(now) {
            // The one rule for a changed `store` section: the new policy is
            // in force and its store is opened; the old one is dropped.
            if matches!(
                e,
                PolicyEvent::Loaded {
                    store_changed: true,
                    ..
                }
            ) {
                self.store = None;
            }
            pass.events.push(Event::Policy(e));
        }
        let Some(policy) = self.policy.current().cloned() else {
            return pass;
        };
        if self.store.as_ref().is_none_or(|(c, _)| *c != policy.store) {
            match (self.open_store)(&policy) {
                Ok(s) => {
                    self.store = Some((policy.store.clone(), s));
                    self.store_generation += 1;
                }
                Err(e) => {
                    self.store_error(&mut pass.events, format!("cannot open the store: {e}"));
                    return pass;
                }
            }
        }
        let filter = SessionFilter {
            host: Some(self.hostname.clone()),
            kind: Some(SessionKind::Pam),
            ..Default::default()
        };
        let listed = match self.store() {
            Some(store) => store.list_sessions_reporting(&filter),
            None => return pass,
        };
        let (sessions, unreadable) = match listed {
            Ok(l) => (l.sessions, l.unreadable),
            Err(e) => {
                self.store_error(&mut pass.events, e.to_string());
                return pass;
            }
        };
        let sessions = sessions
            .into_iter()
            .filter(|s| self.is_ours(s))
            .collect::<Vec<_>>();
        self.last_store_error = None;
        if let Some(named) = named {
            if !named
                .iter()
                .any(|t| self.names_ours(t, &sessions) || self.names_ended_since_whole(t, &filter))
            {
                pass.complete = true;
                return pass;
            }
        }
        pass.whole = true;
        self.whole_at = Some(now);
        self.ended_clean.clear();
        let refreshed = if named.is_some() {
            self.host.refresh_in_full()
        } else {
            self.host.refresh()
        };
        if let Err(e) = refreshed {
            pass.events.push(Event::Host(e.to_string()));
            return pass;
        }
        pass.complete = true;
        let left_behind = self.left_behind(&sessions, &filter, now, &mut pass);
        let present = self.host.audit_sessions();
        self.live_audit = sessions
            .iter()
            .filter_map(|s| s.audit_session_id)
            .filter(|a| present.contains(a))
            .collect();
        let live: HashSet<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        self.warned.retain(|id, _| live.contains(id.as_str()));
        self.unmeasured.retain(|id| live.contains(id.as_str()));
        self.traffic.retain(|id| live.contains(id));
        let looked_at: HashSet<String> = sessions
            .iter()
            .chain(&left_behind)
            .map(|s| s.id.clone())
            .chain(unreadable.iter().map(|u| u.id.clone()))
            .collect();
        self.ending.retain(|id, _| looked_at.contains(id));
        self.faults.retain(|id, _| looked_at.contains(id));
        // A record the store cannot read is skipped and said once (until
        // its fault changes or it goes away); every other session is still
        // enforced (issue 12).
        for u in &unreadable {
            pass.complete = false;
            self.fault(
                &mut pass.events,
                &u.id,
                format!("the store holds a record that cannot be read: {}", u.detail),
            );
        }

        let mut to_end: Vec<ToEnd> = Vec::new();
        let candidates = sessions
            .into_iter()
            .map(|s| (s, false))
            .chain(left_behind.into_iter().map(|s| (s, true)));
        for (s, after_logout) in candidates {
            let id = s.id.clone();
            let handled = catch_unwind(AssertUnwindSafe(|| {
                self.consider(&policy, s, after_logout, now, &mut pass.events)
            }));
            match handled {
                Ok(Ok(Verdict::Continue)) => {
                    self.faults.remove(&id);
                }
                Ok(Ok(Verdict::End(e))) => {
                    self.faults.remove(&id);
                    to_end.push(*e);
                }
                Ok(Err(detail)) => {
                    pass.complete = false;
                    self.fault(&mut pass.events, &id, detail);
                }
                Err(panic) => {
                    pass.complete = false;
                    let detail = format!("internal error: {}", panic_text(panic.as_ref()));
                    self.fault(&mut pass.events, &id, detail);
                }
            }
        }
        if !to_end.is_empty() {
            self.end(to_end, now, &mut pass);
        }
        pass
    }

    /// Whether `target` may name a session of this host: one of `live`
    /// (the host's live sessions, just listed), one whose processes were
    /// left behind by a logout, or one that ended since the last pass while
    /// processes of its audit session ran (its leftovers are not known
    /// yet). An unfinished end also counts: it is carried out by a whole
    /// pass.
    fn names_ours(&self, target: &Target, live: &[Session]) -> bool {
        if !self.ending.is_empty() {
            return true;
        }
        let live_audit: HashSet<u32> = live.iter().filter_map(|s| s.audit_session_id).collect();
        if self.live_audit.iter().any(|a| !live_audit.contains(a)) {
            return true;
        }
        let mut sessions = live.iter().chain(self.leftovers.values().flatten());
        match target {
            Target::All => true,
            Target::Session(id) => sessions.any(|s| s.id == *id),
            Target::User(user) => sessions.any(|s| s.user == *user),
            Target::Client(client) => sessions.any(|s| s.service.as_deref() == Some(client)),
        }
    }

    /// Whether `target` is a `session` target for a session of this host
    /// that ended since the last whole pass began (or there was none): it
    /// may have started after that pass too, so that no pass has seen its
    /// processes, and a logout can leave some running (`setsid nohup
    /// ...`). Not one this enforcer ended with every process gone. One
    /// store read (the record); a store error counts as yes (a whole pass
    /// then says what failed).
    ///
    /// A `user` or `client` target is not looked up this way: the store
    /// can only list every ended session of a user (on a fleet, every
    /// enforcer would read them all at every wake-up, and the list only
    /// grows). Such leftovers are reached by the next whole pass, at most
    /// `--interval` later (docs/enforce.md).
    fn names_ended_since_whole(&self, target: &Target, filter: &SessionFilter) -> bool {
        let Target::Session(id) = target else {
            return false;
        };
        let Some(since) = self.whole_at else {
            return true;
        };
        let Some(store) = self.store() else {
            return true;
        };
        match store.session(id) {
            Ok(found) => found.as_ref().is_some_and(|s| {
                filter
                    .host
                    .as_ref()
                    .is_none_or(|h| s.host.as_ref() == Some(h))
                    && s.kind == SessionKind::Pam
                    && s.ended_at.is_some_and(|e| e >= since)
                    && !self.ended_clean.contains(&s.id)
                    && self.is_ours(s)
            }),
            Err(_) => true,
        }
    }

    /// The ended sessions of this boot whose audit session still has
    /// processes (left running after the logout: `setsid nohup ...`).
    ///
    /// Audit session ids are never reused within a boot. Those of the
    /// processes seen that belong to no live session are looked up among the
    /// host's ended sessions (one listing, only when an id not seen before
    /// turns up, or every [`UNREGISTERED_RECHECK`] while some id belongs to
    /// no session, e.g. a cron job's); what was found is remembered as long
    /// as the audit session has processes.
    fn left_behind(
        &mut self,
        live: &[Session],
        filter: &SessionFilter,
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Vec<Session> {
        let present = self.host.audit_sessions();
        let live_ids: HashSet<u32> = live.iter().filter_map(|s| s.audit_session_id).collect();
        self.leftovers.retain(|a, _| present.contains(a));
        self.unregistered.retain(|a, _| present.contains(a));
        let unknown: Vec<u32> = present
            .iter()
            .copied()
            .filter(|a| !live_ids.contains(a) && !self.leftovers.contains_key(a))
            .filter(|a| {
                self.unregistered
                    .get(a)
                    .is_none_or(|at| now - *at >= UNREGISTERED_RECHECK || *at > now)
            })
            .collect();
        if !unknown.is_empty() {
            let all = SessionFilter {
                include_ended: true,
                ..filter.clone()
            };
            let boot = self.host.boot_time();
            let listed = match self.store() {
                Some(store) => store.list_sessions(&all),
                None => return Vec::new(),
            };
            match listed {
                Ok(records) => {
                    for s in records {
                        let Some(a) = s.audit_session_id else {
                            continue;
                        };
                        let this_boot = boot.is_none_or(|b| s.started_at >= b - PREVIOUS_BOOT);
                        if s.is_live() || !this_boot || !present.contains(&a) || !self.is_ours(&s) {
                            continue;
                        }
                        let entry = self.leftovers.entry(a).or_default();
                        if !entry.iter().any(|x| x.id == s.id) {
                            entry.push(s);
                        }
                    }
                    for a in unknown {
                        if !self.leftovers.contains_key(&a) {
                            self.unregistered.insert(a, now);
                        }
                    }
                }
                Err(e) => {
                    pass.complete = false;
                    pass.events.push(Event::Store(format!(
                        "cannot list the ended sessions whose processes may linger: {e}"
                    )));
                }
            }
        }
        self.leftovers
            .iter()
            .filter(|(a, _)| !live_ids.contains(a))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }

    /// Looks at one session: its identity, revocations, processes and
    /// activity, and what to do. `after_logout`: the session has ended (its
    /// user logged out) and what is looked at is the processes it left
    /// behind, which revocations, termination requests and `max_duration`
    /// still reach (idleness does not: it is about a login). `Err` is a
    /// fault of this session alone.
    fn consider(
        &mut self,
        policy: &Policy,
        s: Session,
        after_logout: bool,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) -> Result<Verdict, String> {
        if s.started_at > time::add(now, MAX_SKEW) {
            return Err(format!(
                "its record says it started at {}, in the future: a record that cannot be true",
                s.started_at.to_rfc3339()
            ));
        }
        let account = self.host.account(&s.user);
        let uid = account.as_ref().ok().map(|a| a.uid);
        // On a failed lookup the groups known from earlier stand; without
        // any, only what does not depend on groups may end the session:
        // never looser limits than the user's rule.
        let looked_up = match &account {
            Ok(a) => self.host.groups(a),
            Err(e) => Err(e.clone()),
        };
        let groups = match looked_up {
            Ok(g) => {
                self.groups_failing.remove(&s.user);
                self.known_groups.insert(s.user.clone(), g.clone());
                Some(g)
            }
            Err(e) => match self.known_groups.get(&s.user) {
                Some(g) => Some(g.clone()),
                None => {
                    if self.groups_failing.insert(s.user.clone()) {
                        events.push(Event::GroupsUnknown {
                            user: s.user.clone(),
                            error: e.to_string(),
                        });
                    }
                    None
                }
            },
        };
        let no_groups = Vec::new();
        // Without any groups known, the answer is asked as for a user in no
        // group, and only its group-independent ends are acted on (below).
        let who = Who {
            user: &s.user,
            groups: GroupsLookup::Known(groups.as_deref().unwrap_or(&no_groups)),
            service: s.service.as_deref(),
            client: None,
            host: Some(&self.hostname),
        };
        let eff = policy.effective(&who.subject(groups.as_deref().unwrap_or(&no_groups)));
        let Some((_, store)) = &self.store else {
            return Err("no store".into());
        };
        let revs = store.revocations_for(&RevocationKeys {
            session: Some(&s.id),
            user: &s.user,
            client: who.client_key(),
        });
        let answer = match &revs {
            Ok(revocations) => StoreAnswer::Read {
                revocations,
                preference: None,
            },
            Err(e) => StoreAnswer::Failed(e),
        };
        let counts = eff.activity.value;
        // The I/O counters cost one /proc read per process: read only
        // when traffic counts, never for the processes left behind by a
        // logout (idleness does not apply to them), and only when the
        // meter's rule says so (see TrafficMeter): at every pass near the
        // idle deadline, otherwise every TRAFFIC_EVERY, and to take a new
        // process's baseline.
        let traffic = counts.traffic && !after_logout;
        let read_now = traffic && (idle_near(&eff, &s, now) || self.traffic.due(&s.id, now));
        let mut obs = self.host.observe(&s, uid, read_now);
        if traffic
            && !read_now
            && obs.ttys.is_empty()
            && self.traffic.new_processes(&s.id, &obs.members.procs)
        {
            obs.io = self.host.io(&obs.members.procs);
        }
        let activity = if after_logout {
            Activity::LoggedOut
        } else {
            let moved = match &obs.io {
                Io::Counts(c) if obs.ttys.is_empty() => Some(self.traffic.moved(&s.id, c, now)),
                Io::Denied(_) => None,
                _ => Some(false),
            };
            obs.activity(counts, moved, now)
        };
        let step = timeline::step(
            &eff,
            &who,
            &s,
            answer,
            activity,
            self.warned.get(&s.id).copied(),
            now,
        );
        if let Some(at) = step.touch {
            // Best effort: activity only moves deadlines later, and it is
            // read again from the terminal at the next pass anyway.
            let _ = store.touch_session(&s.id, at);
        }
        // An end decided earlier and not finished is carried out, with its
        // reason, whatever this pass's decision.
        if let Some(deny) = self.ending.get(&s.id) {
            let deny = deny.clone();
            return end_verdict(s, uid, obs, deny, after_logout);
        }
        let action = match step.action {
            Action::End(deny)
                if groups.is_none()
                    && !matches!(deny, Deny::Revoked { .. } | Deny::Terminated { .. }) =>
            {
                Action::Continue
            }
            Action::Warn(_) if groups.is_none() || after_logout => Action::Continue,
            a => a,
        };
        match action {
            Action::Continue => {}
            Action::Warn(w) => {
                let line = notice::warning(&w, counts, now);
                let delivered = self.host.notify(&obs, &line);
                self.warned.insert(s.id.clone(), w.key());
                events.push(Event::Warned {
                    session: s.id.clone(),
                    user: s.user.clone(),
                    warning: w,
                    delivered,
                });
            }
            Action::IdleUnmeasured => {
                if self.unmeasured.insert(s.id.clone()) {
                    // The terminal decides for a session that has one; the
                    // counters only for one without.
                    let cause = match &obs.io {
                        Io::Denied(denied) if obs.ttys.is_empty() => Unmeasured::Traffic(*denied),
                        _ => Unmeasured::Terminal,
                    };
                    events.push(Event::IdleUnmeasured {
                        session: s.id.clone(),
                        cause,
                    });
                }
            }
            Action::End(deny) if after_logout && obs.members.procs.is_empty() => {
                // Gone meanwhile: nothing to end.
                let _ = deny;
            }
            Action::End(deny) => return end_verdict(s, uid, obs, deny, after_logout),
            Action::Unusable(why) => return Err(format!("left as it is: {why}")),
        }
        Ok(Verdict::Continue)
    }

    /// Ends the sessions decided this pass: the request is recorded first
    /// (the record then shows "terminate requested", and a restarted
    /// enforcer finishes it), the processes are signalled, and the end is
    /// recorded only once none of them is left.
    fn end(&mut self, to_end: Vec<ToEnd>, now: DateTime<Utc>, pass: &mut Pass) {
        let Some(to_end) = self.in_full(to_end, pass) else {
            return;
        };
        let mut going = Vec::with_capacity(to_end.len());
        for t in to_end {
            let asked = match &self.store {
                // Ended already: nothing to request, its leftovers go.
                _ if t.after_logout => Ok(true),
                Some((_, store)) => store.request_termination(&t.session.id, now, None),
                None => Ok(true),
            };
            match asked {
                Ok(true) => going.push(t),
                // Ended meanwhile (the user logged out): what is left of it
                // is looked at again as such at the next pass.
                Ok(false) => {
                    self.ending.remove(&t.session.id);
                    pass.events.push(Event::AlreadyEnded {
                        session: t.session.id,
                    });
                }
                Err(e) => {
                    // Ended all the same; recorded when the store is back.
                    pass.events.push(Event::Store(e.to_string()));
                    going.push(t);
                }
            }
        }
        if going.is_empty() {
            return;
        }
        for t in &going {
            self.host.notify(&t.observation, &notice::closing(&t.deny));
        }
        let observations: Vec<Observation> = going.iter().map(|t| t.observation.clone()).collect();
        let results = match catch_unwind(AssertUnwindSafe(|| self.host.end(&observations))) {
            Ok(r) if r.len() == going.len() => r,
            Ok(_) | Err(_) => {
                // Nothing is known to have ended: every end is retried.
                pass.complete = false;
                for t in going {
                    let detail = "internal error while signalling its processes".to_string();
                    self.fault(&mut pass.events, &t.session.id, detail);
                    self.ending.insert(t.session.id, t.deny);
                }
                return;
            }
        };
        for (t, ended) in going.into_iter().zip(results) {
            self.warned.remove(&t.session.id);
            let recorded = if ended.left.is_empty() {
                match &self.store {
                    Some((_, store)) => {
                        match store.end_session(&t.session.id, now, t.deny.end_reason()) {
                            Ok(_) => true,
                            Err(e) => {
                                pass.events.push(Event::Store(e.to_string()));
                                false
                            }
                        }
                    }
                    None => false,
                }
            } else {
                false
            };
            if recorded {
                // Every process gone: nothing of it can be left behind.
                self.ended_clean.insert(t.session.id.clone());
                if let Some(a) = t.session.audit_session_id {
                    self.live_audit.remove(&a);
                }
            }
            if recorded || t.after_logout {
                // (Leftovers are ended again for as long as the decision
                // holds; it does not change once reached.)
                self.ending.remove(&t.session.id);
            } else {
                self.ending.insert(t.session.id.clone(), t.deny.clone());
            }
            pass.events.push(Event::Ended {
                session: t.session.id,
                user: t.session.user,
                service: t.session.service,
                deny: t.deny,
                recorded,
                after_logout: t.after_logout,
                ended,
                membership: describe(&t.observation.members),
            });
        }
    }
}

impl<H: Host> Enforcer<'_, H> {
    /// The sessions to end, observed again after a full look at the
    /// processes when the pass's look was a light one: every process of
    /// each is found, and only its own. A session whose processes cannot be
    /// identified safely any more is a fault of its own, and processes
    /// left behind by a logout that are gone need no end. `None` when the
    /// processes cannot be read: nothing is ended, and every end is
    /// carried out at the next pass.
    fn in_full(&mut self, to_end: Vec<ToEnd>, pass: &mut Pass) -> Option<Vec<ToEnd>> {
        match self.host.look_in_full() {
            Ok(false) => Some(to_end),
            Ok(true) => {
                let mut out = Vec::with_capacity(to_end.len());
                for t in to_end {
                    let observation = self.host.observe(&t.session, t.uid, false);
                    if t.after_logout && observation.members.procs.is_empty() {
                        continue;
                    }
                    // Idleness was judged by the terminals the light look
                    // found; if the full look finds others, the next pass
                    // judges it again on what this one read. Not an end
                    // already under way (signalled, a process survived): it
                    // is carried out whatever this pass decides, or a
                    // survivor switching terminals would never be signalled
                    // again, not even once revoked.
                    let ttys = |o: &Observation| {
                        let mut r: Vec<u64> = o.ttys.iter().map(|t| t.rdev).collect();
                        r.sort_unstable();
                        r
                    };
                    if matches!(t.deny, Deny::Idle { .. })
                        && !self.ending.contains_key(&t.session.id)
                        && ttys(&observation) != ttys(&t.observation)
                    {
                        continue;
                    }
                    let id = t.session.id.clone();
                    match end_verdict(t.session, t.uid, observation, t.deny, t.after_logout) {
                        Ok(Verdict::End(t)) => out.push(*t),
                        Ok(Verdict::Continue) => {}
                        Err(detail) => {
                            pass.complete = false;
                            self.fault(&mut pass.events, &id, detail);
                        }
                    }
                }
                Some(out)
            }
            Err(e) => {
                pass.complete = false;
                pass.events.push(Event::Host(e.to_string()));
                for t in to_end {
                    self.ending.insert(t.session.id, t.deny);
                }
                None
            }
        }
    }
}

/// Whether session `s` is near its idle deadline at `now` (from
/// [`NEAR_DEADLINE`] before its warning on), by its record's last activity:
/// its traffic counters are then read at every pass. The deadline is taken
/// as early as it can be (a `last_seen` in the future counts as no news, as
/// the decision takes it), so that it is never thought far when it is near.
fn idle_near(eff: &curfew_policy::Effective<'_>, s: &Session, now: DateTime<Utc>) -> bool {
    let last = crate::timeline::recorded_activity(s, now);
    let deadline = time::add(last, eff.idle_limit(s.remember_me));
    let window = chrono::Duration::from_std(eff.warn_before.value)
        .unwrap_or(chrono::Duration::MAX)
        .checked_add(&NEAR_DEADLINE)
        .unwrap_or(chrono::Duration::MAX);
    deadline
        .checked_sub_signed(window)
        .is_none_or(|from| now >= from)
}

/// An end, unless the session's processes cannot be told apart safely from
/// others' (its user has no uid here, or its record points at another
/// user's audit session or at a protected process): then nothing is
/// signalled and nothing recorded, and the record is a fault of its own.
fn end_verdict(
    session: Session,
    uid: Option<u32>,
    observation: Observation,
    deny: Deny,
    after_logout: bool,
) -> Result<Verdict, String> {
    use crate::members::{Membership, Unfound};
    match &observation.members.membership {
        Membership::Unknown(
            why @ (Unfound::NoAccount | Unfound::ForeignAudit | Unfound::ProtectedLeader),
        ) => Err(format!(
            "decided to end it ({}), but its processes cannot be identified safely: {why}; nothing signalled",
            deny.end_reason()
        )),
        _ => Ok(Verdict::End(Box::new(ToEnd {
            session,
            uid,
            observation,
            deny,
            after_logout,
        }))),
    }
}

thread_local! {
    /// The message and place of the last panic on this thread, noted by the
    /// daemon's panic hook.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Notes a panic's message and place (called by the panic hook that
/// [`crate::daemon::run`] installs), for [`panic_text`].
pub fn note_panic(text: String) {
    LAST_PANIC.with(|l| *l.borrow_mut() = Some(text));
}

/// The text of a caught panic: what the panic hook noted (message and
/// place), else its payload.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(noted) = LAST_PANIC.with(|l| l.borrow_mut().take()) {
        return noted;
    }
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

/// Writes warnings, ends, policy reloads and the start of a store outage
/// (`outage`: the store error this pass began, which is written once, not
/// at every pass it lasts) to the policy's audit trail (source
/// `curfew-enforce`). A failure is one more log line; enforcement has
/// happened either way.
fn audit(
    policy: &Policy,
    hostname: &str,
    outage: Option<&str>,
    events: &mut Vec<Event>,
    now: DateTime<Utc>,
) {
    use curfew_policy::audit::{
        revocation_of, store_location, AuditEvent, AuditSink, RefusalReason, StoreOutcome,
    };
    let sink = AuditSink::new(&policy.audit, "curfew-enforce", Some(hostname.to_owned()));
    let mut failures = Vec::new();
    for e in events.iter() {
        let event = match e {
            Event::Policy(PolicyEvent::Loaded {
                origin,
                store_changed,
            }) => AuditEvent::PolicyReloaded {
                file: origin.into(),
                store_changed: *store_changed,
            },
            Event::Policy(PolicyEvent::KeptLastGood { path, error, .. }) => {
                AuditEvent::PolicyReloadFailed {
                    file: path.clone(),
                    error: error.clone(),
                }
            }
            Event::Store(e) if outage == Some(e.as_str()) => AuditEvent::StoreUnavailable {
                store: Some(store_location(&policy.store)),
                outcome: StoreOutcome::Skipped,
                user: None,
                client: None,
                detail: e.clone(),
            },
            Event::Warned {
                session,
                user,
                warning,
                delivered,
            } => AuditEvent::EnforcerWarning {
                user: user.clone(),
                session: session.clone(),
                end: match warning.kind {
                    curfew_policy::decision::NextEnd::Idle => "idle",
                    curfew_policy::decision::NextEnd::MaxDuration => "max_duration",
                }
                .to_owned(),
                deadline: warning.deadline,
                terminals: *delivered,
            },
            Event::Ended {
                session,
                user,
                service,
                deny,
                recorded,
                ended,
                membership,
                after_logout,
            } => AuditEvent::EnforcerEnd {
                user: user.clone(),
                session: session.clone(),
                service: service.clone(),
                reason: RefusalReason::of_deny(deny),
                revocation: revocation_of(deny),
                detail: deny.to_string(),
                processes: ended.signalled.len(),
                signal: (ended.strongest > 0).then(|| ended.strongest_name().to_owned()),
                left: ended
                    .left
                    .iter()
                    .filter_map(|p| u32::try_from(p.pid).ok())
                    .collect(),
                found_by: if *after_logout {
                    format!("{membership}; processes left behind after the logout")
                } else {
                    membership.clone()
                },
                recorded: *recorded,
            },
            _ => continue,
        };
        if let Err(err) = sink.record(now, &event) {
            failures.push(err.to_string());
        }
    }
    if let Some(err) = failures.into_iter().next() {
        events.push(Event::Audit(err));
    }
}

fn describe(m: &Members) -> String {
    use crate::members::Membership;
    match &m.membership {
        Membership::Audit { id, .. } => format!("audit session {id}"),
        Membership::Tree { leader, .. } => format!("process tree of pid {}", leader.pid),
        Membership::Unknown(why) => format!("no process found: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curfew_policy::EndReason;

    fn reason(e: &Event) -> Option<EndReason> {
        match e {
            Event::Ended { deny, .. } => Some(deny.end_reason()),
            _ => None,
        }
    }
    use crate::members::{Membership, Unfound};
    use crate::procfs::ProcId;
    use chrono::TimeZone;
    use curfew_policy::store::MemoryStore;
    use curfew_policy::{Revocation, Target};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    /// What the scripted host was asked to do.
    #[derive(Default)]
    struct Log {
        notices: Vec<(String, String)>,
        ended: Vec<String>,
    }

    /// A host whose sessions each have one process (pid = a number derived
    /// from the session) and a terminal whose last input the test sets.
    #[derive(Default)]
    struct Scripted {
        input: HashMap<String, Option<DateTime<Utc>>>,
        output: HashMap<String, DateTime<Utc>>,
        /// A terminal-less session's processes' I/O counter.
        io: HashMap<String, u64>,
        /// Terminal-less sessions whose I/O counters cannot be read (no
        /// `CAP_SYS_PTRACE`).
        io_denied: HashSet<String>,
        log: Arc<Mutex<Log>>,
        /// What a group lookup answers, per user (default: no groups).
        groups: HashMap<String, Result<Vec<String>, HostError>>,
        /// Processes that survive every signal.
        stubborn: HashSet<i32>,
        /// Users whose sessions make `observe` panic (a bug on one record).
        panic_on: HashSet<String>,
        /// A session whose logout PAM records while `end` signals (as
        /// sshd's close_session does), with the time.
        logout_on_end: Option<(Arc<MemoryStore>, String, DateTime<Utc>)>,
        /// The audit sessions with running processes.
        present: HashSet<u32>,
        /// Sessions (by id) whose processes are all gone.
        gone: HashSet<String>,
        /// How many looks at the processes were taken (refresh and
        /// look_in_full).
        looks: usize,
        /// Whether refresh takes a light look (look_in_full then takes a
        /// full one).
        light: bool,
        /// Whether the last look was full.
        full: bool,
        /// Sessions (by id) whose processes, seen in a full look, are in
        /// another user's audit session (a light look does not see it).
        foreign_in_full: HashSet<String>,
        /// Sessions (by id) whose processes, seen in a full look, have no
        /// terminal (they left it: a light look still sees it).
        no_tty_in_full: HashSet<String>,
        /// Per session, whether each observation asked for the traffic
        /// counters, in order.
        traffic_asked: Vec<(String, bool)>,
        /// The processes whose counters were read on their own
        /// (`Host::io`).
        io_asked: Vec<i32>,
        /// More processes of a session (by id), besides its leader.
        more_procs: HashMap<String, Vec<i32>>,
        /// The session (by id) each process was last observed in.
        observed: HashMap<i32, String>,
    }

    impl Host for Scripted {
        fn refresh(&mut self) -> Result<(), ProcError> {
            self.looks += 1;
            self.full = !self.light;
            Ok(())
        }
        fn look_in_full(&mut self) -> Result<bool, ProcError> {
            if self.full {
                return Ok(false);
            }
            self.looks += 1;
            self.full = true;
            Ok(true)
        }
        fn refresh_in_full(&mut self) -> Result<(), ProcError> {
            self.looks += 1;
            self.full = true;
            Ok(())
        }
        fn account(&mut self, user: &str) -> Result<Account, HostError> {
            Ok(Account {
                name: user.to_owned(),
                uid: 1000 + user.len() as u32,
                gid: 100,
            })
        }
        fn groups(&mut self, account: &Account) -> Result<Vec<String>, HostError> {
            self.groups
                .get(&account.name)
                .cloned()
                .unwrap_or(Ok(Vec::new()))
        }
        fn observe(&mut self, s: &Session, uid: Option<u32>, traffic: bool) -> Observation {
            assert!(
                !self.panic_on.contains(&s.user),
                "scripted fault on a record of {}",
                s.user
            );
            self.traffic_asked.push((s.id.clone(), traffic));
            let pid = if self.gone.contains(&s.id) {
                0
            } else {
                s.pid.unwrap_or(0) as i32
            };
            let members = Members {
                membership: if pid == 0 {
                    Membership::Unknown(Unfound::NoIdentity)
                } else if self.full && self.foreign_in_full.contains(&s.id) {
                    Membership::Unknown(Unfound::ForeignAudit)
                } else {
                    Membership::Audit {
                        id: pid as u32,
                        loginuid: uid.unwrap(),
                    }
                },
                procs: if pid == 0 {
                    vec![]
                } else {
                    std::iter::once(pid)
                        .chain(self.more_procs.get(&s.id).into_iter().flatten().copied())
                        .map(|pid| ProcId {
                            pid,
                            start_ticks: 1,
                        })
                        .collect()
                },
                tty_nrs: vec![],
            };
            for p in &members.procs {
                self.observed.insert(p.pid, s.id.clone());
            }
            let ttys = match self.input.get(&s.id) {
                _ if self.full && self.no_tty_in_full.contains(&s.id) => vec![],
                Some(last_input) => vec![Tty {
                    path: format!("/dev/pts/{pid}").into(),
                    rdev: 1,
                    last_input: *last_input,
                    last_output: self.output.get(&s.id).copied(),
                }],
                None => vec![],
            };
            let io = match (ttys.is_empty() && traffic, self.io.get(&s.id)) {
                (true, _) if self.io_denied.contains(&s.id) => Io::Denied(IoDenied {
                    pid,
                    errno: Some(13),
                }),
                (true, Some(n)) => Io::Counts(members.procs.iter().map(|p| (*p, *n)).collect()),
                _ => Io::NotMeasured,
            };
            Observation { members, ttys, io }
        }
        fn io(&mut self, procs: &[ProcId]) -> Io {
            self.io_asked.extend(procs.iter().map(|p| p.pid));
            // Every process of a session counts what its session does.
            Io::Counts(
                procs
                    .iter()
                    .filter_map(|p| Some((*p, *self.io.get(self.observed.get(&p.pid)?)?)))
                    .collect(),
            )
        }
        fn audit_sessions(&self) -> HashSet<u32> {
            self.present.clone()
        }
        fn boot_time(&self) -> Option<DateTime<Utc>> {
            Some(t(-100_000))
        }
        fn notify(&mut self, o: &Observation, line: &str) -> usize {
            let mut log = self.log.lock().unwrap();
            for t in &o.ttys {
                log.notices
                    .push((t.path.display().to_string(), line.to_string()));
            }
            o.ttys.len()
        }
        fn end(&mut self, sessions: &[Observation]) -> Vec<Ended> {
            if let Some((store, id, at)) = self.logout_on_end.take() {
                store.end_session(&id, at, EndReason::Logout).unwrap();
            }
            let mut log = self.log.lock().unwrap();
            sessions
                .iter()
                .map(|o| {
                    for p in &o.members.procs {
                        log.ended.push(format!("pid {}", p.pid));
                    }
                    Ended {
                        signalled: o.members.procs.iter().copied().collect(),
                        strongest: if o.members.procs.is_empty() { 0 } else { 1 },
                        left: o
                            .members
                            .procs
                            .iter()
                            .copied()
                            .filter(|p| self.stubborn.contains(&p.pid))
                            .collect(),
                    }
                })
                .collect()
        }
    }

    struct Fixture {
        enforcer: Enforcer<'static, Scripted>,
        store: Arc<MemoryStore>,
        log: Arc<Mutex<Log>>,
        dir: tempfile::TempDir,
    }

    /// A shared memory store handed to the enforcer through its opener,
    /// with records it says it cannot read (a memory store has none).
    struct Shared(Arc<MemoryStore>, Vec<curfew_policy::UnreadableRecord>);
    macro_rules! forward {
        ($($name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {
            $(fn $name(&self, $($a: $t),*) -> $r { self.0.$name($($a),*) })*
        };
    }
    impl Store for Shared {
        forward! {
            location() -> String;
            create_session(s: &Session) -> Result<(), curfew_policy::StoreError>;
            session(id: &str) -> Result<Option<Session>, curfew_policy::StoreError>;
            list_sessions(f: &SessionFilter) -> Result<Vec<Session>, curfew_policy::StoreError>;
            touch_session(id: &str, at: DateTime<Utc>) -> Result<bool, curfew_policy::StoreError>;
            request_termination(id: &str, at: DateTime<Utc>, by: Option<&str>) -> Result<bool, curfew_policy::StoreError>;
            end_session(id: &str, at: DateTime<Utc>, r: EndReason) -> Result<bool, curfew_policy::StoreError>;
            add_revocation(r: &Revocation) -> Result<(), curfew_policy::StoreError>;
            remove_revocation(id: &str) -> Result<Option<Revocation>, curfew_policy::StoreError>;
            lift_revocation(id: &str, at: DateTime<Utc>) -> Result<Option<curfew_policy::store::Lift>, curfew_policy::StoreError>;
            list_revocations() -> Result<Vec<Revocation>, curfew_policy::StoreError>;
            revocations_for(k: &RevocationKeys<'_>) -> Result<curfew_policy::RevocationSet, curfew_policy::StoreError>;
            set_timeout_preference(u: &str, t: Option<Duration>) -> Result<(), curfew_policy::StoreError>;
            timeout_preference(u: &str) -> Result<Option<Duration>, curfew_policy::StoreError>;
        }
        fn list_sessions_reporting(
            &self,
            f: &SessionFilter,
        ) -> Result<curfew_policy::SessionListing, curfew_policy::StoreError> {
            Ok(curfew_policy::SessionListing {
                sessions: self.0.list_sessions(f)?,
                unreadable: self.1.clone(),
            })
        }
    }

    const POLICY: &str =
        "version: 1\nsession: { max_duration: 1h, inactivity: 10m, warn_before: 2m }\n";

    fn write_policy(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn fixture() -> Fixture {
        fixture_with("", Arc::new(MemoryStore::new()))
    }

    /// A fixture whose policy has `rules` (YAML) added, on `store`.
    fn fixture_with(rules: &str, store: Arc<MemoryStore>) -> Fixture {
        fixture_unreadable(rules, store, Vec::new())
    }

    /// [`fixture_with`], whose store also reports `unreadable` records.
    fn fixture_unreadable(
        rules: &str,
        store: Arc<MemoryStore>,
        unreadable: Vec<curfew_policy::UnreadableRecord>,
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("policy.yaml");
        write_policy(
            &path,
            &format!(
                "{POLICY}audit: {{ syslog: false, file: {:?} }}\n{rules}",
                dir.path().join("audit.jsonl")
            ),
        );
        let log = Arc::new(Mutex::new(Log::default()));
        let opener_store = store.clone();
        let enforcer = Enforcer::new(
            Scripted {
                log: log.clone(),
                ..Default::default()
            },
            PolicySource::new(Some(path)),
            "here".into(),
            Box::new(move |_| {
                Ok(Box::new(Shared(opener_store.clone(), unreadable.clone())) as Box<dyn Store>)
            }),
        );
        Fixture {
            enforcer,
            store,
            log,
            dir,
        }
    }

    fn login(
        f: &mut Fixture,
        user: &str,
        pid: u32,
        host: &str,
        at: DateTime<Utc>,
        tty: bool,
    ) -> String {
        let mut s = Session::start(SessionKind::Pam, user, at, Duration::from_secs(300)).unwrap();
        s.host = Some(host.into());
        s.pid = Some(pid);
        s.audit_session_id = Some(pid);
        s.service = Some("sshd".into());
        f.store.create_session(&s).unwrap();
        if tty {
            f.enforcer.host.input.insert(s.id.clone(), Some(at));
        }
        s.id
    }

    fn ended(f: &Fixture, id: &str) -> Option<(DateTime<Utc>, EndReason)> {
        let s = f.store.session(id).unwrap().unwrap();
        s.ended_at.zip(s.end_reason)
    }

    #[test]
    fn a_revoked_user_is_ended_and_recorded_and_nobody_else_is_touched() {
        let mut f = fixture();
        let alice = login(&mut f, "alice", 100, "here", t(0), true);
        let bob = login(&mut f, "bob", 200, "here", t(0), true);
        let elsewhere = login(&mut f, "alice", 300, "other-host", t(0), true);
        assert!(f.enforcer.pass(t(1)).complete);
        assert_eq!(ended(&f, &alice), None);
        f.store
            .add_revocation(&Revocation {
                id: "r1".into(),
                target: Target::User("alice".into()),
                not_before: t(5),
                expires_at: None,
                reason: None,
                actor: "root".into(),
                created_at: t(5),
            })
            .unwrap();
        let pass = f.enforcer.pass(t(6));
        assert_eq!(ended(&f, &alice), Some((t(6), EndReason::Revoked)));
        assert_eq!(ended(&f, &bob), None);
        assert_eq!(
            ended(&f, &elsewhere),
            None,
            "another host's enforcer ends it"
        );
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"]);
        let line = pass
            .events
            .iter()
            .find(|e| reason(e).is_some())
            .unwrap()
            .to_string();
        assert!(line.contains("revoked") && line.contains(&alice), "{line}");
        let notices = &f.log.lock().unwrap().notices;
        assert_eq!(notices.len(), 1);
        assert!(notices[0].1.contains("revoked"), "{notices:?}");
        // The end is in the audit trail.
        let trail = std::fs::read_to_string(f.dir.path().join("audit.jsonl")).unwrap();
        let rec: serde_json::Value = serde_json::from_str(trail.lines().last().unwrap()).unwrap();
        assert_eq!(rec["event"], "enforcer_end");
        assert_eq!(rec["source"], "curfew-enforce");
        assert_eq!(rec["session"], alice.as_str());
        assert_eq!(rec["user"], "alice");
        assert_eq!(rec["reason"], "revoked");
        assert_eq!(rec["processes"], 1);
    }

    #[test]
    fn terminate_except_ends_the_others_and_keeps_the_one_named() {
        let mut f = fixture();
        let keep = login(&mut f, "alice", 100, "here", t(0), true);
        let other = login(&mut f, "alice", 101, "here", t(0), true);
        // What `curfew sessions terminate --user alice --except KEEP` writes.
        f.store
            .request_termination(&other, t(2), Some("root"))
            .unwrap();
        f.enforcer.pass(t(3));
        assert_eq!(ended(&f, &other), Some((t(3), EndReason::Terminated)));
        assert_eq!(ended(&f, &keep), None);
        for s in 4..20 {
            f.enforcer.pass(t(s));
        }
        assert_eq!(ended(&f, &keep), None, "never ended later either");
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 101"]);
    }

    #[test]
    fn an_idle_session_is_warned_once_then_ended_and_input_resets_it() {
        let mut f = fixture();
        let idle = login(&mut f, "alice", 100, "here", t(0), true);
        let busy = login(&mut f, "bob", 200, "here", t(0), true);
        let mut warned_at = Vec::new();
        let mut ended_at = None;
        for s in 1..=700 {
            // bob types every 30 s.
            if s % 30 == 0 {
                f.enforcer.host.input.insert(busy.clone(), Some(t(s)));
            }
            let pass = f.enforcer.pass(t(s));
            for e in &pass.events {
                match e {
                    Event::Warned {
                        session, delivered, ..
                    } => {
                        assert_eq!(session, &idle);
                        assert_eq!(*delivered, 1);
                        warned_at.push(s);
                    }
                    Event::Ended { session, .. } => {
                        assert_eq!(session, &idle);
                        ended_at = Some(s);
                    }
                    _ => {}
                }
            }
            if ended_at.is_some() {
                break;
            }
        }
        let deadline = (latest_input(t(0)) - t(0)).num_seconds() + 600;
        assert_eq!(
            warned_at,
            vec![deadline - 120],
            "warned once, warn_before ahead"
        );
        assert_eq!(ended_at, Some(deadline));
        assert_eq!(ended(&f, &idle).map(|e| e.1), Some(EndReason::Idle));
        assert_eq!(ended(&f, &busy), None);
        // bob's keystrokes were written back as last_seen.
        assert!(f.store.session(&busy).unwrap().unwrap().last_seen >= t(ended_at.unwrap() - 30));
        let notices = &f.log.lock().unwrap().notices;
        assert!(
            notices[0].1.contains("Press Enter at the prompt"),
            "{notices:?}"
        );
    }

    #[test]
    fn reloads_and_a_store_outage_are_audited_once_each() {
        use curfew_policy::audit::{AuditEvent, AuditLine, StoreOutcome};
        use std::sync::atomic::{AtomicBool, Ordering};
        let f = fixture();
        let path = f.dir.path().join("policy.yaml");
        let down = Arc::new(AtomicBool::new(true));
        let (opener_down, opener_store) = (down.clone(), f.store.clone());
        let mut enforcer = Enforcer::new(
            Scripted {
                log: f.log.clone(),
                ..Default::default()
            },
            PolicySource::new(Some(path.clone())),
            "here".into(),
            Box::new(move |_| {
                if opener_down.load(Ordering::SeqCst) {
                    Err(curfew_policy::StoreError::Unavailable {
                        location: "state.db".into(),
                        detail: "connection refused".into(),
                    })
                } else {
                    Ok(Box::new(Shared(opener_store.clone(), Vec::new())) as Box<dyn Store>)
                }
            }),
        );
        for s in 1..5 {
            assert!(!enforcer.pass(t(s)).complete);
        }
        down.store(false, Ordering::SeqCst);
        assert!(enforcer.pass(t(5)).complete);
        let good = std::fs::read_to_string(&path).unwrap();
        write_policy(&path, "version: 1\nsession: { inactivity: nonsense }\n");
        enforcer.pass(t(100));
        write_policy(&path, &good);
        enforcer.pass(t(200));

        let lines: Vec<AuditLine> = std::fs::read_to_string(f.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names: Vec<&str> = lines.iter().map(|l| l.event.name()).collect();
        assert_eq!(
            names,
            [
                "policy_reloaded",
                "store_unavailable",
                "policy_reload_failed",
                "policy_reloaded"
            ],
            "{lines:?}"
        );
        assert!(lines
            .iter()
            .all(|l| l.source == "curfew-enforce" && l.host.as_deref() == Some("here")));
        match &lines[1].event {
            AuditEvent::StoreUnavailable {
                outcome, detail, ..
            } => {
                assert_eq!(*outcome, StoreOutcome::Skipped);
                assert!(detail.contains("connection refused"), "{detail}");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(lines[1].at, t(1));
        match &lines[2].event {
            AuditEvent::PolicyReloadFailed { file, error } => {
                assert_eq!(file, &path);
                assert!(error.contains("inactivity"), "{error}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_broken_policy_keeps_the_last_good_one_and_a_missing_one_ends_nothing() {
        let mut f = fixture();
        let s = login(&mut f, "alice", 100, "here", t(0), true);
        f.enforcer.pass(t(1));
        // The policy breaks; the session is idle far past 10 minutes.
        write_policy(
            &f.dir.path().join("policy.yaml"),
            "version: 1\nsession: { inactivity: nonsense }\n",
        );
        let pass = f.enforcer.pass(t(2000));
        let said = pass
            .events
            .iter()
            .any(|e| matches!(e, Event::Policy(PolicyEvent::KeptLastGood { .. })));
        assert!(said, "{:?}", pass.events);
        // ... and the last good policy's 10-minute inactivity still applies.
        assert_eq!(ended(&f, &s).map(|e| e.1), Some(EndReason::Idle));

        // An enforcer that never had a good policy ends nothing.
        let mut g = fixture();
        write_policy(
            &g.dir.path().join("policy.yaml"),
            "version: 1\nsession: { inactivity: nonsense }\n",
        );
        let s = login(&mut g, "alice", 100, "here", t(0), true);
        g.store.request_termination(&s, t(1), Some("root")).unwrap();
        let pass = g.enforcer.pass(t(5000));
        assert!(!pass.complete);
        assert!(matches!(
            pass.events[0],
            Event::Policy(PolicyEvent::NoPolicy { .. })
        ));
        assert_eq!(ended(&g, &s), None);
        assert!(g.log.lock().unwrap().ended.is_empty());
    }

    #[test]
    fn a_session_ended_meanwhile_is_left_alone() {
        let mut f = fixture();
        let s = login(&mut f, "alice", 100, "here", t(0), true);
        f.store.request_termination(&s, t(1), Some("root")).unwrap();
        // The user logged out before the enforcer acted on the request.
        f.store.end_session(&s, t(2), EndReason::Logout).unwrap();
        let pass = f.enforcer.pass(t(3));
        assert!(pass.events.iter().all(|e| reason(e).is_none()));
        assert_eq!(ended(&f, &s), Some((t(2), EndReason::Logout)));
        assert!(f.log.lock().unwrap().ended.is_empty());
    }

    /// Issue 13's model on whole passes: a terminal whose job prints is
    /// busy, a terminal-less session that moves data is busy and goes idle
    /// once it stops, a terminal time set into the future extends nothing.
    #[test]
    fn output_and_traffic_keep_sessions_and_stopping_ends_them() {
        let mut f = fixture();
        let printing = login(&mut f, "alice", 100, "here", t(0), true);
        let transfer = login(&mut f, "bob", 200, "here", t(0), false);
        let stalls = login(&mut f, "carol", 300, "here", t(0), false);
        let faked = login(&mut f, "dave", 400, "here", t(0), true);
        f.enforcer
            .host
            .input
            .insert(faked.clone(), Some(t(1_000_000)));
        f.enforcer
            .host
            .output
            .insert(faked.clone(), DateTime::<Utc>::MAX_UTC);
        let mut ended_at = HashMap::new();
        let mut warnings = Vec::new();
        for s in 1..=1500 {
            // alice's build prints every 5 s; bob's transfer moves data
            // every second; carol's stops after 100 s.
            if s % 5 == 0 {
                f.enforcer.host.output.insert(printing.clone(), t(s));
            }
            f.enforcer.host.io.insert(transfer.clone(), s as u64 * 100);
            f.enforcer
                .host
                .io
                .insert(stalls.clone(), s.min(100) as u64 * 100);
            let pass = f.enforcer.pass(t(s));
            for e in &pass.events {
                match e {
                    Event::Ended { session, deny, .. } => {
                        ended_at.insert(session.clone(), (s, deny.end_reason()));
                    }
                    Event::Warned { session, .. } => warnings.push(session.clone()),
                    _ => {}
                }
            }
        }
        assert_eq!(ended_at.get(&printing), None, "a printing job is busy");
        assert_eq!(ended_at.get(&transfer), None, "moving data is busy");
        // Its counters are read every TRAFFIC_EVERY while its deadline is
        // far: its last byte (at 100 s) is seen at the first reading after
        // it, at most TRAFFIC_EVERY (10 s) and one pass (1 s) later.
        let (at, why) = ended_at[&stalls];
        assert_eq!(why, EndReason::Idle);
        assert!(
            (700..=711).contains(&at),
            "idle 10 min after its last byte was seen (100 to 111 s): ended at {at}"
        );
        assert_eq!(
            ended_at.get(&faked).map(|e| e.1),
            Some(EndReason::Idle),
            "future terminal times are no news"
        );
        assert!(ended_at[&faked].0 <= 600 + 8, "{:?}", ended_at[&faked]);
        assert!(!warnings.contains(&printing) && !warnings.contains(&transfer));
        // Activity is written back, so `sessions list` shows it.
        let bob = f.store.session(&transfer).unwrap().unwrap();
        // (Read every TRAFFIC_EVERY: seen at most 10 s and a pass late.)
        assert!(bob.last_seen >= t(1489), "{}", bob.last_seen);
        let alice = f.store.session(&printing).unwrap().unwrap();
        assert!(alice.last_seen >= t(1490), "{}", alice.last_seen);
    }

    #[test]
    fn a_policy_that_counts_only_input_ignores_output_and_traffic() {
        let mut f = fixture();
        write_policy(
            &f.dir.path().join("policy.yaml"),
            &format!(
                "{POLICY}  activity: [input]
"
            )
            .replace(
                "session: { max_duration: 1h, inactivity: 10m, warn_before: 2m }
  activity: [input]
",
                "session: { max_duration: 1h, inactivity: 10m, warn_before: 2m, activity: [input] }
",
            ),
        );
        let printing = login(&mut f, "alice", 100, "here", t(0), true);
        let transfer = login(&mut f, "bob", 200, "here", t(0), false);
        let mut ended = HashSet::new();
        for s in 1..=800 {
            f.enforcer.host.output.insert(printing.clone(), t(s));
            f.enforcer.host.io.insert(transfer.clone(), s as u64);
            for e in f.enforcer.pass(t(s)).events {
                if let Event::Ended { session, .. } = e {
                    ended.insert(session);
                }
            }
        }
        assert!(ended.contains(&printing) && ended.contains(&transfer));
        let notices = &f.log.lock().unwrap().notices;
        assert!(
            notices.iter().any(|(_, l)| l.contains("does not count")),
            "the warning tells the truth: {notices:?}"
        );
    }

    #[test]
    fn without_a_tty_a_session_is_judged_by_last_seen_and_an_unreadable_one_is_kept() {
        let mut f = fixture();
        let no_tty = login(&mut f, "alice", 100, "here", t(0), false);
        let unreadable = login(&mut f, "bob", 200, "here", t(0), true);
        f.enforcer.host.input.insert(unreadable.clone(), None);
        let mut unmeasured = 0;
        for s in (1..=700).step_by(10) {
            let pass = f.enforcer.pass(t(s));
            unmeasured += pass
                .events
                .iter()
                .filter(|e| matches!(e, Event::IdleUnmeasured { .. }))
                .count();
        }
        assert_eq!(ended(&f, &no_tty).map(|e| e.1), Some(EndReason::Idle));
        assert_eq!(ended(&f, &unreadable), None);
        assert_eq!(unmeasured, 1, "said once");
    }

    /// Issue 13: without `CAP_SYS_PTRACE` a session without a terminal is
    /// reported for what failed (its processes' `/proc/PID/io`, the ptrace
    /// permission) and what follows (traffic not counted, not ended for
    /// idleness while that lasts), once, never as an unreadable terminal.
    #[test]
    fn unreadable_io_counters_are_reported_as_such_once() {
        let mut f = fixture();
        let quiet = login(&mut f, "alice", 100, "here", t(0), false);
        f.enforcer.host.io_denied.insert(quiet.clone());
        let mut said = Vec::new();
        for s in (1..=700).step_by(10) {
            let pass = f.enforcer.pass(t(s));
            said.extend(
                pass.events
                    .into_iter()
                    .filter(|e| matches!(e, Event::IdleUnmeasured { .. })),
            );
        }
        assert_eq!(ended(&f, &quiet), None, "not ended for idleness");
        assert_eq!(said.len(), 1, "said once: {said:?}");
        assert_eq!(
            said[0],
            Event::IdleUnmeasured {
                session: quiet.clone(),
                cause: Unmeasured::Traffic(IoDenied {
                    pid: 100,
                    errno: Some(13)
                }),
            }
        );
        let line = said[0].to_string();
        for want in [
            "has no terminal",
            "/proc/100/io cannot be read",
            "Permission denied",
            "CAP_SYS_PTRACE",
            "traffic is not counted",
            "last_seen",
            "not ended for idleness",
        ] {
            assert!(line.contains(want), "{want:?} in {line}");
        }
        assert!(!line.contains("terminal cannot be read"), "{line}");
    }

    /// Issue 17: the I/O counters (one /proc read per process) are read
    /// only for sessions whose policy counts traffic, and never for the
    /// processes a logout left behind.
    #[test]
    fn the_counters_are_read_only_where_traffic_counts() {
        let mut f = fixture_with(
            "rules:\n  - match: { users: [bob] }\n    session: { activity: [input, output] }\n",
            Arc::new(MemoryStore::new()),
        );
        let alice = login(&mut f, "alice", 100, "here", t(0), false);
        let bob = login(&mut f, "bob", 200, "here", t(0), false);
        f.enforcer.host.io.insert(alice.clone(), 1);
        f.enforcer.host.io.insert(bob.clone(), 1);
        assert!(f.enforcer.pass(t(1)).complete);
        let asked: HashMap<String, bool> = f.enforcer.host.traffic_asked.drain(..).collect();
        assert!(asked[&alice], "the default counts traffic");
        assert!(!asked[&bob], "bob's rule does not");
        // A logout that leaves a process behind: looked at, counters unread.
        f.store
            .end_session(&alice, t(2), EndReason::Logout)
            .unwrap();
        f.enforcer.host.present.insert(100);
        assert!(f.enforcer.pass(t(3)).complete);
        let asked: Vec<(String, bool)> = f.enforcer.host.traffic_asked.drain(..).collect();
        assert!(asked.contains(&(alice.clone(), false)), "{asked:?}");
        assert!(!asked.iter().any(|(_, t)| *t), "{asked:?}");
    }

    /// Issue 17: a terminal-less session's counters are read at most every
    /// TRAFFIC_EVERY while its idle deadline is far, at every pass from
    /// NEAR_DEADLINE before its warning on, and at the pass a new process
    /// of it turns up (its baseline).
    #[test]
    fn the_counters_are_read_every_pass_only_near_the_idle_deadline() {
        use crate::activity::TRAFFIC_EVERY;
        let mut f = fixture();
        let quiet = login(&mut f, "alice", 100, "here", t(0), false);
        f.enforcer.host.io.insert(quiet.clone(), 5);
        let mut read_at = Vec::new();
        for s in 1..=600 {
            f.enforcer.pass(t(s));
            let asked: Vec<(String, bool)> = f.enforcer.host.traffic_asked.drain(..).collect();
            if asked.contains(&(quiet.clone(), true)) {
                read_at.push(s);
            }
        }
        // Idle deadline 600 s (10 min from the login), warning 2 min before:
        // read at every pass from 600 - 120 - 10 = 470 s on.
        let near = 600 - 120 - NEAR_DEADLINE.num_seconds();
        let far: Vec<i64> = read_at.iter().copied().filter(|&s| s < near).collect();
        assert_eq!(far[0], 1, "the first pass takes a baseline");
        for (i, w) in far.windows(2).enumerate() {
            assert!(
                w[1] - w[0] <= TRAFFIC_EVERY.num_seconds() + 1,
                "never longer apart than TRAFFIC_EVERY and a pass: {far:?}"
            );
            // The first gap is the share of TRAFFIC_EVERY the (random)
            // session id hashes to, which may be under a second.
            if i > 0 {
                assert!(w[1] - w[0] > 1, "not at every pass: {far:?}");
            }
        }
        assert!(far.len() <= 1 + (near as usize) / 10, "{far:?}");
        let close: Vec<i64> = read_at.iter().copied().filter(|&s| s >= near).collect();
        assert_eq!(
            close,
            (near..=600).collect::<Vec<_>>(),
            "every pass near it"
        );
        assert_eq!(
            ended(&f, &quiet),
            Some((t(600), EndReason::Idle)),
            "an idle session still ends on time"
        );

        // A new process of a session far from its deadline: its counters
        // are read at the pass it turns up (its baseline), not after.
        // (It turns up the pass after a reading: the session is not due
        // then, whatever share of TRAFFIC_EVERY its random id hashes to.)
        let busy = login(&mut f, "bob", 200, "here", t(600), false);
        f.enforcer.host.io.insert(busy.clone(), 5);
        f.enforcer.pass(t(601));
        let mut s = 601;
        loop {
            s += 1;
            f.enforcer.host.traffic_asked.clear();
            f.enforcer.pass(t(s));
            if f.enforcer
                .host
                .traffic_asked
                .contains(&(busy.clone(), true))
            {
                break;
            }
            assert!(s < 601 + TRAFFIC_EVERY.num_seconds() + 1, "read again");
        }
        f.enforcer.host.io_asked.clear();
        f.enforcer.host.traffic_asked.clear();
        f.enforcer.host.more_procs.insert(busy.clone(), vec![201]);
        f.enforcer.pass(t(s + 1));
        assert!(
            !f.enforcer
                .host
                .traffic_asked
                .contains(&(busy.clone(), true)),
            "not due by time"
        );
        assert_eq!(f.enforcer.host.io_asked, vec![200, 201], "its baseline");
        f.enforcer.host.io_asked.clear();
        f.enforcer.pass(t(s + 2));
        assert!(f.enforcer.host.io_asked.is_empty(), "then as the others");
    }

    /// Issue 17: data moved between two readings is seen at the second, so
    /// a session whose counters are read every TRAFFIC_EVERY lives at most
    /// that (and a pass) longer than one read at every pass, never shorter;
    /// and one that moves data all along is never warned nor ended.
    #[test]
    fn traffic_seen_late_makes_a_session_live_longer_never_shorter() {
        use crate::activity::TRAFFIC_EVERY;
        let mut f = fixture();
        // Each moves data for the last time at its own second.
        let last_bytes: Vec<i64> = vec![3, 50, 57, 121, 200, 333, 400];
        let sessions: Vec<String> = last_bytes
            .iter()
            .enumerate()
            .map(|(i, _)| {
                login(
                    &mut f,
                    &format!("user{i}"),
                    100 + i as u32,
                    "here",
                    t(0),
                    false,
                )
            })
            .collect();
        let steady = login(&mut f, "steady", 900, "here", t(0), false);
        let mut ended_at = HashMap::new();
        let mut warned = HashSet::new();
        for s in 1..=1100 {
            for (id, last) in sessions.iter().zip(&last_bytes) {
                f.enforcer.host.io.insert(id.clone(), s.min(*last) as u64);
            }
            f.enforcer.host.io.insert(steady.clone(), s as u64);
            for e in f.enforcer.pass(t(s)).events {
                match e {
                    Event::Ended { session, deny, .. } => {
                        ended_at.insert(session, (s, deny.end_reason()));
                    }
                    Event::Warned { session, .. } => {
                        warned.insert(session);
                    }
                    _ => {}
                }
            }
        }
        let late = TRAFFIC_EVERY.num_seconds() + 1;
        for (id, last) in sessions.iter().zip(&last_bytes) {
            let (at, why) = ended_at[id];
            assert_eq!(why, EndReason::Idle);
            // A meter read at every pass sees the last byte at `last` and
            // ends the session 600 s later.
            assert!(
                at >= last + 600 && at <= last + 600 + late,
                "last byte at {last}: ended at {at}"
            );
        }
        assert_eq!(ended_at.get(&steady), None);
        assert!(!warned.contains(&steady), "a busy session is never warned");
    }

    /// Issue 17, the fleet: a pass woken by a revocation that names no
    /// session of this host takes no look at the processes and observes
    /// nothing; one that names a session here is a whole pass.
    #[test]
    fn a_woken_pass_for_no_session_here_looks_at_no_process() {
        let mut f = fixture();
        let alice = login(&mut f, "alice", 100, "here", t(0), true);
        let _elsewhere = login(&mut f, "carol", 300, "other-host", t(0), true);
        f.enforcer.host.present.insert(100);
        assert!(f.enforcer.pass(t(1)).complete);
        let looks = f.enforcer.host.looks;
        f.enforcer.host.traffic_asked.clear();
        for (i, target) in [
            Target::User("carol".into()),
            Target::Session("0123456789abcdef0123456789abcdef".into()),
            Target::Client("sudo".into()),
        ]
        .into_iter()
        .enumerate()
        {
            let at = t(2 + i as i64);
            f.store
                .add_revocation(&Revocation {
                    id: format!("r{i}"),
                    target: target.clone(),
                    not_before: at,
                    expires_at: None,
                    reason: None,
                    actor: "root".into(),
                    created_at: at,
                })
                .unwrap();
            let pass = f.enforcer.pass_woken(at, &[target]);
            assert!(pass.complete && pass.events.is_empty(), "{:?}", pass.events);
            assert!(!pass.whole, "cut short: the next whole pass stays due");
        }
        assert_eq!(f.enforcer.host.looks, looks, "no look at the processes");
        assert!(f.enforcer.host.traffic_asked.is_empty(), "nothing observed");
        assert_eq!(ended(&f, &alice), None);
        // Each of these names alice's session: a whole pass, and she goes.
        for target in [
            Target::User("alice".into()),
            Target::Session(alice.clone()),
            Target::Client("sshd".into()),
            Target::All,
        ] {
            let mut g = fixture();
            let a = login(&mut g, "alice", 100, "here", t(0), true);
            g.enforcer.host.present.insert(100);
            g.enforcer.pass(t(1));
            let target = match target {
                Target::Session(_) => Target::Session(a.clone()),
                t => t,
            };
            g.store
                .add_revocation(&Revocation {
                    id: "r".into(),
                    target: target.clone(),
                    not_before: t(5),
                    expires_at: None,
                    reason: None,
                    actor: "root".into(),
                    created_at: t(5),
                })
                .unwrap();
            g.enforcer.pass_woken(t(6), std::slice::from_ref(&target));
            assert_eq!(
                ended(&g, &a),
                Some((t(6), EndReason::Revoked)),
                "{target:?}"
            );
        }
    }

    /// Issue 17: a woken pass also looks when the revocation may reach
    /// processes a logout left behind: those already known, and those of
    /// a session that ended since the last pass (not looked up yet).
    #[test]
    fn a_woken_pass_reaches_processes_left_behind_by_a_logout() {
        for known in [true, false] {
            let mut f = fixture();
            let alice = login(&mut f, "alice", 100, "here", t(0), false);
            f.enforcer.host.present.insert(100);
            assert!(f.enforcer.pass(t(1)).complete);
            f.store
                .end_session(&alice, t(2), EndReason::Logout)
                .unwrap();
            if known {
                // A pass saw the leftovers.
                f.enforcer.pass(t(3));
            }
            revoke_user(&f, "r1", "alice", t(4));
            let pass = f.enforcer.pass_woken(t(4), &[Target::User("alice".into())]);
            assert!(
                pass.events.iter().any(|e| matches!(
                    e,
                    Event::Ended {
                        after_logout: true,
                        ..
                    }
                )),
                "known {known}: {:?}",
                pass.events
            );
            assert_eq!(
                f.log.lock().unwrap().ended,
                vec!["pid 100"],
                "known {known}"
            );
        }
    }

    /// Found by review: a session that started and ended after the last
    /// whole pass was never seen by a pass, so its leftovers are not known;
    /// a termination request or revocation naming it takes a whole pass at
    /// once. (A `user` target's leftovers wait for the next whole pass: at
    /// most `--interval`, see `names_ended_since_whole`.)
    #[test]
    fn a_woken_pass_reaches_a_session_that_began_and_ended_since_the_last_whole_pass() {
        let mut f = fixture();
        assert!(f.enforcer.pass(t(1)).whole);
        let alice = login(&mut f, "alice", 100, "here", t(2), false);
        f.enforcer.host.present.insert(100);
        f.store
            .end_session(&alice, t(3), EndReason::Logout)
            .unwrap();
        revoke_user(&f, "r1", "alice", t(4));
        // Her user named: left to the next whole pass (at most --interval).
        let pass = f.enforcer.pass_woken(t(4), &[Target::User("alice".into())]);
        assert!(!pass.whole, "no listing of every ended session of hers");
        assert!(f.log.lock().unwrap().ended.is_empty());
        // Her session named: at once.
        let pass = f
            .enforcer
            .pass_woken(t(4), &[Target::Session(alice.clone())]);
        assert!(pass.whole, "a whole pass");
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"]);
        // Once a whole pass has run, an old logout no longer costs one.
        let mut g = fixture();
        let old = login(&mut g, "alice", 100, "here", t(0), false);
        g.store.end_session(&old, t(1), EndReason::Logout).unwrap();
        assert!(g.enforcer.pass(t(2)).whole);
        let pass = g.enforcer.pass_woken(t(4), &[Target::Session(old.clone())]);
        assert!(!pass.whole, "nothing of hers ended since");
        // A session the enforcer itself ended, every process gone, leaves
        // nothing behind: a later revocation of its user here (the next
        // run of a fleet's `revoke user`) is cut short.
        let mut h = fixture();
        let bob = login(&mut h, "bob", 200, "here", t(0), true);
        h.enforcer.host.present.insert(200);
        assert!(h.enforcer.pass(t(1)).whole);
        revoke_user(&h, "r1", "bob", t(2));
        let pass = h.enforcer.pass_woken(t(2), &[Target::User("bob".into())]);
        assert!(pass.whole);
        assert_eq!(ended(&h, &bob).map(|(_, r)| r), Some(EndReason::Revoked));
        h.enforcer.host.present.remove(&200);
        revoke_user(&h, "r2", "bob", t(3));
        let pass = h.enforcer.pass_woken(t(3), &[Target::User("bob".into())]);
        assert!(!pass.whole, "nothing of bob's can be left here");
    }

    /// Issue 17: an end for idleness judged on a light look's terminals is
    /// dropped when the full look before the end finds other terminals
    /// (a process left its terminal): the next pass judges it again; on
    /// the same terminals it ends, on time.
    #[test]
    fn an_idle_end_waits_when_the_full_look_sees_other_terminals() {
        let mut f = fixture();
        f.enforcer.host.light = true;
        let alice = login(&mut f, "alice", 100, "here", t(0), true);
        f.enforcer.host.no_tty_in_full.insert(alice.clone());
        // Its input at login counts to the end of its 8-second window: idle
        // from 607 s on.
        assert!(f.enforcer.pass(t(1)).complete);
        for s in [610, 611] {
            let looks = f.enforcer.host.looks;
            let pass = f.enforcer.pass(t(s));
            assert!(pass.complete, "{:?}", pass.events);
            assert_eq!(
                f.enforcer.host.looks,
                looks + 2,
                "decided to end it: a full look"
            );
        }
        assert_eq!(ended(&f, &alice), None, "not on terminals it has left");
        assert!(f.log.lock().unwrap().ended.is_empty());
        f.enforcer.host.no_tty_in_full.clear();
        f.enforcer.pass(t(612));
        assert_eq!(ended(&f, &alice), Some((t(612), EndReason::Idle)));
    }

    /// Issue 17 review: an idle end already under way (a process survived
    /// its signals) is carried out at the next passes even when the full
    /// look finds other terminals than the light one: the terminal check is
    /// for a fresh decision only. Otherwise a survivor that keeps changing
    /// its controlling terminal would never be signalled again, not even
    /// once revoked (a carried end keeps its reason, whatever the pass
    /// decides).
    #[test]
    fn an_idle_end_under_way_is_carried_out_whatever_terminals_the_full_look_sees() {
        let mut f = fixture();
        f.enforcer.host.light = true;
        let alice = login(&mut f, "alice", 100, "here", t(0), true);
        f.enforcer.host.stubborn.insert(100);
        assert!(f.enforcer.pass(t(1)).complete);
        f.enforcer.pass(t(610));
        assert_eq!(
            f.log.lock().unwrap().ended,
            vec!["pid 100"],
            "idle: signalled"
        );
        assert_eq!(ended(&f, &alice), None, "a process survived: not recorded");
        // The survivor leaves its terminal (or keeps switching terminals):
        // the full look before each end sees others than the light one.
        f.enforcer.host.no_tty_in_full.insert(alice.clone());
        revoke_user(&f, "r1", "alice", t(611));
        for s in [612, 613] {
            f.enforcer.pass(t(s));
        }
        assert_eq!(
            f.log.lock().unwrap().ended,
            vec!["pid 100"; 3],
            "the end under way goes on at every pass"
        );
        f.enforcer.host.stubborn.clear();
        f.enforcer.pass(t(614));
        assert_eq!(ended(&f, &alice), Some((t(614), EndReason::Idle)));
    }

    /// Issue 17: a pass that took a light look at the processes takes a
    /// full one before it ends anything, and signals what that one finds:
    /// here, a session whose audit session turns out to be another user's
    /// is not signalled at all.
    #[test]
    fn a_light_look_is_made_full_before_any_end() {
        let mut f = fixture();
        f.enforcer.host.light = true;
        let alice = login(&mut f, "alice", 100, "here", t(0), true);
        let bob = login(&mut f, "bob", 200, "here", t(0), true);
        f.enforcer.host.foreign_in_full.insert(bob.clone());
        assert!(f.enforcer.pass(t(1)).complete);
        assert_eq!(f.enforcer.host.looks, 1, "nothing to end: one light look");
        revoke_user(&f, "r1", "alice", t(5));
        revoke_user(&f, "r2", "bob", t(5));
        f.enforcer.host.traffic_asked.clear();
        let pass = f.enforcer.pass(t(6));
        assert_eq!(f.enforcer.host.looks, 3, "a light look, then a full one");
        let asked: Vec<(String, bool)> = f.enforcer.host.traffic_asked.clone();
        assert_eq!(
            asked.iter().filter(|(id, _)| *id == alice).count(),
            2,
            "alice observed again after the full look: {asked:?}"
        );
        assert_eq!(ended(&f, &alice), Some((t(6), EndReason::Revoked)));
        assert_eq!(ended(&f, &bob), None);
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"]);
        assert!(
            pass.events
                .iter()
                .any(|e| matches!(e, Event::Fault { session, .. } if *session == bob)),
            "{:?}",
            pass.events
        );
        // A pass woken for a revocation naming a session here takes the
        // full look at once: one look, not a light one and a full one.
        let carol = login(&mut f, "carol", 300, "here", t(0), true);
        f.enforcer.pass(t(7));
        let looks = f.enforcer.host.looks;
        revoke_user(&f, "r3", "carol", t(8));
        f.enforcer.pass_woken(t(8), &[Target::User("carol".into())]);
        assert_eq!(f.enforcer.host.looks, looks + 1, "one full look");
        assert_eq!(ended(&f, &carol), Some((t(8), EndReason::Revoked)));
    }

    fn revoke_user(f: &Fixture, id: &str, user: &str, at: DateTime<Utc>) {
        f.store
            .add_revocation(&Revocation {
                id: id.into(),
                target: Target::User(user.into()),
                not_before: at,
                expires_at: None,
                reason: None,
                actor: "root".into(),
                created_at: at,
            })
            .unwrap();
    }

    /// Issue 12, class 1: a user sets their own terminal's times.
    #[test]
    fn terminal_times_set_by_hand_never_crash_blind_or_extend() {
        let mut f = fixture();
        let far = login(&mut f, "alice", 100, "here", t(0), true);
        let max = login(&mut f, "carol", 300, "here", t(0), true);
        let past = login(&mut f, "dave", 400, "here", t(0), true);
        let plain = login(&mut f, "bob", 200, "here", t(0), true);
        // touch -d 2999-01-01, the largest time there is, and 1970.
        f.enforcer.host.input.insert(
            far.clone(),
            Some(Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0).unwrap()),
        );
        f.enforcer
            .host
            .input
            .insert(max.clone(), Some(DateTime::<Utc>::MAX_UTC));
        f.enforcer
            .host
            .input
            .insert(past.clone(), Some(DateTime::<Utc>::MIN_UTC));
        let mut ended_at = HashMap::new();
        for s in (1..=800).step_by(5) {
            let pass = f.enforcer.pass(t(s));
            assert!(pass.complete, "{:?}", pass.events);
            for e in &pass.events {
                if let Event::Ended { session, deny, .. } = e {
                    assert_eq!(deny.end_reason(), EndReason::Idle, "{e}");
                    ended_at.insert(session.clone(), s);
                }
            }
            for id in [&far, &max, &past, &plain] {
                let rec = f.store.session(id).unwrap().unwrap();
                assert!(rec.last_seen <= t(s), "never stored: {rec:?}");
            }
        }
        // Every one of them is idle from its login: ended at the same pass
        // as the session nobody touched, none later, none never.
        let plain_end = ended_at[&plain];
        for id in [&far, &max, &past] {
            assert!(ended_at[id] <= plain_end, "{ended_at:?}");
        }
        assert_eq!(ended_at.len(), 4);
    }

    /// Issue 12, class 2: an end is recorded only once its processes are gone.
    #[test]
    fn an_unfinished_end_shows_as_requested_and_is_retried_with_its_reason() {
        let mut f = fixture();
        let s = login(&mut f, "alice", 100, "here", t(0), true);
        f.enforcer.host.stubborn.insert(100);
        revoke_user(&f, "r1", "alice", t(5));
        let pass = f.enforcer.pass(t(6));
        let line = pass
            .events
            .iter()
            .find(|e| matches!(e, Event::Ended { .. }))
            .unwrap()
            .to_string();
        assert!(line.contains("STILL RUNNING: 100"), "{line}");
        assert!(line.contains("not recorded"), "{line}");
        let rec = f.store.session(&s).unwrap().unwrap();
        assert!(rec.is_live(), "not `ended` while a process runs: {rec:?}");
        assert_eq!(rec.terminate_requested_at, Some(t(6)), "shown as ending");
        // The revocation is lifted meanwhile: the end decided is still
        // carried out, for the reason it was decided.
        f.store.remove_revocation("r1").unwrap();
        f.enforcer.pass(t(7));
        assert!(f.store.session(&s).unwrap().unwrap().is_live());
        // The process finally goes, and sshd's close_session records the
        // logout while the enforcer's signals land: the record still gets
        // the enforcer's reason, once nothing is left.
        f.enforcer.host.stubborn.clear();
        f.enforcer.host.logout_on_end = Some((f.store.clone(), s.clone(), t(8)));
        let pass = f.enforcer.pass(t(9));
        let line = pass
            .events
            .iter()
            .find(|e| matches!(e, Event::Ended { .. }))
            .unwrap()
            .to_string();
        assert!(!line.contains("not recorded"), "{line}");
        assert_eq!(ended(&f, &s), Some((t(9), EndReason::Revoked)));
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"; 3]);
    }

    /// Issue 12, class 2: a restarted enforcer finishes an end decided
    /// before it stopped.
    #[test]
    fn an_end_decided_before_a_restart_is_finished_at_start_up() {
        let store = Arc::new(MemoryStore::new());
        let mut f = fixture_with("", store.clone());
        let s = login(&mut f, "alice", 100, "here", t(0), true);
        f.enforcer.host.stubborn.insert(100);
        revoke_user(&f, "r1", "alice", t(5));
        f.enforcer.pass(t(6));
        assert!(store.session(&s).unwrap().unwrap().is_live());
        // The enforcer stops; a new one starts; the revocation was lifted
        // meanwhile, the request stays.
        drop(f);
        store.remove_revocation("r1").unwrap();
        let mut g = fixture_with("", store.clone());
        g.enforcer.pass(t(60));
        let rec = store.session(&s).unwrap().unwrap();
        assert_eq!(rec.ended_at, Some(t(60)));
        assert_eq!(rec.end_reason, Some(EndReason::Terminated));
        assert_eq!(g.log.lock().unwrap().ended, vec!["pid 100"]);
    }

    /// Issue 12: a record the store cannot read (a pid out of range) is
    /// skipped and said once; the host's other sessions are still ended.
    #[test]
    fn an_unreadable_record_is_skipped_said_once_and_the_others_ended() {
        let bad = curfew_policy::UnreadableRecord {
            id: "bad-record".into(),
            detail: "Integer -1 out of range at index 9".into(),
        };
        let mut f = fixture_unreadable("", Arc::new(MemoryStore::new()), vec![bad]);
        let alice = login(&mut f, "alice", 200, "here", t(0), true);
        revoke_user(&f, "r1", "alice", t(5));
        let first = f.enforcer.pass(t(6));
        assert_eq!(ended(&f, &alice).map(|e| e.1), Some(EndReason::Revoked));
        assert!(!first.complete);
        let said = faults(&first);
        assert_eq!(said.len(), 1, "{:?}", first.events);
        assert!(
            said[0].contains("bad-record") && said[0].contains("out of range"),
            "{said:?}"
        );
        assert!(
            !first.events.iter().any(|e| matches!(e, Event::Store(_))),
            "{:?}",
            first.events
        );
        let second = f.enforcer.pass(t(7));
        assert!(faults(&second).is_empty(), "said once: {:?}", second.events);
    }

    /// The faults a pass said, as log lines.
    fn faults(p: &Pass) -> Vec<String> {
        p.events
            .iter()
            .filter(|e| matches!(e, Event::Fault { .. }))
            .map(|e| e.to_string())
            .collect()
    }

    /// Issue 12: one record's fault costs that record, not the pass.
    #[test]
    fn a_fault_in_one_record_costs_that_record_and_is_said_once() {
        let mut f = fixture();
        let bad = login(&mut f, "mallory", 100, "here", t(0), true);
        let alice = login(&mut f, "alice", 200, "here", t(0), true);
        f.enforcer.host.panic_on.insert("mallory".into());
        revoke_user(&f, "r1", "alice", t(5));
        revoke_user(&f, "r2", "mallory", t(5));
        let first = f.enforcer.pass(t(6));
        assert!(!first.complete);
        assert_eq!(ended(&f, &alice).map(|e| e.1), Some(EndReason::Revoked));
        assert_eq!(ended(&f, &bad), None);
        let said = faults(&first);
        assert_eq!(said.len(), 1, "{:?}", first.events);
        assert!(
            said[0].contains(&bad) && said[0].contains("scripted fault"),
            "{said:?}"
        );
        let second = f.enforcer.pass(t(7));
        assert!(faults(&second).is_empty(), "said once: {:?}", second.events);
        // Fixed: the record is handled again.
        f.enforcer.host.panic_on.clear();
        f.enforcer.pass(t(8));
        assert_eq!(ended(&f, &bad).map(|e| e.1), Some(EndReason::Revoked));
    }

    const ADMINS: &str = "rules:\n  - name: admins\n    match: { groups: [admins] }\n    session: { max_duration: 30m }\n";

    /// Issue 11: on an NSS failure the enforcer never applies looser limits.
    #[test]
    fn a_failed_group_lookup_keeps_the_known_groups_or_leaves_the_session_alone() {
        let failed = || {
            Err(HostError::Lookup {
                what: "getgrouplist(root2)".into(),
                detail: "sssd is down".into(),
            })
        };
        // Groups known from an earlier pass: the admins' 30 minutes apply.
        let mut f = fixture_with(ADMINS, Arc::new(MemoryStore::new()));
        let s = login(&mut f, "root2", 100, "here", t(0), false);
        f.enforcer
            .host
            .groups
            .insert("root2".into(), Ok(vec!["admins".into()]));
        f.enforcer.pass(t(10));
        f.enforcer.host.groups.insert("root2".into(), failed());
        f.store.touch_session(&s, t(1790)).unwrap();
        f.enforcer.pass(t(1799));
        assert_eq!(ended(&f, &s), None);
        f.enforcer.pass(t(1800));
        assert_eq!(
            ended(&f, &s).map(|e| e.1),
            Some(EndReason::MaxDuration),
            "the rule of the groups last known"
        );

        // No groups ever known: no limit that depends on them is applied
        // (neither the admins' nor the looser default), the failure is said
        // once, and what does not depend on groups still ends the session.
        let mut g = fixture_with(ADMINS, Arc::new(MemoryStore::new()));
        let s = login(&mut g, "root2", 100, "here", t(0), false);
        g.enforcer.host.groups.insert("root2".into(), failed());
        let mut said = 0;
        for at in [10, 1800, 3600, 4000] {
            g.store.touch_session(&s, t(at - 5)).unwrap();
            let pass = g.enforcer.pass(t(at));
            said += pass
                .events
                .iter()
                .filter(|e| matches!(e, Event::GroupsUnknown { .. }))
                .count();
        }
        assert_eq!(said, 1);
        assert_eq!(ended(&g, &s), None, "left alone");
        assert!(g.log.lock().unwrap().ended.is_empty());
        revoke_user(&g, "r1", "root2", t(4001));
        g.enforcer.pass(t(4002));
        assert_eq!(ended(&g, &s).map(|e| e.1), Some(EndReason::Revoked));
    }

    /// Issue 11: `curfew revoke client SERVICE` ends that service's live
    /// PAM sessions (the kernel's client key is the service).
    #[test]
    fn revoking_a_pam_service_as_a_client_ends_its_sessions() {
        let mut f = fixture();
        let ssh = login(&mut f, "alice", 100, "here", t(0), true);
        let mut other =
            Session::start(SessionKind::Pam, "alice", t(0), Duration::from_secs(300)).unwrap();
        other.host = Some("here".into());
        other.pid = Some(200);
        other.audit_session_id = Some(200);
        other.service = Some("login".into());
        f.store.create_session(&other).unwrap();
        f.store
            .add_revocation(&Revocation {
                id: "r1".into(),
                target: Target::Client("sshd".into()),
                not_before: t(5),
                expires_at: None,
                reason: None,
                actor: "root".into(),
                created_at: t(5),
            })
            .unwrap();
        f.enforcer.pass(t(6));
        assert_eq!(ended(&f, &ssh).map(|e| e.1), Some(EndReason::Revoked));
        assert_eq!(ended(&f, &other.id), None, "another service is not touched");
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"]);
    }

    /// Issue 11: a changed `store` section reopens the store (the rule of
    /// curfew_policy::policy_source, shared with the hook).
    #[test]
    fn a_changed_store_section_reopens_the_store() {
        let mut f = fixture();
        f.enforcer.pass(t(1));
        assert_eq!(f.enforcer.store_generation(), 1);
        f.enforcer.pass(t(2));
        assert_eq!(f.enforcer.store_generation(), 1, "kept while unchanged");
        let path = f.dir.path().join("policy.yaml");
        write_policy(
            &path,
            &format!(
                "{POLICY}audit: {{ syslog: false, file: {:?} }}\nstore: {{ backend: sqlite, path: {:?} }}\n",
                f.dir.path().join("audit.jsonl"),
                f.dir.path().join("other.db")
            ),
        );
        let pass = f.enforcer.pass(t(3));
        let said: Vec<String> = pass.events.iter().map(|e| e.to_string()).collect();
        assert!(
            said.iter().any(|l| l.contains("reopening the store")),
            "{said:?}"
        );
        assert_eq!(f.enforcer.store_generation(), 2, "reopened");
    }

    /// Issue 12, class 3: processes left running after a logout are still
    /// reached by revocations and max_duration, never by idleness.
    #[test]
    fn processes_left_behind_by_a_logout_are_ended_by_revocation_and_max_duration() {
        let mut f = fixture();
        let alice = login(&mut f, "alice", 100, "here", t(0), false);
        let bob = login(&mut f, "bob", 200, "here", t(0), false);
        let quiet = login(&mut f, "carol", 300, "here", t(0), false);
        // An ended session of an earlier boot that had the same audit id as
        // a process now (ids start again at boot), and a cron job's audit
        // session that no session was registered under.
        let mut old = Session::start(
            SessionKind::Pam,
            "dave",
            t(-200_000),
            Duration::from_secs(300),
        )
        .unwrap();
        old.host = Some("here".into());
        old.pid = Some(400);
        old.audit_session_id = Some(400);
        f.store.create_session(&old).unwrap();
        f.store
            .end_session(&old.id, t(-199_000), EndReason::Logout)
            .unwrap();
        // All three log out at once; their setsid'd jobs keep running.
        for id in [&alice, &bob, &quiet] {
            f.store.end_session(id, t(10), EndReason::Logout).unwrap();
        }
        f.enforcer.host.present = [100, 200, 300, 400, 500].into_iter().collect();
        f.enforcer.host.gone.insert(quiet.clone());
        // Long past the 10-minute inactivity: idleness does not apply.
        let pass = f.enforcer.pass(t(1200));
        assert!(pass.complete, "{:?}", pass.events);
        assert!(f.log.lock().unwrap().ended.is_empty(), "{:?}", pass.events);

        revoke_user(&f, "r1", "alice", t(1300));
        revoke_user(&f, "r2", "carol", t(1300));
        revoke_user(&f, "r3", "dave", t(1300));
        let pass = f.enforcer.pass(t(1301));
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"]);
        let line = pass
            .events
            .iter()
            .find(|e| matches!(e, Event::Ended { .. }))
            .unwrap()
            .to_string();
        assert!(
            line.contains("left behind by logged-out session") && line.contains(&alice),
            "{line}"
        );
        // The record keeps its logout: the login did end that way.
        assert_eq!(ended(&f, &alice), Some((t(10), EndReason::Logout)));
        let trail = std::fs::read_to_string(f.dir.path().join("audit.jsonl")).unwrap();
        let rec: serde_json::Value = serde_json::from_str(trail.lines().last().unwrap()).unwrap();
        assert_eq!(rec["event"], "enforcer_end");
        assert_eq!(rec["session"], alice.as_str());
        assert!(
            rec["found_by"]
                .as_str()
                .unwrap()
                .contains("left behind after the logout"),
            "{rec}"
        );

        // bob's job reaches his login's max_duration (1 h) and goes.
        f.enforcer.host.present.remove(&100);
        f.enforcer.pass(t(3599));
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100"]);
        f.enforcer.pass(t(3600));
        assert_eq!(f.log.lock().unwrap().ended, vec!["pid 100", "pid 200"]);
    }

    /// Issue 12, class 7: hosts are told apart by machine id; a host that
    /// shares this one's name never has its sessions ended here.
    #[test]
    fn a_session_of_another_machine_with_the_same_host_name_is_never_touched() {
        let mut f = fixture();
        f.enforcer.machine_id = Some("1".repeat(32));
        let ours = login(&mut f, "alice", 100, "here", t(0), true);
        let twin = login(&mut f, "alice", 200, "here", t(0), true);
        let old = login(&mut f, "alice", 300, "here", t(0), true);
        for (id, m) in [(&ours, "1"), (&twin, "2")] {
            let mut s = f.store.session(id).unwrap().unwrap();
            f.store.end_session(id, t(0), EndReason::Logout).unwrap();
            // Re-create with the machine id (the memory store has no update).
            s.id = format!("{}m", s.id);
            s.machine_id = Some(m.repeat(32));
            f.store.create_session(&s).unwrap();
        }
        revoke_user(&f, "r1", "alice", t(5));
        f.enforcer.pass(t(6));
        assert_eq!(
            ended(&f, &format!("{ours}m")).map(|e| e.1),
            Some(EndReason::Revoked)
        );
        assert_eq!(
            ended(&f, &old).map(|e| e.1),
            Some(EndReason::Revoked),
            "a record without a machine id goes by its host name"
        );
        assert_eq!(
            ended(&f, &format!("{twin}m")),
            None,
            "the twin's is not ours"
        );
        let mut signalled = f.log.lock().unwrap().ended.clone();
        signalled.sort();
        assert_eq!(signalled, vec!["pid 100", "pid 300"]);
    }
}
