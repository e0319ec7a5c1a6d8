//! The revocation list and session registry, behind one trait.
//!
//! Every backend runs the same [`conformance`] suite. Backends: [`MemoryStore`]
//! (tests, benchmarks), [`SqliteStore`] (one host) and, where built, Redis (a
//! fleet). All calls block; the PAM module must not start an async runtime.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::policy::{StoreBackend, StoreConfig};
use crate::revocation::{Revocation, RevocationKeys, RevocationSet};
use crate::session::{EndReason, Session, SessionKind};

pub mod conformance;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
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
    /// The store file is writable by someone other than its owner and root.
    #[error(transparent)]
    Insecure(#[from] crate::fsperm::InsecureFile),
    /// The store was written by a newer curfew.
    #[error("the store at {location} has schema version {found}; this build knows up to {supported}")]
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
            && self.host.as_ref().is_none_or(|h| s.host.as_ref() == Some(h))
            && (self.include_ended || s.ended_at.is_none())
    }
}

/// The revocation list, the session registry and users' token lifetimes.
pub trait Store: Send + Sync {
    /// Where the store is, for messages (never with a password).
    fn location(&self) -> String;

    /// Records a new session. Fails with [`StoreError::Duplicate`] if the id exists.
    fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// One session by id.
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;

    /// Sessions passing `filter`, oldest first.
    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError>;

    /// Moves `last_seen` forward to `at` (never back). False if the session
    /// is unknown or ended.
    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Asks for a live session to be ended (the enforcer or the issuer ends
    /// it). False if the session is unknown or already ended.
    fn request_termination(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Marks a session ended. The first end wins: false if it had ended already
    /// or is unknown.
    fn end_session(&self, id: &str, at: DateTime<Utc>, reason: EndReason)
        -> Result<bool, StoreError>;

    /// Adds a revocation. Fails with [`StoreError::Duplicate`] if the id exists.
    fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError>;

    /// Removes a revocation, returning it; `None` if there was none.
    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError>;

    /// Every revocation, oldest first.
    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// The revocations that could apply to a session with these keys: those
    /// of its session id, user and client, and every `all` revocation.
    fn revocations_for(&self, keys: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError>;

    /// Sets (or with `None` clears) a user's own token lifetime. Callers
    /// check it against the policy first; see `Effective::check_preference`.
    fn set_timeout_preference(&self, user: &str, timeout: Option<Duration>)
        -> Result<(), StoreError>;

    /// A user's own token lifetime, if they chose one.
    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError>;
}

/// Opens the store a policy names. `store.path` of a SQLite store is created
/// (mode 0600) if missing; its directory must exist.
pub fn open(config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    match &config.backend {
        #[cfg(feature = "sqlite")]
        StoreBackend::Sqlite { path } => Ok(Box::new(SqliteStore::open(path)?)),
        #[cfg(not(feature = "sqlite"))]
        StoreBackend::Sqlite { .. } => Err(StoreError::NotBuilt("sqlite")),
        StoreBackend::Redis { .. } => Err(StoreError::NotBuilt("redis")),
    }
}
