//! Activity of a session as the kernel counts it: the terminal's input and
//! output times (in [`crate::tty`]) and, for a session without a terminal,
//! the data its processes move.
//!
//! **Traffic** is measured from `/proc/PID/io`: `rchar` + `wchar`, the
//! bytes every process of the session passed through read(2)/write(2) and
//! friends (sockets, pipes, files alike). For `ssh host 'cat > file'`, sftp
//! or scp that is the session's sshd process, which reads the network and
//! writes the pipe, and the command at the other end; for an `ssh -N` port
//! forward it is sshd alone, relaying the forwarded connection. A session
//! has moved data when any process counted at its last reading has a larger
//! count now (a reaped child's counts are added to its parent by the
//! kernel, so a short-lived job counts too); a process seen for the first
//! time only gives a baseline. Readings are taken at every pass only near
//! the session's idle deadline, otherwise every [`TRAFFIC_EVERY`] (see
//! [`TrafficMeter`]). Counting needs ptrace read access to other users'
//! processes (`CAP_SYS_PTRACE` for root): a counter that cannot be read
//! makes the session's traffic unmeasurable, and such a session is not
//! ended for idleness (as with an unreadable terminal).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use std::io::ErrorKind;

use nix::errno::Errno;

use crate::procfs::{ProcId, Procfs};

/// `rchar` + `wchar` of a `/proc/PID/io` text; `None` if either is missing
/// or garbled.
pub fn parse_io(text: &str) -> Option<u64> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(field("rchar:")?.saturating_add(field("wchar:")?))
}

/// What reading one process's I/O counters gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoRead {
    /// Its `rchar` + `wchar`.
    Bytes(u64),
    /// It is gone (or was never there).
    Gone,
    /// It is there but its counters may not be read (no ptrace access):
    /// the `errno` of the failed open or read.
    Denied {
        /// The error number (`EACCES` without `CAP_SYS_PTRACE`), if any.
        errno: Option<i32>,
    },
}

