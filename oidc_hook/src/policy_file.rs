//! The policy in force, and reloading it when its file changes.
//!
//! A reload that fails keeps the last good policy and says so (in the log,
//! in [`PolicyStatus::last_error`] and in the hook's `/healthz`): an invalid
//! edit never opens the gate and never shuts it.

use curfew_policy::audit::Priority;
use curfew_policy::journal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use curfew_policy::{FileStamp, Policy, PolicyError};
use serde::Serialize;

/// The policy every decision reads, replaced whole on reload. Cloning shares it.
#[derive(Clone)]
pub struct PolicyCell {
    inner: Arc<RwLock<Loaded>>,
}

struct Loaded {
    policy: Arc<Policy>,
    generation: u64,
    last_error: Option<String>,
}

/// What `/healthz` says about the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyStatus {
    /// Where the policy in force came from.
    pub origin: String,
    /// 1 for the first policy, one more for each successful reload.
    pub generation: u64,
    /// Why the last reload failed, if it did: the policy in force is then
    /// the last good one.
    pub last_error: Option<String>,
}

impl PolicyCell {
    /// A cell holding `policy`, generation 1.
    pub fn new(policy: Policy) -> Self {
        PolicyCell {
            inner: Arc::new(RwLock::new(Loaded {
                policy: Arc::new(policy),
                generation: 1,
                last_error: None,
            })),
        }
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .policy
            .clone()
    }

    /// The policy's origin, generation and last reload error.
    pub fn status(&self) -> PolicyStatus {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        PolicyStatus {
            origin: g.policy.origin.clone(),
            generation: g.generation,
            last_error: g.last_error.clone(),
        }
    }

    /// Puts `policy` in force.
    pub fn replace(&self, policy: Policy) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.policy = Arc::new(policy);
        g.generation += 1;
        g.last_error = None;
    }

    /// Records a failed reload; the policy in force stays.
    pub fn reject(&self, error: String) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .last_error = Some(error);
    }
}

/// What a reload did.
#[derive(Debug)]
pub enum Reload {
    /// The file did not change.
    Unchanged,
    /// The new policy is in force.
    Loaded {
        /// Its `store` section differs from the one before: the caller
        /// opens the new store (see `Gate::sync_store`).
        store_changed: bool,
    },
    /// The new file is invalid or unreadable; the last good policy stays.
    Rejected(PolicyError),
}

/// A policy file watched by polling (atomic renames, editors' swap files
/// and network filesystems all show up as a changed stamp).
pub struct PolicyFile {
    path: PathBuf,
    cell: PolicyCell,
    stamp: Option<FileStamp>,
}

impl PolicyFile {
    /// Watches `path`, whose current content is already in `cell`.
    pub fn new(path: &Path, cell: PolicyCell) -> Self {
        PolicyFile {
            path: path.to_owned(),
            stamp: FileStamp::of(path),
            cell,
        }
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads if the file changed since the last look.
    pub fn poll(&mut self) -> Reload {
        if FileStamp::of(&self.path) == self.stamp {
            return Reload::Unchanged;
        }
        self.reload()
    }

    /// Reloads now, whether or not the file changed.
    pub fn reload(&mut self) -> Reload {
        self.stamp = FileStamp::of(&self.path);
        match Policy::load_secure(&self.path) {
            Ok(policy) => {
                let store_changed = self.cell.current().store != policy.store;
                let event = curfew_policy::policy_source::PolicyEvent::Loaded {
                    origin: policy.origin.clone(),
                    store_changed,
                };
                self.cell.replace(policy);
                // The same line as the enforcer's (curfew_policy::policy_source).
                eprintln!(
                    "{}curfew-oidc: {event}",
                    journal::prefix(if store_changed {
                        Priority::Notice
                    } else {
                        Priority::Info
                    })
                );
                Reload::Loaded { store_changed }
            }
            Err(e) => {
                eprintln!(
                    "{}curfew-oidc: error: the policy {} is invalid; keeping the last good policy: {e}",
                    journal::prefix(Priority::Err),
                    self.path.display()
                );
                self.cell.reject(e.to_string());
                Reload::Rejected(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_bad_edit_keeps_the_last_good_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        write(&path, "version: 1\nsession: { inactivity: 10m }\n");
        let cell = PolicyCell::new(Policy::load(&path).unwrap());
        let mut file = PolicyFile::new(&path, cell.clone());
        assert!(matches!(file.poll(), Reload::Unchanged));

        write(&path, "version: 1\nsession: { inactivity: 3h }\n");
        assert!(matches!(file.poll(), Reload::Rejected(_)));
        let status = cell.status();
        assert_eq!(status.generation, 1);
        assert!(status.last_error.unwrap().contains("inactivity"));
        assert_eq!(cell.current().session.inactivity.as_secs(), 600);
        // The same bad file is not reported again and again.
        assert!(matches!(file.poll(), Reload::Unchanged));

        write(&path, "version: 1\nsession: { inactivity: 20m }\n");
        assert!(matches!(
            file.poll(),
            Reload::Loaded {
                store_changed: false
            }
        ));
        assert_eq!(cell.current().session.inactivity.as_secs(), 1200);
        assert_eq!(cell.status().generation, 2);
        assert_eq!(cell.status().last_error, None);
    }
}
