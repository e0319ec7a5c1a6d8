//! The enforcer's end-to-end harness: a loopback sshd with
//! `libpam_curfew.so` in its stack, a throwaway user, `curfew enforce`
//! running against the same policy and store, and interactive ssh sessions
//! on a pty that the test types into and reads from.
//!
//! Everything a test adds to the machine is held by a guard and undone when
//! it drops: the PAM service file under /etc/pam.d, the user, /run/sshd if
//! it was made here, and sshd, the enforcer and every ssh client (stopped by
//! PID).
//!
//! OpenSSH takes its PAM service name from the name it was started under,
//! so sshd runs through a symlink named like the one service file added
//! under /etc/pam.d: Debian's own /etc/pam.d/sshd with the lines of
//! examples/pam.d/sshd.snippet spliced in where the snippet says (the same
//! scheme as the PAM suite, tests/tests/sshd.rs).

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::common::{curfew_bin, is_root, wait_for, ChildGuard};
use crate::pam::{text, AddedFile, PamSandbox};
pub use crate::sshd::ThrowawayUser;
use crate::sshd::{RunDir, SshdSetup};

/// One fixture at a time in a test binary: they share /run/sshd, and user
/// management takes /etc/passwd's lock.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A loopback sshd with the module, a throwaway user, a policy whose rule
/// for that user is the test's, and the enforcer. Fields drop in order:
/// the enforcer and sshd first, then the user, the service file, /run/sshd
/// and the files.
pub struct EnforceFixture {
    enforcer: Option<ChildGuard>,
    sshd: ChildGuard,
    /// The throwaway user.
    pub user: ThrowawayUser,
    _service_file: AddedFile,
    _run_dir: RunDir,
    /// Policy, store and the logs.
    pub sandbox: PamSandbox,
    /// The PAM service name (what sshd runs as).
    pub service: String,
    password: String,
    port: u16,
    sshd_log: PathBuf,
    enforcer_log: PathBuf,
    client_home: PathBuf,
    /// Whether the enforcer keeps `CAP_SYS_PTRACE` (as its unit grants).
    ptrace: bool,
    _serial: MutexGuard<'static, ()>,
}

impl EnforceFixture {
    /// Starts sshd for a new user whose sessions get `session` (a flow
    /// mapping such as `{ inactivity: 30s, warn_before: 10s }`), and the
    /// enforcer with its default interval, serving its local API on a
    /// socket in the sandbox (so the CLI wakes it after a revoke).
    pub fn start(session: &str) -> EnforceFixture {
        Self::start_with(session, true, true)
    }

    /// Like [`EnforceFixture::start`], with the enforcer started without
    /// `CAP_SYS_PTRACE` in its bounding set (`setpriv --bounding-set
    /// -sys_ptrace`, as a unit with the SECURITY.md drop-in runs it): it
    /// cannot read other users' `/proc/PID/io`.
    pub fn start_without_ptrace(session: &str) -> EnforceFixture {
        Self::start_with(session, true, false)
    }

    /// Like [`EnforceFixture::start`], with the enforcer's local API off
    /// (`api: { enabled: false }`): revocations wait for its next pass.
    pub fn start_without_api(session: &str) -> EnforceFixture {
        Self::start_with(session, false, true)
    }

