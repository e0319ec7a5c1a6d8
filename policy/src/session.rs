//! Session records: what was opened, by whom, and how it ended.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a session comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// A PAM login (sshd, login, su, ...).
    Pam,
    /// An OIDC/OAuth2 grant.
    Oidc,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The user logged out.
    Logout,
    /// No activity for longer than `inactivity`.
    Idle,
    /// Older than `max_duration`.
    MaxDuration,
    /// A revocation applied to it.
    Revoked,
    /// Someone asked for it to end (`curfew sessions terminate`, the local
    /// API, a sessions page): the session's own user or an administrator;
    /// [`Session::terminate_requested_by`] says who.
    Terminated,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// The stable name used in JSON and in the store.
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(format!("unknown value {s:?}")),
                }
            }
        }
    };
}

text_enum!(SessionKind { Pam = "pam", Oidc = "oidc" });
text_enum!(EndReason {
    Logout = "logout",
    Idle = "idle",
    MaxDuration = "max_duration",
    Revoked = "revoked",
    Terminated = "terminated",
});

/// One session record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random 128-bit id, 32 lowercase hex digits.
    pub id: String,
    /// PAM or OIDC.
    pub kind: SessionKind,
    /// The user.
    pub user: String,
    /// PAM service name.
    pub service: Option<String>,
    /// OIDC client id.
    pub client_id: Option<String>,
    /// The host the session lives on (PAM) or the issuer's host (OIDC): its
    /// name, for display and for rules.
    pub host: Option<String>,
    /// The identity of the host a PAM session lives on: its machine id
    /// (`/etc/machine-id`, see `curfew_policy::host::machine_id`), which two
    /// hosts do not share by accident, unlike a host name. The enforcer
    /// only acts on sessions whose machine id is its own (a record without
    /// one, from before this field, is matched by host name). `None` for
    /// OIDC sessions and where the host has no machine id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Remote host: PAM_RHOST for a PAM login; for an OIDC session the IP
    /// address of the user's client at the sign-in, where the issuer knows
    /// it (`curfew_oidc::Gate::start`).
    pub rhost: Option<String>,
    /// Terminal (PAM_TTY).
    pub tty: Option<String>,
    /// Process that opened the session (PAM).
    pub pid: Option<u32>,
    /// Kernel audit session id, /proc/PID/sessionid (PAM).
    pub audit_session_id: Option<u32>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Last activity seen (login, refresh, keystroke as seen by the enforcer).
    pub last_seen: DateTime<Utc>,
    /// The effective token lifetime, in seconds.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// OIDC: the client asked for a persistent login.
    pub remember_me: bool,
    /// Someone asked for it to end; the enforcer or issuer ends it. The
    /// first request is kept.
    pub terminate_requested_at: Option<DateTime<Utc>>,
    /// Who asked for it to end: the account name of the person who asked
    /// (their login user when they act through `su` or `sudo`, the signed-in
    /// subject on a sessions page), kept with the first request. The
    /// session's own user asked when it equals [`Session::user`]; anyone
    /// else is an administrator. `None` when nobody is named: the
    /// enforcer's own request to carry out an end it decided, or a record
    /// from before this field (store schema 2, Redis records without the
    /// field), which stays readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_requested_by: Option<String>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl Session {
    /// A new live session with a fresh random id, started at `now`.
    pub fn start(
        kind: SessionKind,
        user: &str,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<Session, getrandom::Error> {
        Ok(Session {
            id: new_id()?,
            kind,
            user: user.to_owned(),
            service: None,
            client_id: None,
            host: None,
            machine_id: None,
            rhost: None,
            tty: None,
            pid: None,
            audit_session_id: None,
            started_at: now,
            last_seen: now,
            timeout,
            remember_me: false,
            terminate_requested_at: None,
            terminate_requested_by: None,
            ended_at: None,
            end_reason: None,
        })
    }

    /// Whether the session has not ended.
    pub fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }
}

/// A random 128-bit id as 32 lowercase hex digits.
pub fn new_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn names_round_trip() {
        for r in [
            EndReason::Logout,
            EndReason::Idle,
            EndReason::MaxDuration,
            EndReason::Revoked,
            EndReason::Terminated,
        ] {
            assert_eq!(r.as_str().parse::<EndReason>().unwrap(), r);
        }
        assert_eq!("oidc".parse::<SessionKind>().unwrap(), SessionKind::Oidc);
    }
}
