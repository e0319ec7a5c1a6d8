//! The one decision path for OIDC sessions, shared by [`PolicyIssuer`] and
//! the HTTP token hook: the policy in force, the store and the clock, and
//! nothing else. Every bound and deadline comes from `curfew_policy::decide`.
//!
//! Store calls block: async servers call the gate on a blocking thread
//! (`tokio::task::spawn_blocking`).
//!
//! [`PolicyIssuer`]: crate::PolicyIssuer

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use curfew_policy::admission::{admit_effective, store_failure_verdict, FailureVerdict};
use curfew_policy::store::FailedStore;
use curfew_policy::{
    Admission, Allow, Caller, Deny, Effective, EndReason, GroupsLookup, Policy, RevocationKeys,
    RevocationSet, Session, SessionKind, SessionState, Store, StoreAnswer, StoreConfig, StoreError,
    Subject, Which, Who,
};

use crate::claims::SessionClaims;
use crate::clock::Clock;
use crate::policy_file::PolicyCell;
use curfew_policy::audit::{
    revocation_of, AuditEvent, AuditSink, Grant, Priority, RefusalReason, StoreOutcome,
};
use curfew_policy::journal;

/// Who a token is for.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// The user (the grant's owner, the ID token's subject).
    pub user: &'a str,
    /// The user's groups, from the grant or the claims.
    pub groups: &'a [String],
    /// The OAuth2 client.
    pub client_id: &'a str,
    /// A persistent login ("remember me", an explicit signal of the
    /// server's login, never the `offline_access` scope):
    /// `remember_me.max_duration` and `remember_me.inactivity` apply.
    pub remember_me: bool,
}

/// What the caller knows about a session without asking the store. Used
/// only when the store is unavailable and the policy says
/// `store.on_unavailable: allow`: the decision then rests on these facts
/// and an empty revocation list.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// When the session started.
    pub started_at: DateTime<Utc>,
    /// Its last activity the caller saw.
    pub last_activity: DateTime<Utc>,
}

/// Whether resuming a session counts as activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A token refresh: the user is active, the inactivity clock restarts.
    Record,
    /// A look (resource access, introspection): no activity is recorded.
    Inspect,
}

/// An allowed session at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The curfew session id.
    pub session_id: String,
    /// When the session started.
    pub started_at: DateTime<Utc>,
    /// The moment of the decision.
    pub at: DateTime<Utc>,
    /// The decision's deadlines.
    pub allow: Allow,
    /// The banner for this session (empty for none).
    pub banner: String,
    /// False when the store was unavailable and the policy let the request
    /// through anyway (`store.on_unavailable: allow`): nothing was recorded.
    pub recorded: bool,
}

impl Granted {
    /// The claims a token issued now carries.
    pub fn claims(&self) -> SessionClaims {
        SessionClaims::new(&self.session_id, &self.allow, &self.banner)
    }

    /// The `token_issued` audit event of tokens issued for `p` now.
    pub fn audit_event(&self, p: &Principal<'_>, grant: Grant) -> AuditEvent {
        AuditEvent::TokenIssued {
            user: p.user.to_owned(),
            client: p.client_id.to_owned(),
            session: self.session_id.clone(),
            grant,
            expires_at: self.allow.token_expires_at,
            recorded: self.recorded,
        }
    }
}

/// Why a session may not go on.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The policy says no: revoked, terminated, too old or idle.
    #[error("{0}")]
    Denied(Deny),
    /// The session has already ended (logout, or an earlier denial).
    #[error("session {id} has ended ({})", reason.map_or("unknown reason", |r| r.as_str()))]
    Ended {
        /// The session.
        id: String,
        /// Why it ended, as recorded.
        reason: Option<EndReason>,
    },
    /// The store knows no such session.
    #[error("session {0} is unknown")]
    UnknownSession(String),
    /// The session belongs to another user or client than the token's.
    #[error("session {0} belongs to another user or client")]
    Mismatch(String),
    /// The store failed, and the policy does not let requests through
    /// without it (or the failure was not one of availability).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    /// The stable reason of the audit trail's `reason` field.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Refusal::Denied(d) => RefusalReason::of_deny(d),
            Refusal::Ended { .. } => RefusalReason::Ended,
            Refusal::UnknownSession(_) => RefusalReason::UnknownSession,
            Refusal::Mismatch(_) => RefusalReason::Mismatch,
            Refusal::Store(_) => RefusalReason::Store,
        }
    }

    /// The refusal as an audit event: a refused OIDC login (`grant` is
    /// [`Grant::Issue`]: a first token issue, or the hook's first request
    /// of a login) or a refused refresh.
    pub fn audit_event(
        &self,
        p: &Principal<'_>,
        session: Option<&str>,
        grant: Grant,
    ) -> AuditEvent {
        let revocation = match self {
            Refusal::Denied(d) => revocation_of(d),
            _ => None,
        };
        match grant {
            Grant::Issue => AuditEvent::LoginRefused {
                user: p.user.to_owned(),
                service: None,
                client: Some(p.client_id.to_owned()),
                reason: self.reason(),
                revocation,
                detail: self.to_string(),
            },
            Grant::Refresh => AuditEvent::RefreshRefused {
                user: p.user.to_owned(),
                client: p.client_id.to_owned(),
                session: session.map(str::to_owned),
                reason: self.reason(),
                revocation,
                detail: self.to_string(),
            },
        }
    }

    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Denied(d) => d.end_reason().as_str(),
            Refusal::Ended { .. } => "ended",
            Refusal::UnknownSession(_) => "unknown_session",
            Refusal::Mismatch(_) => "mismatch",
            Refusal::Store(_) => "store",
        }
    }
}

