//! Driving the built `libpam_curfew.so` through real libpam: pam_wrapper
//! service directories, pamtester and pypamtest, and the `curfew` CLI to
//! look at what the module recorded.
//!
//! pam_wrapper (`LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1`) makes libpam
//! read service files from a private directory, so nothing under /etc is
//! touched and no root is needed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::common::{curfew, pam_module, write_file};

/// The preloadable pam_wrapper library (Debian's libpam-wrapper).
pub const PAM_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";
/// pam_wrapper's test module that sets PAM items from `PAM_TTY`, `PAM_RHOST`...
pub const PAM_SET_ITEMS: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so";
/// pam_wrapper's test module that authenticates against a text file.
pub const PAM_MATRIX: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so";
/// The Python that has Debian's python3-pypamtest.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

static WRAPPER_START: Mutex<()> = Mutex::new(());

/// Holds off other pam_wrapper processes of this test binary. pam_wrapper
/// copies the service directory to `/tmp/pam.X` (X one character, so that
/// the path is as long as `/etc/pam.d`) when a process starts, and two
/// processes starting at the same instant can pick the same X and one
/// fails. [`PamSandbox::pamtester`] and [`PamSandbox::pypamtest`] hold this
/// while they run; a test that spawns a long-running pam_wrapper process
/// holds it until the process is past its start.
pub fn wrapper_start_lock() -> MutexGuard<'static, ()> {
    WRAPPER_START.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private directory (mode 0700) with a policy, its SQLite store and a
/// pam_wrapper service directory. Removed when dropped.
pub struct PamSandbox {
    /// The directory.
    pub dir: tempfile::TempDir,
    /// The policy file.
    pub policy: PathBuf,
    /// The store the policy names.
    pub store: PathBuf,
    /// pam_wrapper's `PAM_WRAPPER_SERVICE_DIR`.
    pub services: PathBuf,
}

impl PamSandbox {
    /// A sandbox whose policy is `body` (without a `store` section) plus a
    /// `store` section naming the sandbox's own SQLite file.
    pub fn new(body: &str) -> Self {
        Self::with_store_options(body, "")
    }

    /// Like [`PamSandbox::new`], with more lines in the `store` section
    /// (e.g. `on_unavailable: allow`).
    pub fn with_store_options(body: &str, store_lines: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("curfew-pam-")
            .tempdir()
            .expect("tempdir");
        // StrictModes: the policy's directories must not be writable by others.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod sandbox");
        let services = dir.path().join("pam.d");
        std::fs::create_dir(&services).expect("mkdir pam.d");
        let store = dir.path().join("state.db");
        let sandbox = PamSandbox {
            policy: dir.path().join("policy.yaml"),
            store,
            services,
            dir,
        };
        sandbox.write_policy(body, store_lines);
        sandbox
    }

