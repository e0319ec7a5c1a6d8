//! sshd-style StrictModes checks: a policy or store that someone other than
//! its owner (root, or the user running the tool) can change is refused.

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
