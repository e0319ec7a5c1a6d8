//! What the sshd suites share: a throwaway user, /run/sshd, Debian's sshd
//! PAM stack with the module spliced in as examples/pam.d/sshd.snippet says,
//! and a free loopback port. Each guard undoes what it did when dropped.

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{pam_module, write_file, ChildGuard};
use crate::pam::{text, AddedFile};

/// A user created for the test; `userdel` when dropped.
pub struct ThrowawayUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

impl ThrowawayUser {
    /// Creates `name` (a system user with its own group, shell /bin/sh,
    /// home `home`, owned by it) with `password`.
    pub fn create(name: &str, home: &Path, password: &str) -> ThrowawayUser {
        // --system: no subordinate ids, no mail spool; --user-group: a group
        // of the same name, which userdel removes again. /bin/sh (dash) has
        // no TMOUT, so an idle shell is ended by the enforcer, not by itself.
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--shell",
                "/bin/sh",
                "--home-dir",
            ])
            .arg(home)
            .arg(name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd: {:?}", text(&out));
        let entry = nix::unistd::User::from_name(name)
            .expect("getpwnam")
            .expect("the new user exists");
        let user = ThrowawayUser {
            name: name.to_owned(),
            uid: entry.uid.as_raw(),
            gid: entry.gid.as_raw(),
        };
        let status = Command::new("chown")
            .arg(format!("{name}:{name}"))
            .arg(home)
            .status()
            .expect("chown home");
        assert!(status.success());
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("run chpasswd");
        {
            let mut stdin = chpasswd.stdin.take().expect("stdin");
            writeln!(stdin, "{name}:{password}").expect("write chpasswd");
        }
        assert!(chpasswd.wait().expect("wait chpasswd").success());
        user
    }
}

