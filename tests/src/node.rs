//! The Node.js side of the suites: tests/node holds the pinned npm
//! packages (openid-client, playwright-core; package-lock.json committed),
//! installed by `scripts/setup-node` (`npm ci`), which scripts/setup runs.

use std::path::PathBuf;
use std::process::Command;

/// tests/node, with its node_modules installed. Panics with the command
/// that installs them if they are missing.
pub fn node_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        dir.join("node_modules/openid-client").exists()
            && dir.join("node_modules/playwright-core").exists(),
        "{}/node_modules is missing: run scripts/setup-node (npm ci; scripts/setup does)",
        dir.display()
    );
    dir
}

/// `node SCRIPT` in tests/node (the script's name relative to it).
pub fn node(script: &str) -> Command {
    let dir = node_dir();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script)).current_dir(&dir);
    cmd
}
