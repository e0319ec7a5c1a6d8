//! Faults of the embedded store: a writer killed mid-write, a full disk, a
//! read-only file system. The store must stay consistent, lose nothing it
//! acknowledged, and make logins fail closed with a message naming the cause.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use curfew_e2e::common::{is_root, write_file, ChildGuard};
use curfew_e2e::pam::PamSandbox;
use curfew_policy::store::SqliteStore;
use curfew_policy::{SessionFilter, Store};

fn writer(store: &Path, prefix: &str) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_store-writer"))
        .arg(store)
        .arg(prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn store-writer");
    ChildGuard::new(prefix, child)
}

#[test]
fn kill_9_of_writers_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut writers: Vec<ChildGuard> = (0..3)
            .map(|w| writer(&path, &format!("r{round}w{w}")))
            .collect();
        // Let each writer acknowledge a few dozen sessions, then kill -9 all
        // of them while they are still writing.
        let mut readers: Vec<_> = writers
            .iter_mut()
            .map(|w| BufReader::new(w.child.stdout.take().unwrap()))
            .collect();
        for r in readers.iter_mut() {
            for _ in 0..40 {
                let mut line = String::new();
                assert!(r.read_line(&mut line).unwrap() > 0, "writer died early");
                acked.push(line.trim().to_owned());
            }
        }
        for w in &writers {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(w.pid() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
        // Whatever was printed before the kill was acknowledged too.
        for r in readers.iter_mut() {
            for line in r.lines().map_while(Result::ok) {
                acked.push(line.trim().to_owned());
            }
        }
        drop(writers);
    }
    let store = SqliteStore::open(&path).unwrap();
    store.integrity_check().expect("PRAGMA integrity_check");
    let all = store
        .list_sessions(&SessionFilter {
            include_ended: true,
            ..Default::default()
        })
        .unwrap();
    let ids: std::collections::HashSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
    let lost: Vec<&String> = acked.iter().filter(|a| !ids.contains(a.as_str())).collect();
    assert!(acked.len() >= 360, "only {} acknowledged", acked.len());
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs (needs root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A sandbox whose policy keeps its store on `store`.
fn sandbox_with_store(store: &Path, store_lines: &str) -> PamSandbox {
    let sb = PamSandbox::new("version: 1\n");
    let mut text = format!("version: 1\nstore:\n  path: {}\n", store.display());
    for l in store_lines.lines() {
        text.push_str(&format!("  {l}\n"));
    }
    write_file(sb.dir.path(), "policy.yaml", &text);
    sb.standard_service("faulty", "");
    sb
}

fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    use std::io::Write;
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    filler
}

#[test]
#[ignore = "needs root: mounts a small tmpfs; run by scripts/test as root"]
fn a_full_disk_denies_logins_loudly_and_recovers() {
    assert!(is_root());
    let fs = Tmpfs::mount("2m");
    let store = fs.path().join("state.db");
    let sb = sandbox_with_store(&store, "");
    let user = "root";
    let ok = sb.pamtester(
        "faulty",
        user,
        &["acct_mgmt", "open_session", "close_session"],
    );
    assert!(ok.status.success(), "{:?}", curfew_e2e::pam::text(&ok));

    let filler = fill(fs.path());
    let out = sb.pamtester("faulty", user, &["acct_mgmt", "open_session"]);
    let (stdout, stderr) = curfew_e2e::pam::text(&out);
    assert!(
        !out.status.success(),
        "a login with a full store must be refused:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("full") || stderr.contains("unavailable") || stdout.contains("unavailable"),
        "the refusal names the cause:\n{stdout}\n{stderr}"
    );

    std::fs::remove_file(filler).unwrap();
    let out = sb.pamtester(
        "faulty",
        user,
        &["acct_mgmt", "open_session", "close_session"],
    );
    assert!(
        out.status.success(),
        "recovers once space is back: {:?}",
        curfew_e2e::pam::text(&out)
    );
    SqliteStore::open(&store)
        .unwrap()
        .integrity_check()
        .unwrap();
}

#[test]
#[ignore = "needs root: mounts a small tmpfs; run by scripts/test as root"]
fn a_read_only_store_denies_logins_and_revocations_loudly() {
    assert!(is_root());
    let fs = Tmpfs::mount("2m");
    let store = fs.path().join("state.db");
    drop(SqliteStore::open(&store).unwrap());
    let sb = sandbox_with_store(&store, "");
    fs.remount("ro");
    let out = sb.pamtester("faulty", "root", &["acct_mgmt", "open_session"]);
    let (stdout, stderr) = curfew_e2e::pam::text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("Read-only file system"),
        "the refusal names the cause:\n{stdout}\n{stderr}"
    );
    // The admin CLI fails loudly too, and nothing pretends to succeed.
    let out = curfew_e2e::common::curfew(&[
        "--policy",
        sb.policy.to_str().unwrap(),
        "revoke",
        "user",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
    fs.remount("rw");
}
