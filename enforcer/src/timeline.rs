//! What to do with one live session at one moment: nothing, warn, or end it.
//!
//! Pure: `now` and everything observed about the session are arguments. The
//! answer itself comes from the admission kernel
//! ([`curfew_policy::admission::admit_effective`], the one every enforcement
//! point asks); this module only turns it into an action, adds the warning
//! ahead of a forced end, and refuses to end a session for idleness when its
//! idleness could not be measured.

use chrono::{DateTime, Utc};
use curfew_policy::admission::{
    admit_effective, Admission, Caller, StoreAnswer, Unusable, Which, Who,
};
use curfew_policy::policy::OnUnavailable;
use curfew_policy::{time, ActivityKind, Deny, Effective, NextEnd, Session, SessionState};

/// What the enforcer saw of a session's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// The session has terminals and their input times were read.
    Tty {
        /// The latest counted activity on any of them, as the kernel
        /// records it (tty atime for input, what `w` reads; tty mtime for
        /// output). The kernel coarsens both to 8 seconds.
        recorded: DateTime<Utc>,
        /// The latest moment that activity could have happened: `recorded`
        /// rounded up to the end of its 8-second window. Deadlines are taken
        /// from this, so idleness is never judged early.
        latest: DateTime<Utc>,
        /// Which kind it was (input or output).
        kind: ActivityKind,
    },
    /// A session without a terminal moved data since the last pass (its
    /// processes' /proc I/O counters grew).
    Traffic {
        /// When it was seen: the pass's `now`.
        at: DateTime<Utc>,
    },
    /// Nothing that counts was seen (no terminal and no traffic, or the
    /// policy does not count what there is): idleness is judged from the
    /// record's `last_seen` alone.
    NoTty,
    /// The session's terminals only show times beyond `now` + [`time::MAX_SKEW`]
    /// (their owner set them): no news, judged from `last_seen` as without
    /// a terminal; such a time is never written back.
    NoNews,
    /// The session has ended (its user logged out); the processes it left
    /// behind are judged by revocations, termination requests and
    /// `max_duration`, never by idleness (which is about a login).
    LoggedOut,
    /// The session has a terminal whose times could not be read: it is not
    /// ended for idleness until they can be.
    Unreadable,
}

/// A warning already given to a session: which end, and for when.
pub type Warned = (NextEnd, DateTime<Utc>);

/// The forced end a warning announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warning {
    /// Idleness or the absolute deadline.
    pub kind: NextEnd,
    /// When the session will be ended, unless (for idleness) there is input first.
    pub deadline: DateTime<Utc>,
}

impl Warning {
    /// The record kept so that the same warning is not given twice.
    pub fn key(&self) -> Warned {
        (self.kind, self.deadline)
    }
}

/// What to do with a session now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let it go on.
    Continue,
    /// Let it go on, and warn its user.
    Warn(Warning),
    /// It was idle past its deadline, but its terminal could not be read:
    /// let it go on and say why.
    IdleUnmeasured,
    /// End it.
    End(Deny),
    /// The policy cannot be applied to it now (the admission kernel's
    /// `Unusable`: its store failed): leave it as it is and say why.
    Unusable(Unusable),
}

/// One step of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// Input newer than the record's `last_seen`, to write back
    /// (`Store::touch_session`), so that `sessions list` shows it.
    pub touch: Option<DateTime<Utc>>,
}

/// The last activity a session's record holds at `now`: its `last_seen`
/// as [`time::observed`] takes it (a time in the future is no news), and
/// never before its start (itself at most `now`).
pub fn recorded_activity(session: &Session, now: DateTime<Utc>) -> DateTime<Utc> {
    let started = session.started_at.min(now);
    time::observed(session.last_seen, now)
        .unwrap_or(started)
        .max(started)
}

