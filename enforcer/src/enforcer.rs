//! One pass of the enforcer over this host's live PAM sessions.
//!
//! The pass reads the policy (keeping the last good one), lists the sessions,
//! asks the [`Host`] what it sees of each (processes, terminals), lets the
//! [`timeline`] decide, and acts: writes activity back,
//! warns, or records the end and has the host end the session. Time is an
//! argument; the host is a trait, so the whole pass is tested with a memory
//! store and a scripted host.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use curfew_policy::{
    ActivityKind, ActivitySet, Deny, Policy, RevocationKeys, Session, SessionFilter, SessionKind,
    Store, StoreConfig, StoreError, Subject,
};

use crate::activity::{Io, TrafficMeter};

use crate::error::ProcError;
use crate::members::Members;
use crate::notice;
use crate::policy_source::{PolicyEvent, PolicySource};
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
    /// user can `touch` their own terminal) is no news, never an extension.
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
                        if let Some(at) = curfew_policy::time::observed(at, now) {
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
                if let Some(at) = t
                    .last_output
                    .and_then(|at| curfew_policy::time::observed(at, now))
                {
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
            None => Activity::NoTty,
        }
    }
}

/// This machine, as the enforcer uses it.
pub trait Host {
    /// Called at the start of every pass: take a fresh look at the processes.
    ///
    /// # Errors
    ///
    /// When the processes cannot be read; the pass then ends nothing.
    fn refresh(&mut self) -> Result<(), ProcError>;
    /// The processes and terminals of `session`, as of the last refresh.
    fn observe(&mut self, session: &Session) -> Observation;
    /// The user's groups, for rule matching.
    fn groups(&mut self, user: &str) -> Vec<String>;
    /// Writes a one-line notice to the session's terminals; returns how many
    /// got it.
    fn notify(&mut self, observation: &Observation, line: &str) -> usize;
    /// Ends the sessions (SIGHUP, SIGTERM, SIGKILL), all at once.
    fn end(&mut self, sessions: &[Observation]) -> Vec<Ended>;
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
    /// A session is past its idle deadline, but its terminal cannot be read.
    IdleUnmeasured {
        /// The session.
        session: String,
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
        /// Whether this enforcer recorded the end (false: the store was not
        /// writable; the next pass records it).
        recorded: bool,
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
            Event::IdleUnmeasured { session } => write!(
                f,
                "session {session} looks idle past its deadline, but its terminal cannot be read: not ending it for idleness"
            ),
            Event::Ended {
                session,
                user,
                deny,
                recorded,
                ended,
                membership,
                ..
            } => {
                write!(
                    f,
                    "ended session {session} (user {}): {}; {} process{} signalled ({}, strongest {})",
                    escape(user),
                    escape(&deny.to_string()),
                    ended.signalled.len(),
                    if ended.signalled.len() == 1 { "" } else { "es" },
                    membership,
                    ended.strongest_name()
                )?;
                if !ended.left.is_empty() {
                    let pids: Vec<String> = ended.left.iter().map(|p| p.pid.to_string()).collect();
                    write!(f, "; STILL RUNNING: {}", pids.join(" "))?;
                }
                if !recorded {
                    write!(f, "; the end could not be recorded yet")?;
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

/// The enforcer's state between passes.
pub struct Enforcer<'a, H: Host> {
    /// The machine.
    pub host: H,
    policy: PolicySource,
    store: Option<(StoreConfig, Box<dyn Store>)>,
    open_store: StoreOpener<'a>,
    hostname: String,
    warned: HashMap<String, Warned>,
    unmeasured: HashSet<String>,
    traffic: TrafficMeter,
    last_store_error: Option<String>,
    store_generation: u64,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Everything worth a log line.
    pub events: Vec<Event>,
    /// Whether the pass could look at every session (a policy, a store and
    /// the processes were at hand).
    pub complete: bool,
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
            warned: HashMap::new(),
            unmeasured: HashSet::new(),
            traffic: TrafficMeter::default(),
            last_store_error: None,
            store_generation: 0,
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

    /// One pass at `now`. Its warnings, ends, policy reloads and the start
    /// of a store outage go to the policy's audit trail.
    pub fn pass(&mut self, now: DateTime<Utc>) -> Pass {
        let mut pass = self.pass_unaudited(now);
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

    fn pass_unaudited(&mut self, now: DateTime<Utc>) -> Pass {
        let mut pass = Pass::default();
        if let Some(e) = self.policy.refresh(now) {
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
            Some(store) => store.list_sessions(&filter),
            None => return pass,
        };
        let sessions = match listed {
            Ok(s) => s,
            Err(e) => {
                self.store_error(&mut pass.events, e.to_string());
                return pass;
            }
        };
        self.last_store_error = None;
        if let Err(e) = self.host.refresh() {
            pass.events.push(Event::Host(e.to_string()));
            return pass;
        }
        pass.complete = true;
        let live: HashSet<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        self.warned.retain(|id, _| live.contains(id.as_str()));
        self.unmeasured.retain(|id| live.contains(id.as_str()));
        self.traffic.retain(|id| live.contains(id));

        let mut to_end: Vec<(Session, Observation, Deny, bool)> = Vec::new();
        for s in sessions {
            let groups = self.host.groups(&s.user);
            let subject = Subject {
                user: &s.user,
                groups: &groups,
                service: s.service.as_deref(),
                client: None,
                host: Some(&self.hostname),
            };
            let eff = policy.effective(&subject);
            let store = match &self.store {
                Some((_, s)) => s.as_ref(),
                None => break,
            };
            let revs = match store.revocations_for(&RevocationKeys {
                session: Some(&s.id),
                user: &s.user,
                client: None,
            }) {
                Ok(r) => r,
                Err(e) => {
                    pass.complete = false;
                    pass.events.push(Event::Store(e.to_string()));
                    continue;
                }
            };
            let obs = self.host.observe(&s);
            let counts = eff.activity.value;
            let moved = match &obs.io {
                Io::Counts(c) if obs.ttys.is_empty() => Some(self.traffic.moved(&s.id, c)),
                Io::Denied => None,
                _ => Some(false),
            };
            let activity = obs.activity(counts, moved, now);
            let step = timeline::step(
                &eff,
                &s,
                &revs,
                activity,
                self.warned.get(&s.id).copied(),
                now,
            );
            if let Some(at) = step.touch {
                // Best effort: activity only moves deadlines later, and it is
                // read again from the terminal at the next pass anyway.
                let _ = store.touch_session(&s.id, at);
            }
            match step.action {
                Action::Continue => {}
                Action::Warn(w) => {
                    let line = notice::warning(&w, counts, now);
                    let delivered = self.host.notify(&obs, &line);
                    self.warned.insert(s.id.clone(), w.key());
                    pass.events.push(Event::Warned {
                        session: s.id.clone(),
                        user: s.user.clone(),
                        warning: w,
                        delivered,
                    });
                }
                Action::IdleUnmeasured => {
                    if self.unmeasured.insert(s.id.clone()) {
                        pass.events.push(Event::IdleUnmeasured {
                            session: s.id.clone(),
                        });
                    }
                }
                Action::End(deny) => {
                    // Recorded first, so the reason is ours even if the
                    // session's own logout (close_session, run when sshd gets
                    // the SIGHUP) races us: the first end wins.
                    match store.end_session(&s.id, now, deny.end_reason()) {
                        Ok(true) => to_end.push((s, obs, deny, true)),
                        Ok(false) => pass.events.push(Event::AlreadyEnded {
                            session: s.id.clone(),
                        }),
                        Err(e) => {
                            pass.events.push(Event::Store(e.to_string()));
                            to_end.push((s, obs, deny, false));
                        }
                    }
                }
            }
        }
        if to_end.is_empty() {
            return pass;
        }
        for (_, obs, deny, _) in &to_end {
            self.host.notify(obs, &notice::closing(deny));
        }
        let observations: Vec<Observation> = to_end.iter().map(|(_, o, _, _)| o.clone()).collect();
        let results = self.host.end(&observations);
        for ((s, obs, deny, recorded), ended) in to_end.into_iter().zip(results) {
            self.warned.remove(&s.id);
            pass.events.push(Event::Ended {
                session: s.id,
                user: s.user,
                service: s.service,
                deny,
                recorded,
                ended,
                membership: describe(&obs.members),
            });
        }
        pass
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
            Event::Policy(PolicyEvent::Loaded { origin }) => AuditEvent::PolicyReloaded {
                file: origin.into(),
                store_changed: false,
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
                found_by: membership.clone(),
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
        Membership::Audit(id) => format!("audit session {id}"),
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
    struct Scripted {
        input: HashMap<String, Option<DateTime<Utc>>>,
        output: HashMap<String, DateTime<Utc>>,
        /// A terminal-less session's processes' I/O counter.
        io: HashMap<String, u64>,
        log: Arc<Mutex<Log>>,
    }

    impl Host for Scripted {
        fn refresh(&mut self) -> Result<(), ProcError> {
            Ok(())
        }
        fn observe(&mut self, s: &Session) -> Observation {
            let pid = s.pid.unwrap_or(0) as i32;
            let members = Members {
                membership: if pid == 0 {
                    Membership::Unknown(Unfound::NoIdentity)
                } else {
                    Membership::Audit(pid as u32)
                },
                procs: if pid == 0 {
                    vec![]
                } else {
                    vec![ProcId {
                        pid,
                        start_ticks: 1,
                    }]
                },
                tty_nrs: vec![],
            };
            let ttys = match self.input.get(&s.id) {
                Some(last_input) => vec![Tty {
                    path: format!("/dev/pts/{pid}").into(),
                    rdev: 1,
                    last_input: *last_input,
                    last_output: self.output.get(&s.id).copied(),
                }],
                None => vec![],
            };
            let io = match (ttys.is_empty(), self.io.get(&s.id)) {
                (true, Some(n)) => Io::Counts(vec![(
                    ProcId {
                        pid,
                        start_ticks: 1,
                    },
                    *n,
                )]),
                _ => Io::NotMeasured,
            };
            Observation { members, ttys, io }
        }
        fn groups(&mut self, _user: &str) -> Vec<String> {
            Vec::new()
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
            let mut log = self.log.lock().unwrap();
            sessions
                .iter()
                .map(|o| {
                    for p in &o.members.procs {
                        log.ended.push(format!("pid {}", p.pid));
                    }
                    Ended {
                        signalled: o.members.procs.iter().copied().collect(),
                        strongest: 1,
                        left: vec![],
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

    /// A shared memory store handed to the enforcer through its opener.
    struct Shared(Arc<MemoryStore>);
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
            request_termination(id: &str, at: DateTime<Utc>) -> Result<bool, curfew_policy::StoreError>;
            end_session(id: &str, at: DateTime<Utc>, r: EndReason) -> Result<bool, curfew_policy::StoreError>;
            add_revocation(r: &Revocation) -> Result<(), curfew_policy::StoreError>;
            remove_revocation(id: &str) -> Result<Option<Revocation>, curfew_policy::StoreError>;
            list_revocations() -> Result<Vec<Revocation>, curfew_policy::StoreError>;
            revocations_for(k: &RevocationKeys<'_>) -> Result<curfew_policy::RevocationSet, curfew_policy::StoreError>;
            set_timeout_preference(u: &str, t: Option<Duration>) -> Result<(), curfew_policy::StoreError>;
            timeout_preference(u: &str) -> Result<Option<Duration>, curfew_policy::StoreError>;
        }
    }

    const POLICY: &str =
        "version: 1\nsession: { max_duration: 1h, inactivity: 10m, warn_before: 2m }\n";

    fn write_policy(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("policy.yaml");
        write_policy(
            &path,
            &format!(
                "{POLICY}audit: {{ syslog: false, file: {:?} }}\n",
                dir.path().join("audit.jsonl")
            ),
        );
        let store = Arc::new(MemoryStore::new());
        let log = Arc::new(Mutex::new(Log::default()));
        let opener_store = store.clone();
        let enforcer = Enforcer::new(
            Scripted {
                input: HashMap::new(),
                output: HashMap::new(),
                io: HashMap::new(),
                log: log.clone(),
            },
            PolicySource::new(Some(path)),
            "here".into(),
            Box::new(move |_| Ok(Box::new(Shared(opener_store.clone())) as Box<dyn Store>)),
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
        f.store.request_termination(&other, t(2)).unwrap();
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
        assert!(notices[0].1.contains("Press any key"), "{notices:?}");
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
                input: HashMap::new(),
                output: HashMap::new(),
                io: HashMap::new(),
                log: f.log.clone(),
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
                    Ok(Box::new(Shared(opener_store.clone())) as Box<dyn Store>)
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
        g.store.request_termination(&s, t(1)).unwrap();
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
        f.store.request_termination(&s, t(1)).unwrap();
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
        assert_eq!(
            ended_at.get(&stalls),
            Some(&(700, EndReason::Idle)),
            "idle 10 min after its last byte (at 100 s)"
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
        assert!(bob.last_seen >= t(1498), "{}", bob.last_seen);
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
}
