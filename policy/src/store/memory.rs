//! An in-memory store for tests and benchmarks.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Lift, SessionFilter, Store, StoreError};
use crate::revocation::{Revocation, RevocationKeys, RevocationSet, Target};
use crate::session::{EndReason, Session};

#[derive(Default)]
struct Inner {
    sessions: Vec<Session>,
    revocations: Vec<Revocation>,
    preferences: HashMap<String, Duration>,
}

/// A store that lives in this process only.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn location(&self) -> String {
        "memory".into()
    }

    fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.sessions.iter().any(|s| s.id == session.id) {
            return Err(StoreError::Duplicate(session.id.clone()));
        }
        g.sessions.push(session.clone());
        Ok(())
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.iter().find(|s| s.id == id).cloned())
    }

    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        let mut v: Vec<Session> = self
            .lock()
            .sessions
            .iter()
            .filter(|s| filter.accepts(s))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut g = self.lock();
        match g.sessions.iter_mut().find(|s| s.id == id && s.is_live()) {
            Some(s) => {
                s.last_seen = s.last_seen.max(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn request_termination(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock();
        match g.sessions.iter_mut().find(|s| s.id == id && s.is_live()) {
            Some(s) => {
                if s.terminate_requested_at.is_none() {
                    s.terminate_requested_at = Some(at);
                    s.terminate_requested_by = by.map(str::to_owned);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn end_session(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: EndReason,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let open = |s: &Session| {
            s.is_live()
                || (reason != EndReason::Logout
                    && s.end_reason == Some(EndReason::Logout)
                    && s.terminate_requested_at.is_some()
                    && s.terminate_requested_at <= s.ended_at)
        };
        match g.sessions.iter_mut().find(|s| s.id == id && open(s)) {
            Some(s) => {
                s.ended_at = Some(at);
                s.end_reason = Some(reason);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.revocations.iter().any(|r| r.id == revocation.id) {
            return Err(StoreError::Duplicate(revocation.id.clone()));
        }
        g.revocations.push(revocation.clone());
        Ok(())
    }

    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
        let mut g = self.lock();
        Ok(g.revocations
            .iter()
            .position(|r| r.id == id)
            .map(|i| g.revocations.remove(i)))
    }

    fn lift_revocation(&self, id: &str, at: DateTime<Utc>) -> Result<Option<Lift>, StoreError> {
        let mut g = self.lock();
        Ok(g.revocations.iter_mut().find(|r| r.id == id).map(|r| {
            if r.in_force(at) {
                r.expires_at = Some(at);
                Lift::Lifted(r.clone())
            } else {
                Lift::AlreadyLifted(r.clone())
            }
        }))
    }

    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let mut v = self.lock().revocations.clone();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    fn revocations_for(&self, keys: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
        Ok(self
            .lock()
            .revocations
            .iter()
            .filter(|r| match &r.target {
                Target::Session(s) => keys.session == Some(s.as_str()),
                Target::User(u) => keys.user == u,
                Target::Client(c) => keys.client == Some(c.as_str()),
                Target::All => true,
            })
            .cloned()
            .collect())
    }

    fn set_timeout_preference(
        &self,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        match timeout {
            Some(t) => g.preferences.insert(user.to_owned(), t),
            None => g.preferences.remove(user),
        };
        Ok(())
    }

    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError> {
        Ok(self.lock().preferences.get(user).copied())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        super::super::conformance::run(&|| Box::new(super::MemoryStore::new()));
    }
}
