//! A session's terminals: when they last had input and output, and a
//! one-line notice.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::procfs::{makedev, tty_major_minor, tty_path_guess};

/// One terminal of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tty {
    /// Its device file.
    pub path: PathBuf,
    /// Its device number (`st_rdev`): the file is only used while it still
    /// is this device.
    pub rdev: u64,
    /// The last input as the kernel recorded it (atime, what `w` reads);
    /// `None` if it could not be read.
    pub last_input: Option<DateTime<Utc>>,
    /// The last output as the kernel recorded it (mtime: Linux's
    /// `tty_update_time` sets it when a process writes to the terminal, to 8
    /// seconds like the atime); `None` if it could not be read or is the
    /// enforcer's own notice.
    pub last_output: Option<DateTime<Utc>>,
}

/// The terminal a /proc `tty_nr` names, if its device file can be found.
pub fn resolve(tty_nr: u32) -> Option<Tty> {
    let (major, minor) = tty_major_minor(tty_nr);
    let rdev = makedev(major, minor);
    let path = tty_path_guess(major, minor)
        .filter(|p| is_device(p, rdev))
        .or_else(|| search_dev(rdev))?;
    let (last_input, last_output) = match read_times(&path, rdev) {
        Some((a, m)) => (Some(a), Some(m)),
        None => (None, None),
    };
    Some(Tty {
        last_input,
        last_output,
        path,
        rdev,
    })
}

fn is_device(path: &Path, rdev: u64) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == rdev)
}

fn search_dev(rdev: u64) -> Option<PathBuf> {
    ["/dev", "/dev/pts"].iter().find_map(|dir| {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| is_device(p, rdev))
    })
}

/// The atime of the terminal at `path`, if it still is device `rdev`.
///
/// The terminal's owner can set its atime to anything (`touch -d`). A time
/// beyond what a `DateTime` holds is read as the latest (or earliest) one
/// it does hold, so that it counts as a time set by hand (no news), not as
/// an unreadable terminal (which would never be judged idle).
pub fn read_input_time(path: &Path, rdev: u64) -> Option<DateTime<Utc>> {
    read_times(path, rdev).map(|(a, _)| a)
}

/// The atime (last input) and mtime (last output) of the terminal at
/// `path`, if it still is device `rdev`. These are raw times from a file
/// anyone who owns the terminal can `touch`: callers pass them through
/// `curfew_policy::time::observed`.
pub fn read_times(path: &Path, rdev: u64) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.file_type().is_char_device() || m.rdev() != rdev {
        return None;
    }
    // The terminal's owner can set these to anything (`touch -d`): a time
    // beyond what a `DateTime` holds is read as the latest (or earliest) one
    // it does hold, so that it counts as a time set by hand (no news, see
    // `time::observed`), never as an unreadable terminal (which would never
    // be judged idle).
    let at = |secs: i64, nsec: i64| {
        DateTime::from_timestamp(secs, nsec.clamp(0, 999_999_999) as u32).unwrap_or(if secs > 0 {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
    };
    Some((at(m.atime(), m.atime_nsec()), at(m.mtime(), m.mtime_nsec())))
}

/// Writes `line` to the terminal, framed by CR LF so it stands on its own
/// line in a raw-mode or cooked terminal alike. Never blocks (a terminal
/// stopped with ^S drops the notice), never becomes the enforcer's
/// controlling terminal, never follows a symlink, and writes nothing unless
/// the file still is the expected device.
pub fn write_notice(tty: &Tty, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(
            (nix::fcntl::OFlag::O_NOCTTY
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_NOFOLLOW)
                .bits(),
        )
        .open(&tty.path)?;
    let m = f.metadata()?;
    if !m.file_type().is_char_device() || m.rdev() != tty.rdev {
        return Err(std::io::Error::other(format!(
            "{} is no longer the session's terminal",
            tty.path.display()
        )));
    }
    // Our own text, and names from records only with their control
    // characters made visible (`notice::closing`).
    let text = format!("\r\n{}\r\n", line.replace(['\r', '\n'], " "));
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A pty pair from the kernel: the enforcer writes to the pts side as it
    /// would to a user's terminal, and the test reads what the user sees.
    #[test]
    fn a_notice_reaches_the_terminal_and_input_times_are_read() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let name = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
        ))
        .unwrap();
        let rdev = std::fs::metadata(&name).unwrap().rdev();
        let tty = Tty {
            path: name.clone(),
            rdev,
            last_input: None,
            last_output: None,
        };
        assert!(read_input_time(&name, rdev).is_some());
        assert_eq!(read_input_time(&name, rdev + 1), None, "another device");
        write_notice(&tty, "curfew: hello\nthere").unwrap();
        let mut master = std::fs::File::from(pty.master);
        let mut buf = [0u8; 256];
        let n = master.read(&mut buf).unwrap();
        let seen = String::from_utf8_lossy(&buf[..n]);
        assert!(seen.contains("curfew: hello there"), "{seen:?}");
        let wrong = Tty {
            rdev: rdev + 1,
            ..tty
        };
        assert!(
            write_notice(&wrong, "x").is_err(),
            "never writes to another device"
        );
    }

    #[test]
    fn a_pts_resolves_from_its_tty_nr() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let name = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
        ))
        .unwrap();
        let rdev = std::fs::metadata(&name).unwrap().rdev();
        // tty_nr packs major and minor the way /proc/PID/stat shows them.
        let (major, minor) = (
            (rdev >> 8) & 0xfff,
            (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
        );
        let tty_nr =
            ((major as u32) << 8) | (minor as u32 & 0xff) | (((minor as u32) & !0xff) << 12);
        let t = resolve(tty_nr).expect("resolves");
        assert_eq!(t.path, name);
        assert_eq!(t.rdev, rdev);
        assert!(t.last_input.is_some());
    }
}
