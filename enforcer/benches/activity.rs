//! The cost of measuring activity in one enforcer pass over 1,000 live
//! sessions (issue 13), against the baseline that pass had before: one
//! `stat` of each session's terminal for its atime.
//!
//! - `baseline_atime_1000_terminals`: 1,000 × the old input time (a stat,
//!   atime only) of a real pts;
//! - `atime_mtime_1000_terminals`: 1,000 × input and output time (the same
//!   single stat, both fields) through `curfew_policy::time::observed`;
//! - `io_1000_sessions_3_processes`: 1,000 sessions without a terminal, 3
//!   live processes each (sshd monitor, sshd, the command: here 3 sleeping
//!   children of the bench), `/proc/PID/io` read for each and compared with
//!   the last pass.
//!
//! cargo bench -p curfew-enforce --bench activity

// criterion_group! generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use curfew_enforce::activity::{sample, Io, TrafficMeter};
use curfew_enforce::procfs::{ProcId, Procfs};
use curfew_enforce::tty::read_times;

const SESSIONS: usize = 1_000;

/// The measurement before issue 13: a stat for the atime.
fn old_input_time(path: &std::path::Path, rdev: u64) -> Option<DateTime<Utc>> {
    let m = std::fs::symlink_metadata(path).ok()?;
    (m.rdev() == rdev).then(|| DateTime::from_timestamp(m.atime(), 0))?
}

fn bench(c: &mut Criterion) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let path = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .expect("the pts");
    let rdev = std::fs::metadata(&path).expect("stat pts").rdev();
    #[allow(clippy::disallowed_methods)] // a benchmark's reference time
    let now = Utc::now();

    c.bench_function("baseline_atime_1000_terminals", |b| {
        b.iter(|| {
            for _ in 0..SESSIONS {
                black_box(old_input_time(black_box(&path), rdev));
            }
        })
    });
    c.bench_function("atime_mtime_1000_terminals", |b| {
        b.iter(|| {
            for _ in 0..SESSIONS {
                let t = read_times(black_box(&path), rdev).map(|(a, m)| {
                    (
                        curfew_policy::time::observed(a, now),
                        curfew_policy::time::observed(m, now),
                    )
                });
                black_box(t);
            }
        })
    });

    let mut children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sleep")
        })
        .collect();
    let procs: Vec<ProcId> = children
        .iter()
        .map(|c| ProcId {
            pid: c.id() as i32,
            start_ticks: 0,
        })
        .collect();
    let procfs = Procfs::default();
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("session-{i}")).collect();
    let mut meter = TrafficMeter::default();
    c.bench_function("io_1000_sessions_3_processes", |b| {
        b.iter(|| {
            for id in &ids {
                if let Io::Counts(counts) = sample(&procfs, black_box(&procs)) {
                    black_box(meter.moved(id, &counts, now));
                }
            }
        })
    });
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
