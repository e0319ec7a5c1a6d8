//! A fleet on one machine: "hosts" that share one Redis store (issue 6).
//!
//! A [`FleetHost`] is what a real host of a fleet has: a host name, its own
//! policy file naming the shared Redis, its own PAM service directory
//! (pam_wrapper), and its own `curfew enforce`. Logins go through the real
//! libpam and `libpam_curfew.so` with pamtester.
//!
//! The PAM module records, and the enforcer looks for, the sessions of
//! `gethostname(2)`. To be two hosts on one machine, each host's processes
//! (its enforcer, and the pamtester processes that open its sessions) run in
//! a UTS namespace of their own: `unshare --uts`, then `hostname NAME`, then
//! `exec` of the program, so the PID the test holds is the program's. That
//! needs root. A host of [`Identity::ThisMachine`] runs without a namespace
//! and needs no root.
//!
//! A live session is a pamtester process blocked in pam_matrix's password
//! prompt right after `open_session` (so its pid is the one the module
//! recorded), with a `sleep` child, both in an audit session of the user's
//! (as pam_loginuid makes one): the enforcer must end both. Every
//! process and the pam_wrapper directory of a pamtester that was killed are
//! removed by guards; Redis is the test's own
//! ([`curfew_policy::store::testing::RedisServer`]).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use serde_json::Value;

use crate::common::{curfew_bin, wait_for, write_file, ChildGuard};
use crate::pam::{
    list_sessions, wrapper_start_lock, PamSandbox, PAM_MATRIX, PAM_SET_ITEMS, PAM_WRAPPER,
};

/// The PAM service every fleet host has.
pub const SERVICE: &str = "curfew-fleet";
/// The password pam_matrix waits for: nobody types it, so a session stays
/// open until its pamtester is ended.
const PASSWORD: &str = "never-typed";

/// How a host is told apart from the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// This machine's own name, no namespace (no root needed).
    ThisMachine,
    /// Its own UTS namespace with this host name (root).
    Namespace(String),
}

/// The policy of a fleet member: `body` (no `store` section) plus a Redis
/// `store` section at `url`, and `store_lines` (such as
/// `on_unavailable: allow`). The audit trail goes nowhere: a test writes
/// nothing to the machine's syslog; the hosts serve no local API (they
/// share one machine, and /run/curfew is not the test's to create).
pub fn fleet_policy(url: &str, store_lines: &str) -> String {
    let mut text = format!(
        "version: 1\n\
         session: {{ max_duration: 12h, inactivity: 30m, warn_before: 2m }}\n\
         banner: {{ text: \"Fleet host: authorized use only.\" }}\n\
         audit: {{ syslog: false }}\n\
         api: {{ enabled: false }}\n\
         store:\n  backend: redis\n  url: \"{url}\"\n"
    );
    for line in store_lines.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str(&format!("  {}\n", line.trim()));
    }
    text
}

/// A process identified by its pid and its start time (so that a reused
/// pid is never mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its start time, in clock ticks after boot (/proc/PID/stat field 22).
    pub start: u64,
}

impl Proc {
    /// The running process `pid`, if there is one.
    pub fn of(pid: i32) -> Option<Proc> {
        start_ticks(pid).map(|start| Proc { pid, start })
    }

