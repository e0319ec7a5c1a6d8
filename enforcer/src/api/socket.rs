//! The listening socket: made in a directory only root (or the daemon's
//! own user) can write, never over anything that is not a stale socket,
//! mode 0666 (every local user may connect: each call is authorized on its
//! own), and removed again when the server stops.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why the socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The directory of the socket is unsafe or cannot be made.
    #[error("{}: {why}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Something that is not a socket is in the way.
    #[error("{} exists and is not a socket; not replacing it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Another daemon answers on the socket.
    #[error("{} is in use by another running daemon", path.display())]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The step.
        what: &'static str,
        /// The system's reason.
        source: std::io::Error,
    },
}

/// A bound socket that removes its file when dropped (if it is still ours).
#[derive(Debug)]
pub struct BoundSocket {
    /// The listener.
    pub listener: UnixListener,
    path: PathBuf,
    ino: u64,
}

impl BoundSocket {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        path: path.to_owned(),
        what,
        source,
    }
}

/// Checks (making it, mode 0755, if missing) the socket's directory: a real
/// directory, owned by root or by us, writable by nobody else.
fn directory(dir: &Path) -> Result<(), SocketError> {
    let euid = rustix::process::geteuid().as_raw();
    let bad = |why: String| SocketError::Directory {
        dir: dir.to_owned(),
        why,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .map_err(|e| bad(format!("cannot create it: {e}")))?;
        }
        Err(e) => return Err(bad(format!("cannot read it: {e}"))),
        Ok(_) => {}
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !m.file_type().is_dir() {
        return Err(bad("is not a directory (a symbolic link is refused)".into()));
    }
    if m.uid() != 0 && m.uid() != euid {
        return Err(bad(format!(
            "belongs to uid {}; it must belong to root",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "mode {:o} lets others write in it; chmod go-w",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Binds `path`: checks its directory, replaces a stale socket (one that
/// nobody answers on), and opens it to every local user.
///
/// # Errors
///
/// See [`SocketError`].
pub fn bind(path: &Path) -> Result<BoundSocket, SocketError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    directory(dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io(path, "cannot remove the stale socket"))?;
        }
        Ok(_) => {
            return Err(SocketError::NotASocket {
                path: path.to_owned(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, "cannot read it")(e)),
    }
    let listener = UnixListener::bind(path).map_err(io(path, "cannot bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(io(path, "cannot chmod"))?;
    let ino = std::fs::symlink_metadata(path)
        .map_err(io(path, "cannot read it"))?
        .ino();
    Ok(BoundSocket {
        listener,
        path: path.to_owned(),
        ino,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_replaces_stale_sockets_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("run").join("api.sock");
        let s = bind(&path).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o666);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o755
        );
        // A second daemon is refused while the first listens.
        assert!(matches!(bind(&path), Err(SocketError::InUse { .. })));
        // A stale socket (nobody listening) is replaced.
        let stale = BoundSocket {
            listener: s.listener.try_clone().unwrap(),
            path: PathBuf::from("/nonexistent"),
            ino: 0,
        };
        drop(s);
        drop(stale);
        let _ = UnixListener::bind(&path).map(drop);
        assert!(path.exists());
        let s = bind(&path).unwrap();
        drop(s);
        assert!(!path.exists(), "removed when dropped");
        // A regular file is never replaced.
        std::fs::write(&path, "x").unwrap();
        assert!(matches!(bind(&path), Err(SocketError::NotASocket { .. })));
        // A directory others can write is refused.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            bind(&open.join("s")),
            Err(SocketError::Directory { .. })
        ));
    }
}
