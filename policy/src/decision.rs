//! The decision for one session at one moment. Pure: `now` is an argument.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::effective::Effective;
use crate::revocation::{RevocationKeys, RevocationSet};
use crate::session::{EndReason, Session};
use crate::time;

/// What the decision needs to know about a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionState<'a> {
    /// The session id; `None` for a login that has no session yet.
    pub id: Option<&'a str>,
    /// The user.
    pub user: &'a str,
    /// The OIDC client, if any.
    pub client_id: Option<&'a str>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Last activity.
    pub last_activity: DateTime<Utc>,
    /// A persistent OIDC login (remember_me.max_duration and
    /// remember_me.inactivity apply).
    pub remember_me: bool,
    /// Someone asked for it to end.
    pub terminate_requested: bool,
    /// Who asked, if named ([`Session::terminate_requested_by`]).
    pub terminate_requested_by: Option<&'a str>,
}

impl<'a> SessionState<'a> {
    /// A login that is starting at `now`.
    pub fn login(user: &'a str, client_id: Option<&'a str>, now: DateTime<Utc>) -> Self {
        SessionState {
            id: None,
            user,
            client_id,
            started_at: now,
            last_activity: now,
            remember_me: false,
            terminate_requested: false,
            terminate_requested_by: None,
        }
    }

    /// The state of a stored session, with activity last seen at `last_activity`
    /// (the later of the record's `last_seen` and what the caller observed).
    pub fn of(session: &'a Session, last_activity: DateTime<Utc>) -> Self {
        SessionState {
            id: Some(&session.id),
            user: &session.user,
            client_id: session.client_id.as_deref(),
            started_at: session.started_at,
            last_activity: last_activity.max(session.last_seen),
            remember_me: session.remember_me,
            terminate_requested: session.terminate_requested_at.is_some(),
            terminate_requested_by: session.terminate_requested_by.as_deref(),
        }
    }
}

/// Which limit will end an allowed session first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextEnd {
    /// The inactivity deadline, unless there is activity first.
    Idle,
    /// The absolute deadline.
    MaxDuration,
}

/// An allowed session and its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Allow {
    /// Lifetime of a token issued now.
    #[serde(with = "crate::serde_secs")]
    pub token_lifetime: Duration,
    /// When a token issued now expires: `now + token_lifetime`, never past
    /// the absolute deadline.
    pub token_expires_at: DateTime<Utc>,
    /// Sign-out for inactivity, unless there is activity first.
    pub idle_deadline: DateTime<Utc>,
    /// The end, whatever the activity.
    pub absolute_deadline: DateTime<Utc>,
    /// Which of the two comes first.
    pub next_end: NextEnd,
    /// When to warn the user: `warn_before` ahead of the earlier deadline.
    pub warn_at: DateTime<Utc>,
}

/// Why a session is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Deny {
    /// A revocation applies.
    Revoked {
        /// Its id.
        revocation_id: String,
        /// Its target, e.g. `user alice`.
        target: String,
        /// Its reason, if one was given.
        detail: Option<String>,
    },
    /// Someone asked for the session to end: its own user (from another
    /// session, the local API or a sessions page) or an administrator.
    Terminated {
        /// The account name of who asked, when the record names one
        /// ([`Session::terminate_requested_by`]).
        by: Option<String>,
        /// Whether that is the session's own user (`by` equals the
        /// session's user) rather than an administrator.
        own: bool,
    },
    /// Past the absolute deadline.
    MaxDuration {
        /// The deadline.
        deadline: DateTime<Utc>,
    },
    /// Idle past the inactivity deadline.
    Idle {
        /// The deadline.
        deadline: DateTime<Utc>,
    },
}

impl Deny {
    /// How a session ended by this denial is recorded.
    pub fn end_reason(&self) -> EndReason {
        match self {
            Deny::Revoked { .. } => EndReason::Revoked,
            Deny::Terminated { .. } => EndReason::Terminated,
            Deny::MaxDuration { .. } => EndReason::MaxDuration,
            Deny::Idle { .. } => EndReason::Idle,
        }
    }
}

