//! The admission kernel: the one question every enforcement point asks.
//!
//! The PAM module (a new login), the OIDC gate and token hook (a token
//! issue or refresh), the enforcer (a live session at each pass) and the
//! CLI (a session's state at `now`) all hand [`admit`] the same inputs —
//! who (the canonical subject and the outcome of the group lookup), which
//! session (or a new login), the store's answer or its failure, who calls
//! (a setuid caller or not) and `now` — and act on the one typed
//! [`Admission`] it returns. Nothing outside this crate builds revocation
//! keys, resolves a store failure or derives a deadline.
//!
//! Pure: no clock, no file, no network.
//!
//! # The failure table
//!
//! | failure | new login / token | live session (enforcer) |
//! |---|---|---|
//! | groups lookup failed (NSS down) | [`Admission::Unusable`] | [`Admission::Unusable`]: left alone, never looser limits |
//! | store [`StoreError::Unavailable`], `on_unavailable: deny` | [`Admission::Unusable`] | [`Admission::Unusable`] |
//! | store [`StoreError::Unavailable`], `on_unavailable: allow`, ordinary caller | [`Admission::Degraded`]: through, unchecked | [`Admission::Unusable`] |
//! | store [`StoreError::Unavailable`], setuid/setgid caller (AT_SECURE) | [`Admission::Unusable`] | — |
//! | local resource failure ([`StoreError::Resource`]: descriptors, memory, file size) | [`Admission::Unusable`] | [`Admission::Unusable`] |
//! | [`StoreError::Insecure`], [`StoreError::TooNew`], [`StoreError::Corrupt`], [`StoreError::NotBuilt`], [`StoreError::Random`], [`StoreError::Duplicate`] | [`Admission::Unusable`] | [`Admission::Unusable`] |
//!
//! Only a store that cannot be *reached* may be degraded, and only by an
//! explicit `on_unavailable: allow`, and never for a caller whose
//! environment and limits the user controls (a setuid `su`): there the user
//! could make the store "unavailable" on purpose.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::decision::{decide, Allow, Decision, Deny, SessionState};
use crate::effective::{Effective, Subject};
use crate::policy::{OnUnavailable, Policy};
use crate::revocation::{RevocationKeys, RevocationSet};
use crate::store::StoreError;

/// The outcome of the group lookup (getgrouplist for PAM and the enforcer,
/// the groups claim for OIDC).
#[derive(Debug, Clone, Copy)]
pub enum GroupsLookup<'a> {
    /// The groups, as far as the lookup could tell (the last known ones,
    /// for an enforcer whose fresh lookup failed).
    Known(&'a [String]),
    /// The lookup failed and nothing is known: rules match on groups, so
    /// guessing "no groups" could hand an administrator looser limits.
    Failed(&'a str),
}

/// Who is asking: the canonical subject.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The canonical account name (PAM, enforcer) or the OIDC server's
    /// canonical subject.
    pub user: &'a str,
    /// The user's groups, or why they are unknown.
    pub groups: GroupsLookup<'a>,
    /// The PAM service, e.g. `sshd`: revocations of `client SERVICE` apply.
    pub service: Option<&'a str>,
    /// The OIDC client id.
    pub client: Option<&'a str>,
    /// This host's name (rules may match `hosts`).
    pub host: Option<&'a str>,
}

impl<'a> Who<'a> {
    /// The subject rules are matched against, once the groups are known.
    pub fn subject(&self, groups: &'a [String]) -> Subject<'a> {
        Subject {
            user: self.user,
            groups,
            service: self.service,
            client: self.client,
            host: self.host,
        }
    }

    /// The keys to read revocations under (see `Store::revocations_for`)
    /// for a login (`session: None`) or a recorded session.
    pub fn revocation_keys(&self, session: Option<&'a str>) -> RevocationKeys<'a> {
        RevocationKeys {
            session,
            user: self.user,
            client: self.client_key(),
        }
    }

    /// The revocation key for `client` targets: the OIDC client, or for a
    /// PAM session its service (`curfew revoke client sshd`).
    pub fn client_key(&self) -> Option<&'a str> {
        self.client.or(self.service)
    }
}

/// Which session is asked about.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// A login (or first token) that has no session yet.
    NewLogin,
    /// A recorded session; its `user` and `client_id` are replaced by the
    /// canonical ones of [`Who`] for the revocation keys.
    Session(SessionState<'a>),
}

/// What the store said, or why it could not.
#[derive(Debug, Clone, Copy)]
pub enum StoreAnswer<'a> {
    /// The revocations that may apply (see `Store::revocations_for`) and
    /// the user's own token lifetime, if they chose one.
    Read {
        /// The revocations for the subject's keys.
        revocations: &'a RevocationSet,
        /// The user's own token lifetime.
        preference: Option<Duration>,
    },
    /// The store failed.
    Failed(&'a StoreError),
}

/// Who calls the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caller {
    /// A setuid/setgid program (AT_SECURE): its user controls its rlimits
    /// and parts of its environment, so a store failure is never degraded.
    pub secure: bool,
}

