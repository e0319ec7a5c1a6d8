//! sshd-style StrictModes checks: a policy or store that someone other than
//! its owner (root, or the user running the tool) can change is refused.
//!
//! Two levels: [`check`] for files curfew only reads (the policy: not
//! writable by others, nor is any directory above it, a sticky directory
//! such as /tmp excepted), and [`check_private_dir`] plus
//! [`check_private_file`] for the files curfew writes and keeps to itself
//! (the SQLite store and its `-wal`/`-shm` sidecars): a symlink is refused,
//! the file may not be reached by group or others at all, and its own
//! directory may not be writable by anyone else even with the sticky bit,
//! since whoever can create files there can plant the sidecars or a symlink
//! before curfew does.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file that fails the ownership and mode checks.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: refusing to use it: {reason}", path.display())]
pub struct InsecureFile {
    /// The offending file or directory.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks that `path` and every directory above it is owned by root or by
/// the effective user, and is not writable by group or others (a directory
/// with the sticky bit, such as /tmp, may be world-writable).
pub fn check(path: &Path) -> Result<(), InsecureFile> {
    let me = nix::unistd::geteuid().as_raw();
    let meta = std::fs::metadata(path).map_err(|e| InsecureFile {
        path: path.to_owned(),
        reason: format!("cannot inspect it: {e}"),
    })?;
    check_one(path, &meta, me, false)?;
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut dir = absolute.parent();
    while let Some(d) = dir {
        if let Ok(meta) = std::fs::metadata(d) {
            check_one(d, &meta, me, true)?;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Checks the directory that holds a private file (see the module docs):
/// it is owned by root or the effective user and is writable by nobody
/// else, sticky bit or not; the directories above it pass [`check`]'s
/// rule. A directory that does not exist passes: nothing can be created in
/// it, which the caller reports as such.
pub fn check_private_dir(dir: &Path) -> Result<(), InsecureFile> {
    let me = nix::unistd::geteuid().as_raw();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(InsecureFile {
                path: dir.to_owned(),
                reason: format!("cannot inspect the directory: {e}"),
            })
        }
    };
    if !meta.is_dir() {
        return Err(InsecureFile {
            path: dir.to_owned(),
            reason: "it is not a directory".into(),
        });
    }
    // Sticky or not: check it as a plain file is checked.
    check_one(dir, &meta, me, false)?;
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut up = absolute.parent();
    while let Some(d) = up {
        if let Ok(meta) = std::fs::metadata(d) {
            check_one(d, &meta, me, true)?;
        }
        up = d.parent();
    }
    Ok(())
}

/// Checks a private file without following a symlink: `Ok(None)` when
/// there is none, `Ok(Some(metadata))` when it is a regular file owned by
/// root or the effective user that neither group nor others may read or
/// write; otherwise an error naming the file and the reason.
pub fn check_private_file(path: &Path) -> Result<Option<std::fs::Metadata>, InsecureFile> {
    let me = nix::unistd::geteuid().as_raw();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(InsecureFile {
                path: path.to_owned(),
                reason: format!("cannot inspect it: {e}"),
            })
        }
    };
    let refuse = |reason: String| {
        Err(InsecureFile {
            path: path.to_owned(),
            reason,
        })
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if !meta.is_file() {
        return refuse("it is not a regular file".into());
    }
    let uid = meta.uid();
    if uid != 0 && uid != me {
        return refuse(format!("it is owned by uid {uid}, not by root or uid {me}"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        let who = if mode & 0o007 != 0 {
            "everyone".to_owned()
        } else {
            format!("group {}", meta.gid())
        };
        return refuse(format!(
            "it can be read or written by {who} (mode {mode:o}); it must be mode 0600"
        ));
    }
    Ok(Some(meta))
}

fn check_one(
    path: &Path,
    meta: &std::fs::Metadata,
    me: u32,
    is_dir: bool,
) -> Result<(), InsecureFile> {
    let mode = meta.mode();
    let uid = meta.uid();
    if uid != 0 && uid != me {
        return Err(InsecureFile {
            path: path.to_owned(),
            reason: format!("it is owned by uid {uid}, not by root or uid {me}"),
        });
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o002 != 0 && !(is_dir && sticky) {
        return Err(InsecureFile {
            path: path.to_owned(),
            reason: format!("it is writable by everyone (mode {:o})", mode & 0o7777),
        });
    }
    if mode & 0o020 != 0 && !(is_dir && sticky) {
        return Err(InsecureFile {
            path: path.to_owned(),
            reason: format!(
                "it is writable by group {} (mode {:o})",
                meta.gid(),
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn world_writable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, "version: 1\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        check(&f).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check(&f).unwrap_err();
        assert!(e.to_string().contains("writable by everyone"), "{e}");
    }

    #[test]
    fn private_file_refuses_symlinks_and_any_access_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state.db");
        assert!(check_private_file(&f).unwrap().is_none(), "missing is fine");
        std::fs::write(&f, "").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_private_file(&f).unwrap().is_some());
        for (mode, who) in [(0o640, "group"), (0o604, "everyone"), (0o660, "group")] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = check_private_file(&f).unwrap_err();
            assert_eq!(e.path, f);
            assert!(e.to_string().contains(who), "{mode:o}: {e}");
        }
        let link = dir.path().join("state.db-wal");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let e = check_private_file(&link).unwrap_err();
        assert_eq!(e.path, link);
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn private_dir_may_not_be_writable_by_others_even_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_private_dir(&sub).unwrap();
        for mode in [0o1777, 0o777, 0o1770, 0o775] {
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = check_private_dir(&sub).unwrap_err();
            assert_eq!(e.path, sub, "{mode:o}");
            assert!(e.to_string().contains("writable by"), "{mode:o}: {e}");
        }
        // A sticky world-writable directory further up (/tmp) is fine.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_private_dir(&sub).unwrap();
    }

    #[test]
    fn world_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        let f = sub.join("p.yaml");
        std::fs::write(&f, "version: 1\n").unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(&f).unwrap_err();
        assert_eq!(e.path, sub.canonicalize().unwrap());
    }
}
