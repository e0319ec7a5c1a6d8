//! A real sshd on 127.0.0.1 with libpam_curfew.so in its PAM stack, and a
//! throwaway user: password logins are registered (with their rhost) and
//! ended, interactive logins show the banner, revoked users are refused.
//!
//! OpenSSH (9.2p1 here) takes its PAM service name from the name it was
//! started under, so sshd runs through a symlink named like the one file
//! this suite adds under /etc: `/etc/pam.d/curfew-sshd-test-PID-N`, which is
//! Debian's own /etc/pam.d/sshd with the lines of
//! examples/pam.d/sshd.snippet spliced in where the snippet says. Every
//! test removes what it added (service file, user, /run/sshd if it made it)
//! and stops its sshd by PID, whatever happens: each is held by a guard.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use curfew_e2e::common::{is_root, wait_for, ChildGuard};
use curfew_e2e::pam::{of_user, text, AddedFile, PamSandbox};
use curfew_e2e::sshd::{RunDir, SshdSetup, ThrowawayUser};

const BANNER: &str = "Authorized use only. Activity is logged.";

/// One sshd at a time: they share /run/sshd, and user management takes
/// /etc/passwd's lock.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The sshd listener. When dropped it first waits (a bounded while) for
/// the per-connection processes it forked to finish, so that none is
/// orphaned mid-logout, then is killed and reaped by its PID.
struct Sshd(ChildGuard);

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid ...: comm may hold spaces.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let pid = self.0.pid();
        let _ = wait_for(Duration::from_secs(10), || {
            children_of(pid).is_empty().then_some(())
        });
    }
}

