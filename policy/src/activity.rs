//! What counts as activity of a session, and what the last activity was.
//!
//! The policy's `session.activity` (top level or per rule) lists the kinds
//! of activity that move a PAM session's inactivity deadline. Which ones can
//! be seen depends on the kind of session (docs/enforce.md has the table):
//!
//! - a session **with a terminal** is judged by its terminal: [`Input`]
//!   (keys read from it: the tty's atime, what `w` reads) and [`Output`]
//!   (bytes written to it, by a foreground job or any other process of the
//!   session: the tty's mtime);
//! - a session **without a terminal** (`ssh host cmd`, scp, sftp, rsync,
//!   `ssh -N` port forwards) is judged by [`Traffic`]: data moved by its
//!   processes, as the kernel counts it (`/proc/PID/io` `rchar` + `wchar`
//!   of the session's sshd process and its children).
//!
//! The default is all three: an inactivity limit is there to close
//! forgotten shells, and a forgotten shell reads nothing, writes nothing
//! and moves no data, while a build, a `tail -f` or a transfer do.
//! `activity: [input]` is the old, strict behaviour (only keystrokes count,
//! like `w`'s IDLE column and the shell's `TMOUT`).
//!
//! OIDC sessions are not affected: a token refresh is their activity.
//!
//! [`Input`]: ActivityKind::Input
//! [`Output`]: ActivityKind::Output
//! [`Traffic`]: ActivityKind::Traffic

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kind of activity, as written in the policy (`session.activity`) and
/// as recorded as a session's last activity (`sessions list`, LAST ACTIVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// The login itself (never in a policy's list: it always counts).
    Login,
    /// Input read from the session's terminal (tty atime).
    Input,
    /// Output written to the session's terminal (tty mtime).
    Output,
    /// Data moved by a session without a terminal (`/proc/PID/io`).
    Traffic,
    /// An OIDC token refresh (never in a policy's list).
    Refresh,
}

impl ActivityKind {
    /// The stable name used in the policy, in JSON and in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActivityKind::Login => "login",
            ActivityKind::Input => "input",
            ActivityKind::Output => "output",
            ActivityKind::Traffic => "traffic",
            ActivityKind::Refresh => "refresh",
        }
    }

    /// The kinds a policy may list, in their canonical order.
    pub const MEASURED: [ActivityKind; 3] = [
        ActivityKind::Input,
        ActivityKind::Output,
        ActivityKind::Traffic,
    ];
}

impl fmt::Display for ActivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActivityKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "login" => Ok(ActivityKind::Login),
            "input" => Ok(ActivityKind::Input),
            "output" => Ok(ActivityKind::Output),
            "traffic" => Ok(ActivityKind::Traffic),
            "refresh" => Ok(ActivityKind::Refresh),
            _ => Err(format!("unknown activity {s:?}")),
        }
    }
}

/// Which kinds of activity move a session's inactivity deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActivitySet {
    /// Input read from the terminal counts.
    pub input: bool,
    /// Output written to the terminal counts.
    pub output: bool,
    /// Data moved by a session without a terminal counts.
    pub traffic: bool,
}

impl ActivitySet {
    /// The default: input, output and traffic (see the module docs for why).
    pub const DEFAULT: ActivitySet = ActivitySet {
        input: true,
        output: true,
        traffic: true,
    };

    /// Whether `kind` counts. Login and refresh always do.
    pub fn counts(&self, kind: ActivityKind) -> bool {
        match kind {
            ActivityKind::Login | ActivityKind::Refresh => true,
            ActivityKind::Input => self.input,
            ActivityKind::Output => self.output,
            ActivityKind::Traffic => self.traffic,
        }
    }

    /// The kinds that count, in canonical order.
    pub fn kinds(&self) -> Vec<ActivityKind> {
        ActivityKind::MEASURED
            .into_iter()
            .filter(|k| self.counts(*k))
            .collect()
    }

    /// The set of `kinds` (measured kinds only; login and refresh are
    /// ignored, they always count).
    pub fn of(kinds: &[ActivityKind]) -> ActivitySet {
        ActivitySet {
            input: kinds.contains(&ActivityKind::Input),
            output: kinds.contains(&ActivityKind::Output),
            traffic: kinds.contains(&ActivityKind::Traffic),
        }
    }
}

impl Default for ActivitySet {
    fn default() -> Self {
        ActivitySet::DEFAULT
    }
}

impl fmt::Display for ActivitySet {
    /// `[input, output, traffic]`, as in the policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.kinds().iter().map(|k| k.as_str()).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

impl Serialize for ActivitySet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.kinds().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_default_counts_everything() {
        for k in [
            ActivityKind::Login,
            ActivityKind::Input,
            ActivityKind::Output,
            ActivityKind::Traffic,
            ActivityKind::Refresh,
        ] {
            assert_eq!(k.as_str().parse::<ActivityKind>().unwrap(), k);
        }
        assert_eq!(ActivitySet::DEFAULT.to_string(), "[input, output, traffic]");
        let only_input = ActivitySet::of(&[ActivityKind::Input]);
        assert!(only_input.counts(ActivityKind::Input));
        assert!(!only_input.counts(ActivityKind::Output));
        assert!(!only_input.counts(ActivityKind::Traffic));
        assert!(
            only_input.counts(ActivityKind::Login),
            "login always counts"
        );
        assert_eq!(serde_json::to_string(&only_input).unwrap(), r#"["input"]"#);
    }
}
