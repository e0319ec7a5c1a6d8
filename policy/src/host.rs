//! Facts about this host, in one place: the account behind a login name,
//! its groups, the audit session of a process, the host's identity and
//! whether we run in a setuid/setgid program.
//!
//! Every part that needs one of these (the PAM module, the enforcer, the
//! CLI) asks here, so they cannot disagree about what a lookup failure
//! means: an unknown user is [`HostError::UnknownUser`], a failing name
//! service (files, LDAP, sssd) is [`HostError::Lookup`], and callers hand
//! that outcome to the admission kernel ([`crate::admission`]), which
//! never guesses "no groups".

use std::ffi::CString;

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

/// Why a host fact could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The user database does not know this name (or uid).
    #[error("the user database does not know {0:?}")]
    UnknownUser(String),
    /// The user or group database failed (NSS: files, LDAP, sssd ...).
    #[error("{what} failed: {detail}")]
    Lookup {
        /// The call, e.g. `getgrouplist(alice)`.
        what: String,
        /// The error.
        detail: String,
    },
}

/// An account: the canonical name and ids behind a login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The canonical name: the first name the user database gives for the
    /// uid (`getpwuid`), whatever spelling the login used
    /// (`Alice`, `alice@REALM`, an alias entry sharing the uid).
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

fn lookup(what: String, e: nix::Error) -> HostError {
    HostError::Lookup {
        what,
        detail: e.to_string(),
    }
}

/// The account a login name resolves to (`getpwnam`, then `getpwuid` for
/// the canonical name). Revocations, rules and session records use
/// [`Account::name`], so a revoked account cannot log in under another
/// spelling of its name.
pub fn account(login: &str) -> Result<Account, HostError> {
    if login.contains('\0') {
        return Err(HostError::UnknownUser(login.to_owned()));
    }
    let entry = User::from_name(login)
        .map_err(|e| lookup(format!("getpwnam({login})"), e))?
        .ok_or_else(|| HostError::UnknownUser(login.to_owned()))?;
    let uid = entry.uid;
    let canonical = User::from_uid(uid)
        .map_err(|e| lookup(format!("getpwuid({uid})"), e))?
        .map(|u| u.name)
        .unwrap_or(entry.name);
    Ok(Account {
        name: canonical,
        uid: uid.as_raw(),
        gid: entry.gid.as_raw(),
    })
}

/// A user name as rules, revocations, preferences and session records see
/// it: what the PAM module makes of a login name, for every other part that
/// is handed a name (the CLI, the local API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The name as given.
    pub login: String,
    /// The canonical account name ([`account`]); the name as given when no
    /// local account has it (an OIDC subject), or when the lookup failed.
    pub user: String,
    /// The account's uid, when there is one.
    pub uid: Option<u32>,
    /// The account's groups ([`groups`]): empty for a name without an
    /// account; an error when the user or group database failed (the
    /// admission kernel refuses then, never guessing "no groups").
    pub groups: Result<Vec<String>, HostError>,
}

impl Resolved {
    /// Whether the name given is another spelling of the account (an
    /// alias entry sharing the uid, `Alice`, `alice@REALM`).
    pub fn is_alias(&self) -> bool {
        self.uid.is_some() && self.login != self.user
    }
}

/// Resolves a user name as the PAM module does ([`account`], then
/// [`groups`] of the account).
pub fn resolve(login: &str) -> Resolved {
    match account(login) {
        Ok(a) => Resolved {
            login: login.to_owned(),
            user: a.name.clone(),
            uid: Some(a.uid),
            groups: groups(&a),
        },
        Err(HostError::UnknownUser(_)) => Resolved {
            login: login.to_owned(),
            user: login.to_owned(),
            uid: None,
            groups: Ok(Vec::new()),
        },
        Err(e) => Resolved {
            login: login.to_owned(),
            user: login.to_owned(),
            uid: None,
            groups: Err(e),
        },
    }
}

/// The account of a uid (`getpwuid`).
pub fn account_of_uid(uid: u32) -> Result<Account, HostError> {
    let entry = User::from_uid(Uid::from_raw(uid))
        .map_err(|e| lookup(format!("getpwuid({uid})"), e))?
        .ok_or_else(|| HostError::UnknownUser(format!("uid {uid}")))?;
    Ok(Account {
        name: entry.name,
        uid,
        gid: entry.gid.as_raw(),
    })
}

/// The names of the account's groups, primary group included
/// (`getgrouplist`, then `getgrgid` for each). A gid without a name is
/// skipped: rules name groups, so it cannot match one.
pub fn groups(account: &Account) -> Result<Vec<String>, HostError> {
    let name = CString::new(account.name.as_str())
        .map_err(|_| HostError::UnknownUser(account.name.clone()))?;
    let gids = getgrouplist(&name, Gid::from_raw(account.gid))
        .map_err(|e| lookup(format!("getgrouplist({})", account.name), e))?;
    let mut names = Vec::with_capacity(gids.len());
    for gid in gids {
        match Group::from_gid(gid) {
            Ok(Some(g)) => {
                if !names.contains(&g.name) {
                    names.push(g.name);
                }
            }
            Ok(None) => {}
            Err(e) => return Err(lookup(format!("getgrgid({gid})"), e)),
        }
    }
    Ok(names)
}

/// The value of `/proc/PID/sessionid` when no audit session is set.
const AUDIT_SESSION_UNSET: u32 = u32::MAX;

