//! The policy as it applies to one subject: rule matching and provenance.

use std::time::Duration;

use crate::activity::ActivitySet;
use crate::policy::{Limits, Match, Policy, Rule};

/// Who is logging in or asking for a token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The user name (PAM_USER, or the grant's owner).
    pub user: &'a str,
    /// The user's groups (getgrouplist for PAM, the groups claim for OIDC).
    pub groups: &'a [String],
    /// The PAM service, e.g. `sshd`.
    pub service: Option<&'a str>,
    /// The OIDC client id.
    pub client: Option<&'a str>,
    /// This host's name.
    pub host: Option<&'a str>,
}

impl Match {
    /// Whether `subject` is matched: every list given must contain the
    /// subject's value; a list the subject has no value for does not match.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        fn one(list: &Option<Vec<String>>, value: Option<&str>) -> bool {
            match list {
                None => true,
                Some(list) => value.is_some_and(|v| list.iter().any(|x| x == v)),
            }
        }
        one(&self.users, Some(s.user))
            && one(&self.services, s.service)
            && one(&self.clients, s.client)
            && one(&self.hosts, s.host)
            && match &self.groups {
                None => true,
                Some(list) => s.groups.iter().any(|g| list.iter().any(|x| x == g)),
            }
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source<'p> {
    /// curfew's built-in value: the policy file does not set it.
    Builtin,
    /// The policy's top-level `session` (or `banner`).
    Policy,
    /// A rule.
    Rule {
        /// Index in `rules`.
        index: usize,
        /// The rule's name.
        name: &'p str,
    },
    /// The user's own choice (`curfew timeout set`), within the bounds.
    User,
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Builtin => f.write_str("built-in default"),
            Source::Policy => f.write_str("policy"),
            Source::Rule { index, name } => write!(f, "rule {name:?} (rules[{index}])"),
            Source::User => f.write_str("user's choice"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sourced<'p, T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub source: Source<'p>,
}

/// The policy for one subject: every value, and who set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Effective<'p> {
    /// The rule that matched, if any.
    pub rule: Option<&'p Rule>,
    /// Token lifetime unless the user chose another.
    pub timeout_default: Sourced<'p, Duration>,
    /// Shortest lifetime a user may choose.
    pub timeout_min: Sourced<'p, Duration>,
    /// Longest lifetime a user may choose.
    pub timeout_max: Sourced<'p, Duration>,
    /// Absolute life of a session.
    pub max_duration: Sourced<'p, Duration>,
    /// Sign-out after no activity.
    pub inactivity: Sourced<'p, Duration>,
    /// Warning ahead of a forced end.
    pub warn_before: Sourced<'p, Duration>,
    /// Absolute life of a persistent OIDC login.
    pub remember_me_max_duration: Sourced<'p, Duration>,
    /// Sign-out of a persistent OIDC login after no refresh for this long
    /// (see [`Effective::idle_limit`] for how it is applied).
    pub remember_me_inactivity: Sourced<'p, Duration>,
    /// What counts as activity of a PAM session.
    pub activity: Sourced<'p, ActivitySet>,
    /// The login banner (empty for none).
    pub banner: Sourced<'p, &'p str>,
}

impl Policy {
    /// The first rule that matches `subject`, if any.
    pub fn matching_rule(&self, subject: &Subject<'_>) -> Option<(usize, &Rule)> {
        let rules = self.rules();
        let index = self.rule_index();
        // The earliest match among the candidates: each candidate list is
        // ascending, so its first full match is its best; stop early past the
        // best found so far.
        let mut best = usize::MAX;
        let mut scan = |list: &[usize]| {
            for &i in list {
                if i >= best {
                    break;
                }
                if rules[i].matcher.matches(subject) {
                    best = i;
                    break;
                }
            }
        };
        scan(&index.unkeyed);
        if let Some(list) = index.by_user.get(subject.user) {
            scan(list);
        }
        for g in subject.groups {
            if let Some(list) = index.by_group.get(g.as_str()) {
                scan(list);
            }
        }
        rules.get(best).map(|r| (best, r))
    }