    /// Rewrites the policy: `body` plus the sandbox's `store` section.
    pub fn write_policy(&self, body: &str, store_lines: &str) {
        let mut text = format!(
            "{body}\nstore:\n  backend: sqlite\n  path: {}\n",
            self.store.display()
        );
        for line in store_lines.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(&format!("  {}\n", line.trim()));
        }
        write_file(self.dir.path(), "policy.yaml", &text);
    }

    /// The stack line that loads the built module for `kind` (account,
    /// session) with this sandbox's policy and `extra` arguments.
    pub fn module_line(&self, kind: &str, extra: &str) -> String {
        format!(
            "{kind} required {} policy={} {extra}",
            pam_module().display(),
            self.policy.display()
        )
    }

    /// Writes the pam_wrapper service file `name`.
    pub fn service(&self, name: &str, lines: &[String]) {
        let text = lines.join("\n") + "\n";
        write_file(&self.services, name, &text);
    }

    /// A service `name` with the module in its account and session stacks;
    /// pam_set_items first in the session stack, so `PAM_TTY`/`PAM_RHOST`
    /// from the environment become items.
    pub fn standard_service(&self, name: &str, extra: &str) {
        self.service(
            name,
            &[
                self.module_line("account", extra),
                format!("session required {PAM_SET_ITEMS}"),
                self.module_line("session", extra),
            ],
        );
    }

    /// A command with the pam_wrapper environment set up.
    pub fn wrapped(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LD_PRELOAD", PAM_WRAPPER)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.services)
            // Level 0: pam_wrapper prints syslog lines of priority LOG_ERR
            // and below to stderr as `SYSLOG(3): ...`; level 2 shows all.
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .env_remove("PAM_TTY")
            .env_remove("PAM_RHOST");
        cmd
    }

    /// `pamtester SERVICE USER OPS...` with its output.
    pub fn pamtester(&self, service: &str, user: &str, ops: &[&str]) -> Output {
        let _start = wrapper_start_lock();
        self.pamtester_cmd(service, user, ops)
            .stdin(Stdio::null())
            .output()
            .expect("run pamtester")
    }

    /// The pamtester command, to adjust before running.
    pub fn pamtester_cmd(&self, service: &str, user: &str, ops: &[&str]) -> Command {
        let mut cmd = self.wrapped("pamtester");
        cmd.arg("-v").arg(service).arg(user).args(ops);
        cmd
    }

    /// Runs one pypamtest transaction: `ops` (pypamtest constant names
    /// without the `PAMTEST_` prefix, e.g. `OPEN_SESSION`), answering `PAM_TEXT_INFO`
    /// and `PAM_ERROR_MSG` into lists. Returns `{"info": [...], "errors":
    /// [...], "env": {...}}`, or `{"error": "..."}` when an operation did
    /// not return PAM_SUCCESS. `env` is the PAM environment after the
    /// operations; add `GETENVLIST` to fill it.
    pub fn pypamtest(&self, service: &str, user: &str, ops: &[&str]) -> Value {
        let script = r#"
import json, sys, pypamtest
service, user = sys.argv[1], sys.argv[2]
cases = [pypamtest.TestCase(getattr(pypamtest, "PAMTEST_" + op)) for op in sys.argv[3:]]
try:
    res = pypamtest.run_pamtest(user, service, cases)
except pypamtest.PamTestError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
env = {}
for c in cases:
    if c.pam_operation == pypamtest.PAMTEST_GETENVLIST:
        env = dict(c.pam_env)
print(json.dumps({"info": list(res.info), "errors": list(res.errors), "env": env}))
"#;
        let _start = wrapper_start_lock();
        let out = self
            .wrapped(SYSTEM_PYTHON)
            .arg("-c")
            .arg(script)
            .arg(service)
            .arg(user)
            .args(ops)
            .output()
            .expect("run python3 with pypamtest");
        assert!(
            out.status.success(),
            "pypamtest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("pypamtest printed {stdout:?}: {e}"))
    }

    /// Every session the store holds, ended ones too, as
    /// `curfew sessions list --all --format json` prints them.
    pub fn sessions(&self) -> Vec<Value> {
        list_sessions(&self.policy)
    }

    /// `curfew revoke user USER` against this sandbox's policy.
    pub fn revoke(&self, kind: &str, target: &str) {
        revoke(&self.policy, kind, target);
    }
}

/// `curfew sessions list --policy FILE --all --format json`.
pub fn list_sessions(policy: &Path) -> Vec<Value> {
    let policy = policy.to_str().expect("utf-8 path");
    let out = curfew(&[
        "sessions", "list", "--policy", policy, "--all", "--format", "json",
    ]);
    assert!(
        out.status.success(),
        "curfew sessions list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(v)) => v,
        other => panic!("curfew sessions list printed {other:?}"),
    }
}

/// `curfew revoke KIND TARGET --policy FILE --reason ...`.
pub fn revoke(policy: &Path, kind: &str, target: &str) {
    let policy = policy.to_str().expect("utf-8 path");
    let out = curfew(&[
        "revoke",
        kind,
        target,
        "--policy",
        policy,
        "--reason",
        "curfew e2e test",
    ]);
    assert!(
        out.status.success(),
        "curfew revoke {kind} {target} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sessions of `user` in `sessions`.
pub fn of_user<'a>(sessions: &'a [Value], user: &str) -> Vec<&'a Value> {
    sessions.iter().filter(|s| s["user"] == user).collect()
}

/// stdout and stderr of `out`, for assertions and their messages.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file this test added outside its temporary directory (a service file
/// under /etc/pam.d, a symlink): removed when dropped, whatever happened.
pub struct AddedFile {
    /// The file.
    pub path: PathBuf,
}

impl AddedFile {
    /// Creates `path` with `text` (mode 0644). Fails if it exists: a test
    /// never overwrites what it did not create.
    pub fn create(path: &Path, text: &str) -> AddedFile {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let guard = AddedFile {
            path: path.to_owned(),
        };
        f.write_all(text.as_bytes()).expect("write added file");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod added file");
        guard
    }
}

impl Drop for AddedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