impl std::fmt::Display for Deny {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deny::Revoked {
                revocation_id,
                target,
                detail,
            } => {
                write!(f, "revoked ({target}, revocation {revocation_id}")?;
                if let Some(d) = detail {
                    write!(f, ": {d}")?;
                }
                f.write_str(")")
            }
            Deny::Terminated {
                by: Some(by),
                own: true,
            } => write!(f, "ended by its own user ({by})"),
            Deny::Terminated {
                by: Some(by),
                own: false,
            } => write!(f, "terminated by an administrator ({by})"),
            Deny::Terminated { by: None, .. } => {
                f.write_str("terminated on request (who asked is not recorded)")
            }
            Deny::MaxDuration { deadline } => {
                write!(
                    f,
                    "past its maximum duration (ended at {})",
                    deadline.to_rfc3339()
                )
            }
            Deny::Idle { deadline } => {
                write!(
                    f,
                    "idle past the inactivity limit (ended at {})",
                    deadline.to_rfc3339()
                )
            }
        }
    }
}

/// The answer for one session at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Go on, with these deadlines.
    Allow(Allow),
    /// Stop.
    Deny(Deny),
}

impl Decision {
    /// Whether the session may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Decides whether `session` may go on at `now` under `eff`, given the
/// revocation list. `token_lifetime` is the lifetime a token issued now would
/// get (see [`Effective::token_lifetime`]).
///
/// Order: revocation, termination, absolute deadline, inactivity.
///
/// Total: no input makes it panic (every sum saturates, see
/// [`crate::time`]). Times in `session` that lie in the future are never
/// trusted to extend anything: a start later than `now` by more than
/// [`crate::time::MAX_SKEW`] cannot be a real login (only a forged or
/// corrupt record has one), so the session counts as started at the
/// beginning of time — every `all` revocation reaches it and its
/// `max_duration` is over; a start within the skew counts as `now`. Activity
/// later than `now` by more than the skew is no news: the session is idle
/// since its start; activity within the skew counts as `now`.
pub fn decide(
    eff: &Effective<'_>,
    session: &SessionState<'_>,
    revocations: &RevocationSet,
    token_lifetime: Duration,
    now: DateTime<Utc>,
) -> Decision {
    let keys = RevocationKeys {
        session: session.id,
        user: session.user,
        client: session.client_id,
    };
    let started_at = match time::observed(session.started_at, now) {
        Some(t) => t,
        None => DateTime::<Utc>::MIN_UTC,
    };
    let last_activity = time::observed(session.last_activity, now)
        .unwrap_or(started_at)
        .max(started_at);
    if let Some(r) = revocations.find(&keys, started_at, now) {
        return Decision::Deny(Deny::Revoked {
            revocation_id: r.id.clone(),
            target: r.target.to_string(),
            detail: r.reason.clone(),
        });
    }
    if session.terminate_requested {
        let by = session.terminate_requested_by;
        return Decision::Deny(Deny::Terminated {
            by: by.map(str::to_owned),
            own: by == Some(session.user),
        });
    }
    let absolute_deadline = time::add(started_at, eff.absolute_limit(session.remember_me));
    if now >= absolute_deadline {
        return Decision::Deny(Deny::MaxDuration {
            deadline: absolute_deadline,
        });
    }
    let idle_deadline = time::add(last_activity, eff.idle_limit(session.remember_me));
    if now >= idle_deadline {
        return Decision::Deny(Deny::Idle {
            deadline: idle_deadline,
        });
    }
    let (first, next_end) = if idle_deadline < absolute_deadline {
        (idle_deadline, NextEnd::Idle)
    } else {
        (absolute_deadline, NextEnd::MaxDuration)
    };
    Decision::Allow(Allow {
        token_lifetime,
        token_expires_at: time::add(now, token_lifetime).min(absolute_deadline),
        idle_deadline,
        absolute_deadline,
        next_end,
        warn_at: time::sub(first, eff.warn_before.value),
    })
}
