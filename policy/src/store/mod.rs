//! The revocation list and session registry, behind one trait.
//!
//! Every backend runs the same [`conformance`] suite. Backends: [`MemoryStore`]
//! (tests, benchmarks), [`SqliteStore`] (one host) and, where built,
//! `RedisStore` (a fleet, feature `redis`). All calls block; the PAM module
//! must not start an async runtime. Stores that push changes hand out an
//! [`EventStream`] through [`Store::watch`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::policy::{StoreBackend, StoreConfig};
use crate::revocation::{Revocation, RevocationKeys, RevocationSet};
use crate::session::{EndReason, Session, SessionKind};

pub mod conformance;
mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SHORT_WAL_PAGES};

/// How the opening process uses its connection: this tunes the SQLite
/// backend's journal (see the `sqlite` backend's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifetime {
    /// A daemon or command that closes the store when it is done (the
    /// enforcer, the hook, the CLI): SQLite's defaults, a checkpoint at
    /// 1000 pages of WAL and at the last close.
    #[default]
    Closed,
    /// A process that keeps the connection until it exits and never closes
    /// it (the PAM module): the WAL is checkpointed once it holds
    /// `SHORT_WAL_PAGES` pages, since the next process to open the file
    /// alone reads it through.
    UntilExit,
}

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or reached. Enforcement points answer
    /// as `store.on_unavailable` says.
    #[error("the store at {location} is unavailable: {detail}")]
    Unavailable {
        /// The file or server (never with a password).
        location: String,
        /// The cause.
        detail: String,
    },
    /// A local resource ran out (descriptors, memory, file size, disk):
    /// never degraded by `on_unavailable`, since a user can cause it on
    /// purpose in a setuid program whose rlimits they set.
    #[error("the store at {location} cannot be used: a local resource ran out: {detail}")]
    Resource {
        /// The file or server.
        location: String,
        /// The cause.
        detail: String,
    },
    /// The store file is writable by someone other than its owner and root.
    #[error(transparent)]
    Insecure(#[from] crate::fsperm::InsecureFile),
    /// The store was written by a newer curfew.
    #[error(
        "the store at {location} has schema version {found}; this build knows up to {supported}"
    )]
    TooNew {
        /// The file.
        location: String,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A record could not be decoded.
    #[error("the store at {location} holds a corrupt record: {detail}")]
    Corrupt {
        /// The file or server.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// A record with this id already exists.
    #[error("a record with id {0} already exists")]
    Duplicate(String),
    /// The system random generator failed.
    #[error("cannot draw a random id: {0}")]
    Random(#[from] getrandom::Error),
    /// The backend is not part of this build.
    #[error("the {0} store backend is not built into this binary")]
    NotBuilt(&'static str),
}

impl StoreError {
    /// The error for an I/O failure at `location`: [`StoreError::Resource`]
    /// for descriptors (EMFILE, ENFILE), memory (ENOMEM), file size (EFBIG)
    /// and disk space (ENOSPC, EDQUOT); [`StoreError::Unavailable`] for
    /// anything else. `what` says what was being done.
    pub fn from_io(location: &str, what: &str, e: &std::io::Error) -> StoreError {
        let detail = format!("{what}: {e}");
        if is_resource_errno(e.raw_os_error()) {
            StoreError::Resource {
                location: location.to_owned(),
                detail,
            }
        } else {
            StoreError::Unavailable {
                location: location.to_owned(),
                detail,
            }
        }
    }
}

/// Whether an errno means a local resource ran out.
pub fn is_resource_errno(errno: Option<i32>) -> bool {
    use nix::errno::Errno;
    matches!(
        errno.map(Errno::from_raw),
        Some(
            Errno::EMFILE
                | Errno::ENFILE
                | Errno::ENOMEM
                | Errno::EFBIG
                | Errno::ENOSPC
                | Errno::EDQUOT
        )
    )
}

/// Which sessions [`Store::list_sessions`] returns.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only this user's.
    pub user: Option<String>,
    /// Only this kind.
    pub kind: Option<SessionKind>,
    /// Only sessions on this host.
    pub host: Option<String>,
    /// Ended sessions too.
    pub include_ended: bool,
}

impl SessionFilter {
    /// Whether `s` passes the filter.
    pub fn accepts(&self, s: &Session) -> bool {
        self.user.as_ref().is_none_or(|u| *u == s.user)
            && self.kind.is_none_or(|k| k == s.kind)
            && self
                .host
                .as_ref()
                .is_none_or(|h| s.host.as_ref() == Some(h))
            && (self.include_ended || s.ended_at.is_none())
    }
}

/// What [`Store::list_sessions_reporting`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionListing {
    /// The readable sessions passing the filter, oldest first.
    pub sessions: Vec<Session>,
    /// The records that could not be read and were left out.
    pub unreadable: Vec<UnreadableRecord>,
}

/// A session record the store holds but cannot read (a value out of
/// range, a missing or unknown field): left out of listings, never the
/// cause of a whole listing failing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnreadableRecord {
    /// The record's id as stored (`?` if even that cannot be read).
    pub id: String,
    /// Why it cannot be read, naming the field.
    pub detail: String,
}