    fn start_with(session: &str, api: bool, ptrace: bool) -> EnforceFixture {
        assert!(is_root(), "run as root (scripts/test does when uid is 0)");
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let user_name = format!("curfew-enf-{pid}-{n}");
        let service = format!("curfew-enf-sshd-{pid}-{n}");
        let password = format!("Ef-{pid}-{n}-x9");
        let body = |api_line: &str| {
            format!(
                "version: 1\n\
                 session: {{ max_duration: 12h, inactivity: 30m, warn_before: 2m }}\n\
                 rules:\n  \
                   - name: e2e-enforce\n    \
                     match: {{ users: [{user_name}], services: [{service}] }}\n    \
                     session: {session}\n\
                 audit: {{ syslog: false }}\n\
                 {api_line}\n"
            )
        };
        let sandbox = PamSandbox::new(&body("api: { enabled: false }"));
        if api {
            let socket = sandbox.dir.path().join("run").join("curfew.sock");
            sandbox.write_policy(
                &body(&format!("api: {{ socket: {} }}", socket.display())),
                "",
            );
        }
        let dir = sandbox.dir.path().to_owned();
        let setup = SshdSetup::prepare(&dir, &sandbox.policy, &user_name, &service, &password);
        let sshd_log = dir.join("sshd.log");
        let sshd = setup.spawn(&sshd_log);
        let SshdSetup {
            client_home,
            port,
            run_dir,
            service_file,
            user,
            ..
        } = setup;
        let enforcer_log = dir.join("enforce.log");
        let mut fixture = EnforceFixture {
            enforcer: None,
            sshd,
            user,
            _service_file: service_file,
            _run_dir: run_dir,
            sandbox,
            service,
            password,
            port,
            sshd_log,
            enforcer_log,
            client_home,
            ptrace,
            _serial: serial,
        };
        let up = wait_for(Duration::from_secs(30), || {
            if let Ok(Some(status)) = fixture.sshd.child.try_wait() {
                panic!("sshd exited ({status}): {}", fixture.logs());
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "sshd never listened: {}", fixture.logs());
        fixture.start_enforcer();
        fixture
    }

    fn start_enforcer(&mut self) {
        let log = File::create(&self.enforcer_log).expect("create enforce.log");
        let mut cmd = if self.ptrace {
            Command::new(curfew_bin())
        } else {
            // setpriv execs curfew in place: the child's pid is curfew's.
            let mut c = Command::new("setpriv");
            c.args(["--bounding-set", "-sys_ptrace", "--"])
                .arg(curfew_bin());
            c
        };
        let child = cmd
            .arg("--policy")
            .arg(&self.sandbox.policy)
            .arg("enforce")
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start curfew enforce");
        self.enforcer = Some(ChildGuard::new("curfew enforce", child));
        let started = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&self.enforcer_log)
                .ok()
                .filter(|t| t.contains("enforcing the PAM sessions"))
        });
        assert!(
            started.is_some(),
            "the enforcer did not start: {}",
            self.logs()
        );
    }

    /// sshd's and the enforcer's logs, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- sshd ---\n{}\n--- curfew enforce ---\n{}",
            std::fs::read_to_string(&self.sshd_log).unwrap_or_default(),
            self.enforcer_log_text()
        )
    }

    /// The enforcer's log.
    pub fn enforcer_log_text(&self) -> String {
        std::fs::read_to_string(&self.enforcer_log).unwrap_or_default()
    }

    /// Whether the enforcer is still running.
    pub fn enforcer_running(&mut self) -> bool {
        self.enforcer
            .as_mut()
            .is_some_and(|e| matches!(e.child.try_wait(), Ok(None)))
    }

    /// Opens an interactive login shell on a pty (`ssh -tt`), and waits
    /// until its session is registered and its shell answers.
    pub fn login(&self) -> Interactive {
        let before: Vec<String> = self.live_sessions().iter().map(id_of).collect();
        let child = Command::new("sshpass")
            .arg("-p")
            .arg(&self.password)
            .arg("ssh")
            .args(["-tt", "-F", "/dev/null"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "PubkeyAuthentication=no"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(["-o", "PreferredAuthentications=password"])
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@127.0.0.1", self.user.name))
            .env("HOME", &self.client_home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sshpass ssh");
        let mut shell = Interactive::collect(child);
        let mark = "login-ready";
        shell.send(&format!("echo {mark}-$((6*7))\n"));
        let ready = wait_for(Duration::from_secs(30), || {
            shell.output().contains(&format!("{mark}-42")).then_some(())
        });
        assert!(
            ready.is_some(),
            "the shell never answered: {}\n{}",
            shell.output(),
            self.logs()
        );
        let session = wait_for(Duration::from_secs(10), || {
            self.live_sessions()
                .into_iter()
                .find(|s| !before.contains(&id_of(s)))
        })
        .unwrap_or_else(|| panic!("the login was not registered: {}", self.logs()));
        shell.session = session;
        shell
    }

    /// Runs `command` on the host without a terminal (`ssh host command`),
    /// its stdin a pipe the test writes to, and waits until its session is
    /// registered.
    pub fn remote(&self, command: &str) -> Interactive {
        let before: Vec<String> = self.live_sessions().iter().map(id_of).collect();
        let child = Command::new("sshpass")
            .arg("-p")
            .arg(&self.password)
            .arg("ssh")
            .args(["-T", "-F", "/dev/null"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "PubkeyAuthentication=no"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(["-o", "PreferredAuthentications=password"])
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@127.0.0.1", self.user.name))
            .arg(command)
            .env("HOME", &self.client_home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sshpass ssh");
        let mut remote = Interactive::collect(child);
        let session = wait_for(Duration::from_secs(30), || {
            if remote.exited().is_some() {
                panic!(
                    "ssh exited early: {}
{}",
                    remote.output(),
                    self.logs()
                );
            }
            self.live_sessions()
                .into_iter()
                .find(|s| !before.contains(&id_of(s)))
        })
        .unwrap_or_else(|| panic!("the command's login was not registered: {}", self.logs()));
        remote.session = session;
        remote
    }

    /// The user's live sessions.
    pub fn live_sessions(&self) -> Vec<Value> {
        self.sandbox
            .sessions()
            .into_iter()
            .filter(|s| s["user"] == self.user.name.as_str() && s["ended_at"].is_null())
            .collect()
    }

    /// One session's record, as `curfew sessions list --all` shows it.
    pub fn record(&self, id: &str) -> Value {
        self.sandbox
            .sessions()
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no session {id}"))
    }

    /// Runs the `curfew` CLI against the fixture's policy.
    pub fn curfew(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&self.sandbox.policy)
            .args(args)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .stdin(Stdio::null())
            .output()
            .expect("run curfew");
        assert!(
            out.status.success(),
            "curfew {args:?} failed: {:?}",
            text(&out)
        );
        out
    }

    /// A process of the user that is not in any of its sessions (started
    /// here, with the user's uid): the enforcer must leave it alone.
    pub fn outsider(&self) -> ChildGuard {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sleep")
            .arg("600")
            .uid(self.user.uid)
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the outsider");
        ChildGuard::new("outsider", child)
    }
}

impl Drop for EnforceFixture {
    fn drop(&mut self) {
        // The enforcer first: it must not act on what the teardown does.
        self.enforcer = None;
        // Every process still in a session of the user (none, when the test
        // passed), so that userdel can proceed.
        for s in self
            .sandbox
            .sessions()
            .iter()
            .filter(|s| s["user"] == self.user.name.as_str())
        {
            if let Some(audit) = s["audit_session_id"].as_u64() {
                for pid in audit_session_processes(audit as u32) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

fn id_of(s: &Value) -> String {
    s["id"].as_str().unwrap_or_default().to_owned()
}

/// An interactive ssh session: what the test types goes to the remote
/// shell's terminal, and everything the terminal shows is collected.
pub struct Interactive {
    client: ChildGuard,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
    /// Its session record at login.
    pub session: Value,
}

impl Interactive {
    /// Collects the output of an ssh client started with piped stdio.
    fn collect(mut child: std::process::Child) -> Interactive {
        let stdin = child.stdin.take();
        let output = Arc::new(Mutex::new(Vec::new()));
        let streams: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for stream in streams {
            let sink = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        Interactive {
            client: ChildGuard::new("ssh", child),
            stdin,
            output,
            session: Value::Null,
        }
    }

    /// Closes the client's stdin (end of input for a remote command).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        // The client may be gone already (the session was ended).
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(keys.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Everything the terminal showed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The session id.
    pub fn id(&self) -> String {
        id_of(&self.session)
    }

    /// The audit session id the PAM module recorded.
    pub fn audit_session(&self) -> Option<u32> {
        self.session["audit_session_id"]
            .as_u64()
            .and_then(|a| u32::try_from(a).ok())
    }

    /// Whether the ssh client has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.client.child.try_wait().ok().flatten()
    }

    /// Types a command and waits up to `timeout` for its answer: proof that
    /// the shell is alive and reading its terminal.
    pub fn answers(&mut self, timeout: Duration) -> bool {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        self.send(&format!("echo alive-{n}-$((6*7))\n"));
        let want = format!("alive-{n}-42");
        wait_for(timeout, || self.output().contains(&want).then_some(())).is_some()
    }
}

/// The running (not zombie) processes whose audit session id is `audit`.
pub fn audit_session_processes(audit: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let sid = u32::try_from(*pid)
                .ok()
                .and_then(|p| curfew_policy::host::audit_session_id(Some(p)));
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("X");
            sid == Some(audit) && !matches!(state, "Z" | "X")
        })
        .collect()
}
