//! What every command needs: the policy and the store, loaded once.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use curfew_policy::policy::DEFAULT_POLICY_PATH;
use curfew_policy::{AuditEvent, AuditSink, Policy, Store, StoreBackend, StoreConfig, StoreError};

/// The global options, resolved lazily so that `policy schema` needs no file.
pub struct Context {
    policy_arg: Option<PathBuf>,
    store_path: Option<PathBuf>,
}

impl Context {
    /// From the global options.
    pub fn new(policy_arg: Option<PathBuf>, store_path: Option<PathBuf>) -> Self {
        Context {
            policy_arg,
            store_path,
        }
    }

    /// The policy file to read, if any: `--policy`/`$CURFEW_POLICY`, else the
    /// default path when it exists.
    pub fn policy_path(&self) -> Option<PathBuf> {
        match &self.policy_arg {
            Some(p) => Some(p.clone()),
            None if Path::new(DEFAULT_POLICY_PATH).exists() => Some(DEFAULT_POLICY_PATH.into()),
            None => None,
        }
    }

    /// Loads and validates the policy, refusing one in a place others can
    /// change (as the PAM module, the enforcer and the hook do: the CLI
    /// revokes and decides by it). With no file named and none at the
    /// default path, the built-in policy is used, and a note says so.
    pub fn policy(&self) -> Result<Policy> {
        match self.policy_path() {
            Some(p) => Ok(Policy::load_secure(&p)?),
            None => {
                eprintln!(
                    "curfew: note: {DEFAULT_POLICY_PATH} does not exist; using the built-in policy"
                );
                Ok(Policy::builtin())
            }
        }
    }

    /// `--store-path`, if given.
    pub fn store_path_override(&self) -> Option<PathBuf> {
        self.store_path.clone()
    }

    /// Opens the store the policy names (or `--store-path`).
    pub fn store(&self, policy: &Policy) -> Result<Box<dyn Store>> {
        let store = curfew_policy::store::open(&self.store_config(policy))
            .context("cannot open the store")?;
        Ok(store)
    }

    /// Opens the store the policy names (or `--store-path`), keeping the
    /// store's typed error for the admission kernel's failure table.
    pub fn open_store(&self, policy: &Policy) -> Result<Box<dyn Store>, StoreError> {
        curfew_policy::store::open(&self.store_config(policy))
    }

    /// The store the policy names, or the SQLite file of `--store-path`.
    pub fn store_config(&self, policy: &Policy) -> StoreConfig {
        let mut config = policy.store.clone();
        if let Some(p) = &self.store_path {
            config.backend = StoreBackend::Sqlite { path: p.clone() };
        }
        config
    }

    /// Records an admin action in the policy's audit trail (the file and
    /// syslog, as the policy says). A failure to write is a warning on
    /// stderr and the command still succeeds: the action itself is already
    /// in the store, and undoing it because the log is full would be worse.
    pub fn audit(&self, policy: &Policy, at: DateTime<Utc>, event: &AuditEvent) {
        let sink = AuditSink::new(&policy.audit, "curfew", hostname());
        if let Err(e) = sink.record(at, event) {
            eprintln!(
                "curfew: warning: the {} was done but is not in the audit trail: {e}",
                event.name()
            );
        }
    }

    /// The clock. Commands read it here, once, and pass it on.
    #[allow(clippy::disallowed_methods)] // the CLI is an entry point
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The name of the user running the command.
pub fn current_user() -> String {
    let uid = nix::unistd::getuid();
    name_of(uid).unwrap_or_else(|| uid.to_string())
}

/// The user name of `uid`, if the user database knows it.
fn name_of(uid: nix::unistd::Uid) -> Option<String> {
    curfew_policy::host::account_of_uid(uid.as_raw())
        .ok()
        .map(|a| a.name)
}

/// This host's name.
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
}
