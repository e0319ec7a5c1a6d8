//! What the hooks ask of the host: the clock, group membership, the audit
//! session, the policy file and the store. [`Host`] is the real thing; the
//! unit tests substitute a fixed clock, groups and an in-memory store.
//!
//! # What one process keeps between calls
//!
//! A login makes three calls (`acct_mgmt`, `open_session`,
//! `close_session`), and a process may run many logins (the module is
//! linked `-z nodelete`, so it stays loaded after `pam_end`). [`Host`]
//! keeps, for the life of the process:
//!
//! - the parsed policy, reused while the file's [`FileStamp`] (device,
//!   inode, size, mtime, ctime) is unchanged; the file's owner and mode
//!   are checked at every call all the same;
//! - whether it is a setuid/setgid program (AT_SECURE, fixed when the
//!   program was executed), read from `/proc/self/auxv` once;
//! - the last account's groups, for [`GROUPS_TTL`]: `acct_mgmt` and
//!   `open_session` of one login both need them, and each lookup goes
//!   through NSS (files, systemd-userdb, LDAP ...), one of the slowest
//!   parts of a call;
//! - the open store, reused while the policy names the same store and
//!   [`Store::revalidate`] passes (for SQLite: the path still names the
//!   file opened, and it and its directory still pass the checks of
//!   opening it). SQLite connections are opened for [`Lifetime::UntilExit`]:
//!   they are never closed, so no login pays SQLite's checkpoint at close.
//!
//! Both are tied to the process that made them: a child forked with the
//! module loaded (sshd forks the user's session) makes its own, and leaves
//! its parent's untouched (dropping them could close the parent's SQLite
//! locks or share its Redis sockets).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use curfew_policy::host::{self, Account, HostError};
use curfew_policy::store::Lifetime;
use curfew_policy::{FileStamp, Policy, PolicyError, Store, StoreConfig, StoreError};

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

/// The real host. Its caches are process-wide (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

/// One value a process keeps between calls (see the module docs), tagged
/// with the process that made it.
pub struct ProcessCache<T> {
    slot: Mutex<Option<(u32, T)>>,
}

impl<T: Clone> ProcessCache<T> {
    /// An empty cache.
    pub const fn new() -> Self {
        ProcessCache {
            slot: Mutex::new(None),
        }
    }

    /// The value this process kept, if `fresh` accepts it; otherwise
    /// `make`'s, kept when it succeeds.
    pub fn get<E>(
        &self,
        fresh: impl FnOnce(&T) -> bool,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.get_in(std::process::id(), fresh, make)
    }

    /// [`ProcessCache::get`] as process `pid`. What another process made
    /// (a parent, before it forked us) is forgotten, never dropped: its
    /// destructor could release the parent's SQLite locks or close a Redis
    /// connection the parent still uses.
    fn get_in<E>(
        &self,
        pid: u32,
        fresh: impl FnOnce(&T) -> bool,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, value)) = slot.take() {
            if owner != pid {
                std::mem::forget(value);
            } else if fresh(&value) {
                let out = value.clone();
                *slot = Some((owner, value));
                return Ok(out);
            }
        }
        let value = make()?;
        *slot = Some((pid, value.clone()));
        Ok(value)
    }
}

impl<T: Clone> Default for ProcessCache<T> {
    fn default() -> Self {
        ProcessCache::new()
    }
}

/// How long a user's groups, once looked up, are used again: long enough
/// for one login's `acct_mgmt` and `open_session`, short enough that a
/// change of membership applies to the next login.
pub const GROUPS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

type PolicyEntry = (PathBuf, FileStamp, Arc<Policy>);
type GroupsEntry = (Account, std::time::Instant, Vec<String>);
type StoreEntry = (StoreConfig, Arc<dyn Store>);

/// The policy last parsed by this process.
static POLICY: ProcessCache<PolicyEntry> = ProcessCache::new();
/// The groups of the user last looked up by this process, and when.
static GROUPS: ProcessCache<GroupsEntry> = ProcessCache::new();
/// The store last opened by this process.
static STORE: ProcessCache<StoreEntry> = ProcessCache::new();

/// The policy at `path` from `cache`, parsed again (by `load`) only when
/// the file's stamp changed or cannot be read. The owner and mode checks
/// are the caller's, at every call.
pub fn cached_policy(
    cache: &ProcessCache<PolicyEntry>,
    path: &Path,
    load: impl FnOnce(&Path) -> Result<Policy, PolicyError>,
) -> Result<Arc<Policy>, PolicyError> {
    // Stamp first, then read: a change while reading leaves a stamp older
    // than the text, so the next call reads the file again.
    let stamp = FileStamp::of(path);
    let fresh = |(p, s, _): &PolicyEntry| p == path && Some(*s) == stamp;
    match stamp {
        Some(stamp) => cache
            .get(fresh, || {
                Ok((path.to_owned(), stamp, Arc::new(load(path)?)))
            })
            .map(|(_, _, policy)| policy),
        None => load(path).map(Arc::new),
    }
}

/// The account's groups from `cache` if looked up less than [`GROUPS_TTL`]
/// before `now`, otherwise `lookup`'s answer (kept when it succeeds).
pub fn cached_groups(
    cache: &ProcessCache<GroupsEntry>,
    account: &Account,
    now: std::time::Instant,
    lookup: impl FnOnce(&Account) -> Result<Vec<String>, HostError>,
) -> Result<Vec<String>, HostError> {
    let fresh = |(a, at, _): &GroupsEntry| {
        a == account && *at <= now && now.duration_since(*at) < GROUPS_TTL
    };
    cache
        .get(fresh, || Ok((account.clone(), now, lookup(account)?)))
        .map(|(_, _, groups)| groups)
}

