//! The claims curfew adds to issued tokens, so that a web UI can show a
//! "your session ends at" dialog and an "extend session" button (a refresh).
//!
//! | claim | value |
//! |---|---|
//! | `sid` | the curfew session id (32 hex digits) |
//! | `curfew_absolute_deadline` | NumericDate: the session ends then, whatever the activity |
//! | `curfew_idle_deadline` | NumericDate: the session ends then unless it is refreshed first |
//! | `curfew_warn_at` | NumericDate: when to warn (`warn_before` ahead of the earlier deadline) |
//! | `curfew_banner` | the banner text (empty for none) |
//!
//! NumericDate is seconds since the epoch, as in JWT (RFC 7519).

use curfew_policy::Allow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The session claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The curfew session id.
    pub sid: String,
    /// The end, whatever the activity (seconds since the epoch).
    pub curfew_absolute_deadline: i64,
    /// The end unless refreshed first (seconds since the epoch).
    pub curfew_idle_deadline: i64,
    /// When to warn the user (seconds since the epoch).
    pub curfew_warn_at: i64,
    /// The banner (empty for none).
    pub curfew_banner: String,
}

impl SessionClaims {
    /// The claims of session `sid` under the decision `allow`.
    pub fn new(sid: &str, allow: &Allow, banner: &str) -> Self {
        SessionClaims {
            sid: sid.to_owned(),
            curfew_absolute_deadline: allow.absolute_deadline.timestamp(),
            curfew_idle_deadline: allow.idle_deadline.timestamp(),
            curfew_warn_at: allow.warn_at.timestamp(),
            curfew_banner: banner.to_owned(),
        }
    }

    /// The claims as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // A struct of strings and integers always serializes to an object.
            _ => Map::new(),
        }
    }

    /// `existing` with these claims added. A `sid` already there (an OIDC
    /// server's own login-session id, which front-channel logout relies on)
    /// is kept, and curfew's goes in as `curfew_sid`.
    pub fn merge_into(&self, mut existing: Map<String, Value>) -> Map<String, Value> {
        for (k, v) in self.to_map() {
            if k == "sid" {
                match existing.get("sid") {
                    Some(theirs) if *theirs != v => {
                        existing.insert("curfew_sid".into(), v);
                        continue;
                    }
                    _ => {}
                }
            }
            existing.insert(k, v);
        }
        existing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use curfew_policy::NextEnd;

    fn claims() -> SessionClaims {
        let t = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let allow = Allow {
            token_lifetime: std::time::Duration::from_secs(300),
            token_expires_at: t + chrono::Duration::seconds(300),
            idle_deadline: t + chrono::Duration::seconds(600),
            absolute_deadline: t + chrono::Duration::seconds(3600),
            next_end: NextEnd::Idle,
            warn_at: t + chrono::Duration::seconds(480),
        };
        SessionClaims::new("abc", &allow, "Hello")
    }

    #[test]
    fn claims_are_numeric_dates() {
        let m = claims().to_map();
        assert_eq!(m["sid"], "abc");
        assert_eq!(m["curfew_idle_deadline"], 1_800_000_600);
        assert_eq!(m["curfew_absolute_deadline"], 1_800_003_600);
        assert_eq!(m["curfew_warn_at"], 1_800_000_480);
        assert_eq!(m["curfew_banner"], "Hello");
    }

    #[test]
    fn merging_keeps_the_servers_sid_and_other_claims() {
        let mut theirs = Map::new();
        theirs.insert("sid".into(), "hydra-login-session".into());
        theirs.insert("email".into(), "a@example.org".into());
        let m = claims().merge_into(theirs);
        assert_eq!(m["sid"], "hydra-login-session");
        assert_eq!(m["curfew_sid"], "abc");
        assert_eq!(m["email"], "a@example.org");
        let m = claims().merge_into(Map::new());
        assert_eq!(m["sid"], "abc");
        assert!(!m.contains_key("curfew_sid"));
    }
}