/// Reads `/proc/PID/io` of `pid`.
pub fn read_io(procfs: &Procfs, pid: i32) -> IoRead {
    // One open and read, without the size hint (statx, lseek) of
    // read_to_string: /proc checks the process's permissions at each.
    let mut buf = [0u8; 512];
    let read = (|| {
        use std::io::Read as _;
        let mut f = std::fs::File::open(procfs.pid_dir(pid).join("io"))?;
        let mut len = 0;
        while len < buf.len() {
            match f.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    })();
    match read {
        Ok(text) => parse_io(&text).map_or(IoRead::Gone, IoRead::Bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => IoRead::Gone,
        // ESRCH shows as "No such process" for a process that exited
        // between the directory lookup and the read.
        Err(e) if e.raw_os_error() == Some(3) => IoRead::Gone,
        Err(e) => IoRead::Denied {
            errno: e.raw_os_error(),
        },
    }
}

/// Which counter file could not be read, and why: for the log line that
/// says why a session's traffic is not counted (issue 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoDenied {
    /// The process whose `/proc/PID/io` could not be read.
    pub pid: i32,
    /// The error number of the failed open or read, if any.
    pub errno: Option<i32>,
}

impl std::fmt::Display for IoDenied {
    /// `/proc/PID/io cannot be read (Permission denied (os error 13): ...)`,
    /// naming the permission when the kernel's ptrace check refused it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/proc/{}/io cannot be read", self.pid)?;
        match self.errno {
            Some(e) if e == Errno::EACCES as i32 || e == Errno::EPERM as i32 => write!(
                f,
                " ({}: the kernel's ptrace read check refused it; reading another user's or a \
                 non-dumpable process's I/O counters, sshd's among them, needs CAP_SYS_PTRACE, \
                 which the systemd unit grants)",
                std::io::Error::from_raw_os_error(e)
            ),
            Some(e) => write!(f, " ({})", std::io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

/// The I/O counters of a session's processes at one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Io {
    /// Not measured (the session has a terminal: the terminal decides).
    #[default]
    NotMeasured,
    /// Some process's counters could not be read: the first such.
    Denied(IoDenied),
    /// Every process's `rchar` + `wchar`.
    Counts(Vec<(ProcId, u64)>),
}

/// Reads the counters of `procs`.
pub fn sample(procfs: &Procfs, procs: &[ProcId]) -> Io {
    let mut counts = Vec::with_capacity(procs.len());
    for p in procs {
        match read_io(procfs, p.pid) {
            IoRead::Bytes(n) => counts.push((*p, n)),
            IoRead::Gone => {}
            IoRead::Denied { errno } => return Io::Denied(IoDenied { pid: p.pid, errno }),
        }
    }
    Io::Counts(counts)
}

/// How often the counters of a terminal-less session are read while its
/// idle deadline is far: at most this long after the last reading (plus
/// one pass interval), see [`TrafficMeter`].
pub const TRAFFIC_EVERY: chrono::Duration = chrono::Duration::seconds(10);

/// How far ahead of the moment its warning is due (its idle deadline less
/// `warn_before`) a session's counters are read at every pass.
pub const NEAR_DEADLINE: chrono::Duration = chrono::Duration::seconds(10);

/// The counters seen at the last reading, per session, so that the next
/// reading can tell whether data moved in between; and when each session
/// is to be read next.
///
/// **When a session's counters are read** (only where traffic counts and
/// the session has no terminal; the rule is the enforcer's, this keeps the
/// times):
///
/// - at every pass while its idle deadline is near: from [`NEAR_DEADLINE`]
///   before its warning (the deadline less `warn_before`) on, so that no
///   warning is given and no session is ended for idleness without a
///   reading taken at that very pass;
/// - at the first pass that sees a process of it not seen at its last
///   reading, to take that process's baseline when a reading at every pass
///   would have (what it moves from then on counts);
/// - otherwise at most every [`TRAFFIC_EVERY`]: the first reading of a
///   session is followed by the next one after a share of
///   [`TRAFFIC_EVERY`] taken from a hash of its id, the later ones each
///   [`TRAFFIC_EVERY`] after the last, so that sessions are not all read in
///   the same pass.
///
/// Data moved between two readings is seen at the second, and recorded as
/// the session's activity at that pass: at most [`TRAFFIC_EVERY`] plus one
/// pass interval after it moved, never before. So a session may live that
/// much longer than a reading at every pass would let it, never shorter.
/// One loss a reading at every pass has too, for less time: the counts of a
/// process that moves data and exits between two readings go to whoever
/// reaps it, which is not the session when the process was re-parented out
/// of it (its parent exited first).
#[derive(Debug, Default)]
pub struct TrafficMeter {
    last: HashMap<String, Reading>,
}

/// One session's last reading.
#[derive(Debug)]
struct Reading {
    counts: HashMap<ProcId, u64>,
    /// When it is due again, whether or not its deadline is near.
    next: DateTime<Utc>,
}

impl TrafficMeter {
    /// Whether session `id` is due for a reading at `now` by time alone
    /// (no reading yet, or [`TRAFFIC_EVERY`] passed).
    pub fn due(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.last.get(id).is_none_or(|r| now >= r.next)
    }

    /// Whether `procs` (the session's processes now) holds a process that
    /// the last reading of session `id` did not count (false without a
    /// reading: [`TrafficMeter::due`] says so).
    pub fn new_processes(&self, id: &str, procs: &[ProcId]) -> bool {
        self.last
            .get(id)
            .is_some_and(|r| procs.iter().any(|p| !r.counts.contains_key(p)))
    }

    /// Whether session `id` moved data since its last reading: a process
    /// counted then counts more now. The first reading only takes a
    /// baseline (false). Sets when it is due again.
    pub fn moved(&mut self, id: &str, counts: &[(ProcId, u64)], now: DateTime<Utc>) -> bool {
        let counts: HashMap<ProcId, u64> = counts.iter().copied().collect();
        let (moved, next) = match self.last.get(id) {
            Some(before) => (
                counts
                    .iter()
                    .any(|(p, n)| before.counts.get(p).is_some_and(|b| n > b)),
                now + TRAFFIC_EVERY,
            ),
            None => (false, now + spread(id)),
        };
        self.last.insert(id.to_owned(), Reading { counts, next });
        moved
    }

    /// Forgets sessions for which `keep` is false (ended, or now with a
    /// terminal).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.last.retain(|id, _| keep(id));
    }
}

/// A share of [`TRAFFIC_EVERY`] (a whole number of milliseconds, at most
/// all of it) from an FNV-1a hash of the session id: the same id always
/// gets the same share.
fn spread(id: &str) -> chrono::Duration {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let every = TRAFFIC_EVERY.num_milliseconds().max(1) as u64;
    chrono::Duration::milliseconds((hash % every + 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn io_counters_parse_and_garbage_does_not() {
        let text = "rchar: 1200\nwchar: 34\nsyscr: 5\nsyscw: 2\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(text), Some(1234));
        assert_eq!(parse_io("rchar: 1\n"), None);
        assert_eq!(parse_io("rchar: x\nwchar: 1\n"), None);
        assert_eq!(
            parse_io(&format!("rchar: {}\nwchar: 1\n", u64::MAX)),
            Some(u64::MAX),
            "saturates"
        );
    }

    #[test]
    fn a_baseline_then_growth_is_traffic_and_new_processes_are_not() {
        let p = |pid| ProcId {
            pid,
            start_ticks: 1,
        };
        let at = |s: i64| DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_000_000 + s);
        let mut m = TrafficMeter::default();
        assert!(m.due("s", at(0)), "never read");
        assert!(!m.moved("s", &[(p(1), 10)], at(0)), "baseline");
        assert!(!m.new_processes("s", &[p(1)]));
        assert!(m.new_processes("s", &[p(1), p(2)]), "a process not counted");
        assert!(!m.moved("s", &[(p(1), 10)], at(1)), "nothing moved");
        assert!(
            !m.moved("s", &[(p(1), 10), (p(2), 99)], at(2)),
            "a new process"
        );
        assert!(m.moved("s", &[(p(1), 10), (p(2), 100)], at(3)));
        assert!(!m.due("s", at(3 + 9)));
        assert!(
            m.due("s", at(3) + TRAFFIC_EVERY),
            "due again after TRAFFIC_EVERY"
        );
        assert!(!m.moved("t", &[(p(1), 1000)], at(3)), "per session");
        m.retain(|id| id == "t");
        assert!(m.due("s", at(4)), "forgotten");
        assert!(!m.moved("s", &[(p(2), 500)], at(4)), "a new baseline");
    }

    /// The first reading after a baseline comes after a share of
    /// TRAFFIC_EVERY that depends on the session: sessions that start
    /// together are not all read at the same pass after that.
    #[test]
    fn sessions_read_together_are_spread_over_the_interval() {
        let now = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_000_000);
        let mut m = TrafficMeter::default();
        let ids: Vec<String> = (0..100).map(|i| format!("session-{i}")).collect();
        for id in &ids {
            m.moved(id, &[], now);
        }
        // How many are due at each of the next ten seconds.
        let mut due_at = Vec::new();
        for s in 1..=10 {
            let t = now + chrono::Duration::seconds(s);
            due_at.push(ids.iter().filter(|id| m.due(id, t)).count());
        }
        assert_eq!(due_at[9], 100, "every one within TRAFFIC_EVERY: {due_at:?}");
        assert!(
            due_at[4] > 20 && due_at[4] < 80,
            "about half after half of it: {due_at:?}"
        );
        assert_eq!(spread("a"), spread("a"));
    }

    /// The real counters of this very process move with a pipe's data.
    #[test]
    fn this_process_counts_what_it_moves() {
        let procfs = Procfs::default();
        let me = std::process::id() as i32;
        let id = ProcId {
            pid: me,
            start_ticks: 0,
        };
        let before = match sample(&procfs, &[id]) {
            Io::Counts(c) => c[0].1,
            other => panic!("{other:?}"),
        };
        let (mut r, mut w) = std::io::pipe().unwrap();
        w.write_all(&[7u8; 4096]).unwrap();
        let mut buf = [0u8; 4096];
        r.read_exact(&mut buf).unwrap();
        let after = match sample(&procfs, &[id]) {
            Io::Counts(c) => c[0].1,
            other => panic!("{other:?}"),
        };
        assert!(after >= before + 8192, "{before} -> {after}");
        assert_eq!(read_io(&procfs, i32::MAX), IoRead::Gone);
    }

    /// A counter file that cannot be read names itself, the process and
    /// the error; a refusal of the ptrace check names the capability.
    #[test]
    fn an_unreadable_counter_says_which_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: the read fails (EISDIR).
        std::fs::create_dir_all(dir.path().join("42").join("io")).unwrap();
        let procfs = Procfs::at(dir.path());
        let p = |pid| ProcId {
            pid,
            start_ticks: 1,
        };
        let denied = match sample(&procfs, &[p(41), p(42)]) {
            Io::Denied(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(denied.pid, 42, "the process, not the one that is gone");
        assert_eq!(denied.errno, Some(Errno::EISDIR as i32));
        let text = denied.to_string();
        assert!(text.starts_with("/proc/42/io cannot be read ("), "{text}");
        assert!(
            !text.contains("CAP_SYS_PTRACE"),
            "not a ptrace refusal: {text}"
        );
        let refused = IoDenied {
            pid: 7,
            errno: Some(Errno::EACCES as i32),
        }
        .to_string();
        assert!(
            refused.contains("/proc/7/io")
                && refused.contains("Permission denied")
                && refused.contains("CAP_SYS_PTRACE"),
            "{refused}"
        );
    }
}
