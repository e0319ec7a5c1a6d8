//! The local API's end-to-end harness: a loopback sshd with
//! `libpam_curfew.so` in its stack, three throwaway users (two ordinary,
//! one in a throwaway admin group) and root, each able to log in, the
//! enforcer serving the API on a socket in the sandbox, and interactive
//! ssh sessions on a pty in which the test runs `curfew` as the user.
//!
//! Everything the fixture adds to the machine is held by a guard and
//! undone when it drops, whatever the test did: the enforcer and sshd
//! (stopped by PID), every process left in a session of the fixture's users,
//! the users, the group, the PAM service file, /run/sshd if made here, and
//! the sandbox with the socket.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{curfew_bin, is_root, pam_module, wait_for, write_file, ChildGuard};
use crate::enforce::audit_session_processes;
use crate::pam::{text, AddedFile, PamSandbox};
use crate::sshd::{free_port, service_file, RunDir, ThrowawayUser};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A system group made for the test; `groupdel` when dropped.
pub struct ThrowawayGroup {
    /// Its name.
    pub name: String,
}

impl ThrowawayGroup {
    /// Creates `name`.
    pub fn create(name: &str) -> ThrowawayGroup {
        let out = Command::new("groupadd")
            .args(["--system", name])
            .output()
            .expect("run groupadd");
        assert!(out.status.success(), "groupadd: {:?}", text(&out));
        ThrowawayGroup {
            name: name.to_owned(),
        }
    }
}

impl Drop for ThrowawayGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// Who logs in, and how.
#[derive(Debug, Clone)]
pub struct Login {
    /// The account.
    pub user: String,
    /// Its password; `None`: root, by key.
    pub password: Option<String>,
}

/// The fixture. Fields drop in order: processes first, then the users and
/// the group, then files.
pub struct ApiFixture {
    enforcer: Option<ChildGuard>,
    sshd: ChildGuard,
    /// Ordinary user A.
    pub a: ThrowawayUser,
    /// Ordinary user B.
    pub b: ThrowawayUser,
    /// A member of the admin group.
    pub admin: ThrowawayUser,
    _group: ThrowawayGroup,
    _service_file: AddedFile,
    _run_dir: RunDir,
    /// Policy, store, socket, logs.
    pub sandbox: PamSandbox,
    /// The API socket.
    pub socket: PathBuf,
    /// The audit trail.
    pub audit: PathBuf,
    /// The `curfew` binary the users run (a copy every user may execute).
    pub curfew: PathBuf,
    passwords: Vec<(String, String)>,
    port: u16,
    client_home: PathBuf,
    root_key: PathBuf,
    sshd_log: PathBuf,
    enforcer_log: PathBuf,
}

