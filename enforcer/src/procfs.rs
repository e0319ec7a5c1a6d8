//! A snapshot of this host's processes, read from /proc.

use std::collections::HashMap;
use std::path::PathBuf;

use curfew_policy::host::parse_audit_session_id;

use crate::error::ProcError;

/// `/proc/PID/sessionid` when no audit session is set.
pub const NO_AUDIT_SESSION: u32 = u32::MAX;

/// The inode number /proc gives a pid directory it could not set up
/// (`proc_fill_cache` in the kernel's fs/proc/base.c): it names nothing,
/// and such a pid is always read.
///
/// Every other inode number of a pid directory names one process: the
/// kernel makes the inode when the directory is first looked up (a
/// `readdir` of /proc does), holding the process's `struct pid`; it stays,
/// with its number, as long as the process exists (zombie included); when
/// the process is reaped its directory entries are flushed, and the pid
/// reused by a new process (with a new `struct pid`) gets a new inode, with
/// a new number (`get_next_ino`, a 32-bit counter shared by every such
/// inode of the system). The only ways to see the same number for another
/// process: the counter wrapping all the way round between two looks (4
/// billion inodes made in seconds), or a `readdir` in the instant between
/// the kernel freeing a pid and flushing its entries, if a new process took
/// that very pid in that instant (the next look sees the new number). A
/// number may also change for a process that lives on (its inode dropped
/// under memory pressure and made again): it is then read again.
pub const UNKNOWN_INO: u64 = 1;

/// Room for a `/proc/PID/stat` line: 52 numbers of at most 20 digits, and
/// a command name of at most 64 bytes.
const STAT_BUF: usize = 1536;
/// Room for the start of a `/proc/PID/status` text, to its `Uid:` line (the
/// ninth; the lines after it, `Groups:` among them, may be cut off).
const STATUS_BUF: usize = 4096;

/// What the enforcer needs to know about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its id.
    pub pid: i32,
    /// Its parent.
    pub ppid: i32,
    /// Its POSIX session (setsid).
    pub sid: i32,
    /// Its controlling terminal, as /proc encodes it (0: none).
    pub tty_nr: u32,
    /// Start time in clock ticks since boot: with `pid`, it names one process
    /// for good, whatever PID reuse happens later.
    pub start_ticks: u64,
    /// Its kernel audit session id (`None` when unset or unreadable).
    pub audit_session: Option<u32>,
    /// Its login uid (`/proc/PID/loginuid`, set with the audit session by
    /// pam_loginuid and as unchangeable): the user the audit session belongs
    /// to. Read only for processes in an audit session; `None` otherwise.
    pub loginuid: Option<u32>,
    /// Its real uid (`/proc/PID/status`); `None` if unreadable.
    pub uid: Option<u32>,
    /// A zombie or dead process: it runs nothing any more.
    pub exited: bool,
}

impl Proc {
    /// The exact process: pid and start time.
    pub fn id(&self) -> ProcId {
        ProcId {
            pid: self.pid,
            start_ticks: self.start_ticks,
        }
    }
}

/// One process, named so that a reused PID is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcId {
    /// Its id.
    pub pid: i32,
    /// Its start time, in clock ticks since boot.
    pub start_ticks: u64,
}

/// The fields of `/proc/PID/stat` the enforcer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its id.
    pub pid: i32,
    /// One letter: R, S, D, Z, T, X...
    pub state: char,
    /// Parent.
    pub ppid: i32,
    /// POSIX session.
    pub sid: i32,
    /// Controlling terminal.
    pub tty_nr: u32,
    /// Start time in ticks since boot.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name is in parentheses and may