/// The store `config` names from `cache`, if it is the same store and
/// still passes [`Store::revalidate`]; otherwise one opened now by `open`.
pub fn cached_store(
    cache: &ProcessCache<StoreEntry>,
    config: &StoreConfig,
    open: impl FnOnce(&StoreConfig) -> Result<Box<dyn Store>, StoreError>,
) -> Result<Arc<dyn Store>, StoreError> {
    let fresh = |(c, store): &StoreEntry| c == config && store.revalidate().is_ok();
    cache
        .get(fresh, || Ok((config.clone(), Arc::from(open(config)?))))
        .map(|(_, store)| store)
}

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
        cached_groups(&GROUPS, account, std::time::Instant::now(), host::groups)
    }

    fn secure_caller(&self) -> bool {
        // AT_SECURE is set when the program is executed and cannot change
        // in its process (a forked child inherits it): read /proc/self/auxv
        // once per process, not at every call. An unreadable auxv counts
        // as secure (the safe side) for the life of the process.
        static SECURE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SECURE.get_or_init(host::is_secure_caller)
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
        Policy::check_placement(path)?;
        Ok(Policy::clone(&*cached_policy(&POLICY, path, Policy::load)?))
    }

    fn open_store(&self, config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
        let store = cached_store(&STORE, config, |c| {
            curfew_policy::store::open_for(c, Lifetime::UntilExit)
        })?;
        Ok(Box::new(store))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_parsed_again_only_when_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "version: 1\n").unwrap();
        let cache = ProcessCache::new();
        let loads = std::cell::Cell::new(0);
        let load = |p: &Path| {
            loads.set(loads.get() + 1);
            Policy::load(p)
        };
        let a = cached_policy(&cache, &path, load).unwrap();
        let b = cached_policy(&cache, &path, load).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(loads.get(), 1);
        std::fs::write(&path, "version: 1\nsession: { inactivity: 5m }\n").unwrap();
        let c = cached_policy(&cache, &path, load).unwrap();
        assert_eq!(loads.get(), 2);
        assert_eq!(c.session.inactivity.as_secs(), 300);
        // A broken file is an error every time, never the old policy.
        std::fs::write(&path, "version: 2\n").unwrap();
        assert!(cached_policy(&cache, &path, load).is_err());
        assert!(cached_policy(&cache, &path, load).is_err());
    }

    #[test]
    fn groups_are_kept_for_a_login_not_longer() {
        let cache = ProcessCache::new();
        let t0 = std::time::Instant::now();
        let lookups = std::cell::Cell::new(0);
        let lookup = |a: &Account| {
            lookups.set(lookups.get() + 1);
            Ok(vec![format!("{}-group", a.name)])
        };
        let account = |name: &str, uid| Account {
            name: name.into(),
            uid,
            gid: uid,
        };
        let (alice, bob, carol) = (
            account("alice", 1000),
            account("bob", 1001),
            account("carol", 1002),
        );
        let g = cached_groups(&cache, &alice, t0, lookup).unwrap();
        assert_eq!(g, ["alice-group"]);
        cached_groups(&cache, &alice, t0 + GROUPS_TTL / 2, lookup).unwrap();
        assert_eq!(lookups.get(), 1, "within the TTL");
        assert_eq!(
            cached_groups(&cache, &bob, t0, lookup).unwrap(),
            ["bob-group"]
        );
        assert_eq!(lookups.get(), 2, "another user");
        cached_groups(&cache, &bob, t0 + GROUPS_TTL, lookup).unwrap();
        assert_eq!(lookups.get(), 3, "after the TTL");
        let failing = |a: &Account| Err(HostError::UnknownUser(a.name.clone()));
        assert!(cached_groups(&cache, &carol, t0, failing).is_err());
        cached_groups(&cache, &carol, t0, lookup).unwrap();
        assert_eq!(lookups.get(), 4, "a failure is not kept");
    }

    #[test]
    fn a_store_is_reused_until_its_file_is_replaced_or_the_policy_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = |name: &str| StoreConfig {
            backend: curfew_policy::StoreBackend::Sqlite {
                path: dir.path().join(name),
            },
            on_unavailable: curfew_policy::OnUnavailable::Deny,
        };
        let open = |c: &StoreConfig| curfew_policy::store::open_for(c, Lifetime::UntilExit);
        let cache = ProcessCache::new();
        let a = cached_store(&cache, &config("a.db"), open).unwrap();
        let again = cached_store(&cache, &config("a.db"), open).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let b = cached_store(&cache, &config("b.db"), open).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        // b.db replaced under the open connection: open it afresh.
        drop(curfew_policy::store::open(&config("c.db")).unwrap());
        std::fs::rename(dir.path().join("c.db"), dir.path().join("b.db")).unwrap();
        let b2 = cached_store(&cache, &config("b.db"), open).unwrap();
        assert!(!Arc::ptr_eq(&b, &b2));
    }

    #[test]
    fn what_a_parent_process_kept_is_forgotten_not_reused() {
        let cache: ProcessCache<Arc<u8>> = ProcessCache::new();
        let parent = Arc::new(1);
        let got = cache
            .get_in(1, |_| true, || Ok::<_, ()>(Arc::clone(&parent)))
            .unwrap();
        assert!(Arc::ptr_eq(&got, &parent));
        let child = cache
            .get_in(2, |_| true, || Ok::<_, ()>(Arc::new(2)))
            .unwrap();
        assert_eq!(*child, 2);
        // The parent's value was leaked, not dropped: its count still
        // includes the copy the cache held.
        assert_eq!(Arc::strong_count(&parent), 3);
    }
}