    /// Whether it still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        start_ticks(self.pid) == Some(self.start)
    }

    /// SIGKILL, if it is still the same process.
    pub fn kill(&self) {
        if self.alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The start time of a running, not zombie, process.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, starttime field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// One host of the fleet.
pub struct FleetHost {
    enforcer: Option<ChildGuard>,
    /// Who it is.
    pub identity: Identity,
    /// Its policy, service directory and logs.
    pub sandbox: PamSandbox,
    enforcer_log: PathBuf,
}

impl FleetHost {
    /// A host whose policy names the Redis at `url`, with `store_lines` in
    /// its `store` section; its service [`SERVICE`] has pam_matrix in the
    /// auth stack (the prompt that keeps a session open) and the module in
    /// the account and session stacks.
    pub fn new(identity: Identity, url: &str, store_lines: &str) -> FleetHost {
        let sandbox = PamSandbox::new("version: 1\n");
        write_file(
            sandbox.dir.path(),
            "policy.yaml",
            &fleet_policy(url, store_lines),
        );
        let passdb = write_file(
            sandbox.dir.path(),
            "passdb",
            &format!("daemon:{PASSWORD}:{SERVICE}\nbin:{PASSWORD}:{SERVICE}\n"),
        );
        sandbox.service(
            SERVICE,
            &[
                format!("auth required {PAM_MATRIX} passdb={}", passdb.display()),
                sandbox.module_line("account", ""),
                format!("session required {PAM_SET_ITEMS}"),
                sandbox.module_line("session", ""),
            ],
        );
        let enforcer_log = sandbox.dir.path().join("enforce.log");
        FleetHost {
            enforcer: None,
            identity,
            sandbox,
            enforcer_log,
        }
    }

    /// The name its sessions are recorded under.
    pub fn hostname(&self) -> String {
        match &self.identity {
            Identity::ThisMachine => nix::unistd::gethostname()
                .expect("gethostname")
                .to_string_lossy()
                .into_owned(),
            Identity::Namespace(name) => name.clone(),
        }
    }

    /// `program args...` run as this host: in its UTS namespace, if it has
    /// one. `setup` is shell code run after the host name is set and before
    /// the program is executed (in the same process, so the pid stays the
    /// program's).
    fn command(&self, setup: &str, program: &Path, args: &[&str]) -> Command {
        let script = format!(
            "set -e\n\
             if [ -n \"$CURFEW_E2E_HOSTNAME\" ]; then hostname \"$CURFEW_E2E_HOSTNAME\"; fi\n\
             {setup}\n\
             exec \"$@\""
        );
        let mut cmd = match &self.identity {
            Identity::ThisMachine => {
                let mut c = Command::new("/bin/sh");
                c.env_remove("CURFEW_E2E_HOSTNAME");
                c
            }
            Identity::Namespace(name) => {
                let mut c = Command::new("unshare");
                c.args(["--uts", "--", "/bin/sh"]);
                c.env("CURFEW_E2E_HOSTNAME", name);
                c
            }
        };
        cmd.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .args(args)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .env_remove("LD_PRELOAD");
        cmd
    }

    /// Starts `curfew enforce` for this host (default interval), and waits
    /// until it has made its first pass and subscribed to the store's
    /// changes.
    pub fn start_enforcer(&mut self) {
        self.start_enforcer_with(&[]);
    }

    /// [`FleetHost::start_enforcer`] with `extra` arguments after
    /// `enforce` (such as `--interval 60s`).
    pub fn start_enforcer_with(&mut self, extra: &[&str]) {
        let log = File::create(&self.enforcer_log).expect("create enforce.log");
        let policy = self.sandbox.policy.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["--policy", &policy, "enforce"];
        args.extend_from_slice(extra);
        let child = self
            .command("", &curfew_bin(), &args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start curfew enforce");
        self.enforcer = Some(ChildGuard::new("curfew enforce", child));
        let host = self.hostname();
        let ready = wait_for(Duration::from_secs(20), || {
            let text = self.enforcer_log();
            (text.contains(&format!("enforcing the PAM sessions of host {host} "))
                && text.contains("pushes its changes"))
            .then_some(())
        });
        assert!(
            ready.is_some(),
            "the enforcer of {host} did not start and subscribe: {}",
            self.enforcer_log()
        );
    }

    /// The enforcer's log.
    pub fn enforcer_log(&self) -> String {
        std::fs::read_to_string(&self.enforcer_log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `needle` in the enforcer's log (it logs a
    /// pass's ends after their processes are gone). Returns whether it came.
    pub fn enforcer_logged(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || {
            self.enforcer_log().contains(needle).then_some(())
        })
        .is_some()
    }

    /// The enforcer's pid, while it runs.
    pub fn enforcer_pid(&mut self) -> Option<u32> {
        let e = self.enforcer.as_mut()?;
        matches!(e.child.try_wait(), Ok(None)).then(|| e.pid())
    }

    /// Stops the enforcer by its pid (SIGKILL) and reaps it. Returns
    /// whether it was still running until then.
    pub fn stop_enforcer(&mut self) -> bool {
        let running = self.enforcer_pid().is_some();
        self.enforcer = None;
        running
    }

    /// `pamtester SERVICE USER ops...` as this host, with its output.
    pub fn pamtester(&self, user: &str, ops: &[&str]) -> Output {
        let _start = wrapper_start_lock();
        let mut args = vec!["-v", SERVICE, user];
        args.extend_from_slice(ops);
        self.pam_command("", &args)
            .stdin(Stdio::null())
            .output()
            .expect("run pamtester")
    }

    /// pamtester with pam_wrapper preloaded into it alone: every process
    /// that loads pam_wrapper makes a directory under /tmp, and one that
    /// ends by exec or a signal leaves it behind.
    fn pam_command(&self, setup: &str, args: &[&str]) -> Command {
        let env = Path::new("/usr/bin/env");
        let preload = format!("LD_PRELOAD={PAM_WRAPPER}");
        let mut all = vec![preload.as_str(), "pamtester"];
        all.extend_from_slice(args);
        let mut cmd = self.command(setup, env, &all);
        cmd.env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.sandbox.services)
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .env_remove("PAM_TTY")
            .env_remove("PAM_RHOST");
        cmd
    }

    /// Logs `user` in through the PAM module and keeps the session open:
    /// returns once its record is in the store.
    pub fn open_session(&self, user: &str) -> LiveSession {
        let dir = self.sandbox.dir.path();
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let child_pid_file = dir.join(format!("session-{n}.child"));
        let out_path = dir.join(format!("session-{n}.out"));
        // What pam_loginuid does in a real login stack (sshd, login): a new
        // audit session whose login uid is the user's, inherited by the
        // session's processes. The enforcer ends the processes of that
        // audit session, even those running as root like pamtester (or
        // sshd's privileged process); without it, it would only end the
        // user's own processes of the recorded tree (issue 12: a record
        // never makes it signal another uid's processes). Needs root
        // (CAP_AUDIT_CONTROL); skipped where the suite runs without.
        let setup = format!(
            "{{ echo \"$(id -u '{user}')\" > /proc/self/loginuid; }} 2>/dev/null || true\n\
             sleep 600 </dev/null >/dev/null 2>&1 &\necho $! > '{}'",
            child_pid_file.display()
        );
        let out = File::create(&out_path).expect("create session output");
        let start = wrapper_start_lock();
        let child = self
            .pam_command(
                &setup,
                &[
                    "-v",
                    SERVICE,
                    user,
                    "acct_mgmt",
                    "open_session",
                    "authenticate",
                    "close_session",
                ],
            )
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("dup output"))
            .stderr(out)
            .spawn()
            .expect("spawn pamtester");
        let mut session = LiveSession {
            pamtester: ChildGuard::new("pamtester", child),
            child: None,
            wrapper_dir: None,
            record: Value::Null,
            output: out_path,
            _start: Some(start),
        };
        let pid = session.pamtester.pid();
        let host = self.hostname();
        let record = wait_for(Duration::from_secs(30), || {
            if let Ok(Some(status)) = session.pamtester.child.try_wait() {
                panic!("pamtester exited ({status}): {}", session.output());
            }
            self.sessions()
                .into_iter()
                .find(|s| s["pid"] == pid && s["host"] == host.as_str() && s["ended_at"].is_null())
        })
        .unwrap_or_else(|| panic!("the login was not registered: {}", session.output()));
        session.record = record;
        session.wrapper_dir = wrapper_dir_of(pid);
        session._start = None;
        let child_pid: i32 = std::fs::read_to_string(&child_pid_file)
            .expect("the session's child pid")
            .trim()
            .parse()
            .expect("a pid");
        session.child = Some(Proc::of(child_pid).expect("the session's child runs"));
        session
    }

    /// Every session of the fleet, as this host's `curfew sessions list
    /// --all` shows it.
    pub fn sessions(&self) -> Vec<Value> {
        list_sessions(&self.sandbox.policy)
    }
}

static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The pam_wrapper directory (`/tmp/pam.X`) whose pid file names `pid`.
fn wrapper_dir_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_dir("/tmp").ok()?.flatten().find_map(|e| {
        let name = e.file_name();
        let name = name.to_str()?;
        if !(name.starts_with("pam.") && name.len() == 5) {
            return None;
        }
        let owner = std::fs::read_to_string(e.path().join("pid")).ok()?;
        (owner.trim() == pid.to_string()).then(|| e.path())
    })
}

