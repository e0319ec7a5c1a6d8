//! The Node.js side of the suites: tests/node holds the pinned npm
//! packages (openid-client, playwright-core, @ory/hydra-client,
//! oidc-provider, and curfew's adapter `curfew-oidc-provider` copied from
//! oidc_hook/adapters/oidc-provider; package-lock.json committed),
//! installed by `scripts/setup-node` (`npm ci`), which scripts/setup runs.

use std::path::PathBuf;
use std::process::Command;

/// tests/node, with its node_modules installed. Panics with the command
/// that installs them if they are missing.
pub fn node_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        dir.join("node_modules/openid-client").exists()
            && dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/@ory/hydra-client").exists(),
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

/// Starts `node SCRIPT` in tests/node with `env`; the script prints a line
/// ending in `http://127.0.0.1:PORT`. Returns the guard and that URL.
pub fn spawn_node(
    script: &str,
    env: &[(&str, &str)],
    stderr: &std::path::Path,
) -> (crate::common::ChildGuard, String) {
    let mut cmd = node(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::oidc::spawn_listening(cmd, script, stderr)
}
