//! The one policy source of every long-running process (the enforcer, the
//! token hook, the example OpenID Provider): loaded with the StrictModes
//! checks, reloaded when the file changes (and re-checked every minute,
//! since the directories above it may have changed), and kept as it was
//! when a reload fails. Each outcome is one [`PolicyEvent`], logged as one
//! line by the caller.
//!
//! A changed `store` section: the new policy is put in force and
//! [`PolicyEvent::Loaded::store_changed`] is set; every caller then opens
//! the new store and drops the old one (if the new one cannot be opened,
//! the caller keeps answering as the failure table says for an unavailable
//! store: it never goes on writing to a store the policy no longer names).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::{FileStamp, Policy};

/// A full re-check even when the file looks unchanged (the directories above
/// it may have had their modes changed).
const RECHECK: chrono::Duration = chrono::Duration::seconds(60);

/// What changed about the policy at a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyEvent {
    /// The policy was loaded (first time, or again after a change or a failure).
    Loaded {
        /// Its origin.
        origin: String,
        /// The `store` section differs from the policy in force before (never
        /// set for the first load): reopen the store.
        store_changed: bool,
    },
    /// A reload failed; the last good policy stays in force.
    KeptLastGood {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        error: String,
        /// When the policy in force was loaded.
        loaded_at: DateTime<Utc>,
    },
    /// No policy could be loaded yet: nothing is ended until one is.
    NoPolicy {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        error: String,
    },
}

impl std::fmt::Display for PolicyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyEvent::Loaded {
                origin,
                store_changed: false,
            } => write!(f, "policy loaded from {origin}"),
            PolicyEvent::Loaded {
                origin,
                store_changed: true,
            } => write!(
                f,
                "policy loaded from {origin}; its store section changed: reopening the store"
            ),
            PolicyEvent::KeptLastGood {
                path,
                error,
                loaded_at,
            } => write!(
                f,
                "cannot reload the policy {}: {error}; keeping the last good policy, loaded at {}",
                path.display(),
                loaded_at.to_rfc3339()
            ),
            PolicyEvent::NoPolicy { path, error } => write!(
                f,
                "cannot load the policy {}: {error}; no session is ended until it loads",
                path.display()
            ),
        }
    }
}

