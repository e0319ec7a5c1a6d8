//! `curfew-policy`: one policy for how long a login may live, how long it may
//! sit idle, what banner it shows and who is locked out.
//!
//! Data flows one way: YAML → [`Policy`] (validated) → [`Effective`] (for one
//! subject) → [`Decision`] (for one moment). Every enforcement point (PAM
//! module, OIDC issuer, token hook, enforcer, CLI) takes those three steps
//! here, so a bound, a match or a deadline is computed in one place.
//!
//! The decision code is pure: `now` is always an argument. Revocations and
//! sessions live behind the [`Store`] trait.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use curfew_policy::{decide, Decision, Policy, RevocationSet, SessionState, Subject};
//!
//! let yaml = r#"
//! version: 1
//! session: { max_duration: 8h, inactivity: 15m }
//! rules:
//!   - name: admins
//!     match: { groups: [wheel] }
//!     session: { inactivity: 5m }
//! "#;
//! let policy = Policy::parse(yaml, "policy.yaml")?;
//! let groups = vec!["wheel".to_string()];
//! let subject = Subject { user: "alice", groups: &groups, service: Some("sshd"), ..Default::default() };
//! let eff = policy.effective(&subject);
//! assert_eq!(eff.inactivity.value.as_secs(), 300);
//!
//! let login = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
//! let state = SessionState::login("alice", None, login);
//! let lifetime = eff.token_lifetime(None).value;
//! let now = login + chrono::Duration::minutes(4);
//! match decide(&eff, &state, &RevocationSet::new(), lifetime, now) {
//!     Decision::Allow(a) => assert_eq!(a.idle_deadline, login + chrono::Duration::minutes(5)),
//!     Decision::Deny(d) => panic!("denied: {d}"),
//! }
//! # Ok::<(), curfew_policy::PolicyError>(())
//! ```
#![forbid(unsafe_code)]

pub mod activity;
pub mod admission;
pub mod audit;
pub mod decision;
pub mod duration;
pub mod effective;
pub mod error;
pub mod file_stamp;
pub mod fsperm;
pub mod fuzzing;
pub mod host;
pub mod journal;
pub mod locate;
pub mod policy;
pub mod policy_source;
pub mod raw;
pub mod revocation;
pub mod schema;
mod serde_secs;
pub mod session;
pub mod status;
pub mod store;
pub mod time;

pub use activity::{ActivityKind, ActivitySet};
pub use admission::{admit, Admission, Caller, GroupsLookup, StoreAnswer, Which, Who};
pub use audit::{ApiCaller, AuditEvent, AuditSink};
pub use decision::{decide, Allow, Decision, Deny, NextEnd, SessionState};
pub use effective::{Effective, Source, Sourced, Subject};
pub use error::{Diagnostic, PolicyError};
pub use file_stamp::FileStamp;
pub use policy::{
    Admin, ApiConfig, AuditConfig, Limits, LimitsOverride, Match, OnUnavailable, Policy, Rule,
    StoreBackend, StoreConfig,
};
pub use revocation::{Revocation, RevocationKeys, RevocationSet, Target};
pub use session::{EndReason, Session, SessionKind};
pub use status::Status;
pub use store::{SessionFilter, SessionListing, SessionReads, Store, StoreError, UnreadableRecord};
