//! `pam_curfew`: curfew's PAM module (`libpam_curfew.so`, installed as
//! `pam_curfew.so`).
//!
//! - `account`: refuses a user, or a service, that is revoked
//!   (`PAM_PERM_DENIED`, with a message through the conversation).
//! - `session` open: shows the banner, registers the session, hands
//!   `systemd.runtime_max_sec` to pam_systemd, exports `TMOUT` and
//!   `CURFEW_SESSION_ID`.
//! - `session` close: marks the session ended (reason logout).
//!
//! Arguments: `policy=FILE` (default `/etc/curfew/policy.yaml`), `debug`,
//! `no_banner`, `no_tmout`. Every decision is taken by `curfew-policy`; a
//! policy that cannot be read or is invalid refuses the login, and an
//! unreachable store answers as `store.on_unavailable` says.
//!
//! The logic lives in [`hooks`], behind the [`handler::PamHandler`] and
//! [`system::System`] traits, and is unit-tested without libpam; the C
//! boundary is the private `ffi` module, the only one with `unsafe`.
//!
//! ```
//! use pam_curfew::args::ModuleArgs;
//! use pam_curfew::code::PamCode;
//!
//! let args = ModuleArgs::parse(["policy=/etc/curfew/policy.yaml", "debug", "no_tmout"]);
//! assert!(args.debug && args.no_tmout && !args.no_banner);
//! assert_eq!(PamCode::PermDenied.as_int(), 6);
//! ```
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod args;
pub mod code;
pub mod handler;
pub mod hooks;
pub mod system;
pub mod timespan;

#[allow(unsafe_code)]
mod ffi;

#[cfg(test)]
mod mock;