/// The store in use, and how it came to be.
#[derive(Clone)]
struct StoreSlot {
    store: Arc<dyn Store>,
    /// The `store` section the gate opened it for; `None` for the store
    /// handed to [`Gate::new`].
    config: Option<StoreConfig>,
    /// It is a [`FailedStore`]: the policy's store could not be opened.
    failed: bool,
}

struct Inner {
    policy: PolicyCell,
    /// The store in use.
    store: RwLock<StoreSlot>,
    clock: Arc<dyn Clock>,
    host: Option<String>,
}

/// The policy, the store and the clock: decides OIDC sessions. Cloning
/// shares it.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

/// What the store holds of one session, as [`Gate::resume`] read it.
enum Record {
    /// The record.
    Found(Box<Session>),
    /// The store knows no such session.
    Unknown,
    /// The store was unavailable and the policy goes on without it.
    Unread,
}

/// The store's reads for one decision; empty where the store was
/// unavailable and the policy allows going on without it.
struct Reads {
    preference: Option<std::time::Duration>,
    revocations: RevocationSet,
    degraded: bool,
}

impl Gate {
    /// A gate over the policy in `policy`, `store` and `clock`.
    pub fn new(policy: PolicyCell, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Gate {
            inner: Arc::new(Inner {
                policy,
                store: RwLock::new(StoreSlot {
                    store,
                    config: None,
                    failed: false,
                }),
                clock,
                host: None,
            }),
        }
    }

