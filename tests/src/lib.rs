//! Shared helpers of curfew's end-to-end suites (tests/tests/*.rs).
//!
//! The suites drive the built artifacts (`target/<profile>/curfew`,
//! `libpam_curfew.so`) through the real thing: libpam via pam_wrapper,
//! sshd on 127.0.0.1, redis-server on a private socket, an OAuth2 client.
//! `scripts/test` builds the workspace before running them.
#![forbid(unsafe_code)]

pub mod api;
pub mod common;
pub mod enforce;
pub mod fleet;
pub mod node;
pub mod oidc;
pub mod pam;
pub mod sshd;
pub mod systemd_ns;