/// The policy in force and where it comes from.
#[derive(Debug)]
pub struct PolicySource {
    path: Option<PathBuf>,
    good: Option<(Policy, DateTime<Utc>)>,
    stamp: Option<FileStamp>,
    checked_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl PolicySource {
    /// The policy at `path`; with `None`, the built-in policy.
    pub fn new(path: Option<PathBuf>) -> Self {
        PolicySource {
            path,
            good: None,
            stamp: None,
            checked_at: None,
            last_error: None,
        }
    }

    /// The file, if one is named.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// The policy in force, if one ever loaded.
    pub fn current(&self) -> Option<&Policy> {
        self.good.as_ref().map(|(p, _)| p)
    }

    /// Loads or reloads the policy if the file changed (or a minute passed),
    /// and says what happened, if anything did.
    pub fn refresh(&mut self, now: DateTime<Utc>) -> Option<PolicyEvent> {
        let Some(path) = self.path.clone() else {
            if self.good.is_none() {
                let p = Policy::builtin();
                let origin = p.origin.clone();
                self.good = Some((p, now));
                return Some(PolicyEvent::Loaded {
                    origin,
                    store_changed: false,
                });
            }
            return None;
        };
        let st = FileStamp::of(&path);
        let due = self.checked_at.is_none_or(|c| now - c >= RECHECK);
        if st.is_some() && st == self.stamp && !due {
            return None;
        }
        let changed = st != self.stamp;
        self.stamp = st;
        self.checked_at = Some(now);
        match Policy::load_secure(&path) {
            Ok(p) => {
                let was_failing = self.last_error.take().is_some();
                let same = self.good.as_ref().is_some_and(|(g, _)| *g == p);
                if same && !was_failing {
                    return None;
                }
                let origin = p.origin.clone();
                let store_changed = self.good.as_ref().is_some_and(|(g, _)| g.store != p.store);
                if !same {
                    self.good = Some((p, now));
                }
                (changed || was_failing || !same).then_some(PolicyEvent::Loaded {
                    origin,
                    store_changed,
                })
            }
            Err(e) => {
                let error = e.to_string().replace('\n', "; ");
                if self.last_error.as_deref() == Some(error.as_str()) {
                    return None;
                }
                self.last_error = Some(error.clone());
                Some(match &self.good {
                    Some((_, loaded_at)) => PolicyEvent::KeptLastGood {
                        path,
                        error,
                        loaded_at: *loaded_at,
                    },
                    None => PolicyEvent::NoPolicy { path, error },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    const GOOD: &str = "version: 1\nsession: { inactivity: 10m }\n";
    const BETTER: &str = "version: 1\nsession: { inactivity: 20m }\n";

    #[test]
    fn a_broken_or_insecure_reload_keeps_the_last_good_policy_and_says_so_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("policy.yaml");
        write(&path, GOOD, 0o644);
        let mut src = PolicySource::new(Some(path.clone()));
        assert!(matches!(
            src.refresh(t(0)),
            Some(PolicyEvent::Loaded { .. })
        ));
        assert_eq!(src.refresh(t(1)), None, "unchanged");
        let inactivity = |s: &PolicySource| s.current().unwrap().session.inactivity.as_secs();
        assert_eq!(inactivity(&src), 600);

        // Broken YAML: kept, said once.
        write(&path, "version: 1\nsession: { inactivity: 3h }\n", 0o644);
        match src.refresh(t(2)) {
            Some(PolicyEvent::KeptLastGood {
                error, loaded_at, ..
            }) => {
                assert!(error.contains("session.inactivity"), "{error}");
                assert_eq!(loaded_at, t(0));
            }
            other => panic!("expected KeptLastGood, got {other:?}"),
        }
        assert_eq!(src.refresh(t(3)), None, "said once");
        assert_eq!(inactivity(&src), 600);

        // A good file again.
        write(&path, BETTER, 0o644);
        assert!(matches!(
            src.refresh(t(4)),
            Some(PolicyEvent::Loaded { .. })
        ));
        assert_eq!(inactivity(&src), 1200);

        // Writable by everyone: refused, the last good policy stays.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        match src.refresh(t(5)) {
            Some(PolicyEvent::KeptLastGood { error, .. }) => {
                assert!(error.contains("writable"), "{error}")
            }
            other => panic!("expected KeptLastGood, got {other:?}"),
        }
        assert_eq!(inactivity(&src), 1200);

        // Safe again, then its directory writable by others (sticky or
        // not): refused with the directory named, the last good kept.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, GOOD, 0o644);
        assert!(matches!(
            src.refresh(t(5) + chrono::Duration::minutes(2)),
            Some(PolicyEvent::Loaded { .. })
        ));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        match src.refresh(t(5) + chrono::Duration::minutes(4)) {
            Some(PolicyEvent::KeptLastGood { error, .. }) => assert!(
                error.contains(&format!(
                    "its directory {} is writable by everyone",
                    dir.path().display()
                )),
                "{error}"
            ),
            other => panic!("expected KeptLastGood, got {other:?}"),
        }
        assert_eq!(inactivity(&src), 600);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

        // Gone: still kept.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            src.refresh(t(6) + chrono::Duration::minutes(6)),
            Some(PolicyEvent::KeptLastGood { .. })
        ));
        assert_eq!(inactivity(&src), 600);
    }

    #[test]
    fn a_changed_store_section_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("policy.yaml");
        write(&path, GOOD, 0o644);
        let mut src = PolicySource::new(Some(path.clone()));
        assert!(matches!(
            src.refresh(t(0)),
            Some(PolicyEvent::Loaded {
                store_changed: false,
                ..
            })
        ));
        write(&path, BETTER, 0o644);
        assert!(matches!(
            src.refresh(t(1)),
            Some(PolicyEvent::Loaded {
                store_changed: false,
                ..
            })
        ));
        write(
            &path,
            "version: 1\nstore: { backend: sqlite, path: /var/lib/other.db }\n",
            0o644,
        );
        match src.refresh(t(2)) {
            Some(
                e @ PolicyEvent::Loaded {
                    store_changed: true,
                    ..
                },
            ) => assert!(e.to_string().contains("reopening the store"), "{e}"),
            other => panic!("expected a store change, got {other:?}"),
        }
    }

    #[test]
    fn without_a_good_policy_there_is_none_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        write(&path, "version: 2\n", 0o644);
        let mut src = PolicySource::new(Some(path));
        assert!(matches!(
            src.refresh(t(0)),
            Some(PolicyEvent::NoPolicy { .. })
        ));
        assert!(src.current().is_none());
    }

    #[test]
    fn no_file_named_means_the_builtin_policy() {
        let mut src = PolicySource::new(None);
        assert!(matches!(
            src.refresh(t(0)),
            Some(PolicyEvent::Loaded { .. })
        ));
        assert_eq!(src.current().unwrap().origin, "<builtin>");
        assert_eq!(src.refresh(t(100)), None);
    }
}