/// What one decision about a session reads from the store, in one call:
/// see [`Store::session_reads`].
#[derive(Debug, Clone, Default)]
pub struct SessionReads {
    /// The session, as [`Store::session`] reads it: `None` if the store
    /// knows no such session.
    pub session: Option<Session>,
    /// The user's own token lifetime, as [`Store::timeout_preference`].
    pub preference: Option<Duration>,
    /// The revocations that could apply, as [`Store::revocations_for`].
    pub revocations: RevocationSet,
}

/// The revocation list, the session registry and users' token lifetimes.
pub trait Store: Send + Sync {
    /// Where the store is, for messages (never with a password).
    fn location(&self) -> String;

    /// Records a new session. Fails with [`StoreError::Duplicate`] if the id exists.
    fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// One session by id.
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;

    /// Sessions passing `filter`, oldest first. A record that cannot be
    /// read (a value out of range, a missing field) is left out: one bad
    /// record never hides the others. [`Store::list_sessions_reporting`]
    /// says which were left out.
    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError>;

    /// [`Store::list_sessions`], with the records left out because they
    /// could not be read (by id, with why), for the enforcer's log and
    /// `curfew sessions list`. A store whose records are always readable
    /// (in memory) reports none.
    fn list_sessions_reporting(
        &self,
        filter: &SessionFilter,
    ) -> Result<SessionListing, StoreError> {
        Ok(SessionListing {
            sessions: self.list_sessions(filter)?,
            unreadable: Vec::new(),
        })
    }