/// An open PAM session of a fleet host: a pamtester process that opened it
/// and waits at a prompt, and a child of it. Dropping it kills both (by
/// pid) and removes what pam_wrapper left.
pub struct LiveSession {
    pamtester: ChildGuard,
    child: Option<Proc>,
    wrapper_dir: Option<PathBuf>,
    /// Its record at login.
    pub record: Value,
    output: PathBuf,
    _start: Option<MutexGuard<'static, ()>>,
}

impl LiveSession {
    /// The session id.
    pub fn id(&self) -> String {
        self.record["id"].as_str().unwrap_or_default().to_owned()
    }

    /// The pid of the process that opened it.
    pub fn pid(&self) -> u32 {
        self.pamtester.pid()
    }

    /// Whether every process of the session is gone (the pamtester is
    /// reaped here).
    pub fn gone(&mut self) -> bool {
        let pamtester_gone = !matches!(self.pamtester.child.try_wait(), Ok(None));
        pamtester_gone && !self.child.is_some_and(|c| c.alive())
    }

    /// The pids of its processes: the pamtester, then its child.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = vec![self.pamtester.pid() as i32];
        pids.extend(self.child.map(|c| c.pid));
        pids
    }

    /// What pamtester printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        if let Some(c) = self.child {
            c.kill();
        }
        let _ = self.pamtester.child.kill();
        let _ = self.pamtester.child.wait();
        if let Some(dir) = &self.wrapper_dir {
            // Only if it is still the dead pamtester's.
            let owner = std::fs::read_to_string(dir.join("pid")).unwrap_or_default();
            if owner.trim() == self.pamtester.pid().to_string() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// An administrator's machine outside the hosts: only a policy naming the
/// fleet's Redis, for `curfew revoke`, `sessions list` and the like.
pub struct AdminConsole {
    dir: tempfile::TempDir,
    /// Its policy file.
    pub policy: PathBuf,
}

impl AdminConsole {
    /// A console for the Redis at `url`.
    pub fn new(url: &str) -> AdminConsole {
        let dir = tempfile::Builder::new()
            .prefix("curfew-admin-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod admin dir");
        let policy = write_file(dir.path(), "policy.yaml", &fleet_policy(url, ""));
        AdminConsole { dir, policy }
    }

    /// `curfew --policy POLICY args...`; panics unless it succeeds.
    pub fn curfew(&self, args: &[&str]) -> Output {
        let out = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .stdin(Stdio::null())
            .output()
            .expect("run curfew");
        assert!(
            out.status.success(),
            "curfew {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every session of the fleet.
    pub fn sessions(&self) -> Vec<Value> {
        list_sessions(&self.policy)
    }

    /// One session's record.
    pub fn record(&self, id: &str) -> Value {
        self.sessions()
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no session {id} in the fleet's store"))
    }

    /// Lifts every revocation (for the next round of a benchmark).
    pub fn unrevoke_all(&self) {
        let out = self.curfew(&["revocations", "list", "--format", "json"]);
        let list: Value = serde_json::from_slice(&out.stdout).expect("revocations as JSON");
        for r in list.as_array().expect("a list") {
            self.curfew(&["unrevoke", r["id"].as_str().expect("an id")]);
        }
    }
}