/// Why the policy cannot be applied: always a refusal of a new login or
/// token (PAM `PAM_SYSTEM_ERR`, HTTP 503), and for a live session a reason
/// to leave it as it is this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Unusable {
    /// The user's groups could not be looked up.
    Groups {
        /// The lookup's error.
        detail: String,
    },
    /// The store failed and the failure table says deny.
    Store {
        /// The store's error.
        detail: String,
        /// Why it is not degraded (e.g. `on_unavailable: deny`).
        why: &'static str,
    },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Groups { detail } => write!(f, "cannot find the user's groups: {detail}"),
            Unusable::Store { detail, why } => write!(f, "{detail} ({why})"),
        }
    }
}

/// A new login let through without the store (`on_unavailable: allow`):
/// no revocation was checked and nothing can be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degraded {
    /// The store's error.
    pub detail: String,
    /// The deadlines as if no revocation applied.
    pub allow: Allow,
}

/// The one answer of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "admission", rename_all = "snake_case")]
pub enum Admission {
    /// Go on, with these deadlines.
    Allow(Allow),
    /// Stop, for this stable reason.
    Deny(Deny),
    /// The policy cannot be applied: refuse a new login or token; leave a
    /// live session alone this time.
    Unusable(Unusable),
    /// Store unreachable and `on_unavailable: allow`: a new login goes on
    /// unchecked.
    Degraded(Degraded),
}

/// What the failure table says about one store failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureVerdict {
    /// Go on without the store (new logins and tokens only).
    Degrade,
    /// Refuse, with the reason it may not be degraded.
    Deny(&'static str),
}

/// The failure table (see the module docs): whether `e` may be degraded by
/// `on_unavailable` for this caller.
pub fn store_failure_verdict(
    e: &StoreError,
    on_unavailable: OnUnavailable,
    caller: Caller,
) -> FailureVerdict {
    match e {
        StoreError::Unavailable { .. } => match (on_unavailable, caller.secure) {
            (OnUnavailable::Deny, _) => FailureVerdict::Deny("store.on_unavailable: deny"),
            (OnUnavailable::Allow, true) => FailureVerdict::Deny(
                "store.on_unavailable: allow never applies to a setuid/setgid caller",
            ),
            (OnUnavailable::Allow, false) => FailureVerdict::Degrade,
        },
        StoreError::Resource { .. } => {
            FailureVerdict::Deny("a local resource failure always denies")
        }
        StoreError::Insecure(_) => FailureVerdict::Deny("an insecure store always denies"),
        StoreError::TooNew { .. } => {
            FailureVerdict::Deny("a store written by a newer curfew always denies")
        }
        StoreError::Corrupt { .. } => FailureVerdict::Deny("a corrupt store always denies"),
        StoreError::NotBuilt(_) => FailureVerdict::Deny("a missing backend always denies"),
        StoreError::Random(_) => FailureVerdict::Deny("no random ids: always denies"),
        StoreError::Duplicate(_) => FailureVerdict::Deny("a duplicate record always denies"),
    }
}

/// Decides one admission; see the module docs for the failure table.
///
/// The token lifetime is the user's own choice within the bounds, or the
/// policy's default when the store could not say.
pub fn admit(
    policy: &Policy,
    who: &Who<'_>,
    which: &Which<'_>,
    store: StoreAnswer<'_>,
    caller: Caller,
    now: DateTime<Utc>,
) -> Admission {
    let groups = match who.groups {
        GroupsLookup::Known(g) => g,
        GroupsLookup::Failed(detail) => {
            return Admission::Unusable(Unusable::Groups {
                detail: detail.to_owned(),
            })
        }
    };
    let eff = policy.effective(&who.subject(groups));
    admit_effective(
        &eff,
        who,
        which,
        store,
        policy.store.on_unavailable,
        caller,
        now,
    )
}