    /// Moves `last_seen` forward to `at` (never back). False if the session
    /// is unknown or ended.
    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Asks for a live session to be ended (the enforcer or the issuer ends
    /// it). `by` is the account name of the person who asked (see
    /// [`Session::terminate_requested_by`]), `None` for the enforcer's own
    /// request. The first request is kept, its time and who asked alike.
    /// False if the session is unknown or already ended.
    fn request_termination(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Marks a session ended. The first end wins: false if it had ended already
    /// or is unknown. One exception: a `logout` recorded after a termination
    /// was requested (`terminate_requested_at` at or before its `ended_at`)
    /// is that requested end being carried out (the PAM module sees the
    /// logout when the enforcer's signals reach the session), so a later end
    /// with another reason replaces its time and reason: the enforcer records
    /// the end it requested once the session's processes are gone.
    fn end_session(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: EndReason,
    ) -> Result<bool, StoreError>;

    /// Adds a revocation. Fails with [`StoreError::Duplicate`] if the id exists.
    fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError>;

    /// Removes a revocation, returning it; `None` if there was none. This
    /// forgets that the sessions it ended are dead: `curfew unrevoke` uses
    /// [`Store::lift_revocation`] instead; removal is for purging records
    /// that can no longer change a decision, and for tests.
    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError>;

    /// Lifts a revocation's lock at `at` (`curfew unrevoke`): its
    /// `expires_at` becomes `at` unless it was already at or before `at`.
    /// The record is kept, with its `not_before`, so every session that
    /// existed when the revocation was made stays refused for good, in
    /// whatever order the unrevoke and the session's next check happen;
    /// only new logins and sessions are no longer refused. `None` if there
    /// is no such revocation. Pushed to watchers as
    /// [`StoreEvent::RevocationRemoved`] (a lock lifted: nothing has to end).
    fn lift_revocation(&self, id: &str, at: DateTime<Utc>) -> Result<Option<Lift>, StoreError>;

    /// Every revocation, oldest first.
    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// The revocations that could apply to a session with these keys: those
    /// of its session id, user and client, and every `all` revocation.
    fn revocations_for(&self, keys: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError>;

    /// Sets (or with `None` clears) a user's own token lifetime. Callers
    /// check it against the policy first; see `Effective::check_preference`.
    fn set_timeout_preference(
        &self,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// A user's own token lifetime, if they chose one.
    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError>;

    /// Everything a decision about session `id` of `keys.user` reads, in
    /// one call: [`Store::session`] of `id`, [`Store::timeout_preference`]
    /// of `keys.user` and [`Store::revocations_for`] `keys`, with the same
    /// meaning and the same errors as those three (any one failing fails
    /// the whole). A backend answers it in one go where it can: Redis in
    /// one round trip (one script), SQLite in one read transaction, so the
    /// three reads also see one state of the store. Added in issue 17 (the
    /// token hook's throughput); the default makes the three calls.
    fn session_reads(
        &self,
        id: &str,
        keys: &RevocationKeys<'_>,
    ) -> Result<SessionReads, StoreError> {
        Ok(SessionReads {
            session: self.session(id)?,
            preference: self.timeout_preference(keys.user)?,
            revocations: self.revocations_for(keys)?,
        })
    }

    /// The precision at which the store keeps times: a
    /// [`Store::touch_session`] at `at` stores `at` cut down to it, so it
    /// changes nothing when the stored `last_seen` is already at or after
    /// that. Zero (the default) for a store that keeps times as given.
    /// Added in issue 17: the token hook skips a touch that would store the
    /// value already stored.
    fn time_precision(&self) -> Duration {
        Duration::ZERO
    }

    /// Subscribes to the changes other processes make, for stores that push
    /// them (Redis): `Ok(None)` for stores that do not (memory, SQLite),
    /// whose watchers poll instead. Every [`Store::add_revocation`],
    /// [`Store::remove_revocation`], [`Store::request_termination`] and
    /// [`Store::end_session`] that changed something is pushed to every
    /// stream of every process sharing the store.
    ///
    /// A stream yields [`StoreEvent::Resync`] each time its subscription is
    /// (re)established, the first time included: the watcher then re-reads
    /// what it needs in full, so nothing published before the subscription
    /// or while it was down is missed. Added in issue 6; the default keeps
    /// other backends unchanged.
    fn watch(&self) -> Result<Option<Box<dyn EventStream>>, StoreError> {
        Ok(None)
    }

    /// Checks that a store opened earlier may still be used as it is: for
    /// SQLite, that its path still names the file that was opened and that
    /// the file and its directory still pass the checks of opening it. A
    /// process that keeps a store open across calls (the PAM module) calls
    /// this before reusing it and opens it afresh on an error.
    fn revalidate(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A shared store is a store: for a process that keeps one open and hands
/// it to several callers.
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        (**self).create_session(session)
    }
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        (**self).session(id)
    }
    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        (**self).list_sessions(filter)
    }
    fn list_sessions_reporting(
        &self,
        filter: &SessionFilter,
    ) -> Result<SessionListing, StoreError> {
        (**self).list_sessions_reporting(filter)
    }
    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        (**self).touch_session(id, at)
    }
    fn request_termination(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<bool, StoreError> {
        (**self).request_termination(id, at, by)
    }
    fn end_session(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: EndReason,
    ) -> Result<bool, StoreError> {
        (**self).end_session(id, at, reason)
    }
    fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        (**self).add_revocation(revocation)
    }
    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
        (**self).remove_revocation(id)
    }
    fn lift_revocation(&self, id: &str, at: DateTime<Utc>) -> Result<Option<Lift>, StoreError> {
        (**self).lift_revocation(id, at)
    }
    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        (**self).list_revocations()
    }
    fn revocations_for(&self, keys: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
        (**self).revocations_for(keys)
    }
    fn set_timeout_preference(
        &self,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        (**self).set_timeout_preference(user, timeout)
    }
    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError> {
        (**self).timeout_preference(user)
    }
    fn session_reads(
        &self,
        id: &str,
        keys: &RevocationKeys<'_>,
    ) -> Result<SessionReads, StoreError> {
        (**self).session_reads(id, keys)
    }
    fn time_precision(&self) -> Duration {
        (**self).time_precision()
    }
    fn watch(&self) -> Result<Option<Box<dyn EventStream>>, StoreError> {
        (**self).watch()
    }
    fn revalidate(&self) -> Result<(), StoreError> {
        (**self).revalidate()
    }
}

/// What [`Store::lift_revocation`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lift {
    /// The lock was in force and now lifts: the revocation as it now is
    /// (`expires_at` = the time of the lift).
    Lifted(Revocation),
    /// The lock had already lifted (an earlier unrevoke, or its own
    /// `expires_at`): the revocation, unchanged.
    AlreadyLifted(Revocation),
}

impl Lift {
    /// The revocation.
    pub fn revocation(&self) -> &Revocation {
        match self {
            Lift::Lifted(r) | Lift::AlreadyLifted(r) => r,
        }
    }
}

