//! `curfew-enforce`: the per-host enforcer behind `curfew enforce`.
//!
//! A PAM module only acts at login and logout. The enforcer ends live
//! sessions of this host that are revoked, terminated by an administrator,
//! past `max_duration`, or idle past `inactivity` (the policy's
//! `session.activity`: terminal input and output, the traffic of a session
//! without a terminal), after a one-line warning on the session's terminal
//! `warn_before` ahead of a forced end. Decisions come from the admission
//! kernel (`curfew_policy::admission`), host facts (accounts, groups) from
//! `curfew_policy::host`, the policy from `curfew_policy::policy_source`;
//! this crate observes the processes and terminals and acts.
//!
//! The modules, from the loop down to the machine:
//!
//! - [`api`]: the local API socket (self-service, delegated administration)
//! - [`daemon`]: the loop of `curfew enforce` (passes, the store's change
//!   feed, log lines); the `curfew` binary only parses its options
//! - [`enforcer`]: one pass over the sessions, against a [`enforcer::Host`]
//! - [`timeline`]: the decision turned into an action (pure, injected clock)
//! - [`linux`]: the real [`enforcer::Host`]: /proc, /dev, signals
//! - [`procfs`], [`members`]: which processes belong to a session
//! - [`tty`], [`notice`]: terminals, their input and output times, the notices
//! - [`activity`]: the data a session without a terminal moves
//! - [`signal`]: SIGHUP, SIGTERM, SIGKILL through pidfds
//! - [`error`]: the typed errors of all of the above
//!
//! One pass against a memory store and the real host:
//!
//! ```no_run
//! use curfew_enforce::enforcer::Enforcer;
//! use curfew_enforce::linux::LinuxHost;
//! use curfew_policy::policy_source::PolicySource;
//! use curfew_enforce::signal::Grace;
//! use curfew_policy::store::MemoryStore;
//! use curfew_policy::Store;
//!
//! let mut enforcer = Enforcer::new(
//!     LinuxHost::new(Grace::default()),
//!     PolicySource::new(None), // the built-in policy
//!     "this-host".to_string(),
//!     Box::new(|_policy| Ok(Box::new(MemoryStore::new()) as Box<dyn Store>)),
//! );
//! # #[allow(clippy::disallowed_methods)]
//! let pass = enforcer.pass(chrono::Utc::now());
//! for event in &pass.events {
//!     eprintln!("{event}");
//! }
//! ```

#![forbid(unsafe_code)]

pub mod activity;
pub mod api;
pub mod daemon;
pub mod enforcer;
pub mod error;
pub mod linux;
pub mod members;
pub mod notice;
pub mod procfs;
pub mod signal;
mod text;
pub mod timeline;
pub mod tty;

pub use daemon::{run, Options};
pub use error::{Error, ProcError};