/// Decides what to do with `session` at `now`, through the admission
/// kernel ([`admit_effective`]): `eff` is the policy for `who` (the
/// session's user, groups, service and this host) and `store` the store's
/// answer about its revocations, or its failure.
///
/// `warned` is the warning already given to this session, if any: a warning
/// is given once per (kind, deadline), so input that moves the idle deadline
/// earns a fresh warning when the new deadline comes near.
///
/// Times from the record are checked as they enter: a `last_seen` later
/// than `now` + [`time::MAX_SKEW`] is no news (the session's start is the last
/// activity known), so a record cannot keep itself alive. (A `started_at`
/// in the future is refused by the caller as a fault of that record.)
#[allow(clippy::too_many_arguments)]
pub fn step(
    eff: &Effective<'_>,
    who: &Who<'_>,
    session: &Session,
    store: StoreAnswer<'_>,
    activity: Activity,
    warned: Option<Warned>,
    now: DateTime<Utc>,
) -> Step {
    let last_seen = recorded_activity(session, now);
    let (last_activity, touch) = match activity {
        Activity::Traffic { at } => (
            at,
            last_seen
                .checked_add_signed(chrono::Duration::seconds(1))
                .is_some_and(|after| at > after)
                .then_some(at.min(now)),
        ),
        Activity::Tty {
            recorded, latest, ..
        } => (
            latest,
            // Only forward, and only by whole seconds: the kernel's own
            // granularity is 8 s, so this writes at most once per window.
            // Never later than now: a record only holds what happened.
            last_seen
                .checked_add_signed(chrono::Duration::seconds(1))
                .is_some_and(|after| recorded > after)
                .then_some(recorded.min(now)),
        ),
        Activity::NoTty | Activity::NoNews | Activity::Unreadable => (last_seen, None),
        Activity::LoggedOut => (now, None),
    };
    let state = SessionState {
        last_activity: last_activity.max(last_seen),
        ..SessionState::of(session, last_activity)
    };
    let admission = admit_effective(
        eff,
        who,
        &Which::Session(state),
        store,
        // A live session is never degraded: the kernel answers Unusable for
        // any store failure, and the session is left as it is.
        OnUnavailable::Deny,
        Caller::default(),
        now,
    );
    let action = match admission {
        Admission::Deny(Deny::Idle { .. }) if activity == Activity::Unreadable => {
            Action::IdleUnmeasured
        }
        Admission::Deny(deny) => Action::End(deny),
        Admission::Unusable(why) => Action::Unusable(why),
        // Only a new login is ever degraded.
        Admission::Degraded(_) => Action::Continue,
        Admission::Allow(allow) if now >= allow.warn_at => {
            let warning = Warning {
                kind: allow.next_end,
                deadline: match allow.next_end {
                    NextEnd::Idle => allow.idle_deadline,
                    NextEnd::MaxDuration => allow.absolute_deadline,
                },
            };
            if warned == Some(warning.key()) {
                Action::Continue
            } else {
                Action::Warn(warning)
            }
        }
        Admission::Allow(_) => Action::Continue,
    };
    Step { action, touch }
}