impl ThrowawayUser {
    /// Adds `alias`, a second /etc/passwd entry with this user's uid, gid
    /// and home (`useradd --non-unique`): another spelling of the same
    /// account, as an alias entry of a directory service would be. The
    /// account's canonical name stays this user's (`getpwuid` finds the
    /// first entry). `userdel` of the alias when dropped; drop it before
    /// this user.
    pub fn alias(&self, alias: &str) -> ThrowawayUser {
        let home = nix::unistd::User::from_name(&self.name)
            .expect("getpwnam")
            .expect("the user exists")
            .dir;
        let out = Command::new("useradd")
            .args([
                "--system",
                "--non-unique",
                "--no-create-home",
                "--no-user-group",
            ])
            .args([
                "--uid",
                &self.uid.to_string(),
                "--gid",
                &self.gid.to_string(),
            ])
            .args(["--shell", "/bin/sh", "--home-dir"])
            .arg(home)
            .arg(alias)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd {alias}: {:?}", text(&out));
        ThrowawayUser {
            name: alias.to_owned(),
            uid: self.uid,
            gid: self.gid,
        }
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        // The user's last process (an sshd session child) may still be
        // exiting: userdel refuses while it runs.
        for _ in 0..100 {
            match Command::new("userdel").arg(&self.name).output() {
                Ok(out) if out.status.success() => return,
                Ok(out) if out.status.code() == Some(6) => return, // no such user
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        eprintln!("could not remove user {}", self.name);
    }
}

/// /run/sshd (sshd's privilege separation directory), removed again if it
/// was made here.
pub struct RunDir {
    created: bool,
}

impl RunDir {
    /// Makes /run/sshd unless it exists.
    pub fn ensure() -> RunDir {
        let p = Path::new("/run/sshd");
        if p.exists() {
            return RunDir { created: false };
        }
        std::fs::create_dir(p).expect("mkdir /run/sshd");
        RunDir { created: true }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir("/run/sshd");
        }
    }
}

/// Debian's sshd stack with the snippet's lines where the snippet says:
/// account lines after `@include common-account`, session lines before
/// `@include common-session` (after pam_loginuid, so the session has its
/// audit session id when it is registered).
pub fn service_file(module: &Path, policy: &Path) -> String {
    let snippet_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pam.d/sshd.snippet");
    let snippet = std::fs::read_to_string(&snippet_path).expect("read sshd.snippet");
    let ours = |kind: &str| -> Vec<String> {
        snippet
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(kind))
            .map(|l| {
                l.replace("pam_curfew.so", &module.display().to_string())
                    .replace(
                        "policy=/etc/curfew/policy.yaml",
                        &format!("policy={}", policy.display()),
                    )
            })
            .collect()
    };
    let (account, session) = (ours("account"), ours("session"));
    assert!(!account.is_empty() && !session.is_empty(), "{snippet}");
    let debian = std::fs::read_to_string("/etc/pam.d/sshd").expect("read /etc/pam.d/sshd");
    let mut out = Vec::new();
    let (mut saw_account, mut saw_session) = (false, false);
    for line in debian.lines() {
        if line.trim() == "@include common-session" {
            out.extend(session.iter().cloned());
            saw_session = true;
        }
        out.push(line.to_owned());
        if line.trim() == "@include common-account" {
            out.extend(account.iter().cloned());
            saw_account = true;
        }
    }
    assert!(
        saw_account && saw_session,
        "/etc/pam.d/sshd is not Debian's: {debian}"
    );
    out.join("\n") + "\n"
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A loopback sshd made ready in a sandbox directory: a host key, an
/// `sshd_config` for password and keyboard-interactive logins of one user
/// on a free 127.0.0.1 port, sshd linked under the PAM service's name, the
/// service file under /etc/pam.d (Debian's stack with the module spliced in),
/// /run/sshd, and the throwaway user with its home. Each guard undoes its
/// part when dropped.
pub struct SshdSetup {
    /// The client's home (for `ssh -o UserKnownHostsFile=...`).
    pub client_home: PathBuf,
    /// The port sshd listens on.
    pub port: u16,
    config: PathBuf,
    link: PathBuf,
    /// /run/sshd, removed again if made here.
    pub run_dir: RunDir,
    /// The service file under /etc/pam.d.
    pub service_file: AddedFile,
    /// The user.
    pub user: ThrowawayUser,
}

impl SshdSetup {
    /// Prepares everything in `dir` (made searchable, not writable, by
    /// others, so the user reaches its home) for `user_name` logging in with
    /// `password` to the PAM service `service`, whose module reads `policy`.
    pub fn prepare(
        dir: &Path,
        policy: &Path,
        user_name: &str,
        service: &str,
        password: &str,
    ) -> SshdSetup {
        let home = dir.join("home");
        std::fs::create_dir(&home).expect("mkdir home");
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .expect("chmod sandbox");
        let client_home = dir.join("client");
        std::fs::create_dir(&client_home).expect("mkdir client home");
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join("host_key"))
            .status()
            .expect("ssh-keygen");
        assert!(keygen.success());
        let port = free_port();
        let config = write_file(
            dir,
            "sshd_config",
            &format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {}\n\
                 PidFile none\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication yes\n\
                 PubkeyAuthentication no\n\
                 PermitRootLogin no\n\
                 AllowUsers {user_name}\n\
                 AuthorizedKeysFile none\n\
                 StrictModes no\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 UseDNS no\n\
                 LogLevel VERBOSE\n",
                dir.join("host_key").display()
            ),
        );
        // OpenSSH takes its PAM service name from the name it runs under.
        let link = dir.join(service);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &link).expect("symlink sshd");
        let run_dir = RunDir::ensure();
        let service_file = AddedFile::create(
            &Path::new("/etc/pam.d").join(service),
            &service_file(&pam_module(), policy),
        );
        let user = ThrowawayUser::create(user_name, &home, password);
        SshdSetup {
            client_home,
            port,
            config,
            link,
            run_dir,
            service_file,
            user,
        }
    }

    /// The shell command that starts this sshd in the foreground (`-D -e`),
    /// for running it somewhere else than here (inside a namespace).
    pub fn shell_command(&self) -> String {
        format!("{} -D -e -f {}", self.link.display(), self.config.display())
    }

    /// Starts sshd in the foreground (`-D -e`), its output to `log`.
    pub fn spawn(&self, log: &Path) -> ChildGuard {
        let log_file = File::create(log).expect("create sshd log");
        let child = Command::new(&self.link)
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("start sshd");
        ChildGuard::new("sshd", child)
    }
}
