//! The enforcer's errors: one enum per layer, a variant per cause, each with
//! the file or the bound a reader needs to act on it.

use std::path::PathBuf;
use std::time::Duration;

/// Reading this host's processes from /proc failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The /proc directory could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    List {
        /// The directory (normally `/proc`).
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A file of /proc could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file (e.g. `/proc/stat`).
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// `/proc/stat` has no `btime` line, so process start times cannot be
    /// turned into wall-clock times.
    #[error("{} has no btime line", path.display())]
    NoBootTime {
        /// The file.
        path: PathBuf,
    },
}

/// Why `curfew enforce` could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--interval` is outside its bounds.
    #[error(
        "--interval {} is out of range: give {} to {}",
        humantime::format_duration(*given),
        humantime::format_duration(*min),
        humantime::format_duration(*max)
    )]
    Interval {
        /// The interval asked for.
        given: Duration,
        /// The shortest allowed.
        min: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// The host's name could not be read (sessions are recorded under it).
    #[error("cannot read this host's name: {detail}")]
    Hostname {
        /// The system's reason.
        detail: String,
    },
    /// SIGTERM and SIGINT could not be taken over (to stop cleanly).
    #[error("cannot handle the stop signals: {detail}")]
    Signals {
        /// The system's reason.
        detail: String,
    },
}