/// The kernel audit session id of `pid` (this process for `None`), if one
/// is set (`/proc/PID/sessionid`; pam_loginuid sets it for sshd and login).
pub fn audit_session_id(pid: Option<u32>) -> Option<u32> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/sessionid"),
        None => "/proc/self/sessionid".to_owned(),
    };
    parse_audit_session_id(&std::fs::read_to_string(path).ok()?)
}

/// Parses the text of `/proc/PID/sessionid`: `None` when unset
/// (`4294967295`) or not a number.
pub fn parse_audit_session_id(text: &str) -> Option<u32> {
    match text.trim().parse::<u32>() {
        Ok(AUDIT_SESSION_UNSET) | Err(_) => None,
        Ok(id) => Some(id),
    }
}

/// The login uid of `pid` (`/proc/PID/loginuid`, set by pam_loginuid at
/// login and kept across su and sudo): the person behind a process, for the
/// audit trail. `None` when unset (`4294967295`: a daemon, a container
/// without audit) or unreadable.
pub fn login_uid(pid: u32) -> Option<u32> {
    parse_audit_session_id(&std::fs::read_to_string(format!("/proc/{pid}/loginuid")).ok()?)
}

/// This host's name, for display and for rules that match `hosts`.
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok()?.into_string().ok()
}

/// This host's identity: `/etc/machine-id` (systemd's machine-id(5), 32
/// lowercase hex digits), which unlike the host name two hosts do not
/// share by accident. `None` when missing or malformed.
pub fn machine_id() -> Option<String> {
    let text = std::fs::read_to_string("/etc/machine-id").ok()?;
    parse_machine_id(&text)
}

/// Parses machine-id(5): 32 lowercase hex digits and a newline.
pub fn parse_machine_id(text: &str) -> Option<String> {
    let id = text.trim_end_matches('\n');
    (id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| id.to_owned())
}

/// `AT_SECURE` in the ELF auxiliary vector (getauxval(3)).
const AT_SECURE: u64 = 23;

/// Whether this process runs with `AT_SECURE` set: a setuid or setgid
/// program (su, sudo) or one that gained capabilities, whose rlimits and
/// parts of whose environment the calling user controls. Read from
/// `/proc/self/auxv`; when that cannot be read, the answer is `true` (the
/// safe side: `on_unavailable: allow` then never applies).
pub fn is_secure_caller() -> bool {
    match std::fs::read("/proc/self/auxv") {
        Ok(bytes) => auxv_secure(&bytes).unwrap_or(true),
        Err(_) => true,
    }
}

/// `AT_SECURE` from the raw bytes of `/proc/self/auxv` (pairs of native
/// 64-bit words); `None` when absent.
pub fn auxv_secure(bytes: &[u8]) -> Option<bool> {
    let word = |c: &[u8]| -> Option<u64> { Some(u64::from_ne_bytes(c.try_into().ok()?)) };
    for pair in bytes.chunks_exact(16) {
        let key = word(&pair[..8])?;
        let value = word(&pair[8..])?;
        if key == AT_SECURE {
            return Some(value != 0);
        }
        if key == 0 {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_session_ids() {
        assert_eq!(parse_audit_session_id("17\n"), Some(17));
        assert_eq!(parse_audit_session_id("4294967295"), None);
        assert_eq!(parse_audit_session_id(""), None);
        assert_eq!(parse_audit_session_id("-3"), None);
    }

    #[test]
    fn root_is_an_account_in_group_root() {
        let root = account("root").unwrap();
        assert_eq!((root.name.as_str(), root.uid), ("root", 0));
        assert!(groups(&root).unwrap().iter().any(|g| g == "root"));
        assert_eq!(account_of_uid(0).unwrap().name, "root");
    }

    #[test]
    fn unknown_users_are_reported_as_such() {
        assert_eq!(
            account("curfew-no-such-user-4711"),
            Err(HostError::UnknownUser("curfew-no-such-user-4711".into()))
        );
        assert!(matches!(account("a\0b"), Err(HostError::UnknownUser(_))));
        let r = resolve("curfew-no-such-user-4711");
        assert_eq!((r.user.as_str(), r.uid), ("curfew-no-such-user-4711", None));
        assert_eq!(r.groups, Ok(Vec::new()));
        assert!(!r.is_alias());
        let root = resolve("root");
        assert_eq!((root.user.as_str(), root.uid), ("root", Some(0)));
        assert!(!root.is_alias());
    }

    #[test]
    fn machine_ids() {
        assert_eq!(
            parse_machine_id("0123456789abcdef0123456789abcdef\n").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(parse_machine_id("uninitialized\n"), None);
        assert_eq!(parse_machine_id("0123456789ABCDEF0123456789ABCDEF"), None);
    }

    #[test]
    fn at_secure_is_read_from_the_auxiliary_vector() {
        let mut v = Vec::new();
        for (k, val) in [(6u64, 4096u64), (AT_SECURE, 1), (0, 0)] {
            v.extend_from_slice(&k.to_ne_bytes());
            v.extend_from_slice(&val.to_ne_bytes());
        }
        assert_eq!(auxv_secure(&v), Some(true));
        assert_eq!(auxv_secure(&v[..16]), None);
        // The test runner is no setuid program.
        assert!(!is_secure_caller());
    }
}
