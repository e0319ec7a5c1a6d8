//! A stored session's state at one moment, as `curfew sessions list`
//! shows it: the admission kernel's answer for the session, for PAM and
//! OIDC sessions alike.
//!
//! A record that has not ended may still be over: the enforcer ends a PAM
//! session at its next pass, and an OIDC session is only ended in the
//! store when a token request runs into it. The state says what the
//! decision is *now* (revoked, idle, past its maximum duration,
//! terminating), whatever the record says yet.
//!
//! Pure: `now` is an argument.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::admission::{admit, Admission, Caller, GroupsLookup, StoreAnswer, Which, Who};
use crate::decision::{Deny, NextEnd, SessionState};
use crate::policy::Policy;
use crate::revocation::RevocationSet;
use crate::session::{EndReason, Session, SessionKind};

/// A session's state at `now`. In JSON (`sessions list --format json`,
/// the field `state` of each session) an object tagged by `state`, e.g.
/// `{"state": "idle", "since": "2026-11-29T14:00:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Allowed to go on.
    Live {
        /// Which limit ends it first, unless there is activity (idle) first.
        next_end: NextEnd,
        /// When.
        until: DateTime<Utc>,
    },
    /// Idle past its inactivity limit (not ended in the store yet).
    Idle {
        /// When the limit was reached.
        since: DateTime<Utc>,
    },
    /// Past its maximum duration (not ended in the store yet).
    MaxDuration {
        /// When the limit was reached.
        since: DateTime<Utc>,
    },
    /// A revocation applies: it ends at the next check (the enforcer's
    /// pass, the next token request).
    Revoked {
        /// The revocation's id.
        revocation_id: String,
        /// Its target, e.g. `user alice`.
        target: String,
    },
    /// An administrator asked for it to end.
    Terminating,
    /// The record says it ended.
    Ended {
        /// When.
        at: DateTime<Utc>,
        /// Why, when recorded.
        reason: Option<EndReason>,
    },
    /// The policy cannot be applied to it now (its user's groups could not
    /// be looked up): the state is unknown.
    Unknown {
        /// Why.
        detail: String,
    },
}

impl Status {
    /// Whether the session may go on (`live`).
    pub fn is_live(&self) -> bool {
        matches!(self, Status::Live { .. })
    }
}

/// The state of `session` at `now` under `policy`: `groups` are its user's
/// groups (or why they are unknown), `revocations` any set that holds the
/// revocations of its keys (the whole list will do). The subject is the
/// session's user, service or client and host, as the PAM module, the
/// enforcer and the token hook decide it; the user's own token lifetime
/// plays no part in the state and is not read.
pub fn status(
    policy: &Policy,
    session: &Session,
    groups: GroupsLookup<'_>,
    revocations: &RevocationSet,
    now: DateTime<Utc>,
) -> Status {
    if let Some(at) = session.ended_at {
        return Status::Ended {
            at,
            reason: session.end_reason,
        };
    }
    let who = Who {
        user: &session.user,
        groups,
        service: session.service.as_deref(),
        client: session.client_id.as_deref(),
        host: session.host.as_deref(),
    };
    let answer = StoreAnswer::Read {
        revocations,
        preference: None,
    };
    let which = Which::Session(SessionState::of(session, session.last_seen));
    of_admission(admit(policy, &who, &which, answer, Caller::default(), now))
}

/// What a session's last activity was, as `sessions list` shows it
/// (LAST ACTIVE): the record's `last_seen` and what moves it for this kind
/// of session. In JSON (the field `last_active` of each session) e.g.
/// `{"at": "2026-11-29T14:00:00Z", "by": "terminal"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastActive {
    /// When (`last_seen`, never before the session's start).
    pub at: DateTime<Utc>,
    /// What it was.
    pub by: ActiveBy,
}

/// What moved a session's `last_seen` last. The enforcer and the token hook
/// write `last_seen` only for activity the policy counts (docs/enforce.md,
/// "What counts as activity").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveBy {
    /// Nothing since the login.
    Login,
    /// Input read from or output written to the session's terminal, as the
    /// policy's `session.activity` counts them (`input`, `output`).
    Terminal,
    /// Data moved by a session without a terminal (`traffic`).
    Traffic,
    /// An OIDC token request (a refresh).
    Refresh,
}

impl ActiveBy {
    /// The stable name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveBy::Login => "login",
            ActiveBy::Terminal => "terminal",
            ActiveBy::Traffic => "traffic",
            ActiveBy::Refresh => "refresh",
        }
    }
}

/// The last activity of `session`: see [`LastActive`]. The kind follows
/// from the kind of session, because each kind has one measure (a PAM
/// session with a terminal: the terminal; without: its traffic; OIDC: its
/// token requests); a `last_seen` not after the start is the login itself.
pub fn last_active(session: &Session) -> LastActive {
    let by = if session.last_seen <= session.started_at {
        ActiveBy::Login
    } else {
        match session.kind {
            SessionKind::Oidc => ActiveBy::Refresh,
            SessionKind::Pam if session.tty.is_some() => ActiveBy::Terminal,
            SessionKind::Pam => ActiveBy::Traffic,
        }
    };
    LastActive {
        at: session.last_seen.max(session.started_at),
        by,
    }
}

