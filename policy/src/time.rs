//! Times that enter from outside, and arithmetic on times that cannot fail.
//!
//! A time that comes from outside curfew's own clock (a terminal's access
//! time, an OIDC server's `auth_time`, a stored record, a `--expires`
//! argument) is checked where it enters: a time later than `now` by more
//! than [`MAX_SKEW`] is "no news" and never extends a deadline; a value that
//! is not a representable time at all is an error of that one input. Sums
//! and differences saturate at chrono's range, so no input makes a decision
//! panic (issue 12; the idea follows sudo-rs `src/system/timestamp.rs`,
//! which compares every stored stamp with `now` and rejects the impossible).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How far a time from outside may lie ahead of our clock and still count
/// (clocks of a fleet and of an OIDC server drift a little): 60 s, the
/// leeway OIDC libraries commonly give `iat`/`auth_time` checks.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// `t + d`, saturating at the latest representable time.
pub fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at the earliest representable time.
pub fn sub(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// An activity time observed outside curfew (a terminal's atime, a store's
/// record): `Some(min(t, now))` when it is not later than `now` by more than
/// [`MAX_SKEW`], `None` ("no news since the last known activity") when it
/// is. Never returns a time after `now`.
pub fn observed(t: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (t <= add(now, MAX_SKEW)).then(|| t.min(now))
}

/// A login time from outside (an OIDC `auth_time`): clamped to `now` when it
/// lies in the future by less than [`MAX_SKEW`] or more (a session never
/// starts in the future, so `max_duration` counts from no later than now
/// and `revoke all` reaches it). See [`from_unix`] for values that are not
/// times at all.
pub fn login_time(t: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    t.min(now)
}

/// Why a number is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}: {value} is not a time in seconds since 1970 between 0 and 253402300799 (year 9999)"
)]
pub struct TimeError {
    /// The field it came in, e.g. `auth_time`.
    pub field: String,
    /// The value.
    pub value: String,
}

/// The latest Unix time accepted from outside: 9999-12-31T23:59:59Z.
pub const MAX_UNIX: i64 = 253_402_300_799;

/// A Unix time in seconds from outside (`field` names it in the error):
/// 0 ..= [`MAX_UNIX`], else a [`TimeError`].
pub fn from_unix(field: &str, secs: i64) -> Result<DateTime<Utc>, TimeError> {
    let err = || TimeError {
        field: field.to_owned(),
        value: secs.to_string(),
    };
    if !(0..=MAX_UNIX).contains(&secs) {
        return Err(err());
    }
    DateTime::<Utc>::from_timestamp(secs, 0).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            add(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(add(t(0), Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            sub(DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(sub(t(0), Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(add(t(0), Duration::from_secs(5)), t(5));
    }

    #[test]
    fn future_observations_are_no_news_and_never_after_now() {
        assert_eq!(observed(t(-5), t(0)), Some(t(-5)));
        assert_eq!(observed(t(30), t(0)), Some(t(0)), "within the skew: now");
        assert_eq!(observed(t(61), t(0)), None);
        assert_eq!(observed(DateTime::<Utc>::MAX_UTC, t(0)), None);
        assert_eq!(login_time(t(3600), t(0)), t(0));
    }

    #[test]
    fn unix_times_out_of_range_name_the_field() {
        assert!(from_unix("auth_time", 1_800_000_000).is_ok());
        let e = from_unix("auth_time", i64::MAX).unwrap_err();
        assert!(
            e.to_string().starts_with("auth_time: 9223372036854775807"),
            "{e}"
        );
        assert!(from_unix("auth_time", -1).is_err());
    }
}