/// A change pushed by a shared store; see [`Store::watch`].
///
/// On the wire (the Redis channel `<prefix>events`) it is one small JSON
/// object tagged by `event`, e.g.
/// `{"event":"revocation_added","id":"…","target":{"kind":"user","value":"alice"}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StoreEvent {
    /// A revocation was added: sessions of its target may have to end now.
    RevocationAdded {
        /// The revocation's id.
        id: String,
        /// What it applies to.
        target: crate::revocation::Target,
    },
    /// A revocation was removed (a lock lifted; nothing has to end).
    RevocationRemoved {
        /// The revocation's id.
        id: String,
    },
    /// An administrator asked for a live session to end.
    TerminationRequested {
        /// The session's id.
        session: String,
    },
    /// A session ended.
    SessionEnded {
        /// The session's id.
        session: String,
        /// Why.
        reason: EndReason,
    },
    /// The subscription was (re)established, or a message could not be
    /// understood: events may have been missed, so re-read everything.
    Resync,
}

/// A subscription to a store's changes; see [`Store::watch`].
///
/// The stream reconnects by itself: after an error, keep calling
/// [`EventStream::next`]; once the store is back it yields
/// [`StoreEvent::Resync`]. Dropping the stream ends the subscription.
pub trait EventStream: Send {
    /// Waits up to `timeout` for the next event: `Ok(None)` if none came.
    /// `Err(StoreError::Unavailable)` once when the connection is lost (and
    /// once when a first connection fails); further calls wait for it to
    /// come back.
    fn next(&mut self, timeout: Duration) -> Result<Option<StoreEvent>, StoreError>;
}

/// A store that could not be opened: every call fails with the error it
/// was opened with. A long-running process whose policy names a store it
/// cannot open puts this in place of the old one (it never goes on using a
/// store the policy no longer names), so every decision follows the
/// failure table for that error until the store opens.
#[derive(Debug, Clone)]
pub struct FailedStore {
    location: String,
    error: StoreError,
}

impl FailedStore {
    /// A store at `location` that failed to open with `error`.
    pub fn new(location: String, error: StoreError) -> Self {
        FailedStore { location, error }
    }

    fn fail<T>(&self) -> Result<T, StoreError> {
        Err(self.error.clone())
    }
}

impl Store for FailedStore {
    fn location(&self) -> String {
        self.location.clone()
    }
    fn create_session(&self, _: &Session) -> Result<(), StoreError> {
        self.fail()
    }
    fn session(&self, _: &str) -> Result<Option<Session>, StoreError> {
        self.fail()
    }
    fn list_sessions(&self, _: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        self.fail()
    }
    fn touch_session(&self, _: &str, _: DateTime<Utc>) -> Result<bool, StoreError> {
        self.fail()
    }
    fn request_termination(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.fail()
    }
    fn end_session(&self, _: &str, _: DateTime<Utc>, _: EndReason) -> Result<bool, StoreError> {
        self.fail()
    }
    fn add_revocation(&self, _: &Revocation) -> Result<(), StoreError> {
        self.fail()
    }
    fn remove_revocation(&self, _: &str) -> Result<Option<Revocation>, StoreError> {
        self.fail()
    }
    fn lift_revocation(&self, _: &str, _: DateTime<Utc>) -> Result<Option<Lift>, StoreError> {
        self.fail()
    }
    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.fail()
    }
    fn revocations_for(&self, _: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
        self.fail()
    }
    fn set_timeout_preference(&self, _: &str, _: Option<Duration>) -> Result<(), StoreError> {
        self.fail()
    }
    fn timeout_preference(&self, _: &str) -> Result<Option<Duration>, StoreError> {
        self.fail()
    }
}

/// Opens the store a policy names. `store.path` of a SQLite store is created
/// (mode 0600) if missing; its directory must exist. A Redis store connects
/// on its first call, so opening it succeeds while the server is down and
/// every call reports [`StoreError::Unavailable`] until it is back.
pub fn open(config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    open_for(config, Default::default())
}

/// Like [`open`], for a process that uses its connection as `lifetime`
/// says (only the SQLite backend tells them apart).
pub fn open_for(config: &StoreConfig, lifetime: Lifetime) -> Result<Box<dyn Store>, StoreError> {
    #[cfg(not(feature = "sqlite"))]
    let _ = lifetime;
    match &config.backend {
        #[cfg(feature = "sqlite")]
        StoreBackend::Sqlite { path } => Ok(Box::new(SqliteStore::open_for(path, lifetime)?)),
        #[cfg(not(feature = "sqlite"))]
        StoreBackend::Sqlite { .. } => Err(StoreError::NotBuilt("sqlite")),
        #[cfg(feature = "redis")]
        StoreBackend::Redis {
            url,
            prefix,
            tls_ca_file,
        } => Ok(Box::new(RedisStore::open_with_roots(
            url,
            prefix,
            tls_ca_file.as_deref(),
        )?)),
        #[cfg(not(feature = "redis"))]
        StoreBackend::Redis { .. } => Err(StoreError::NotBuilt("redis")),
    }
}