/// The state an admission of a recorded, not ended session means.
pub fn of_admission(a: Admission) -> Status {
    match a {
        Admission::Allow(a) | Admission::Degraded(crate::admission::Degraded { allow: a, .. }) => {
            Status::Live {
                next_end: a.next_end,
                until: match a.next_end {
                    NextEnd::Idle => a.idle_deadline,
                    NextEnd::MaxDuration => a.absolute_deadline,
                },
            }
        }
        Admission::Deny(Deny::Revoked {
            revocation_id,
            target,
            ..
        }) => Status::Revoked {
            revocation_id,
            target,
        },
        Admission::Deny(Deny::Terminated { .. }) => Status::Terminating,
        Admission::Deny(Deny::Idle { deadline }) => Status::Idle { since: deadline },
        Admission::Deny(Deny::MaxDuration { deadline }) => Status::MaxDuration { since: deadline },
        Admission::Unusable(u) => Status::Unknown {
            detail: u.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{Revocation, Target};
    use crate::session::SessionKind;
    use chrono::TimeZone;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy::parse(
            "version: 1\nsession: { max_duration: 1h, inactivity: 10m }\nrules:\n  - name: admins\n    match: { groups: [wheel] }\n    session: { inactivity: 5m }\n",
            "p.yaml",
        )
        .unwrap()
    }

    fn session(kind: SessionKind) -> Session {
        let mut s = Session::start(kind, "alice", t(0), Duration::from_secs(300)).unwrap();
        match kind {
            SessionKind::Pam => s.service = Some("sshd".into()),
            SessionKind::Oidc => s.client_id = Some("web".into()),
        }
        s
    }

    #[test]
    fn the_last_activity_is_named_by_the_kind_of_session() {
        let mut pam = session(SessionKind::Pam);
        assert_eq!(
            last_active(&pam),
            LastActive {
                at: t(0),
                by: ActiveBy::Login
            }
        );
        pam.last_seen = t(60);
        assert_eq!(last_active(&pam).by, ActiveBy::Traffic);
        pam.tty = Some("pts/3".into());
        assert_eq!(
            last_active(&pam),
            LastActive {
                at: t(60),
                by: ActiveBy::Terminal
            }
        );
        let mut oidc = session(SessionKind::Oidc);
        oidc.last_seen = t(90);
        assert_eq!(last_active(&oidc).by, ActiveBy::Refresh);
        // A last_seen before the start is the login, at the start.
        oidc.last_seen = t(-90);
        assert_eq!(
            last_active(&oidc),
            LastActive {
                at: t(0),
                by: ActiveBy::Login
            }
        );
    }

    #[test]
    fn every_state_comes_from_the_decision_for_pam_and_oidc() {
        let p = policy();
        let none = RevocationSet::new();
        let g: Vec<String> = vec![];
        let known = GroupsLookup::Known(&g);
        for kind in [SessionKind::Pam, SessionKind::Oidc] {
            let s = session(kind);
            assert_eq!(
                status(&p, &s, known, &none, t(60)),
                Status::Live {
                    next_end: NextEnd::Idle,
                    until: t(600)
                },
                "{kind}"
            );
            assert_eq!(
                status(&p, &s, known, &none, t(700)),
                Status::Idle { since: t(600) }
            );
            let mut busy = s.clone();
            busy.last_seen = t(3500);
            assert_eq!(
                status(&p, &busy, known, &none, t(3600)),
                Status::MaxDuration { since: t(3600) }
            );
            let revs: RevocationSet = [Revocation {
                id: "r1".into(),
                target: Target::User("alice".into()),
                not_before: t(30),
                expires_at: Some(t(40)),
                reason: None,
                actor: "root".into(),
                created_at: t(30),
            }]
            .into_iter()
            .collect();
            assert_eq!(
                status(&p, &s, known, &revs, t(60)),
                Status::Revoked {
                    revocation_id: "r1".into(),
                    target: "user alice".into()
                },
                "{kind}: lifted at 40, and still revoked: it existed at 30"
            );
            let mut term = s.clone();
            term.terminate_requested_at = Some(t(10));
            assert_eq!(status(&p, &term, known, &none, t(60)), Status::Terminating);
            let mut ended = s.clone();
            ended.ended_at = Some(t(20));
            ended.end_reason = Some(EndReason::Logout);
            assert_eq!(
                status(&p, &ended, known, &revs, t(60)),
                Status::Ended {
                    at: t(20),
                    reason: Some(EndReason::Logout)
                }
            );
            assert!(matches!(
                status(&p, &s, GroupsLookup::Failed("sssd down"), &none, t(60)),
                Status::Unknown { .. }
            ));
        }
        // The rule applies through the groups: 5 min for wheel.
        let wheel = vec!["wheel".to_string()];
        assert_eq!(
            status(
                &p,
                &session(SessionKind::Pam),
                GroupsLookup::Known(&wheel),
                &RevocationSet::new(),
                t(400)
            ),
            Status::Idle { since: t(300) }
        );
    }
}
