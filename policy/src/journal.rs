//! Priorities for the lines long-running parts write to stderr.
//!
//! Under systemd, a service's stderr is a stream to journald, which files
//! every line at the unit's `SyslogLevel=` (info) unless the line starts with
//! a `<N>` prefix, N the syslog severity (`SyslogLevelPrefix=`, on by
//! default; the convention of `sd-daemon.h`'s `SD_ERR`, `SD_NOTICE`...).
//! The enforcer and the token hook prefix their lines so that `journalctl
//! -p err` shows their errors and `-p notice` their refusals and ends.
//!
//! The prefix is written only when stderr *is* the journal: systemd sets
//! `$JOURNAL_STREAM` to the `DEVICE:INODE` of that stream, and a process
//! whose stderr is a terminal, a file or a pipe (a test, `curfew enforce
//! --once` by hand) gets plain lines. This is the check `sd_journal_stream_fd`
//! users are told to make (systemd.exec(5), "$JOURNAL_STREAM"). It needs no
//! crate: a `<N>` prefix and one `fstat`.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use crate::audit::Priority;

/// Whether `journal_stream` (the value of `$JOURNAL_STREAM`) names the file
/// whose device and inode are `dev` and `ino`.
pub fn names(journal_stream: Option<&str>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

fn stderr_is_journal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| {
        let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
            return false;
        };
        // A duplicate of fd 2, only to read its device and inode.
        let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
            return false;
        };
        match std::fs::File::from(fd).metadata() {
            Ok(m) => names(Some(&stream), m.dev(), m.ino()),
            Err(_) => false,
        }
    })
}

/// The `<N>` prefix of `priority` (`<3>` err, `<4>` warning, `<5>`
/// notice, `<6>` info).
pub fn prefix_of(priority: Priority) -> &'static str {
    match priority {
        Priority::Err => "<3>",
        Priority::Warning => "<4>",
        Priority::Notice => "<5>",
        Priority::Info => "<6>",
    }
}

/// The prefix for a stderr line at `priority`: [`prefix_of`] when stderr
/// is the journal, else nothing.
pub fn prefix(priority: Priority) -> &'static str {
    if stderr_is_journal() {
        prefix_of(priority)
    } else {
        ""
    }
}

/// Writes `line` to stderr at `priority` (see the module documentation).
/// `line` should be one line; a newline in it would start an entry at the
/// default priority.
pub fn eprint(priority: Priority, line: &str) {
    eprintln!("{}{line}", prefix(priority));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_named_by_device_and_inode() {
        let f = tempfile::tempfile().unwrap();
        let m = f.metadata().unwrap();
        let value = format!("{}:{}", m.dev(), m.ino());
        assert!(names(Some(&value), m.dev(), m.ino()));
        // Another file, nothing, or garbage: not the journal.
        assert!(!names(Some(&value), m.dev(), m.ino() + 1));
        assert!(!names(None, m.dev(), m.ino()));
        for bad in ["", ":", "8", "8:", ":12", "x:y", "8:12:3"] {
            assert!(!names(Some(bad), 8, 12), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_the_syslog_severities() {
        for p in [
            Priority::Err,
            Priority::Warning,
            Priority::Notice,
            Priority::Info,
        ] {
            assert_eq!(prefix_of(p), format!("<{}>", p.severity()));
        }
    }
}