impl ApiFixture {
    /// Sets everything up and starts sshd and the enforcer (default interval).
    pub fn start() -> ApiFixture {
        assert!(is_root(), "run as root (scripts/test does when uid is 0)");
        let pid = std::process::id();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{pid}-{n}");
        let names = [
            format!("curfew-api-a-{tag}"),
            format!("curfew-api-b-{tag}"),
            format!("curfew-api-m-{tag}"),
        ];
        let group_name = format!("curfew-api-adm-{tag}");
        let service = format!("curfew-api-sshd-{tag}");
        let sandbox = PamSandbox::new("version: 1\n");
        let dir = sandbox.dir.path().to_owned();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
            .expect("chmod sandbox");
        let socket = dir.join("run").join("curfew.sock");
        let audit = dir.join("audit.jsonl");
        sandbox.write_policy(
            &format!(
                "version: 1\n\
                 session:\n  \
                   timeout: {{ default: 5m, min: 1m, max: 1h }}\n  \
                   max_duration: 12h\n  inactivity: 30m\n  warn_before: 2m\n\
                 admin: {{ groups: [{group_name}] }}\n\
                 api: {{ socket: {} }}\n\
                 audit: {{ syslog: false, file: {} }}\n",
                socket.display(),
                audit.display()
            ),
            "",
        );
        // A copy of the CLI that every user can run, wherever the build is.
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let curfew = bin.join("curfew");
        std::fs::copy(curfew_bin(), &curfew).expect("copy curfew");
        std::fs::set_permissions(&curfew, std::fs::Permissions::from_mode(0o755)).expect("chmod");

        let client_home = dir.join("client");
        std::fs::create_dir(&client_home).expect("mkdir client");
        let keygen = |path: &Path| {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .expect("ssh-keygen");
            assert!(ok.success());
        };
        keygen(&dir.join("host_key"));
        let root_key = client_home.join("root_key");
        keygen(&root_key);
        let keys = dir.join("keys");
        std::fs::create_dir(&keys).expect("mkdir keys");
        std::fs::copy(root_key.with_extension("pub"), keys.join("root")).expect("root key");
        let port = free_port();
        let config = write_file(
            &dir,
            "sshd_config",
            &format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {}\n\
                 PidFile none\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication yes\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 AllowUsers {} root\n\
                 AuthorizedKeysFile {}/%u\n\
                 StrictModes no\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 UseDNS no\n\
                 LogLevel VERBOSE\n",
                dir.join("host_key").display(),
                names.join(" "),
                keys.display()
            ),
        );
        let link = dir.join(&service);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &link).expect("symlink sshd");
        let run_dir = RunDir::ensure();
        let service_file = AddedFile::create(
            &Path::new("/etc/pam.d").join(&service),
            &service_file(&pam_module(), &sandbox.policy),
        );
        let group = ThrowawayGroup::create(&group_name);
        let mut passwords = Vec::new();
        let mut users = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let home = dir.join(format!("home-{i}"));
            std::fs::create_dir(&home).expect("mkdir home");
            let password = format!("Api-{tag}-{i}-x9");
            users.push(ThrowawayUser::create(name, &home, &password));
            passwords.push((name.clone(), password));
        }
        let out = Command::new("usermod")
            .args(["-a", "-G", &group_name, &names[2]])
            .output()
            .expect("usermod");
        assert!(out.status.success(), "usermod: {:?}", text(&out));
        let admin = users.pop().expect("admin");
        let b = users.pop().expect("b");
        let a = users.pop().expect("a");

        let sshd_log = dir.join("sshd.log");
        let log_file = File::create(&sshd_log).expect("sshd log");
        let sshd = ChildGuard::new(
            "sshd",
            Command::new(&link)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("dup"))
                .stderr(log_file)
                .spawn()
                .expect("start sshd"),
        );
        let enforcer_log = dir.join("enforce.log");
        let mut f = ApiFixture {
            enforcer: None,
            sshd,
            a,
            b,
            admin,
            _group: group,
            _service_file: service_file,
            _run_dir: run_dir,
            sandbox,
            socket,
            audit,
            curfew,
            passwords,
            port,
            client_home,
            root_key,
            sshd_log,
            enforcer_log,
        };
        let up = wait_for(Duration::from_secs(30), || {
            if let Ok(Some(status)) = f.sshd.child.try_wait() {
                panic!("sshd exited ({status}): {}", f.logs());
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "sshd never listened: {}", f.logs());
        let log = File::create(&f.enforcer_log).expect("enforce.log");
        f.enforcer = Some(ChildGuard::new(
            "curfew enforce",
            Command::new(curfew_bin())
                .arg("--policy")
                .arg(&f.sandbox.policy)
                .arg("enforce")
                .env_remove("CURFEW_POLICY")
                .env_remove("CURFEW_STORE_PATH")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log)
                .spawn()
                .expect("start curfew enforce"),
        ));
        let serving = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&f.enforcer_log)
                .ok()
                .filter(|t| t.contains("serving the local API"))
        });
        assert!(serving.is_some(), "the API is not served: {}", f.logs());
        f
    }

    /// sshd's and the enforcer's logs.
    pub fn logs(&self) -> String {
        format!(
            "--- sshd ---\n{}\n--- curfew enforce ---\n{}",
            std::fs::read_to_string(&self.sshd_log).unwrap_or_default(),
            std::fs::read_to_string(&self.enforcer_log).unwrap_or_default()
        )
    }

    /// Every session record, ended ones too.
    pub fn sessions(&self) -> Vec<Value> {
        self.sandbox.sessions()
    }

    /// A session's record.
    pub fn record(&self, id: &str) -> Value {
        self.sessions()
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no session {id}"))
    }

    /// The audit trail, one JSON value per line.
    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn live_ids(&self, user: &str) -> Vec<String> {
        self.sessions()
            .into_iter()
            .filter(|s| s["user"] == user && s["ended_at"].is_null())
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// An interactive login shell of `user` ("root" logs in by key), once
    /// its session is registered and its shell answers.
    pub fn login(&self, user: &str) -> Shell {
        let before = self.live_ids(user);
        let mut cmd = match self.passwords.iter().find(|(u, _)| u == user) {
            Some((_, password)) => {
                let mut c = Command::new("sshpass");
                c.arg("-p").arg(password).arg("ssh");
                c.args(["-o", "PubkeyAuthentication=no"])
                    .args(["-o", "PreferredAuthentications=password"]);
                c
            }
            None => {
                let mut c = Command::new("ssh");
                c.arg("-i")
                    .arg(&self.root_key)
                    .args(["-o", "PreferredAuthentications=publickey"])
                    .args(["-o", "BatchMode=yes"]);
                c
            }
        };
        let mut child = cmd
            .args(["-tt", "-F", "/dev/null"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(["-p", &self.port.to_string()])
            .arg(format!("{user}@127.0.0.1"))
            .env("HOME", &self.client_home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ssh");
        let stdin = child.stdin.take().expect("stdin");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
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
        let mut shell = Shell {
            client: ChildGuard::new("ssh", child),
            stdin,
            output,
            user: user.to_owned(),
            id: String::new(),
            audit_session: None,
            home: PathBuf::new(),
        };
        assert!(
            shell.answers(Duration::from_secs(30)),
            "the shell of {user} never answered: {}\n{}",
            shell.output(),
            self.logs()
        );
        let new = wait_for(Duration::from_secs(10), || {
            self.sessions().into_iter().find(|s| {
                s["user"] == user
                    && s["ended_at"].is_null()
                    && !before.iter().any(|b| s["id"] == b.as_str())
            })
        })
        .unwrap_or_else(|| panic!("the login of {user} was not registered: {}", self.logs()));
        shell.id = new["id"].as_str().unwrap_or_default().to_owned();
        shell.audit_session = new["audit_session_id"].as_u64().map(|a| a as u32);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("getent passwd {user} | cut -d: -f6"))
            .output()
            .expect("getent");
        shell.home = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        shell
    }

    /// Runs `curfew --policy P ARGS` in `shell` (as its user, in its
    /// session), returning exit code, stdout and stderr.
    pub fn run(&self, shell: &mut Shell, args: &[&str]) -> Ran {
        self.run_with(shell, "", &self.sandbox.policy, args)
    }

    /// Runs `curfew --policy POLICY ARGS...` in `shell` without waiting for
    /// it: for a command that ends the shell's own session, which may be
    /// gone before the shell could say how the command exited.
    pub fn run_detached(&self, shell: &mut Shell, args: &[&str]) {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        shell.send(&format!(
            "{} --policy {} {}\n",
            self.curfew.display(),
            self.sandbox.policy.display(),
            quoted.join(" ")
        ));
    }

    /// As [`ApiFixture::run`], with `env` (`NAME=value ...`, shell words)
    /// before the command and `policy` as its `--policy`.
    pub fn run_with(
        &self,
        shell: &mut Shell,
        env: &str,
        policy: &std::path::Path,
        args: &[&str],
    ) -> Ran {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let out = shell.home.join(format!("out-{n}"));
        let err = shell.home.join(format!("err-{n}"));
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        shell.send(&format!(
            "{env} {} --policy {} {} >{} 2>{}; echo rc-{n}-$?-done\n",
            self.curfew.display(),
            policy.display(),
            quoted.join(" "),
            out.display(),
            err.display()
        ));
        let re = format!("rc-{n}-");
        let code = wait_for(Duration::from_secs(30), || {
            let o = shell.output();
            let i = o.rfind(&re)?;
            let rest = &o[i + re.len()..];
            let end = rest.find("-done")?;
            rest[..end].parse::<i32>().ok()
        })
        .unwrap_or_else(|| panic!("curfew {args:?} never finished: {}", shell.output()));
        Ran {
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }
}

impl Drop for ApiFixture {
    fn drop(&mut self) {
        // The enforcer first: it must not act on what the teardown does.
        self.enforcer = None;
        // Every session in the sandbox's store was opened through the
        // fixture's sshd: none of its processes may outlive the test.
        for s in self.sessions() {
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

/// What `curfew` said.
#[derive(Debug)]
pub struct Ran {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// An interactive ssh session.
pub struct Shell {
    client: ChildGuard,
    stdin: ChildStdin,
    output: Arc<Mutex<Vec<u8>>>,
    /// Its user.
    pub user: String,
    /// Its session id.
    pub id: String,
    /// Its audit session id.
    pub audit_session: Option<u32>,
    home: PathBuf,
}

impl Shell {
    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        let _ = self.stdin.write_all(keys.as_bytes());
        let _ = self.stdin.flush();
    }

    /// Everything the terminal showed.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Whether the shell answers within `timeout`.
    pub fn answers(&mut self, timeout: Duration) -> bool {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        self.send(&format!("echo alive-{n}-$((6*7))\n"));
        let want = format!("alive-{n}-42");
        wait_for(timeout, || self.output().contains(&want).then_some(())).is_some()
    }

    /// Whether every process of the session is gone and the client has
    /// exited, waiting up to `limit`.
    pub fn gone_within(&mut self, limit: Duration) -> bool {
        let audit = self.audit_session;
        let procs_gone = wait_for(limit, || {
            audit
                .is_none_or(|a| audit_session_processes(a).is_empty())
                .then_some(())
        })
        .is_some();
        procs_gone && wait_for(limit, || self.client.child.try_wait().ok().flatten()).is_some()
    }

    /// Whether the session still has processes and the client runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.client.child.try_wait(), Ok(None))
            && self
                .audit_session
                .is_some_and(|a| !audit_session_processes(a).is_empty())
    }
}
