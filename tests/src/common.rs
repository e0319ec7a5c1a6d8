//! Paths to built artifacts, child processes stopped by PID, polling.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The cargo target directory holding the test binaries
/// (`target/debug` or `target/release`).
pub fn target_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The built `curfew` binary. Panics with a hint if it is missing.
pub fn curfew_bin() -> PathBuf {
    artifact("curfew")
}

/// The built PAM module.
pub fn pam_module() -> PathBuf {
    artifact("libpam_curfew.so")
}

fn artifact(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test does)",
        p.display()
    );
    p
}

/// Runs the `curfew` CLI with `args`, returning its output.
pub fn curfew(args: &[&str]) -> Output {
    Command::new(curfew_bin())
        .args(args)
        .env_remove("CURFEW_POLICY")
        .output()
        .expect("run curfew")
}

/// A child process that is killed (by its PID) and reaped when dropped,
/// whatever the test did in between.
pub struct ChildGuard {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl ChildGuard {
    /// Wraps a spawned child.
    pub fn new(name: &str, child: Child) -> Self {
        ChildGuard {
            child,
            name: name.to_owned(),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or `timeout` passes.
/// (A bound on waiting, not a timed assertion: the caller asserts on the result.)
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the suite runs as root (sshd and user-management suites need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Writes `text` to `dir/name` with mode 0644 and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    p
}