/// [`admit`] for a caller that already holds the subject's [`Effective`]
/// policy (the PAM module shows its banner and describes it; the enforcer
/// caches it per subject). `who.groups` must be the groups `eff` was
/// computed with.
pub fn admit_effective(
    eff: &Effective<'_>,
    who: &Who<'_>,
    which: &Which<'_>,
    store: StoreAnswer<'_>,
    on_unavailable: OnUnavailable,
    caller: Caller,
    now: DateTime<Utc>,
) -> Admission {
    if let GroupsLookup::Failed(detail) = who.groups {
        return Admission::Unusable(Unusable::Groups {
            detail: detail.to_owned(),
        });
    }
    let mut state = match which {
        Which::NewLogin => SessionState::login(who.user, None, now),
        Which::Session(s) => *s,
    };
    state.user = who.user;
    state.client_id = who.client_key();
    let (revocations, preference) = match store {
        StoreAnswer::Read {
            revocations,
            preference,
        } => (revocations, preference),
        StoreAnswer::Failed(e) => {
            let verdict = store_failure_verdict(e, on_unavailable, caller);
            return match (verdict, which) {
                (FailureVerdict::Degrade, Which::NewLogin) => {
                    match decide(
                        eff,
                        &state,
                        &RevocationSet::new(),
                        eff.timeout_default.value,
                        now,
                    ) {
                        Decision::Allow(allow) => Admission::Degraded(Degraded {
                            detail: e.to_string(),
                            allow,
                        }),
                        // A new login has no revocation, termination or age
                        // to be refused for; kept total all the same.
                        Decision::Deny(d) => Admission::Deny(d),
                    }
                }
                (FailureVerdict::Degrade, Which::Session(_)) => {
                    Admission::Unusable(Unusable::Store {
                        detail: e.to_string(),
                        why: "a live session is left as it is while the store is unavailable",
                    })
                }
                (FailureVerdict::Deny(why), _) => Admission::Unusable(Unusable::Store {
                    detail: e.to_string(),
                    why,
                }),
            };
        }
    };
    let lifetime = eff.token_lifetime(preference).value;
    match decide(eff, &state, revocations, lifetime, now) {
        Decision::Allow(a) => Admission::Allow(a),
        Decision::Deny(d) => Admission::Deny(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{Revocation, Target};
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn policy(on_unavailable: &str) -> Policy {
        Policy::parse(
            &format!(
                "version: 1\nsession: {{ inactivity: 30m }}\nrules:\n  - name: admins\n    match: {{ groups: [wheel] }}\n    session: {{ inactivity: 5m }}\nstore: {{ backend: sqlite, path: /nonexistent/x.db, on_unavailable: {on_unavailable} }}\n"
            ),
            "p.yaml",
        )
        .unwrap()
    }

    fn who<'a>(groups: GroupsLookup<'a>) -> Who<'a> {
        Who {
            user: "alice",
            groups,
            service: Some("sshd"),
            client: None,
            host: None,
        }
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable {
            location: "redis://x".into(),
            detail: "connection refused".into(),
        }
    }

    #[test]
    fn only_an_unreachable_store_is_degraded_and_never_for_a_setuid_caller() {
        let p = policy("allow");
        let g = vec![];
        let w = who(GroupsLookup::Known(&g));
        let e = unavailable();
        let a = admit(
            &p,
            &w,
            &Which::NewLogin,
            StoreAnswer::Failed(&e),
            Caller::default(),
            t(0),
        );
        assert!(matches!(a, Admission::Degraded(_)), "{a:?}");
        let a = admit(
            &p,
            &w,
            &Which::NewLogin,
            StoreAnswer::Failed(&e),
            Caller { secure: true },
            t(0),
        );
        assert!(
            matches!(a, Admission::Unusable(Unusable::Store { .. })),
            "{a:?}"
        );
        for e in [
            StoreError::TooNew {
                location: "x".into(),
                found: 9,
                supported: 3,
            },
            StoreError::Corrupt {
                location: "x".into(),
                detail: "bad".into(),
            },
            StoreError::Resource {
                location: "x".into(),
                detail: "too many open files".into(),
            },
        ] {
            let a = admit(
                &p,
                &w,
                &Which::NewLogin,
                StoreAnswer::Failed(&e),
                Caller::default(),
                t(0),
            );
            assert!(matches!(a, Admission::Unusable(_)), "{e}: {a:?}");
        }
        let p = policy("deny");
        let a = admit(
            &p,
            &w,
            &Which::NewLogin,
            StoreAnswer::Failed(&e),
            Caller::default(),
            t(0),
        );
        assert!(matches!(a, Admission::Unusable(_)), "{a:?}");
    }

    #[test]
    fn a_failed_group_lookup_is_never_looser_limits() {
        let p = policy("allow");
        let revs = RevocationSet::new();
        let read = StoreAnswer::Read {
            revocations: &revs,
            preference: None,
        };
        let a = admit(
            &p,
            &who(GroupsLookup::Failed("sssd down")),
            &Which::NewLogin,
            read,
            Caller::default(),
            t(0),
        );
        assert!(
            matches!(a, Admission::Unusable(Unusable::Groups { .. })),
            "{a:?}"
        );
        let wheel = vec!["wheel".to_string()];
        match admit(
            &p,
            &who(GroupsLookup::Known(&wheel)),
            &Which::NewLogin,
            read,
            Caller::default(),
            t(0),
        ) {
            Admission::Allow(a) => assert_eq!(a.idle_deadline, t(300)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_service_revocation_reaches_live_pam_sessions() {
        let p = policy("deny");
        let g = vec![];
        let mut revs = RevocationSet::new();
        revs.insert(Revocation {
            id: "r1".into(),
            target: Target::Client("sshd".into()),
            not_before: t(10),
            expires_at: None,
            reason: None,
            actor: "root".into(),
            created_at: t(10),
        });
        let state = SessionState {
            id: Some("s1"),
            user: "alice",
            client_id: None,
            started_at: t(0),
            last_activity: t(5),
            remember_me: false,
            terminate_requested: false,
            terminate_requested_by: None,
        };
        let read = StoreAnswer::Read {
            revocations: &revs,
            preference: None,
        };
        let a = admit(
            &p,
            &who(GroupsLookup::Known(&g)),
            &Which::Session(state),
            read,
            Caller::default(),
            t(20),
        );
        assert!(matches!(a, Admission::Deny(Deny::Revoked { .. })), "{a:?}");
    }

    /// Issue 16: a session its own user ended (from another session, the
    /// local API or a sessions page) is not said to be an administrator's
    /// doing; an administrator's is, by name; a record naming nobody says so.
    #[test]
    fn a_termination_says_who_asked() {
        let p = policy("deny");
        let g = vec![];
        let revs = RevocationSet::new();
        let ended_by = |by: Option<&str>| {
            let state = SessionState {
                id: Some("s1"),
                user: "alice",
                client_id: None,
                started_at: t(0),
                last_activity: t(5),
                remember_me: false,
                terminate_requested: true,
                terminate_requested_by: by,
            };
            let read = StoreAnswer::Read {
                revocations: &revs,
                preference: None,
            };
            match admit(
                &p,
                &who(GroupsLookup::Known(&g)),
                &Which::Session(state),
                read,
                Caller::default(),
                t(20),
            ) {
                Admission::Deny(d) => d,
                other => panic!("{other:?}"),
            }
        };
        let own = ended_by(Some("alice"));
        assert_eq!(
            own,
            Deny::Terminated {
                by: Some("alice".into()),
                own: true
            }
        );
        assert_eq!(own.to_string(), "ended by its own user (alice)");
        assert_eq!(own.end_reason(), crate::EndReason::Terminated);
        let admin = ended_by(Some("root"));
        assert_eq!(
            admin,
            Deny::Terminated {
                by: Some("root".into()),
                own: false
            }
        );
        assert_eq!(admin.to_string(), "terminated by an administrator (root)");
        let unnamed = ended_by(None);
        assert!(!unnamed.to_string().contains("administrator"), "{unnamed}");
    }
}