/// `recorded` rounded up to the end of the kernel's 8-second window: Linux
/// updates a tty's atime only when the new time differs from the stored one
/// in more than the low three bits of the seconds (so that the exact timing
/// of keystrokes does not leak), so the last input happened before the end
/// of the window `recorded` falls in.
pub fn latest_input(recorded: DateTime<Utc>) -> DateTime<Utc> {
    let secs = recorded.timestamp();
    (secs | 7)
        .checked_add(1)
        .and_then(|end| DateTime::from_timestamp(end, 0))
        .unwrap_or(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration as CDuration, TimeZone};
    use curfew_policy::admission::GroupsLookup;
    use curfew_policy::{
        EndReason, Policy, Revocation, RevocationSet, SessionKind, Subject, Target,
    };
    use std::time::Duration;

    /// [`step`] for a session of a user without groups, on a store that
    /// answered with `revs`.
    fn step_(
        eff: &Effective<'_>,
        s: &Session,
        revs: &RevocationSet,
        activity: Activity,
        warned: Option<Warned>,
        now: DateTime<Utc>,
    ) -> Step {
        let who = Who {
            user: &s.user,
            groups: GroupsLookup::Known(&[]),
            service: s.service.as_deref(),
            client: None,
            host: None,
        };
        let store = StoreAnswer::Read {
            revocations: revs,
            preference: None,
        };
        step(eff, &who, s, store, activity, warned, now)
    }

    /// A clock the test moves by hand.
    struct Clock(DateTime<Utc>);
    impl Clock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
        fn advance(&mut self, secs: i64) {
            self.0 += CDuration::seconds(secs);
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy::parse(
            "version: 1\nsession: { max_duration: 1h, inactivity: 10m, warn_before: 2m }\n",
            "test.yaml",
        )
        .unwrap()
    }

    fn session(start: DateTime<Utc>) -> Session {
        let mut s =
            Session::start(SessionKind::Pam, "alice", start, Duration::from_secs(300)).unwrap();
        s.tty = Some("/dev/pts/3".into());
        s
    }

    fn tty(at: DateTime<Utc>) -> Activity {
        Activity::Tty {
            recorded: at,
            latest: latest_input(at),
            kind: ActivityKind::Input,
        }
    }

    /// Runs a session through the timeline second by second, as the
    /// enforcer's loop would, and returns (second, action) for every action
    /// that is not `Continue`, up to and including the end.
    fn run(
        p: &Policy,
        s: &mut Session,
        revs: &RevocationSet,
        clock: &mut Clock,
        horizon: i64,
        mut activity: impl FnMut(DateTime<Utc>) -> Activity,
    ) -> Vec<(i64, Action)> {
        let eff = p.effective(&Subject {
            user: &s.user,
            ..Default::default()
        });
        let mut warned = None;
        let mut out = Vec::new();
        for _ in 0..horizon {
            let now = clock.now();
            let st = step_(&eff, s, revs, activity(now), warned, now);
            if let Some(at) = st.touch {
                s.last_seen = s.last_seen.max(at);
            }
            let offset = (now - s.started_at).num_seconds();
            match st.action {
                Action::Continue => {}
                Action::Warn(w) => {
                    warned = Some(w.key());
                    out.push((offset, Action::Warn(w)));
                }
                Action::End(d) => {
                    out.push((offset, Action::End(d)));
                    return out;
                }
                a => out.push((offset, a)),
            }
            clock.advance(1);
        }
        out
    }

    #[test]
    fn an_idle_session_is_warned_once_then_ended_on_the_deadline() {
        let p = policy();
        let mut clock = Clock(t0());
        let mut s = session(t0());
        // The last keystroke was at login (t0 is on an 8-second boundary).
        let out = run(&p, &mut s, &RevocationSet::new(), &mut clock, 4000, |_| {
            tty(t0())
        });
        let idle_deadline = latest_input(t0()) + CDuration::minutes(10);
        assert_eq!(
            out,
            vec![
                (
                    (idle_deadline - t0()).num_seconds() - 120,
                    Action::Warn(Warning {
                        kind: NextEnd::Idle,
                        deadline: idle_deadline
                    })
                ),
                (
                    (idle_deadline - t0()).num_seconds(),
                    Action::End(Deny::Idle {
                        deadline: idle_deadline
                    })
                ),
            ]
        );
        assert_eq!(
            out[1].1.clone(),
            Action::End(Deny::Idle {
                deadline: idle_deadline
            })
        );
        if let Action::End(d) = &out[1].1 {
            assert_eq!(d.end_reason(), EndReason::Idle);
        }
    }

    #[test]
    fn a_keystroke_after_the_warning_moves_the_deadline_and_earns_a_new_warning() {
        let p = policy();
        let mut clock = Clock(t0());
        let mut s = session(t0());
        let typed_at = t0() + CDuration::seconds(9 * 60); // after the first warning (at 8m8s)
        let out = run(&p, &mut s, &RevocationSet::new(), &mut clock, 4000, |now| {
            tty(if now >= typed_at { typed_at } else { t0() })
        });
        let first = latest_input(t0()) + CDuration::minutes(10);
        let second = latest_input(typed_at) + CDuration::minutes(10);
        let kinds: Vec<_> = out.iter().map(|(at, a)| (*at, a.clone())).collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert_eq!(
            kinds[0].1,
            Action::Warn(Warning {
                kind: NextEnd::Idle,
                deadline: first
            })
        );
        assert_eq!(
            kinds[1].1,
            Action::Warn(Warning {
                kind: NextEnd::Idle,
                deadline: second
            })
        );
        assert_eq!(kinds[1].0, (second - t0()).num_seconds() - 120);
        assert_eq!(
            kinds[2],
            (
                (second - t0()).num_seconds(),
                Action::End(Deny::Idle { deadline: second })
            )
        );
        // The keystroke was written back to the record.
        assert_eq!(s.last_seen, typed_at);
    }

    #[test]
    fn steady_input_keeps_a_session_alive_until_max_duration_with_a_warning_first() {
        let p = policy();
        let mut clock = Clock(t0());
        let mut s = session(t0());
        // Someone types every second, for ever.
        let out = run(&p, &mut s, &RevocationSet::new(), &mut clock, 4000, tty);
        let end = t0() + CDuration::hours(1);
        assert_eq!(
            out,
            vec![
                (
                    3600 - 120,
                    Action::Warn(Warning {
                        kind: NextEnd::MaxDuration,
                        deadline: end
                    })
                ),
                (3600, Action::End(Deny::MaxDuration { deadline: end })),
            ]
        );
    }

    #[test]
    fn a_revocation_ends_the_session_at_the_next_step_without_warning() {
        let p = policy();
        let mut clock = Clock(t0());
        let mut s = session(t0());
        let revoked_at = t0() + CDuration::seconds(30);
        let revs: RevocationSet = [Revocation {
            id: "r1".into(),
            target: Target::User("alice".into()),
            not_before: revoked_at,
            expires_at: None,
            reason: Some("left the company".into()),
            actor: "root".into(),
            created_at: revoked_at,
        }]
        .into_iter()
        .collect();
        let out = run(&p, &mut s, &revs, &mut clock, 4000, tty);
        assert_eq!(out.len(), 1, "{out:?}");
        // The set is in force from the start here: the enforcer only ever sees
        // revocations that exist, so the session ends at the first step.
        match &out[0] {
            (0, Action::End(d @ Deny::Revoked { .. })) => {
                assert_eq!(d.end_reason(), EndReason::Revoked)
            }
            other => panic!("expected a revocation at once, got {other:?}"),
        }
    }

    #[test]
    fn a_termination_request_ends_the_session() {
        let p = policy();
        let eff = p.effective(&Subject {
            user: "alice",
            ..Default::default()
        });
        let mut s = session(t0());
        let now = t0() + CDuration::seconds(5);
        let before = step_(&eff, &s, &RevocationSet::new(), tty(now), None, now);
        assert_eq!(before.action, Action::Continue);
        s.terminate_requested_at = Some(now);
        s.terminate_requested_by = Some(s.user.clone());
        let after = step_(&eff, &s, &RevocationSet::new(), tty(now), None, now);
        assert_eq!(
            after.action,
            Action::End(Deny::Terminated {
                by: Some(s.user.clone()),
                own: true
            })
        );
    }

    #[test]
    fn without_a_tty_idleness_is_judged_from_last_seen() {
        let p = policy();
        let mut clock = Clock(t0());
        let mut s = session(t0());
        s.tty = None;
        s.last_seen = t0() + CDuration::minutes(5);
        let out = run(&p, &mut s, &RevocationSet::new(), &mut clock, 4000, |_| {
            Activity::NoTty
        });
        let deadline = t0() + CDuration::minutes(15);
        assert_eq!(
            out.last(),
            Some(&(15 * 60, Action::End(Deny::Idle { deadline })))
        );
        assert_eq!(s.last_seen, t0() + CDuration::minutes(5), "nothing touched");
    }

    #[test]
    fn an_unreadable_tty_never_ends_a_session_for_idleness() {
        let p = policy();
        let mut clock = Clock(t0());
        let mut s = session(t0());
        let out = run(&p, &mut s, &RevocationSet::new(), &mut clock, 3000, |_| {
            Activity::Unreadable
        });
        // It is warned (the deadline from last_seen is near), then reported
        // as unmeasured every step after the deadline, never ended.
        assert!(
            out.iter().all(|(_, a)| !matches!(a, Action::End(_))),
            "{out:?}"
        );
        assert!(out.iter().any(|(_, a)| *a == Action::IdleUnmeasured));
        // max_duration still applies.
        let mut clock = Clock(t0());
        let out = run(&p, &mut s, &RevocationSet::new(), &mut clock, 4000, |_| {
            Activity::Unreadable
        });
        assert!(
            matches!(
                out.last(),
                Some((3600, Action::End(Deny::MaxDuration { .. })))
            ),
            "{out:?}"
        );
    }

    #[test]
    fn a_session_first_seen_inside_the_warning_window_is_warned_at_once() {
        let p = policy();
        let eff = p.effective(&Subject {
            user: "alice",
            ..Default::default()
        });
        let s = session(t0());
        let now = t0() + CDuration::minutes(59);
        let st = step_(&eff, &s, &RevocationSet::new(), tty(now), None, now);
        assert_eq!(
            st.action,
            Action::Warn(Warning {
                kind: NextEnd::MaxDuration,
                deadline: t0() + CDuration::hours(1)
            })
        );
        let again = step_(
            &eff,
            &s,
            &RevocationSet::new(),
            tty(now),
            Some((NextEnd::MaxDuration, t0() + CDuration::hours(1))),
            now,
        );
        assert_eq!(again.action, Action::Continue);
    }

    #[test]
    fn tty_times_round_up_to_the_kernels_eight_second_window() {
        let at = |s| Utc.timestamp_opt(s, 0).unwrap();
        assert_eq!(latest_input(at(1_000_000_000)), at(1_000_000_008));
        assert_eq!(latest_input(at(1_000_000_007)), at(1_000_000_008));
        assert_eq!(latest_input(at(1_000_000_008)), at(1_000_000_016));
        // 1_000_000_000 is a multiple of 8, so t0-like instants sit at a window start.
        assert_eq!(1_000_000_000 % 8, 0);
    }
}
