//! Helpers of the OIDC suites: the example OAuth2 server and `curfew hook
//! serve`, started on 127.0.0.1 with a free port and stopped by PID.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{target_dir, ChildGuard};

/// A built example of curfew-oidc (`target/<profile>/examples/NAME`).
/// Panics with a hint if it is missing.
pub fn example_bin(name: &str) -> PathBuf {
    let p = target_dir().join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` first (scripts/test does)",
        p.display()
    );
    p
}

/// Spawns `cmd`, whose first line on stdout ends with `http://ADDR`, and
/// returns the guard and that URL. Its stderr goes to `stderr`, which the
/// panic message quotes if the server does not come up.
pub fn spawn_listening(mut cmd: Command, name: &str, stderr: &Path) -> (ChildGuard, String) {
    let err = std::fs::File::create(stderr).expect("create stderr file");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = ChildGuard::new(name, child);
    let mut line = String::new();
    // The server prints this line once it is bound; EOF means it exited.
    let _ = BufReader::new(stdout).read_line(&mut line);
    let Some(i) = line.find("http://") else {
        panic!(
            "{name} did not start: stdout {line:?}, stderr:\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
    };
    let url = line[i..].trim().to_owned();
    (guard, url)
}
