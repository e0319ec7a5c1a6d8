//! What the hooks ask of the host: the clock, group membership, the audit
//! session, the policy file and the store. [`Host`] is the real thing; the
//! unit tests substitute a fixed clock, groups and an in-memory store.
#![forbid(unsafe_code)]

use std::path::Path;

use chrono::{DateTime, Utc};
use curfew_policy::host::{self, Account, HostError};
use curfew_policy::{Policy, PolicyError, Store, StoreConfig, StoreError};

/// The host, as the hooks see it.
pub trait System {
    /// The time of this PAM call.
    fn now(&self) -> DateTime<Utc>;

    /// The account behind a login name (see [`curfew_policy::host::account`]).
    fn account(&self, login: &str) -> Result<Account, HostError>;

    /// The names of the account's groups, primary group included
    /// (see [`curfew_policy::host::groups`]).
    fn groups(&self, account: &Account) -> Result<Vec<String>, HostError>;

    /// Whether this process is a setuid/setgid program (AT_SECURE): then
    /// `on_unavailable: allow` never applies.
    fn secure_caller(&self) -> bool;

    /// This host's name.
    fn hostname(&self) -> Option<String>;

    /// This host's machine id (`/etc/machine-id`), which the enforcer uses
    /// to tell hosts apart (see `curfew_policy::host::machine_id`).
    fn machine_id(&self) -> Option<String>;

    /// The process opening the session.
    fn pid(&self) -> u32;

    /// The kernel audit session id of this process, if one is set
    /// (`/proc/self/sessionid`; pam_loginuid sets it for sshd and login).
    fn audit_session_id(&self) -> Option<u32>;

    /// Reads and validates the policy, refusing a file others can change.
    fn load_policy(&self, path: &Path) -> Result<Policy, PolicyError>;

    /// Opens the store the policy names.
    fn open_store(&self, config: &StoreConfig) -> Result<Box<dyn Store>, StoreError>;

    /// When the terminal `tty` (a PAM_TTY value: `/dev/pts/3`, `pts/3`,
    /// `tty1`) last had input read from it (its atime, what `w` reads);
    /// `None` if it is not a character device under /dev or cannot be read.
    fn tty_input_time(&self, tty: &str) -> Option<DateTime<Utc>>;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl System for Host {
    // The PAM hooks are this crate's entry points: the clock is read here,
    // once per hook, and handed down as a value (see clippy.toml).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn account(&self, login: &str) -> Result<Account, HostError> {
        host::account(login)
    }

    fn groups(&self, account: &Account) -> Result<Vec<String>, HostError> {
        host::groups(account)
    }

    fn secure_caller(&self) -> bool {
        host::is_secure_caller()
    }

    fn hostname(&self) -> Option<String> {
        host::hostname()
    }

    fn machine_id(&self) -> Option<String> {
        host::machine_id()
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn audit_session_id(&self) -> Option<u32> {
        host::audit_session_id(None)
    }

    fn load_policy(&self, path: &Path) -> Result<Policy, PolicyError> {
        Policy::load_secure(path)
    }

    fn open_store(&self, config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
        curfew_policy::store::open(config)
    }

    fn tty_input_time(&self, tty: &str) -> Option<DateTime<Utc>> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let path = if tty.starts_with("/dev/") {
            std::path::PathBuf::from(tty)
        } else {
            Path::new("/dev").join(tty)
        };
        if tty.contains("..") {
            return None;
        }
        let m = std::fs::symlink_metadata(path).ok()?;
        if !m.file_type().is_char_device() {
            return None;
        }
        DateTime::from_timestamp(m.atime(), 0)
    }
}
