//! `curfew-oidc`: curfew's policy where an OIDC/OAuth2 server issues tokens.
//!
//! Two ways in, one decision path (the [`Gate`], over `curfew-policy`):
//!
//! - `PolicyIssuer` (feature `issuer`, on by default), an oxide-auth [`Issuer`](oxide_auth::primitives::issuer::Issuer)
//!   wrapper any oxide-auth server can drop in: access tokens live for the
//!   effective timeout, refreshes only inside `inactivity` and
//!   `max_duration`, revoked users, clients and sessions are refused at
//!   issue, refresh and recovery.
//! - [`hook`], the HTTP token hook behind `curfew hook serve`, in the request
//!   and response shape of Ory Hydra's `oauth2.token_hook`.
//!
//! Issued tokens carry [`SessionClaims`]: the session id and its deadlines,
//! and the banner, for a "your session ends at" dialog and an "extend
//! session" button (a refresh).
//!
//! Time is a parameter: the gate reads a [`Clock`]; only [`SystemClock`]
//! reads the real one.
//!
//! Without the `issuer` feature the crate does not depend on oxide-auth:
//! `curfew` (the CLI, the enforcer and `curfew hook serve`) builds it that
//! way, so the binary links none of oxide-auth's crates.
//!
//! ```
//! # #[cfg(feature = "issuer")] {
//! use std::sync::Arc;
//! use chrono::{Duration, TimeZone, Utc};
//! use curfew_oidc::{Gate, ManualClock, PolicyCell, PolicyIssuer};
//! use curfew_policy::{store::MemoryStore, Policy};
//! use oxide_auth::primitives::grant::{Extensions, Grant};
//! use oxide_auth::primitives::issuer::{Issuer, TokenMap};
//! use oxide_auth::primitives::generator::RandomGenerator;
//!
//! let policy = Policy::parse("version: 1\nsession: { timeout: { default: 5m }, inactivity: 10m }\n", "policy.yaml")?;
//! let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
//! let clock = Arc::new(ManualClock::new(t0));
//! let gate = Gate::new(PolicyCell::new(policy), Arc::new(MemoryStore::new()), clock.clone());
//! let mut issuer = PolicyIssuer::new(TokenMap::new(RandomGenerator::new(16)), gate);
//!
//! let grant = Grant {
//!     owner_id: "alice".into(),
//!     client_id: "web".into(),
//!     scope: "profile".parse().unwrap(),
//!     redirect_uri: "https://app.example/cb".parse().unwrap(),
//!     until: t0 + Duration::hours(1),
//!     extensions: Extensions::new(),
//! };
//! let token = issuer.issue(grant).expect("allowed");
//! assert_eq!(token.until, t0 + Duration::minutes(5)); // the policy's timeout, not oxide-auth's hour
//!
//! let session = issuer.inspect_access(&token.token).expect("valid");
//! assert_eq!(session.granted.claims().curfew_idle_deadline, (t0 + Duration::minutes(10)).timestamp());
//!
//! // Eleven idle minutes later the refresh token is refused (oxide-auth: invalid_grant).
//! clock.advance(Duration::minutes(11));
//! assert!(issuer.recover_refresh(token.refresh.as_deref().unwrap()).unwrap().is_none());
//! # }
//! # Ok::<(), curfew_policy::PolicyError>(())
//! ```
#![forbid(unsafe_code)]

pub mod claims;
pub mod clock;
pub mod fuzzing;
pub mod gate;
pub mod hook;
#[cfg(feature = "issuer")]
pub mod issuer;
pub mod policy_file;

pub use claims::SessionClaims;
pub use clock::{Clock, ManualClock, SystemClock};
pub use gate::{Activity, Gate, Granted, Known, Principal, Refusal};
#[cfg(feature = "issuer")]
pub use issuer::{
    mark_remember_me, mark_remote_address, GrantSession, PolicyIssuer, RememberMeAddon,
    RemoteAddressAddon, TokenSession, REMEMBER_ME_EXTENSION, REMOTE_ADDRESS_EXTENSION,
};
pub use policy_file::{PolicyCell, PolicyFile, PolicyStatus, Reload};