    /// The same gate, naming this host in the sessions it records and in
    /// rule matching (`match.hosts`).
    pub fn with_host(self, host: Option<String>) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            policy: shared.policy.clone(),
            store: RwLock::new(
                shared
                    .store
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
            clock: shared.clock.clone(),
            host: shared.host.clone(),
        });
        Gate {
            inner: Arc::new(Inner { host, ..inner }),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &PolicyCell {
        &self.inner.policy
    }

    fn slot(&self) -> StoreSlot {
        self.inner
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_slot(&self, slot: StoreSlot) {
        *self.inner.store.write().unwrap_or_else(|e| e.into_inner()) = slot;
    }

    /// The store in use.
    pub fn store(&self) -> Arc<dyn Store> {
        self.slot().store
    }

    /// Follows a changed `store` section of the policy in force, the same
    /// way the enforcer does (docs/architecture.md, "One policy source"):
    /// when the policy names another store than the one in use, the new
    /// one is opened with `open` and replaces the old; if it cannot be
    /// opened, a [`FailedStore`] takes its place, so every request follows
    /// the failure table for that error (never the old store), and the
    /// next call tries again. Returns a line to log when something
    /// changed. A store handed to [`Gate::new`] is kept until the policy's
    /// `store` section first changes from the one in force at start.
    pub fn sync_store(
        &self,
        initial: &StoreConfig,
        open: impl FnOnce(&StoreConfig) -> Result<Box<dyn Store>, StoreError>,
    ) -> Option<String> {
        let policy = self.inner.policy.current();
        let slot = self.slot();
        let wanted = &policy.store;
        let current = slot.config.as_ref().unwrap_or(initial);
        if current == wanted && !slot.failed {
            return None;
        }
        match open(wanted) {
            Ok(s) => {
                let line = format!(
                    "opened the store {} that the policy now names",
                    s.location()
                );
                self.set_slot(StoreSlot {
                    store: Arc::from(s),
                    config: Some(wanted.clone()),
                    failed: false,
                });
                Some(line)
            }
            Err(e) => {
                let first = !slot.failed || slot.config.as_ref() != Some(wanted);
                self.set_slot(StoreSlot {
                    store: Arc::new(FailedStore::new(slot.store.location(), e.clone())),
                    config: Some(wanted.clone()),
                    failed: true,
                });
                first.then(|| {
                    format!(
                        "cannot open the store the policy now names: {e}; requests are answered \
                         as store.on_unavailable says for this failure until it opens"
                    )
                })
            }
        }
    }

    /// The gate's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The canonical subject the admission kernel decides for.
    fn who<'a>(&'a self, p: &Principal<'a>) -> Who<'a> {
        Who {
            user: p.user,
            groups: GroupsLookup::Known(p.groups),
            service: None,
            client: Some(p.client_id),
            host: self.inner.host.as_deref(),
        }
    }

    fn subject<'a>(&'a self, p: &Principal<'a>) -> Subject<'a> {
        Subject {
            user: p.user,
            groups: p.groups,
            service: None,
            client: Some(p.client_id),
            host: self.inner.host.as_deref(),
        }
    }

    /// Records `event` in the policy's audit trail (source `curfew-oidc`),
    /// at the gate's clock. A failure to write is a loud line on stderr; the
    /// decision stands (the token was issued or refused either way).
    pub fn audit(&self, event: &AuditEvent) {
        let policy = self.inner.policy.current();
        let sink = AuditSink::new(&policy.audit, "curfew-oidc", self.inner.host.clone());
        if let Err(e) = sink.record(self.now(), event) {
            eprintln!(
                "{}curfew-oidc: error: {} not audited: {e}",
                journal::prefix(Priority::Err),
                event.name()
            );
        }
    }

    /// Turns a store failure into a refusal, unless the store is merely
    /// unavailable and the policy says to go on without it.
    fn degrade(
        &self,
        policy: &Policy,
        p: &Principal<'_>,
        what: &str,
        e: StoreError,
    ) -> Result<(), Refusal> {
        // The one failure table (curfew_policy::admission): only an
        // unreachable store may be degraded, and only by an explicit
        // `on_unavailable: allow`. The hook is never a setuid program.
        match store_failure_verdict(&e, policy.store.on_unavailable, Caller::default()) {
            FailureVerdict::Degrade => {
                eprintln!(
                    "{}curfew-oidc: warning: {what}: {e}; going on WITHOUT the store because \
                     store.on_unavailable is allow (revocations are not checked)",
                    journal::prefix(Priority::Err)
                );
                self.audit(&AuditEvent::StoreUnavailable {
                    store: Some(self.store().location()),
                    outcome: StoreOutcome::Degraded,
                    user: Some(p.user.to_owned()),
                    client: Some(p.client_id.to_owned()),
                    detail: format!("{what}: {e}"),
                });
                Ok(())
            }
            FailureVerdict::Deny(why) => {
                eprintln!(
                    "{}curfew-oidc: error: {what}: {e} ({why})",
                    journal::prefix(Priority::Err)
                );
                Err(Refusal::Store(e))
            }
        }
    }

    fn reads(
        &self,
        policy: &Policy,
        p: &Principal<'_>,
        keys: &RevocationKeys<'_>,
    ) -> Result<Reads, Refusal> {
        let store = &self.store();
        let mut degraded = false;
        let preference = match store.timeout_preference(p.user) {
            Ok(p) => p,
            Err(e) => {
                self.degrade(policy, p, "reading a token lifetime", e)?;
                degraded = true;
                None
            }
        };
        let revocations = if degraded {
            RevocationSet::new()
        } else {
            match store.revocations_for(keys) {
                Ok(r) => r,
                Err(e) => {
                    self.degrade(policy, p, "reading revocations", e)?;
                    degraded = true;
                    RevocationSet::new()
                }
            }
        };
        Ok(Reads {
            preference,
            revocations,
            degraded,
        })
    }

    /// Whether `p` may log in now (no session is recorded): a revoked user
    /// or client is refused before a code is ever issued. Returns the
    /// banner to show. A refusal is a `login_refused` event of the audit
    /// trail.
    pub fn admit(&self, p: &Principal<'_>) -> Result<String, Refusal> {
        self.admit_unaudited(p).inspect_err(|e| {
            self.audit(&e.audit_event(p, None, Grant::Issue));
        })
    }

    fn admit_unaudited(&self, p: &Principal<'_>) -> Result<String, Refusal> {
        let policy = self.inner.policy.current();
        let now = self.now();
        let eff = policy.effective(&self.subject(p));
        let state = SessionState {
            remember_me: p.remember_me,
            ..SessionState::login(p.user, Some(p.client_id), now)
        };
        let who = self.who(p);
        let reads = self.reads(&policy, p, &who.revocation_keys(state.id))?;
        decide_oidc(&eff, &who, &state, &reads, policy.store.on_unavailable, now)?;
        Ok(eff.banner.value.to_owned())
    }

    /// The banner for `p`, whatever the decision.
    pub fn banner(&self, p: &Principal<'_>) -> String {
        let policy = self.inner.policy.current();
        let eff = policy.effective(&self.subject(p));
        eff.banner.value.to_owned()
    }

    /// Starts a session for `p`: decides at the gate's `now`, and if
    /// allowed records the session (id `id`, or a fresh random one; started
    /// at `started_at`, or now) with the effective token lifetime and, as
    /// its remote address (the record's `rhost`, as PAM records
    /// `PAM_RHOST`), `remote`: the address of the user's client at the
    /// sign-in, when the caller knows it (an IP address by its type, so
    /// nothing else can be recorded there).
    pub fn start(
        &self,
        p: &Principal<'_>,
        id: Option<&str>,
        started_at: Option<DateTime<Utc>>,
        remote: Option<IpAddr>,
    ) -> Result<Granted, Refusal> {
        self.start_with(p, id, started_at, remote, None)
    }

    /// [`Gate::start`], deciding on `reads` when the caller has read them
    /// already (for the same user, client and session id), else reading.
    fn start_with(
        &self,
        p: &Principal<'_>,
        id: Option<&str>,
        started_at: Option<DateTime<Utc>>,
        remote: Option<IpAddr>,
        reads: Option<Reads>,
    ) -> Result<Granted, Refusal> {
        let policy = self.inner.policy.current();
        let now = self.now();
        let eff = policy.effective(&self.subject(p));
        let state = SessionState {
            id,
            started_at: started_at.unwrap_or(now),
            remember_me: p.remember_me,
            ..SessionState::login(p.user, Some(p.client_id), now)
        };
        let who = self.who(p);
        let reads = match reads {
            Some(r) => r,
            None => self.reads(&policy, p, &who.revocation_keys(state.id))?,
        };
        let allow = decide_oidc(&eff, &who, &state, &reads, policy.store.on_unavailable, now)?;
        let lifetime = allow.token_lifetime;
        let mut session = Session::start(SessionKind::Oidc, p.user, now, lifetime)
            .map_err(|e| Refusal::Store(StoreError::Random(e)))?;
        if let Some(id) = id {
            session.id = id.to_owned();
        }
        session.started_at = state.started_at;
        session.client_id = Some(p.client_id.to_owned());
        session.host = self.inner.host.clone();
        session.rhost = remote.map(|a| a.to_canonical().to_string());
        session.remember_me = p.remember_me;
        let mut recorded = !reads.degraded;
        if recorded {
            if let Err(e) = self.store().create_session(&session) {
                self.degrade(&policy, p, "recording a session", e)?;
                recorded = false;
            }
        }
        Ok(Granted {
            session_id: session.id,
            started_at: state.started_at,
            at: now,
            allow,
            banner: eff.banner.value.to_owned(),
            recorded,
        })
    }

    /// Decides whether session `id` of `p` may go on now; with
    /// [`Activity::Record`] an allowed session's inactivity clock restarts.
    /// A denied session is ended in the store with the denial's reason.
    pub fn resume(
        &self,
        id: &str,
        p: &Principal<'_>,
        known: &Known,
        activity: Activity,
    ) -> Result<Granted, Refusal> {
        let policy = self.inner.policy.current();
        let (record, reads) = self.session_reads(&policy, p, id)?;
        let record = match record {
            Record::Unknown => return Err(Refusal::UnknownSession(id.to_owned())),
            Record::Found(s) => Some(*s),
            Record::Unread => None,
        };
        self.resume_read(&policy, id, p, known, activity, record, reads)
    }

    /// Resumes session `id` of `p`, recording activity (a token request of
    /// a login); if the store knows no such session and `start` is given,
    /// starts it instead, with id `id`, started at `start`'s time (or now),
    /// deciding on the same reads: one read of the store either way (the
    /// token hook's path). Says how the tokens are granted:
    /// [`Grant::Refresh`] for a resumed session, [`Grant::Issue`] for one
    /// started now. Without `start`, an unknown session is
    /// [`Refusal::UnknownSession`].
    pub fn resume_or_start(
        &self,
        id: &str,
        p: &Principal<'_>,
        known: &Known,
        start: Option<Option<DateTime<Utc>>>,
    ) -> (Result<Granted, Refusal>, Grant) {
        let policy = self.inner.policy.current();
        let (record, reads) = match self.session_reads(&policy, p, id) {
            Ok(r) => r,
            Err(e) => return (Err(e), Grant::Refresh),
        };
        let record = match (record, start) {
            (Record::Unknown, None) => {
                return (Err(Refusal::UnknownSession(id.to_owned())), Grant::Refresh)
            }
            (Record::Unknown, Some(started_at)) => {
                return (
                    self.start_with(p, Some(id), started_at, None, Some(reads)),
                    Grant::Issue,
                )
            }
            (Record::Found(s), _) => Some(*s),
            (Record::Unread, _) => None,
        };
        (
            self.resume_read(&policy, id, p, known, Activity::Record, record, reads),
            Grant::Refresh,
        )
    }

    /// Reads session `id` and what deciding it needs, in one store call
    /// ([`Store::session_reads`]); a failure is degraded or refused as
    /// [`Gate::degrade`] says.
    fn session_reads(
        &self,
        policy: &Policy,
        p: &Principal<'_>,
        id: &str,
    ) -> Result<(Record, Reads), Refusal> {
        let keys = self.who(p).revocation_keys(Some(id));
        match self.store().session_reads(id, &keys) {
            Ok(r) => Ok((
                match r.session {
                    Some(s) => Record::Found(Box::new(s)),
                    None => Record::Unknown,
                },
                Reads {
                    preference: r.preference,
                    revocations: r.revocations,
                    degraded: false,
                },
            )),
            Err(e) => {
                self.degrade(policy, p, "reading a session", e)?;
                Ok((
                    Record::Unread,
                    Reads {
                        preference: None,
                        revocations: RevocationSet::new(),
                        degraded: true,
                    },
                ))
            }
        }
    }

    /// The decision of [`Gate::resume`] once the store was read: `record`
    /// is the session (`None`: the store was unavailable and the policy
    /// goes on without it).
    #[allow(clippy::too_many_arguments)]
    fn resume_read(
        &self,
        policy: &Policy,
        id: &str,
        p: &Principal<'_>,
        known: &Known,
        activity: Activity,
        record: Option<Session>,
        mut reads: Reads,
    ) -> Result<Granted, Refusal> {
        let now = self.now();
        let store = &self.store();
        if let Some(s) = &record {
            if s.user != p.user || s.client_id.as_deref() != Some(p.client_id) {
                return Err(Refusal::Mismatch(id.to_owned()));
            }
            if !s.is_live() {
                return Err(Refusal::Ended {
                    id: id.to_owned(),
                    reason: s.end_reason,
                });
            }
        }
        let state = match &record {
            Some(s) => SessionState::of(s, s.last_seen),
            None => SessionState {
                id: Some(id),
                started_at: known.started_at,
                last_activity: known.last_activity,
                remember_me: p.remember_me,
                ..SessionState::login(p.user, Some(p.client_id), now)
            },
        };
        let eff = policy.effective(&self.subject(p));
        let who = self.who(p);
        reads.degraded |= record.is_none();
        let on_unavailable = policy.store.on_unavailable;
        let mut allow = match decide_oidc(&eff, &who, &state, &reads, on_unavailable, now) {
            Ok(a) => a,
            Err(Refusal::Denied(d)) => {
                if !reads.degraded {
                    if let Err(e) = store.end_session(id, now, d.end_reason()) {
                        eprintln!(
                            "{}curfew-oidc: error: ending session {id}: {e}",
                            journal::prefix(Priority::Err)
                        );
                    }
                }
                return Err(Refusal::Denied(d));
            }
            Err(other) => return Err(other),
        };
        if activity == Activity::Record {
            // A touch that would store the `last_seen` already stored (a
            // request within the same millisecond as the last one, at
            // SQLite's and Redis's precision) is not made: the record would
            // not change, and the session was live when it was just read.
            let unchanged = record
                .as_ref()
                .is_some_and(|s| stores_nothing_new(s.last_seen, now, store.time_precision()));
            if !reads.degraded && !unchanged {
                match store.touch_session(id, now) {
                    Ok(true) => {}
                    // Ended between our read and now (a logout, the enforcer).
                    Ok(false) => {
                        return Err(Refusal::Ended {
                            id: id.to_owned(),
                            reason: None,
                        })
                    }
                    Err(e) => {
                        self.degrade(policy, p, "recording activity", e)?;
                        reads.degraded = true;
                    }
                }
            }
            // The deadlines as they stand after this activity.
            let active = SessionState {
                last_activity: now,
                ..state
            };
            allow = decide_oidc(&eff, &who, &active, &reads, on_unavailable, now)?;
        }
        Ok(Granted {
            session_id: id.to_owned(),
            started_at: state.started_at,
            at: now,
            allow,
            banner: eff.banner.value.to_owned(),
            recorded: !reads.degraded,
        })
    }

    /// Ends session `id` (a logout: RFC 7009 revocation). False if it had
    /// ended already or is unknown.
    pub fn end(&self, id: &str, reason: EndReason) -> Result<bool, StoreError> {
        self.store().end_session(id, self.now(), reason)
    }
}

/// Whether recording activity at `now` in a store that keeps times at
/// `precision` would leave a stored `last_seen` as it is: `now`, cut down
/// to the precision, is not after it.
fn stores_nothing_new(
    last_seen: DateTime<Utc>,
    now: DateTime<Utc>,
    precision: std::time::Duration,
) -> bool {
    use chrono::DurationRound;
    let stored = match chrono::TimeDelta::from_std(precision) {
        Ok(p) if !p.is_zero() => match now.duration_trunc(p) {
            Ok(t) => t,
            Err(_) => return false,
        },
        _ => now,
    };
    stored <= last_seen
}

/// The admission kernel's decision for an OIDC session whose store reads
/// succeeded (a failed read went through [`Gate::degrade`] first).
fn decide_oidc(
    eff: &Effective<'_>,
    who: &Who<'_>,
    state: &SessionState<'_>,
    reads: &Reads,
    on_unavailable: curfew_policy::OnUnavailable,
    now: DateTime<Utc>,
) -> Result<Allow, Refusal> {
    let answer = StoreAnswer::Read {
        revocations: &reads.revocations,
        preference: reads.preference,
    };
    match admit_effective(
        eff,
        who,
        &Which::Session(*state),
        answer,
        on_unavailable,
        Caller::default(),
        now,
    ) {
        Admission::Allow(a)
        | Admission::Degraded(curfew_policy::admission::Degraded { allow: a, .. }) => Ok(a),
        Admission::Deny(d) => Err(Refusal::Denied(d)),
        // Not reached with a read answer and known groups; answered as a
        // store failure (503) all the same.
        Admission::Unusable(u) => Err(Refusal::Store(StoreError::Unavailable {
            location: "curfew-oidc".into(),
            detail: u.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{Duration as CDuration, TimeZone};
    use curfew_policy::store::MemoryStore;
    use curfew_policy::{Revocation, Target};

    const POLICY: &str = r#"
version: 1
session:
  timeout: { default: 5m, min: 1m, max: 1h }
  max_duration: 1h
  inactivity: 10m
  warn_before: 2m
  remember_me: { max_duration: 2d }
banner: { text: "Authorized use only." }
rules:
  - name: ci
    match: { clients: [ci] }
    session: { max_duration: 20m }
    banner: { text: "" }
"#;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn gate() -> (Gate, Arc<ManualClock>, Arc<MemoryStore>) {
        let clock = Arc::new(ManualClock::new(t0()));
        let store = Arc::new(MemoryStore::new());
        let policy = Policy::parse(POLICY, "policy.yaml").unwrap();
        let gate = Gate::new(PolicyCell::new(policy), store.clone(), clock.clone());
        (gate, clock, store)
    }

    fn alice(client: &str) -> Principal<'_> {
        Principal {
            user: "alice",
            groups: &[],
            client_id: client,
            remember_me: false,
        }
    }

    fn known() -> Known {
        Known {
            started_at: t0(),
            last_activity: t0(),
        }
    }

    #[test]
    fn start_records_a_session_with_the_effective_lifetime() {
        let (gate, _, store) = gate();
        let g = gate.start(&alice("web"), None, None, None).unwrap();
        assert!(g.recorded);
        assert_eq!(g.allow.token_expires_at, t0() + CDuration::minutes(5));
        assert_eq!(g.allow.idle_deadline, t0() + CDuration::minutes(10));
        assert_eq!(g.allow.absolute_deadline, t0() + CDuration::hours(1));
        assert_eq!(g.banner, "Authorized use only.");
        let s = store.session(&g.session_id).unwrap().unwrap();
        assert_eq!(s.kind, SessionKind::Oidc);
        assert_eq!(s.client_id.as_deref(), Some("web"));
        assert_eq!(s.timeout.as_secs(), 300);
        assert_eq!(s.rhost, None, "no address known, none recorded");
    }

    /// Issue 15: the user's address at the sign-in is the session's remote
    /// address, as PAM records PAM_RHOST; an IPv4 address seen through an
    /// IPv6 socket is recorded as IPv4.
    #[test]
    fn start_records_the_remote_address() {
        let (gate, _, store) = gate();
        for (addr, want) in [
            ("192.0.2.7", "192.0.2.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:192.0.2.8", "192.0.2.8"),
        ] {
            let g = gate
                .start(&alice("web"), None, None, Some(addr.parse().unwrap()))
                .unwrap();
            let s = store.session(&g.session_id).unwrap().unwrap();
            assert_eq!(s.rhost.as_deref(), Some(want));
        }
    }

    #[test]
    fn a_users_own_lifetime_is_honoured_within_bounds() {
        let (gate, _, store) = gate();
        store
            .set_timeout_preference("alice", Some(std::time::Duration::from_secs(900)))
            .unwrap();
        let g = gate.start(&alice("web"), None, None, None).unwrap();
        assert_eq!(g.allow.token_expires_at, t0() + CDuration::minutes(15));
        // A preference outside the (since narrowed) bounds is clamped by the policy.
        store
            .set_timeout_preference("alice", Some(std::time::Duration::from_secs(7200)))
            .unwrap();
        let g = gate.start(&alice("web"), None, None, None).unwrap();
        assert_eq!(g.allow.token_expires_at, t0() + CDuration::hours(1));
    }

    #[test]
    fn resume_records_activity_and_refuses_when_idle() {
        let (gate, clock, store) = gate();
        let g = gate.start(&alice("web"), None, None, None).unwrap();
        clock.advance(CDuration::minutes(9));
        let r = gate
            .resume(&g.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap();
        assert_eq!(r.allow.idle_deadline, t0() + CDuration::minutes(19));
        // Inspecting is no activity.
        clock.advance(CDuration::minutes(9));
        gate.resume(&g.session_id, &alice("web"), &known(), Activity::Inspect)
            .unwrap();
        clock.advance(CDuration::minutes(2));
        let e = gate
            .resume(&g.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap_err();
        assert!(matches!(e, Refusal::Denied(Deny::Idle { .. })), "{e}");
        let s = store.session(&g.session_id).unwrap().unwrap();
        assert_eq!(s.end_reason, Some(EndReason::Idle));
        let e = gate
            .resume(&g.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap_err();
        assert!(matches!(e, Refusal::Ended { .. }), "{e}");
    }

    #[test]
    fn a_touch_is_skipped_only_when_it_would_store_nothing_new() {
        let ms = std::time::Duration::from_millis(1);
        let exact = std::time::Duration::ZERO;
        let stored = t0() + CDuration::milliseconds(1); // x.001 as stored
        let at = t0() + CDuration::microseconds(1_400); // x.0014
        assert!(stores_nothing_new(stored, at, ms), "the same millisecond");
        assert!(
            !stores_nothing_new(stored, at + CDuration::microseconds(600), ms),
            "the next millisecond is stored"
        );
        assert!(
            !stores_nothing_new(stored, at, exact),
            "a store keeping times as given moves to x.0014"
        );
        assert!(stores_nothing_new(at, at, exact));
        assert!(
            stores_nothing_new(stored + CDuration::seconds(1), at, ms),
            "last_seen never moves back"
        );
    }

    /// Two refreshes within one millisecond on SQLite (millisecond times):
    /// the second writes nothing, and its deadlines still count from its
    /// own moment; the next millisecond's refresh is recorded.
    #[test]
    fn refreshes_within_a_millisecond_record_the_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(curfew_policy::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let clock = Arc::new(ManualClock::new(t0()));
        let policy = Policy::parse(POLICY, "policy.yaml").unwrap();
        let gate = Gate::new(PolicyCell::new(policy), store.clone(), clock.clone());
        let g = gate.start(&alice("web"), None, None, None).unwrap();
        let resume = || {
            gate.resume(&g.session_id, &alice("web"), &known(), Activity::Record)
                .unwrap()
        };
        let last_seen = || store.session(&g.session_id).unwrap().unwrap().last_seen;
        clock.set(t0() + CDuration::microseconds(5_000_200));
        resume();
        assert_eq!(last_seen(), t0() + CDuration::milliseconds(5_000));
        clock.set(t0() + CDuration::microseconds(5_000_900));
        let r = resume();
        assert_eq!(last_seen(), t0() + CDuration::milliseconds(5_000));
        assert_eq!(
            r.allow.idle_deadline,
            t0() + CDuration::microseconds(5_000_900) + CDuration::minutes(10)
        );
        clock.set(t0() + CDuration::microseconds(5_001_100));
        resume();
        assert_eq!(last_seen(), t0() + CDuration::milliseconds(5_001));
    }

    #[test]
    fn max_duration_and_remember_me() {
        let (gate, clock, _) = gate();
        let short = gate.start(&alice("web"), None, None, None).unwrap();
        let p = Principal {
            remember_me: true,
            ..alice("web")
        };
        let long = gate.start(&p, None, None, None).unwrap();
        assert_eq!(long.allow.absolute_deadline, t0() + CDuration::days(2));
        for _ in 0..7 {
            clock.advance(CDuration::minutes(9));
            gate.resume(&long.session_id, &p, &known(), Activity::Record)
                .unwrap();
        }
        let e = gate
            .resume(&short.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap_err();
        assert!(matches!(e, Refusal::Denied(_)), "{e}");
        let (gate, clock, _) = self::gate();
        let s = gate.start(&alice("web"), None, None, None).unwrap();
        for _ in 0..6 {
            clock.advance(CDuration::minutes(9));
            gate.resume(&s.session_id, &alice("web"), &known(), Activity::Record)
                .unwrap();
        }
        clock.advance(CDuration::minutes(7));
        let e = gate
            .resume(&s.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap_err();
        assert!(
            matches!(e, Refusal::Denied(Deny::MaxDuration { .. })),
            "{e}"
        );
    }

    #[test]
    fn revocations_of_user_client_and_session() {
        let (gate, clock, store) = gate();
        let a = gate.start(&alice("web"), None, None, None).unwrap();
        let b = gate.start(&alice("ci"), None, None, None).unwrap();
        assert_eq!(b.banner, "", "the rule clears the banner");
        clock.advance(CDuration::minutes(1));
        let rev = |target| Revocation {
            id: format!("r-{target:?}"),
            target,
            not_before: clock.now(),
            expires_at: None,
            reason: Some("test".into()),
            actor: "root".into(),
            created_at: clock.now(),
        };
        store
            .add_revocation(&rev(Target::Client("ci".into())))
            .unwrap();
        gate.resume(&a.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap();
        let e = gate
            .resume(&b.session_id, &alice("ci"), &known(), Activity::Record)
            .unwrap_err();
        assert!(matches!(e, Refusal::Denied(Deny::Revoked { .. })), "{e}");
        assert!(gate.admit(&alice("ci")).is_err());

        store
            .add_revocation(&rev(Target::User("alice".into())))
            .unwrap();
        let e = gate
            .resume(&a.session_id, &alice("web"), &known(), Activity::Inspect)
            .unwrap_err();
        assert!(matches!(e, Refusal::Denied(Deny::Revoked { .. })), "{e}");
        assert!(matches!(
            gate.start(&alice("web"), None, None, None),
            Err(Refusal::Denied(Deny::Revoked { .. }))
        ));
        let bob = Principal {
            user: "bob",
            ..alice("web")
        };
        assert_eq!(gate.admit(&bob).unwrap(), "Authorized use only.");
    }

    #[test]
    fn a_session_of_someone_else_is_refused() {
        let (gate, _, _) = gate();
        let a = gate.start(&alice("web"), None, None, None).unwrap();
        let e = gate
            .resume(&a.session_id, &alice("other"), &known(), Activity::Inspect)
            .unwrap_err();
        assert!(matches!(e, Refusal::Mismatch(_)));
        let e = gate
            .resume("nope", &alice("web"), &known(), Activity::Inspect)
            .unwrap_err();
        assert!(matches!(e, Refusal::UnknownSession(_)));
    }

    /// A store that is always down.
    struct Down;
    impl Store for Down {
        fn location(&self) -> String {
            "down".into()
        }
        fn create_session(&self, _: &Session) -> Result<(), StoreError> {
            Err(down())
        }
        fn session(&self, _: &str) -> Result<Option<Session>, StoreError> {
            Err(down())
        }
        fn list_sessions(
            &self,
            _: &curfew_policy::SessionFilter,
        ) -> Result<Vec<Session>, StoreError> {
            Err(down())
        }
        fn touch_session(&self, _: &str, _: DateTime<Utc>) -> Result<bool, StoreError> {
            Err(down())
        }
        fn request_termination(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: Option<&str>,
        ) -> Result<bool, StoreError> {
            Err(down())
        }
        fn end_session(&self, _: &str, _: DateTime<Utc>, _: EndReason) -> Result<bool, StoreError> {
            Err(down())
        }
        fn add_revocation(&self, _: &Revocation) -> Result<(), StoreError> {
            Err(down())
        }
        fn remove_revocation(&self, _: &str) -> Result<Option<Revocation>, StoreError> {
            Err(down())
        }
        fn lift_revocation(
            &self,
            _: &str,
            _: DateTime<Utc>,
        ) -> Result<Option<curfew_policy::store::Lift>, StoreError> {
            Err(down())
        }
        fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
            Err(down())
        }
        fn revocations_for(&self, _: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
            Err(down())
        }
        fn set_timeout_preference(
            &self,
            _: &str,
            _: Option<std::time::Duration>,
        ) -> Result<(), StoreError> {
            Err(down())
        }
        fn timeout_preference(&self, _: &str) -> Result<Option<std::time::Duration>, StoreError> {
            Err(down())
        }
    }
    fn down() -> StoreError {
        StoreError::Unavailable {
            location: "down".into(),
            detail: "connection refused".into(),
        }
    }

    #[test]
    fn an_unavailable_store_denies_unless_the_policy_allows() {
        let clock = Arc::new(ManualClock::new(t0()));
        let deny = Policy::parse(POLICY, "p.yaml").unwrap();
        let gate = Gate::new(PolicyCell::new(deny), Arc::new(Down), clock.clone());
        assert!(matches!(
            gate.start(&alice("web"), None, None, None),
            Err(Refusal::Store(_))
        ));

        let allow = format!("{POLICY}store: {{ backend: sqlite, path: /nonexistent/x.db, on_unavailable: allow }}\n");
        let allow = Policy::parse(&allow, "p.yaml").unwrap();
        let gate = Gate::new(PolicyCell::new(allow), Arc::new(Down), clock.clone());
        let g = gate.start(&alice("web"), None, None, None).unwrap();
        assert!(!g.recorded);
        // Without the store, the facts the caller knows still bound the session.
        clock.advance(CDuration::minutes(11));
        let e = gate
            .resume(&g.session_id, &alice("web"), &known(), Activity::Record)
            .unwrap_err();
        assert!(matches!(e, Refusal::Denied(Deny::Idle { .. })), "{e}");
        let recent = Known {
            started_at: t0(),
            last_activity: clock.now() - CDuration::minutes(1),
        };
        let g = gate
            .resume(&g.session_id, &alice("web"), &recent, Activity::Record)
            .unwrap();
        assert!(!g.recorded);
    }

    /// A store whose sessions and preferences read, and whose revocations
    /// do not (with `error`).
    struct NoRevocations {
        inner: MemoryStore,
        error: StoreError,
    }
    impl Store for NoRevocations {
        fn location(&self) -> String {
            "half".into()
        }
        fn create_session(&self, s: &Session) -> Result<(), StoreError> {
            self.inner.create_session(s)
        }
        fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
            self.inner.session(id)
        }
        fn list_sessions(
            &self,
            f: &curfew_policy::SessionFilter,
        ) -> Result<Vec<Session>, StoreError> {
            self.inner.list_sessions(f)
        }
        fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
            self.inner.touch_session(id, at)
        }
        fn request_termination(
            &self,
            id: &str,
            at: DateTime<Utc>,
            by: Option<&str>,
        ) -> Result<bool, StoreError> {
            self.inner.request_termination(id, at, by)
        }
        fn end_session(
            &self,
            id: &str,
            at: DateTime<Utc>,
            r: EndReason,
        ) -> Result<bool, StoreError> {
            self.inner.end_session(id, at, r)
        }
        fn add_revocation(&self, r: &Revocation) -> Result<(), StoreError> {
            self.inner.add_revocation(r)
        }
        fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
            self.inner.remove_revocation(id)
        }
        fn lift_revocation(
            &self,
            id: &str,
            at: DateTime<Utc>,
        ) -> Result<Option<curfew_policy::store::Lift>, StoreError> {
            self.inner.lift_revocation(id, at)
        }
        fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
            Err(self.error.clone())
        }
        fn revocations_for(&self, _: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
            Err(self.error.clone())
        }
        fn set_timeout_preference(
            &self,
            user: &str,
            t: Option<std::time::Duration>,
        ) -> Result<(), StoreError> {
            self.inner.set_timeout_preference(user, t)
        }
        fn timeout_preference(
            &self,
            user: &str,
        ) -> Result<Option<std::time::Duration>, StoreError> {
            self.inner.timeout_preference(user)
        }
    }

    /// Issue 17: the one read of a decision (`Store::session_reads`) fails
    /// as a whole when any part of it fails: a refresh and a first login
    /// whose revocations cannot be read are refused (nothing recorded, no
    /// activity), and a read error that is no outage (a corrupt record) is
    /// refused even with `on_unavailable: allow`.
    #[test]
    fn a_decision_whose_revocations_cannot_be_read_fails_closed() {
        let corrupt = StoreError::Corrupt {
            location: "half".into(),
            detail: "revocation r1: not JSON".into(),
        };
        let allow = format!("{POLICY}store: {{ backend: sqlite, path: /nonexistent/x.db, on_unavailable: allow }}\n");
        for (policy, error) in [(POLICY.to_owned(), down()), (allow, corrupt)] {
            let clock = Arc::new(ManualClock::new(t0()));
            let inner = MemoryStore::new();
            let mut s = Session::start(
                SessionKind::Oidc,
                "alice",
                t0(),
                std::time::Duration::from_secs(300),
            )
            .unwrap();
            s.client_id = Some("web".into());
            inner.create_session(&s).unwrap();
            let store = Arc::new(NoRevocations { inner, error });
            let policy = Policy::parse(&policy, "p.yaml").unwrap();
            let gate = Gate::new(PolicyCell::new(policy), store.clone(), clock.clone());
            clock.advance(CDuration::minutes(1));
            let (r, grant) = gate.resume_or_start(&s.id, &alice("web"), &known(), None);
            assert!(matches!(r, Err(Refusal::Store(_))), "refresh: {r:?}");
            assert_eq!(grant, Grant::Refresh);
            assert_eq!(
                store.session(&s.id).unwrap().unwrap().last_seen,
                t0(),
                "no activity recorded"
            );
            let (r, grant) = gate.resume_or_start(
                "0123456789abcdef0123456789abcdef",
                &alice("web"),
                &known(),
                Some(None),
            );
            assert!(matches!(r, Err(Refusal::Store(_))), "first login: {r:?}");
            assert_ne!(grant, Grant::Issue, "refused before a session is started");
            assert!(store
                .session("0123456789abcdef0123456789abcdef")
                .unwrap()
                .is_none());
        }
    }

    /// Issue 11: a changed `store` section is followed the way the enforcer
    /// follows it: the new store is opened and used; one that cannot be
    /// opened replaces the old one with its failure (never the old store),
    /// and is retried until it opens.
    #[test]
    fn a_changed_store_section_is_followed_like_the_enforcer_does() {
        let dir = tempfile::tempdir().unwrap();
        let policy_for = |path: &std::path::Path| {
            Policy::parse(
                &format!(
                    "version: 1\nstore: {{ backend: sqlite, path: {} }}\n",
                    path.display()
                ),
                "policy.yaml",
            )
            .unwrap()
        };
        let first = dir.path().join("first.db");
        let cell = PolicyCell::new(policy_for(&first));
        let initial = cell.current().store.clone();
        let opened: Arc<dyn Store> = Arc::from(curfew_policy::store::open(&initial).unwrap());
        let gate = Gate::new(cell.clone(), opened, Arc::new(ManualClock::new(t0())));
        let open = curfew_policy::store::open;
        assert_eq!(
            gate.sync_store(&initial, open),
            None,
            "unchanged: nothing to do"
        );

        // A new store: opened and used for the next session.
        let second = dir.path().join("second.db");
        cell.replace(policy_for(&second));
        let line = gate.sync_store(&initial, open).expect("a line to log");
        assert!(line.contains("second.db"), "{line}");
        let granted = gate.start(&alice("web"), None, None, None).unwrap();
        assert!(granted.recorded);
        let second_store = curfew_policy::store::open(&cell.current().store).unwrap();
        assert!(second_store.session(&granted.session_id).unwrap().is_some());

        // A store that cannot be opened: refused (503), not the old store.
        let missing = dir.path().join("no-such-dir").join("third.db");
        cell.replace(policy_for(&missing));
        assert!(gate.sync_store(&initial, open).is_some(), "said once");
        assert_eq!(gate.sync_store(&initial, open), None, "not said again");
        match gate.start(&alice("web"), None, None, None) {
            Err(Refusal::Store(_)) => {}
            other => panic!(
                "expected a store refusal, got {:?}",
                other.map(|g| g.session_id)
            ),
        }

        // It opens once the directory exists.
        std::fs::create_dir(dir.path().join("no-such-dir")).unwrap();
        assert!(gate.sync_store(&initial, open).is_some());
        assert!(
            gate.start(&alice("web"), None, None, None)
                .unwrap()
                .recorded
        );
    }
}
