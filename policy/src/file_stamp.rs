//! What identifies one version of a file without reading it, for the
//! readers that reload the policy when it changes (the enforcer, the hook).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Device, inode, size, mtime and ctime: any change to a file's content,
/// mode or owner, or its replacement by rename, changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of `path`, or `None` when it cannot be inspected.
    pub fn of(path: &Path) -> Option<FileStamp> {
        std::fs::metadata(path)
            .ok()
            .map(|m| FileStamp::from_metadata(&m))
    }

    /// The stamp of already fetched metadata.
    pub fn from_metadata(m: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn content_mode_and_rename_change_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "a").unwrap();
        let s0 = FileStamp::of(&p).unwrap();
        assert_eq!(FileStamp::of(&p), Some(s0), "unchanged");
        std::fs::write(&p, "ab").unwrap();
        let s1 = FileStamp::of(&p).unwrap();
        assert_ne!(s0, s1, "content");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s2 = FileStamp::of(&p).unwrap();
        let q = dir.path().join("g");
        std::fs::write(&q, "ab").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert_ne!(FileStamp::of(&p), Some(s2), "replaced by rename");
        assert_eq!(FileStamp::of(&dir.path().join("missing")), None);
    }
}