/// An sshd with the module, a user and a policy. Fields drop in order:
/// sshd first, then the user, the service file, /run/sshd, the files.
struct Fixture {
    sshd: Sshd,
    user: ThrowawayUser,
    _service_file: AddedFile,
    _run_dir: RunDir,
    sandbox: PamSandbox,
    service: String,
    password: String,
    port: u16,
    log: PathBuf,
    client_home: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Fixture {
    fn start() -> Fixture {
        assert!(is_root(), "run as root (scripts/test does when uid is 0)");
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let user_name = format!("curfew-e2e-{pid}-{n}");
        let service = format!("curfew-sshd-test-{pid}-{n}");
        let password = format!("Cf-{pid}-{n}-x9");

        // The policy: a banner for everyone, shorter limits for the user's
        // own group on this service (groups come from the system).
        let sandbox = PamSandbox::new(&format!(
            r#"
version: 1
session: {{ max_duration: 12h, inactivity: 30m }}
banner:
  text: "{BANNER}"
rules:
  - name: e2e-group
    match: {{ groups: [{user_name}], services: [{service}] }}
    session: {{ inactivity: 10m, max_duration: 4h }}
"#
        ));
        let dir = sandbox.dir.path().to_owned();
        let setup = SshdSetup::prepare(&dir, &sandbox.policy, &user_name, &service, &password);
        let log = dir.join("sshd.log");
        let sshd = Sshd(setup.spawn(&log));
        let SshdSetup {
            client_home,
            port,
            run_dir,
            service_file,
            user,
            ..
        } = setup;
        let mut fixture = Fixture {
            sshd,
            user,
            _service_file: service_file,
            _run_dir: run_dir,
            sandbox,
            service,
            password,
            port,
            log,
            client_home,
            _serial: serial,
        };
        let up = wait_for(Duration::from_secs(30), || {
            if let Ok(Some(status)) = fixture.sshd.0.child.try_wait() {
                panic!("sshd exited ({status}): {}", fixture.log_text());
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "sshd never listened: {}", fixture.log_text());
        fixture
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `sshpass -p PASSWORD ssh OPTIONS... USER@127.0.0.1 [COMMAND]`, with
    /// `stdin` as its input.
    fn ssh(&self, method: &str, options: &[&str], command: Option<&str>, stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("timeout")
            .arg("120")
            .arg("sshpass")
            .arg("-p")
            .arg(&self.password)
            .arg("ssh")
            .args(["-F", "/dev/null"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            // (Not LogLevel=ERROR: it would hide the server's messages.)
            .args(["-o", "PubkeyAuthentication=no"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(["-o", &format!("PreferredAuthentications={method}")])
            .args(["-p", &self.port.to_string()])
            .args(options)
            .arg(format!("{}@127.0.0.1", self.user.name))
            .args(command)
            .env("HOME", &self.client_home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sshpass ssh");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("write ssh stdin");
        drop(input);
        child.wait_with_output().expect("wait ssh")
    }

    fn sessions(&self) -> Vec<serde_json::Value> {
        self.sandbox.sessions()
    }
}

#[test]
#[ignore = "needs root: real sshd and a throwaway user; run by scripts/test as root"]
fn password_login_is_registered_with_its_rhost_and_ended_at_logout() {
    let f = Fixture::start();
    let out = f.ssh(
        "password",
        &[],
        Some("echo SESSION=$CURFEW_SESSION_ID TMOUT=$TMOUT"),
        "",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", f.log_text());
    assert!(
        f.log_text()
            .contains(&format!("Accepted password for {}", f.user.name)),
        "{}",
        f.log_text()
    );
    // The rule for the user's own group applies: inactivity 10m.
    // The example stack has no `tmout` argument: where curfew enforce runs,
    // the module exports no TMOUT (issue 13).
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("SESSION=") && l.trim_end().ends_with("TMOUT=")),
        "{stdout}"
    );
    let id = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("SESSION="))
        .filter(|id| id.len() == 32)
        .unwrap_or_else(|| panic!("no CURFEW_SESSION_ID in the session: {stdout}"))
        .to_owned();

    // sshd closes the PAM session as the connection winds down.
    let ended = wait_for(Duration::from_secs(30), || {
        f.sessions()
            .into_iter()
            .find(|s| s["id"] == id.as_str() && s["ended_at"].is_string())
    })
    .unwrap_or_else(|| panic!("session {id} never ended: {:#?}", f.sessions()));
    assert_eq!(ended["user"], f.user.name.as_str());
    assert_eq!(ended["service"], f.service.as_str());
    assert_eq!(ended["rhost"], "127.0.0.1");
    assert_eq!(ended["kind"], "pam");
    assert_eq!(ended["end_reason"], "logout");
    assert!(ended["pid"].as_u64().is_some(), "{ended}");
    assert_eq!(of_user(&f.sessions(), &f.user.name).len(), 1);
}

#[test]
#[ignore = "needs root: real sshd and a throwaway user; run by scripts/test as root"]
fn interactive_login_shows_the_banner() {
    let f = Fixture::start();
    // A login shell on a pty (-tt): sshd shows what PAM said at session
    // open before the shell starts.
    let out = f.ssh(
        "keyboard-interactive",
        &["-tt"],
        None,
        "echo MARK-$TMOUT-$CURFEW_SESSION_ID\nexit\n",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", f.log_text());
    let banner_at = stdout
        .find(BANNER)
        .unwrap_or_else(|| panic!("no banner: {stdout}"));
    let mark_at = stdout
        .find("MARK--")
        .unwrap_or_else(|| panic!("no shell output: {stdout}"));
    assert!(
        banner_at < mark_at,
        "the banner comes before the shell: {stdout}"
    );
    let ended = wait_for(Duration::from_secs(30), || {
        let sessions = f.sessions();
        let mine = of_user(&sessions, &f.user.name);
        (mine.len() == 1 && mine[0]["ended_at"].is_string()).then(|| mine[0].clone())
    })
    .unwrap_or_else(|| panic!("one session, ended at logout: {:#?}", f.sessions()));
    assert_eq!(ended["end_reason"], "logout");
    assert_eq!(ended["rhost"], "127.0.0.1");
}

#[test]
#[ignore = "needs root: real sshd and a throwaway user; run by scripts/test as root"]
fn revoked_user_is_refused() {
    let f = Fixture::start();
    let out = f.ssh("password", &[], Some("true"), "");
    assert!(out.status.success(), "{:?}\n{}", text(&out), f.log_text());

    f.sandbox.revoke("user", &f.user.name);
    for method in ["password", "keyboard-interactive"] {
        let out = f.ssh(method, &[], Some("echo LOGGED-IN"), "");
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{method}: {stdout}\n{stderr}");
        assert!(!stdout.contains("LOGGED-IN"), "{method}: {stdout}");
        assert!(
            stderr.contains(&format!("Access denied: user {} is revoked", f.user.name)),
            "{method}: the user is told why: {stderr}"
        );
    }
    assert!(
        f.log_text().contains(&format!(
            "Access denied for user {} by PAM account configuration",
            f.user.name
        )),
        "{}",
        f.log_text()
    );
    let sessions = f.sessions();
    assert_eq!(
        of_user(&sessions, &f.user.name).len(),
        1,
        "only the login before the revocation: {sessions:#?}"
    );
}