    /// The effective policy for `subject`: the first matching rule's values
    /// over the top-level ones over the built-in ones.
    pub fn effective(&self, subject: &Subject<'_>) -> Effective<'_> {
        let matched = self.matching_rule(subject);
        fn pick<'p, T: Copy>(
            matched: Option<(usize, &'p Rule)>,
            rule_value: Option<T>,
            explicit: Option<T>,
            value: T,
        ) -> Sourced<'p, T> {
            match (matched, rule_value) {
                (Some((index, rule)), Some(v)) => Sourced {
                    value: v,
                    source: Source::Rule {
                        index,
                        name: &rule.name,
                    },
                },
                _ => Sourced {
                    value,
                    source: if explicit.is_some() {
                        Source::Policy
                    } else {
                        Source::Builtin
                    },
                },
            }
        }
        let ov = matched.map(|(_, r)| r.session).unwrap_or_default();
        let ex = &self.session_explicit;
        let l: &Limits = &self.session;
        let banner = match matched {
            Some((index, rule)) if rule.banner.is_some() => Sourced {
                value: rule.banner.as_deref().unwrap_or(""),
                source: Source::Rule {
                    index,
                    name: &rule.name,
                },
            },
            _ => Sourced {
                value: self.banner.as_str(),
                source: Source::Policy,
            },
        };
        Effective {
            rule: matched.map(|(_, r)| r),
            timeout_default: pick(
                matched,
                ov.timeout_default,
                ex.timeout_default,
                l.timeout_default,
            ),
            timeout_min: pick(matched, ov.timeout_min, ex.timeout_min, l.timeout_min),
            timeout_max: pick(matched, ov.timeout_max, ex.timeout_max, l.timeout_max),
            max_duration: pick(matched, ov.max_duration, ex.max_duration, l.max_duration),
            inactivity: pick(matched, ov.inactivity, ex.inactivity, l.inactivity),
            warn_before: pick(matched, ov.warn_before, ex.warn_before, l.warn_before),
            remember_me_max_duration: pick(
                matched,
                ov.remember_me_max_duration,
                ex.remember_me_max_duration,
                l.remember_me_max_duration,
            ),
            remember_me_inactivity: pick(
                matched,
                ov.remember_me_inactivity,
                ex.remember_me_inactivity,
                l.remember_me_inactivity,
            ),
            activity: pick(matched, ov.activity, ex.activity, l.activity),
            banner,
        }
    }
}

impl<'p> Effective<'p> {
    /// The token lifetime for a user whose own choice is `preference`: the
    /// choice, clamped into `timeout_min..=timeout_max` (a policy may have
    /// narrowed the bounds since the user chose), or the default.
    pub fn token_lifetime(&self, preference: Option<Duration>) -> Sourced<'p, Duration> {
        match preference {
            Some(p) => Sourced {
                value: p.clamp(self.timeout_min.value, self.timeout_max.value),
                source: Source::User,
            },
            None => self.timeout_default,
        }
    }

    /// Whether `d` is a token lifetime this subject may choose.
    pub fn check_preference(&self, d: Duration) -> Result<(), String> {
        let f = crate::duration::format;
        if d < self.timeout_min.value || d > self.timeout_max.value {
            Err(format!(
                "{} is outside the allowed token lifetimes {}..{} (timeout.min..timeout.max, from {})",
                f(d),
                f(self.timeout_min.value),
                f(self.timeout_max.value),
                self.timeout_max.source
            ))
        } else {
            Ok(())
        }
    }

    /// How long a session may go without activity, persistent or not. A
    /// persistent ("remember me") login gets `remember_me.inactivity`,
    /// never less than `inactivity` and never past
    /// `remember_me.max_duration` (a value inherited from elsewhere in the
    /// policy may lie outside; it is brought into that range here).
    pub fn idle_limit(&self, remember_me: bool) -> Duration {
        if remember_me {
            self.remember_me_inactivity
                .value
                .min(self.remember_me_max_duration.value)
                .max(self.inactivity.value)
        } else {
            self.inactivity.value
        }
    }

    /// The absolute life of a session, persistent or not.
    pub fn absolute_limit(&self, remember_me: bool) -> Duration {
        if remember_me {
            self.remember_me_max_duration.value
        } else {
            self.max_duration.value
        }
    }
}
