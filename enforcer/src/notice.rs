//! The one-line notices written to a session's terminal.

use chrono::{DateTime, Local, Utc};
use curfew_policy::{Deny, NextEnd};

use crate::timeline::Warning;

fn clock_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%H:%M:%S").to_string()
}

fn remaining(deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (deadline - now).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The warning ahead of a forced end: what will happen, when, and for
/// idleness, that any key keeps the session (the "Extend Session" dialog).
/// The kernel records input when a program reads it: at once in programs
/// that read each key (bash, zsh, editors), at Enter at a prompt that reads
/// whole lines (dash, `read`); the text says so.
pub fn warning(w: &Warning, now: DateTime<Utc>) -> String {
    match w.kind {
        NextEnd::Idle => format!(
            "curfew: this session is idle and will be closed at {} (in {}). Press any key (Enter at a plain prompt) to stay logged in.",
            clock_time(w.deadline),
            remaining(w.deadline, now)
        ),
        NextEnd::MaxDuration => format!(
            "curfew: this session reaches its maximum duration and will be closed at {} (in {}). Save your work.",
            clock_time(w.deadline),
            remaining(w.deadline, now)
        ),
    }
}

/// The last line a session sees.
pub fn closing(deny: &Deny) -> String {
    let why = match deny {
        Deny::Revoked { .. } => "access was revoked",
        Deny::Terminated => "an administrator terminated it",
        Deny::MaxDuration { .. } => "it reached its maximum duration",
        Deny::Idle { .. } => "it was idle too long",
    };
    format!("curfew: this session is being closed now: {why}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn warnings_say_what_when_and_how_to_stay() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let deadline = now + chrono::Duration::seconds(120);
        let idle = warning(
            &Warning {
                kind: NextEnd::Idle,
                deadline,
            },
            now,
        );
        assert!(idle.contains("idle"), "{idle}");
        assert!(idle.contains(&clock_time(deadline)), "{idle}");
        assert!(idle.contains("in 2m"), "{idle}");
        assert!(idle.contains("Press any key"), "{idle}");
        let max = warning(
            &Warning {
                kind: NextEnd::MaxDuration,
                deadline,
            },
            now,
        );
        assert!(
            max.contains("maximum duration") && max.contains("in 2m"),
            "{max}"
        );
        assert!(
            !max.contains("any key"),
            "a key does not extend max_duration: {max}"
        );
        for line in [idle, max, closing(&Deny::Terminated)] {
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }
}
