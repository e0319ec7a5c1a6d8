//! The one-line notices written to a session's terminal.

use chrono::{DateTime, Local, Utc};
use curfew_policy::{ActivitySet, Deny, NextEnd};

use crate::timeline::Warning;

fn clock_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%H:%M:%S").to_string()
}

fn remaining(deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (deadline - now).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The warning ahead of a forced end: what will happen, when, and for
/// idleness, what keeps the session under the policy's `activity` (the
/// "Extend Session" dialog). Only sessions with a terminal read it. The
/// kernel records input only when a program reads it: at once in programs
/// that read each key (bash, zsh, editors), at Enter at a prompt that reads
/// whole lines (dash, `read`), and never while a job in front reads
/// nothing (a silent `cp`, `sleep`); the text says so. With `output` counted, a
/// job that prints keeps the session, and the text says that too, so a
/// user whose build is running knows it is safe.
pub fn warning(w: &Warning, counts: ActivitySet, now: DateTime<Utc>) -> String {
    match w.kind {
        NextEnd::Idle => {
            let how = match (counts.input, counts.output) {
                (true, true) => "Press Enter at the prompt (or a key the program in front reads) to stay logged in; a running job that prints to this terminal also keeps it open, a silent one does not.",
                (true, false) => "Press Enter at the prompt (or a key the program in front reads) to stay logged in; a running job does not count.",
                (false, true) => "Only output to this terminal keeps it open (keys do not count here): run something that prints, or save your work.",
                (false, false) => "Nothing you do here keeps it open. Save your work.",
            };
            format!(
                "curfew: this session is idle and will be closed at {} (in {}). {how}",
                clock_time(w.deadline),
                remaining(w.deadline, now)
            )
        }
        NextEnd::MaxDuration => format!(
            "curfew: this session reaches its maximum duration and will be closed at {} (in {}). Save your work.",
            clock_time(w.deadline),
            remaining(w.deadline, now)
        ),
    }
}

/// The last line a session sees. A termination says who asked for it: the
/// session's own user (from another session, the local API or the web
/// sessions page) is told they did it, not that an administrator did
/// (issue 16); an administrator is named.
pub fn closing(deny: &Deny) -> String {
    let why = match deny {
        Deny::Revoked { .. } => "access was revoked".to_string(),
        Deny::Terminated {
            by: Some(_),
            own: true,
        } => "you ended it yourself".to_string(),
        Deny::Terminated {
            by: Some(by),
            own: false,
        } => format!(
            "an administrator ({}) terminated it",
            crate::text::escape(by)
        ),
        Deny::Terminated { by: None, .. } => "it was terminated on request".to_string(),
        Deny::MaxDuration { .. } => "it reached its maximum duration".to_string(),
        Deny::Idle { .. } => "it was idle too long".to_string(),
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
            ActivitySet::DEFAULT,
            now,
        );
        assert!(idle.contains("running job"), "{idle}");
        let strict = warning(
            &Warning {
                kind: NextEnd::Idle,
                deadline,
            },
            ActivitySet::of(&[curfew_policy::ActivityKind::Input]),
            now,
        );
        assert!(
            strict.contains("Press Enter at the prompt") && strict.contains("does not count"),
            "{strict}"
        );
        assert!(idle.contains("idle"), "{idle}");
        assert!(idle.contains(&clock_time(deadline)), "{idle}");
        assert!(idle.contains("in 2m"), "{idle}");
        assert!(
            idle.contains("Press Enter at the prompt") && idle.contains("a silent one does not"),
            "{idle}"
        );
        let max = warning(
            &Warning {
                kind: NextEnd::MaxDuration,
                deadline,
            },
            ActivitySet::DEFAULT,
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
        let by = |by: Option<&str>, own| Deny::Terminated {
            by: by.map(str::to_owned),
            own,
        };
        for line in [
            idle,
            max,
            closing(&by(Some("alice"), true)),
            closing(&by(Some("root"), false)),
            closing(&by(None, false)),
        ] {
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    /// Issue 16: a user who ends their own session is not told that an
    /// administrator did; an administrator's end names them.
    #[test]
    fn the_closing_notice_says_who_ended_the_session() {
        let own = closing(&Deny::Terminated {
            by: Some("alice".into()),
            own: true,
        });
        assert!(!own.contains("administrator"), "{own}");
        assert!(own.contains("you ended it"), "{own}");
        let admin = closing(&Deny::Terminated {
            by: Some("root".into()),
            own: false,
        });
        assert!(
            admin.contains("an administrator (root) terminated it"),
            "{admin}"
        );
        let unknown = closing(&Deny::Terminated {
            by: None,
            own: false,
        });
        assert!(!unknown.contains("administrator"), "{unknown}");
        // A name from a record reaches the user's terminal without its
        // controls (found by review: `SUDO_USER` was taken as the name).
        let evil = closing(&Deny::Terminated {
            by: Some("x\u{1b}[2J\u{1b}]0;owned\u{7}".into()),
            own: false,
        });
        assert!(!evil.chars().any(|c| c.is_control()), "{evil:?}");
        assert!(evil.contains("x\\u{1b}[2J"), "{evil}");
    }
}
