//! Revocations: who is locked out, and which sessions are dead.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// One session, by id.
    Session(String),
    /// Every session and login of a user.
    User(String),
    /// Every token of an OIDC client.
    Client(String),
    /// Every session that started before `not_before`.
    All,
}

impl Target {
    /// `session`, `user`, `client` or `all`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Session(_) => "session",
            Target::User(_) => "user",
            Target::Client(_) => "client",
            Target::All => "all",
        }
    }

    /// The id or name targeted (empty for `all`).
    pub fn value(&self) -> &str {
        match self {
            Target::Session(v) | Target::User(v) | Target::Client(v) => v,
            Target::All => "",
        }
    }

    /// Rebuilds a target from [`Target::kind`] and [`Target::value`].
    pub fn from_parts(kind: &str, value: &str) -> Option<Target> {
        Some(match kind {
            "session" => Target::Session(value.to_owned()),
            "user" => Target::User(value.to_owned()),
            "client" => Target::Client(value.to_owned()),
            "all" => Target::All,
            _ => return None,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            t => write!(f, "{} {}", t.kind(), t.value()),
        }
    }
}

/// One entry of the revocation list.
///
/// Semantics: a session that started before `not_before` is dead, forever
/// (a lock that lifts does not revive it). A `user`, `client` or `session`
/// revocation is also a *lock* while it is in force (until `expires_at`, or
/// until `curfew unrevoke` when there is none): every new login, token issue,
/// refresh and introspection of the target is refused. An `all` revocation is
/// no lock: it only ends what started before `not_before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Random, printable id.
    pub id: String,
    /// What it applies to.
    pub target: Target,
    /// Sessions that started before this are dead.
    pub not_before: DateTime<Utc>,
    /// When the lock lifts by itself; `None`: until unrevoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// Why, for the audit trail.
    pub reason: Option<String>,
    /// Who made it.
    pub actor: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl Revocation {
    /// Whether the lock is still in force at `now`.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// Whether a session of this target that started at `started_at` is
    /// refused at `now`.
    pub fn applies(&self, started_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        started_at < self.not_before || (self.target != Target::All && self.in_force(now))
    }
}

/// The keys under which a session can be revoked.
#[derive(Debug, Clone, Copy)]
pub struct RevocationKeys<'a> {
    /// The session id (none before a session exists, e.g. in acct_mgmt).
    pub session: Option<&'a str>,
    /// The user.
    pub user: &'a str,
    /// The OIDC client, if any.
    pub client: Option<&'a str>,
}

/// An index of revocations for constant-time checks, however long the list.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    sessions: HashMap<String, Vec<Revocation>>,
    users: HashMap<String, Vec<Revocation>>,
    clients: HashMap<String, Vec<Revocation>>,
    all: Vec<Revocation>,
    len: usize,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one revocation.
    pub fn insert(&mut self, r: Revocation) {
        self.len += 1;
        match &r.target {
            Target::Session(k) => self.sessions.entry(k.clone()).or_default().push(r),
            Target::User(k) => self.users.entry(k.clone()).or_default().push(r),
            Target::Client(k) => self.clients.entry(k.clone()).or_default().push(r),
            Target::All => self.all.push(r),
        }
    }

    /// How many revocations the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first revocation that refuses a session with these keys that
    /// started at `started_at`, at `now`.
    pub fn find(
        &self,
        keys: &RevocationKeys<'_>,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<&Revocation> {
        fn first(
            list: Option<&Vec<Revocation>>,
            started_at: DateTime<Utc>,
            now: DateTime<Utc>,
        ) -> Option<&Revocation> {
            list?.iter().find(|r| r.applies(started_at, now))
        }
        let hit = |list| first(list, started_at, now);
        keys.session
            .and_then(|s| hit(self.sessions.get(s)))
            .or_else(|| hit(self.users.get(keys.user)))
            .or_else(|| keys.client.and_then(|c| hit(self.clients.get(c))))
            .or_else(|| hit(Some(&self.all)))
    }
}

impl FromIterator<Revocation> for RevocationSet {
    fn from_iter<I: IntoIterator<Item = Revocation>>(iter: I) -> Self {
        let mut s = RevocationSet::new();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn rev(target: Target, at: i64, expires: Option<i64>) -> Revocation {
        Revocation {
            id: format!("r{at}"),
            target,
            not_before: t(at),
            expires_at: expires.map(t),
            reason: None,
            actor: "test".into(),
            created_at: t(at),
        }
    }

    #[test]
    fn user_lock_refuses_old_and_new_sessions_until_it_lifts() {
        let set: RevocationSet = [rev(Target::User("alice".into()), 100, Some(200))]
            .into_iter()
            .collect();
        let keys = RevocationKeys {
            session: Some("s1"),
            user: "alice",
            client: None,
        };
        assert!(set.find(&keys, t(50), t(150)).is_some(), "old session dead");
        assert!(
            set.find(&keys, t(150), t(150)).is_some(),
            "new login locked"
        );
        assert!(set.find(&keys, t(250), t(250)).is_none(), "lock lifted");
        assert!(set.find(&keys, t(50), t(250)).is_some(), "old stays dead");
        let bob = RevocationKeys {
            user: "bob",
            ..keys
        };
        assert!(set.find(&bob, t(50), t(150)).is_none());
    }

    #[test]
    fn all_only_ends_what_started_before() {
        let set: RevocationSet = [rev(Target::All, 100, None)].into_iter().collect();
        let keys = RevocationKeys {
            session: None,
            user: "alice",
            client: Some("web"),
        };
        assert!(set.find(&keys, t(99), t(150)).is_some());
        assert!(set.find(&keys, t(100), t(150)).is_none());
    }

    #[test]
    fn session_and_client_targets() {
        let set: RevocationSet = [
            rev(Target::Session("s1".into()), 100, None),
            rev(Target::Client("ci".into()), 100, None),
        ]
        .into_iter()
        .collect();
        let k = |s, c| RevocationKeys {
            session: s,
            user: "u",
            client: c,
        };
        assert!(set.find(&k(Some("s1"), None), t(0), t(150)).is_some());
        assert!(set.find(&k(Some("s2"), None), t(0), t(150)).is_none());
        assert!(set.find(&k(None, Some("ci")), t(0), t(150)).is_some());
        assert!(set.find(&k(None, Some("web")), t(0), t(150)).is_none());
        assert_eq!(
            Target::from_parts("client", "ci"),
            Some(Target::Client("ci".into()))
        );
    }
}