/// itself contain spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    // The command name between the first `(` and the last `)` is whatever
    // bytes the process wrote to its `comm` (not UTF-8, `)`, spaces): it is
    // never read. Around it everything is ASCII.
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let pid = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest: Vec<&str> = std::str::from_utf8(text.get(close + 1..)?)
        .ok()?
        .split_whitespace()
        .collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) tty_nr(4) ... starttime(19).
    Some(Stat {
        pid,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        tty_nr: rest.get(4)?.parse::<i64>().ok()? as u32,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

/// Parses the real uid from `/proc/PID/status` (the first field of `Uid:`).
/// Only that line is read: the `Name:` line holds whatever bytes the
/// process wrote to its `comm`, and the text may be cut short after `Uid:`
/// (a process with thousands of groups has a long `Groups:` line).
pub fn parse_status_uid(status: &[u8]) -> Option<u32> {
    status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Parses the `btime` line of `/proc/stat`: boot time, in seconds since the epoch.
pub fn parse_boot_time(proc_stat: &str) -> Option<i64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Where /proc is, so that tests can point at a fixture.
#[derive(Debug, Clone)]
pub struct Procfs {
    root: PathBuf,
}

impl Default for Procfs {
    fn default() -> Self {
        Procfs {
            root: PathBuf::from("/proc"),
        }
    }
}

impl Procfs {
    /// A /proc at `root`.
    #[cfg(test)]
    pub fn at(root: &std::path::Path) -> Self {
        Procfs {
            root: root.to_owned(),
        }
    }

    /// Reads one process, its real uid included; `None` when it is gone
    /// (or was never there).
    pub fn read(&self, pid: i32) -> Option<Proc> {
        let mut p = self.read_without_uid(pid, None, false)?;
        p.uid = self.read_uid(pid);
        Some(p)
    }

    /// Reads one process without its real uid (`uid: None`; see
    /// [`Snapshot::uid`]). `before` is the same process as an earlier scan
    /// saw it, if any: when its audit session id has not changed, its login
    /// uid has not either (the kernel gives a process a new audit session
    /// id, or none, each time its login uid is written) and is not read
    /// again.
    fn read_without_uid(&self, pid: i32, before: Option<&Proc>, light: bool) -> Option<Proc> {
        let mut buf = [0u8; STAT_BUF];
        let stat = parse_stat(self.read_small(pid, "stat", &mut buf)?)?;
        // The same process (pid and start time) as before, in an audit
        // session then.
        let same =
            before.filter(|b| b.start_ticks == stat.start_ticks && b.audit_session.is_some());
        let audit_session = match same {
            // A light look trusts it: see crate::linux::FULL_LOOK_EVERY.
            Some(b) if light => b.audit_session,
            _ => self
                .read_small(pid, "sessionid", &mut buf)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(parse_audit_session_id),
        };
        let known = same.filter(|b| b.audit_session == audit_session);
        // The login uid has the same "unset" value (-1) and the same format.
        let loginuid = match known {
            Some(b) => b.loginuid,
            None => audit_session.and_then(|_| {
                self.read_small(pid, "loginuid", &mut buf)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(parse_audit_session_id)
            }),
        };
        Some(Proc {
            pid: stat.pid,
            ppid: stat.ppid,
            sid: stat.sid,
            tty_nr: stat.tty_nr,
            start_ticks: stat.start_ticks,
            audit_session,
            loginuid,
            uid: None,
            exited: matches!(stat.state, 'Z' | 'X' | 'x'),
        })
    }

    /// The `stat` of process `pid` now; `None` when it is gone.
    pub fn read_stat(&self, pid: i32) -> Option<Stat> {
        let mut buf = [0u8; STAT_BUF];
        parse_stat(self.read_small(pid, "stat", &mut buf)?)
    }

    /// The real uid of process `pid` now (`/proc/PID/status`).
    fn read_uid(&self, pid: i32) -> Option<u32> {
        let mut buf = [0u8; STATUS_BUF];
        self.read_small(pid, "status", &mut buf)
            .and_then(parse_status_uid)
    }

    /// The bytes of `/proc/PID/NAME` into `buf`, with one `open`, `read`s
    /// until the end or a full buffer, and a `close`: no `statx` and
    /// `lseek` for a size hint as `std::fs::read_to_string` does, each of
    /// which costs /proc as much as the read (a permission check of the
    /// process). `None` when the file cannot be opened or read. A file
    /// longer than `buf` is cut at `buf.len()` bytes (the caller's buffer
    /// is sized for the part it reads). Bytes, not text: a process chooses
    /// its own name (`comm`), and a name that is not UTF-8 must not hide
    /// it from the enforcer.
    pub fn read_small<'b>(&self, pid: i32, name: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        use std::io::Read as _;
        let mut path = self.root.clone();
        path.push(pid.to_string());
        path.push(name);
        let mut file = std::fs::File::open(path).ok()?;
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(&buf[..len])
    }

    /// Every process. Processes that exit while the scan runs are skipped.
    ///
    /// # Errors
    ///
    /// [`ProcError::List`] when /proc cannot be listed.
    pub fn scan(&self) -> Result<Snapshot, ProcError> {
        self.scan_after(&Snapshot::default())
    }

    /// Every process, like [`Procfs::scan`], reusing what `previous` (an
    /// earlier scan of the same /proc) knows that cannot have changed: the
    /// login uid of a process whose audit session id is the same. Per
    /// process, a pass reads `stat` and `sessionid`; `loginuid` only for a
    /// process new in an audit session; the real uid (`status`) only when
    /// asked ([`Snapshot::uid`]).
    ///
    /// # Errors
    ///
    /// [`ProcError::List`] when /proc cannot be listed.
    pub fn scan_after(&self, previous: &Snapshot) -> Result<Snapshot, ProcError> {
        self.scan_with(previous, false)
    }

    /// Every process, like [`Procfs::scan_after`]; a `light` scan also
    /// takes the audit session id of a process from `previous` when it is
    /// the same process (pid and start time) and was in an audit session
    /// then, so that it reads only `stat` for it (see
    /// [`crate::linux::FULL_LOOK_EVERY`] for why that is safe, and for how
    /// long). Every process's `stat` is read: its state (a zombie), parent,
    /// POSIX session and terminal are those of now, as the signalling of
    /// an end needs ([`crate::signal`]).
    ///
    /// # Errors
    ///
    /// [`ProcError::List`] when /proc cannot be listed.
    pub fn scan_with(&self, previous: &Snapshot, light: bool) -> Result<Snapshot, ProcError> {
        self.scan_inner(previous, light, None)
    }

    /// The daemon's light look between its full ones: like a light
    /// [`Procfs::scan_with`], and moreover a pid whose /proc directory has
    /// the same inode number as in `previous` is the same process (see
    /// [`UNKNOWN_INO`] for why): its [`Proc`] is taken from `previous` and
    /// nothing of it is read. Only new pids, and pids whose inode number
    /// changed, are read (`stat`, and `sessionid` unless trusted).
    ///
    /// What this look may get wrong until the next full one, and why
    /// nothing is ended or signalled on it, is listed at
    /// [`crate::linux::FULL_LOOK_EVERY`].
    ///
    /// # Errors
    ///
    /// [`ProcError::List`] when /proc cannot be listed.
    pub fn scan_light(&self, previous: &Snapshot) -> Result<Snapshot, ProcError> {
        self.scan_inner(previous, true, Some(&|_| false))
    }

    /// A light look, [`Procfs::scan_light`], that moreover reads in full
    /// (`stat` and `sessionid`, as a full look does) every process it
    /// already knows whose pid `reread` picks: the daemon's rolling full
    /// look, which spreads the re-reading of every process over a number
    /// of passes instead of reading them all in one (see
    /// [`crate::linux::FULL_LOOK_EVERY`]).
    ///
    /// # Errors
    ///
    /// [`ProcError::List`] when /proc cannot be listed.
    pub fn scan_rolling(
        &self,
        previous: &Snapshot,
        reread: &dyn Fn(i32) -> bool,
    ) -> Result<Snapshot, ProcError> {
        self.scan_inner(previous, true, Some(reread))
    }

    /// A scan; `keep_same_inode`: see [`Procfs::scan_light`], `Some` with
    /// the pids to read in full nevertheless ([`Procfs::scan_rolling`]).
    fn scan_inner(
        &self,
        previous: &Snapshot,
        light: bool,
        keep_same_inode: Option<&dyn Fn(i32) -> bool>,
    ) -> Result<Snapshot, ProcError> {
        use std::os::unix::fs::DirEntryExt as _;
        let entries = std::fs::read_dir(&self.root).map_err(|source| ProcError::List {
            path: self.root.clone(),
            source,
        })?;
        let mut procs = Vec::with_capacity(previous.procs.len() + 64);
        let mut inos = HashMap::with_capacity(previous.procs.len() + 64);
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let ino = e.ino();
            let before = previous.get(pid);
            let unchanged = keep_same_inode.is_some()
                && ino != UNKNOWN_INO
                && previous.inos.get(&pid) == Some(&ino);
            let proc = match (before, keep_same_inode) {
                // Its turn in the rolling full look: read as a full look does.
                // (Whether or not its inode number changed: a pid whose
                // inode is made again at every look is read in full too.)
                (Some(_), Some(reread)) if reread(pid) => self.read_without_uid(pid, before, false),
                (Some(b), _) if unchanged => Some(*b),
                _ => self.read_without_uid(pid, before, light),
            };
            if let Some(p) = proc {
                procs.push(p);
                inos.insert(pid, ino);
            }
        }
        let mut snap = Snapshot::new(procs);
        snap.inos = inos;
        snap.procfs = Some(self.clone());
        Ok(snap)
    }

    /// Boot time, seconds since the epoch.
    ///
    /// # Errors
    ///
    /// [`ProcError::Read`] when `/proc/stat` cannot be read,
    /// [`ProcError::NoBootTime`] when it has no `btime` line.
    pub fn boot_time(&self) -> Result<i64, ProcError> {
        let path = self.root.join("stat");
        let text = std::fs::read_to_string(&path).map_err(|source| ProcError::Read {
            path: path.clone(),
            source,
        })?;
        parse_boot_time(&text).ok_or(ProcError::NoBootTime { path })
    }

    /// The directory of process `pid` (for readers in other modules, such
    /// as [`crate::activity`]'s I/O counters).
    pub fn pid_dir(&self, pid: i32) -> PathBuf {
        self.root.join(pid.to_string())
    }

    /// Whether `id` is still that very process, alive (not a zombie).
    pub fn is_running(&self, id: ProcId) -> bool {
        self.read(id.pid)
            .is_some_and(|p| p.start_ticks == id.start_ticks && !p.exited)
    }
}

/// Processes at one moment, indexed.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    procs: Vec<Proc>,
    by_pid: HashMap<i32, usize>,
    children: HashMap<i32, Vec<i32>>,
    by_audit: HashMap<u32, Vec<usize>>,
    /// The inode number of each process's /proc directory, as the scan's
    /// `readdir` gave it (see [`UNKNOWN_INO`]); empty for a snapshot not
    /// made by a scan.
    inos: HashMap<i32, u64>,
    /// Where the processes' real uids are read when asked (a scan's /proc).
    procfs: Option<Procfs>,
}

