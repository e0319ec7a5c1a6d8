//! What the hooks ask of the host: the clock, group membership, the audit
//! session, the policy file and the store. [`Host`] is the real thing; the
//! unit tests substitute a fixed clock, groups and an in-memory store.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

use chrono::{DateTime, Utc};
use curfew_policy::{Policy, PolicyError, Store, StoreConfig, StoreError};

/// Why a user's groups could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupsError {
    /// The user database does not know the user.
    UnknownUser,
    /// The user or group database failed (NSS: files, LDAP, sssd ...).
    Lookup(String),
}

impl std::fmt::Display for GroupsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupsError::UnknownUser => f.write_str("the user database does not know the user"),
            GroupsError::Lookup(e) => write!(f, "the user or group database failed: {e}"),
        }
    }
}

/// The host, as the hooks see it.
pub trait System {
    /// The time of this PAM call.
    fn now(&self) -> DateTime<Utc>;

    /// The names of the user's groups, primary group included (getgrouplist).
    fn groups(&self, user: &str) -> Result<Vec<String>, GroupsError>;

    /// This host's name.
    fn hostname(&self) -> Option<String>;

    /// The process opening the session.
    fn pid(&self) -> u32;

    /// The kernel audit session id of this process, if one is set
    /// (`/proc/self/sessionid`; pam_loginuid sets it for sshd and login).
    fn audit_session_id(&self) -> Option<u32>;

    /// Reads and validates the policy, refusing a file others can change.
    fn load_policy(&self, path: &Path) -> Result<Policy, PolicyError>;

    /// Opens the store the policy names.
    fn open_store(&self, config: &StoreConfig) -> Result<Box<dyn Store>, StoreError>;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

/// The value of `/proc/self/sessionid` when no audit session is set.
const AUDIT_SESSION_UNSET: u32 = u32::MAX;

impl System for Host {
    // The PAM hooks are this crate's entry points: the clock is read here,
    // once per hook, and handed down as a value (see clippy.toml).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn groups(&self, user: &str) -> Result<Vec<String>, GroupsError> {
        use nix::unistd::{getgrouplist, Group, User};
        let entry = User::from_name(user)
            .map_err(|e| GroupsError::Lookup(format!("getpwnam({user}): {e}")))?
            .ok_or(GroupsError::UnknownUser)?;
        let name = CString::new(user).map_err(|_| GroupsError::UnknownUser)?;
        let gids = getgrouplist(&name, entry.gid)
            .map_err(|e| GroupsError::Lookup(format!("getgrouplist({user}): {e}")))?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            match Group::from_gid(gid) {
                Ok(Some(g)) => {
                    if !names.contains(&g.name) {
                        names.push(g.name);
                    }
                }
                // A gid without a name cannot match a rule, which names groups.
                Ok(None) => {}
                Err(e) => return Err(GroupsError::Lookup(format!("getgrgid({gid}): {e}"))),
            }
        }
        Ok(names)
    }

    fn hostname(&self) -> Option<String> {
        nix::unistd::gethostname().ok()?.into_string().ok()
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn audit_session_id(&self) -> Option<u32> {
        let text = std::fs::read_to_string("/proc/self/sessionid").ok()?;
        parse_audit_session_id(&text)
    }

    fn load_policy(&self, path: &Path) -> Result<Policy, PolicyError> {
        Policy::load_secure(path)
    }

    fn open_store(&self, config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
        curfew_policy::store::open(config)
    }
}

/// Parses `/proc/self/sessionid`; `None` when unset (`4294967295`) or garbled.
pub fn parse_audit_session_id(text: &str) -> Option<u32> {
    match text.trim().parse::<u32>() {
        Ok(AUDIT_SESSION_UNSET) | Err(_) => None,
        Ok(id) => Some(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_session_ids() {
        assert_eq!(parse_audit_session_id("17\n"), Some(17));
        assert_eq!(parse_audit_session_id("4294967295"), None);
        assert_eq!(parse_audit_session_id(""), None);
    }

    #[test]
    fn root_is_in_group_root() {
        let groups = Host.groups("root").unwrap();
        assert!(groups.iter().any(|g| g == "root"), "{groups:?}");
    }

    #[test]
    fn unknown_user_is_reported() {
        assert_eq!(
            Host.groups("curfew-no-such-user-4711"),
            Err(GroupsError::UnknownUser)
        );
    }
}