impl Snapshot {
    /// Indexes `procs`.
    pub fn new(procs: Vec<Proc>) -> Self {
        let mut by_pid = HashMap::with_capacity(procs.len());
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        let mut by_audit: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, p) in procs.iter().enumerate() {
            by_pid.insert(p.pid, i);
            children.entry(p.ppid).or_default().push(p.pid);
            if let Some(a) = p.audit_session {
                by_audit.entry(a).or_default().push(i);
            }
        }
        Snapshot {
            procs,
            by_pid,
            children,
            by_audit,
            inos: HashMap::new(),
            procfs: None,
        }
    }

    /// The processes whose audit session id is `id`.
    pub fn in_audit(&self, id: u32) -> impl Iterator<Item = &Proc> + Clone + '_ {
        self.by_audit
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|&i| &self.procs[i])
    }

    /// The real uid of `pid` (`None`: not in the snapshot, gone, or
    /// unreadable). A scan reads it only here, when asked: from
    /// `/proc/PID/status`, and only if the process there is still the one
    /// the snapshot saw (same start time).
    pub fn uid(&self, pid: i32) -> Option<u32> {
        let p = self.get(pid)?;
        if p.uid.is_some() {
            return p.uid;
        }
        let procfs = self.procfs.as_ref()?;
        let uid = procfs.read_uid(pid)?;
        // The pid may have been reused since the scan.
        let again = procfs.read_without_uid(pid, None, false)?;
        (again.start_ticks == p.start_ticks).then_some(uid)
    }

    /// Every process.
    pub fn all(&self) -> &[Proc] {
        &self.procs
    }

    /// One process by pid.
    pub fn get(&self, pid: i32) -> Option<&Proc> {
        self.by_pid.get(&pid).map(|&i| &self.procs[i])
    }

    /// The direct children of `pid`.
    pub fn children(&self, pid: i32) -> &[i32] {
        self.children.get(&pid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `pid` and its ancestors, up to the root.
    pub fn ancestry(&self, pid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        let mut cur = Some(pid);
        while let Some(p) = cur {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = self.get(p).map(|x| x.ppid).filter(|&pp| pp > 0);
        }
        out
    }
}

/// Decodes a /proc `tty_nr` into (major, minor).
pub fn tty_major_minor(tty_nr: u32) -> (u32, u32) {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    (major, minor)
}

/// The device number (`st_rdev`) of the terminal a /proc `tty_nr` names.
pub fn tty_rdev(tty_nr: u32) -> u64 {
    let (major, minor) = tty_major_minor(tty_nr);
    makedev(major, minor)
}

/// A device number as `stat(2)` reports it (`st_rdev`, glibc's encoding).
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// Where the terminal `(major, minor)` usually lives under /dev.
pub fn tty_path_guess(major: u32, minor: u32) -> Option<PathBuf> {
    match major {
        // Unix98 pseudo-terminals: majors 136..=143, 256 minors each.
        136..=143 => Some(PathBuf::from(format!(
            "/dev/pts/{}",
            (major - 136) * 256 + minor
        ))),
        4 if minor < 64 => Some(PathBuf::from(format!("/dev/tty{minor}"))),
        4 => Some(PathBuf::from(format!("/dev/ttyS{}", minor - 64))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_awkward_names_parse() {
        let line = "4242 (we (ird) name) S 4200 4242 4100 34817 4242 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615";
        let s = parse_stat(line.as_bytes()).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 4242,
                state: 'S',
                ppid: 4200,
                sid: 4100,
                tty_nr: 34817,
                start_ticks: 987654,
            }
        );
        // A name that is not UTF-8 (a process writes its own `comm`).
        let odd = b"4242 (\xff\xfe) x) S 4200 4242 4100 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000";
        assert_eq!(
            parse_stat(odd).map(|s| (s.pid, s.sid, s.start_ticks)),
            Some((4242, 4100, 987654))
        );
        assert_eq!(parse_stat(b"12 (x) Z 1 12 12 0 -1"), None, "truncated");
        assert_eq!(parse_stat(b""), None);
    }

    #[test]
    fn status_uids() {
        // Cut short after `Uid:` (thousands of groups): still read.
        assert_eq!(
            parse_status_uid(b"Name:\t\xff\nUid:\t1000\t0\t0\t0\nGroups:\t1 2 3 4"),
            Some(1000)
        );
        assert_eq!(
            parse_status_uid(b"Name:\tbash\nUid:\t1000\t0\t0\t0\nGid:\t5\n"),
            Some(1000)
        );
        assert_eq!(parse_status_uid(b"Name:\tbash\n"), None);
    }

    #[test]
    fn boot_time() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1767225600\nprocesses 9\n"),
            Some(1_767_225_600)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[test]
    fn tty_numbers_decode_to_devices() {
        // pts/1 is major 136 minor 1: tty_nr 34817.
        assert_eq!(tty_major_minor(34817), (136, 1));
        assert_eq!(tty_path_guess(136, 1), Some(PathBuf::from("/dev/pts/1")));
        // pts/300: major 137, minor 44.
        assert_eq!(tty_path_guess(137, 44), Some(PathBuf::from("/dev/pts/300")));
        assert_eq!(tty_major_minor(1025), (4, 1));
        assert_eq!(tty_path_guess(4, 1), Some(PathBuf::from("/dev/tty1")));
        assert_eq!(tty_path_guess(4, 65), Some(PathBuf::from("/dev/ttyS1")));
        // A large minor uses the high bits.
        let nr = (136 << 8) | 0x34 | (0x12 << 20);
        assert_eq!(tty_major_minor(nr), (136, 0x1234));
        assert_eq!(makedev(136, 1), 34817);
    }

    #[test]
    fn the_real_proc_shows_this_process_and_its_parent() {
        let fs = Procfs::default();
        let snap = fs.scan().unwrap();
        let me = std::process::id() as i32;
        let p = snap.get(me).expect("this process is in the scan");
        assert!(!p.exited);
        assert!(snap.ancestry(me).contains(&p.ppid));
        assert!(fs.is_running(p.id()));
        assert!(!fs.is_running(ProcId {
            pid: me,
            start_ticks: p.start_ticks + 1
        }));
        assert!(fs.boot_time().unwrap() > 1_000_000_000);
    }

    #[test]
    fn a_process_whose_name_is_not_utf8_is_still_seen_with_its_uid() {
        use std::os::unix::process::CommandExt as _;
        // Any user can do this to a process of theirs; it must not hide the
        // process from a scan (issue 12: it would survive its session's end).
        let mut child = std::process::Command::new("bash")
            .args([
                "-c",
                r#"printf '\377\376x)' > /proc/$$/comm; echo ready; sleep 60 & wait"#,
            ])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n");
        let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap();
        assert!(std::str::from_utf8(&comm).is_err(), "{comm:?}");
        let fs = Procfs::default();
        let seen = fs.scan().unwrap().get(pid).copied();
        let read = fs.read(pid);
        // bash and its sleep.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        let seen = seen.expect("the scan sees the process");
        assert_eq!(seen.ppid, std::process::id() as i32);
        assert_eq!(
            read.and_then(|p| p.uid),
            Some(nix::unistd::getuid().as_raw()),
            "its uid is read from /proc/PID/status"
        );
    }

    #[test]
    fn a_fixture_proc_is_read_like_the_real_one() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |pid: i32, stat: &str, sid: &str| {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("stat"), stat).unwrap();
            std::fs::write(d.join("sessionid"), sid).unwrap();
            std::fs::write(d.join("loginuid"), "1000\n").unwrap();
            std::fs::write(
                d.join("status"),
                format!(
                    "Name:\tx\nPid:\t{pid}\nUid:\t{0}\t{0}\t{0}\t{0}\n",
                    1000 + pid
                ),
            )
            .unwrap();
        };
        mk(
            10,
            "10 (sshd) S 1 10 10 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0",
            "7",
        );
        mk(
            11,
            "11 (bash) S 10 11 11 34817 11 0 0 0 0 0 0 0 0 0 20 0 1 0 510 0 0",
            "7",
        );
        mk(
            12,
            "12 (defunct) Z 11 11 11 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 520 0 0",
            "4294967295",
        );
        std::fs::create_dir(dir.path().join("self")).unwrap();
        let snap = Procfs::at(dir.path()).scan().unwrap();
        assert_eq!(snap.all().len(), 3);
        assert_eq!(snap.children(10), &[11]);
        let bash = snap.get(11).unwrap();
        assert_eq!(
            (bash.audit_session, bash.tty_nr, bash.start_ticks),
            (Some(7), 34817, 510)
        );
        assert_eq!(bash.loginuid, Some(1000));
        assert_eq!(bash.uid, None, "the real uid is read only when asked");
        assert_eq!(snap.uid(11), Some(1011));
        assert_eq!(Procfs::at(dir.path()).read(11).unwrap().uid, Some(1011));
        let z = snap.get(12).unwrap();
        assert!(z.exited);
        assert_eq!(z.audit_session, None);
        assert_eq!(z.loginuid, None, "read only within an audit session");

        // Issue 17: a light scan takes the audit session of a process seen
        // in one from the last scan, and reads it for every other process.
        let fs = Procfs::at(dir.path());
        let write = |pid: i32, file: &str, text: &str| {
            std::fs::write(dir.path().join(pid.to_string()).join(file), text).unwrap()
        };
        write(11, "sessionid", "8"); // (only root with CAP_AUDIT_CONTROL can)
        write(12, "sessionid", "9"); // a process not in one until now
        write(
            10,
            "stat",
            "10 (sshd) S 1 10 10 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 501 0 0",
        );
        let light = fs.scan_with(&snap, true).unwrap();
        assert_eq!(light.get(11).unwrap().audit_session, Some(7), "trusted");
        assert_eq!(light.get(12).unwrap().audit_session, Some(9), "read");
        assert_eq!(
            (
                light.get(10).unwrap().audit_session,
                light.get(10).unwrap().start_ticks
            ),
            (Some(7), 501),
            "a new process at the same pid (another start time) is read"
        );
        let full = fs.scan_with(&light, false).unwrap();
        assert_eq!(
            full.get(11).unwrap().audit_session,
            Some(8),
            "a full scan reads it"
        );
        assert_eq!(
            full.in_audit(8).map(|p| p.pid).collect::<Vec<_>>(),
            vec![11]
        );
    }

    /// Issue 17: a light look reads only new pids and pids whose /proc
    /// directory has a new inode number; a full look reads every process.
    #[test]
    fn a_light_look_reads_only_new_pids_and_new_inodes() {
        let dir = tempfile::tempdir().unwrap();
        let stat = |pid: i32, ppid: i32, start: u64| {
            format!("{pid} (sh) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0")
        };
        let fill = |d: &std::path::Path, pid: i32, ppid: i32, start: u64| {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("stat"), stat(pid, ppid, start)).unwrap();
            std::fs::write(d.join("sessionid"), "7").unwrap();
            std::fs::write(d.join("loginuid"), "1000").unwrap();
        };
        for pid in [10, 11, 12] {
            fill(&dir.path().join(pid.to_string()), pid, 1, 100);
        }
        let fs = Procfs::at(dir.path());
        let first = fs.scan().unwrap();
        assert_eq!(first.all().len(), 3);
        let write = |pid: i32, ppid: i32, start: u64| {
            let d = dir.path().join(pid.to_string());
            std::fs::write(d.join("stat"), stat(pid, ppid, start)).unwrap();
        };
        // 10: same directory (same inode), its stat changed: not read.
        write(10, 2, 100);
        // 11: a new directory (a new inode: made before the old one goes,
        // so that its number cannot be the old one's), another process.
        let fresh = dir.path().join("11.new");
        fill(&fresh, 11, 3, 200);
        std::fs::rename(dir.path().join("11"), dir.path().join("old-11")).unwrap();
        std::fs::rename(&fresh, dir.path().join("11")).unwrap();
        // 12: gone. 13: new.
        std::fs::rename(dir.path().join("12"), dir.path().join("old-12")).unwrap();
        fill(&dir.path().join("13"), 13, 1, 300);

        let light = fs.scan_light(&first).unwrap();
        let pids: std::collections::BTreeSet<i32> = light.all().iter().map(|p| p.pid).collect();
        assert_eq!(pids, [10, 11, 13].into(), "a gone pid is dropped");
        assert_eq!(
            light.get(10).unwrap().ppid,
            1,
            "same inode: the last look's process stands, not read"
        );
        assert_eq!(
            (
                light.get(11).unwrap().ppid,
                light.get(11).unwrap().start_ticks
            ),
            (3, 200),
            "a changed inode is read"
        );
        assert_eq!(light.get(13).unwrap().start_ticks, 300, "a new pid is read");
        assert_eq!(light.get(13).unwrap().audit_session, Some(7));
        // A second light look keeps what the first one read.
        let again = fs.scan_light(&light).unwrap();
        assert_eq!(again.get(10).unwrap().ppid, 1);
        assert_eq!(again.get(11).unwrap().ppid, 3);
        // The rolling full look reads the pids whose turn it is (stat and
        // audit session), and keeps the others.
        std::fs::write(dir.path().join("13").join("sessionid"), "8").unwrap();
        write(11, 5, 200);
        let rolled = fs.scan_rolling(&again, &|pid| pid != 11).unwrap();
        assert_eq!(rolled.get(10).unwrap().ppid, 2, "its turn: read");
        assert_eq!(rolled.get(13).unwrap().audit_session, Some(8), "in full");
        assert_eq!(rolled.get(11).unwrap().ppid, 3, "not its turn: kept");
        // 13 again under a new inode (the same process, its inode made
        // again): its turn reads its audit session anew, otherwise a light
        // read trusts the one it knew.
        let fresh = dir.path().join("13.new");
        fill(&fresh, 13, 1, 300);
        std::fs::write(fresh.join("sessionid"), "9").unwrap();
        std::fs::rename(dir.path().join("13"), dir.path().join("old-13")).unwrap();
        std::fs::rename(&fresh, dir.path().join("13")).unwrap();
        let kept = fs.scan_rolling(&rolled, &|_| false).unwrap();
        assert_eq!(kept.get(13).unwrap().audit_session, Some(8), "trusted");
        let turn = fs.scan_rolling(&rolled, &|pid| pid == 13).unwrap();
        assert_eq!(turn.get(13).unwrap().audit_session, Some(9), "read in full");

        // The other scans read every process's stat, as the signalling of
        // an end needs.
        for (how, snap) in [
            ("full", fs.scan_after(&again).unwrap()),
            ("exact light", fs.scan_with(&again, true).unwrap()),
        ] {
            assert_eq!(snap.get(10).unwrap().ppid, 2, "{how} look reads it");
        }
        // A pid whose inode number the last look did not know (here /proc
        // could not set it up then) is read.
        let mut unknown = fs.scan_after(&again).unwrap();
        write(10, 4, 100);
        unknown.inos.insert(10, UNKNOWN_INO);
        assert_eq!(fs.scan_light(&unknown).unwrap().get(10).unwrap().ppid, 4);
    }

    /// The kernel's side of the claim: a live process's /proc directory
    /// keeps its inode number from one `readdir` to the next, and a light
    /// look keeps it unread.
    #[test]
    fn the_real_proc_keeps_a_live_process_inode() {
        use std::os::unix::fs::DirEntryExt as _;
        let me = std::process::id().to_string();
        let ino = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_str() == Some(me.as_str()))
                .map(|e| e.ino())
        };
        let first = ino().expect("this process is listed");
        assert_ne!(first, UNKNOWN_INO);
        let fs = Procfs::default();
        let full = fs.scan().unwrap();
        let light = fs.scan_light(&full).unwrap();
        assert_eq!(ino(), Some(first));
        let me = std::process::id() as i32;
        assert_eq!(light.get(me), full.get(me));
        assert_eq!(light.inos.get(&me), Some(&first));
    }
}
