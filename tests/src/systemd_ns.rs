//! A real systemd (with dbus, journald and systemd-logind) booted as PID 1
//! of private PID, mount, UTS, IPC and network namespaces, for tests that
//! need logind or unit supervision (the recipe in the project's notes:
//! "A real systemd-logind for tests, in private namespaces").
//!
//! Inside, `/run` and `/tmp` are private tmpfs mounts and the network has
//! only its own loopback; everything else (/etc, /usr, /var, the build
//! directory) is the host's. Put what both sides need under a directory
//! made with [`shared_dir`] (under /var/tmp, removed when dropped).
//! Dropping the [`SystemdNs`] kills the namespace's PID 1 with SIGKILL: the
//! kernel then ends every process in the namespace, and the mounts go with
//! it. Needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{wait_for, ChildGuard};

/// A directory under /var/tmp that both the host and the namespace see
/// (the namespace has its own /tmp), mode 0755, removed when dropped.
pub fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("curfew-ns-")
        .tempdir_in("/var/tmp")
        .expect("tempdir in /var/tmp");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod shared dir");
    dir
}

/// A command's stdout and stderr, one after the other, for messages.
pub fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A booted systemd in its own namespaces; killed when dropped.
pub struct SystemdNs {
    unshare: ChildGuard,
    /// PID (in the host's PID namespace) of the namespace's systemd.
    pub pid1: u32,
    /// Units written under the private /run/systemd/system before boot.
    _dir: PathBuf,
    /// What /var/tmp held before boot: the private temporary directories
    /// systemd makes there for its services (`systemd-private-*`) are
    /// removed again after the namespace is gone.
    var_tmp_before: Vec<std::ffi::OsString>,
}

fn var_tmp_entries() -> Vec<std::ffi::OsString> {
    std::fs::read_dir("/var/tmp")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// The minimal target: only dbus, journald, logind and the user-sessions
/// service (without which /run/nologin refuses non-root logins), plus what
/// the caller adds with `extra_units`.
const TARGET: &str = "[Unit]\n\
Description=curfew test target\n\
Requires=dbus.socket systemd-logind.service systemd-journald.socket systemd-user-sessions.service\n\
After=dbus.socket systemd-logind.service systemd-user-sessions.service\n\
AllowIsolate=yes\n";

impl SystemdNs {
    /// Boots systemd into `curfew-test.target`. `extra_units` are
    /// `(file name, contents)` pairs written to the private
    /// /run/systemd/system before systemd starts (a service to supervise,
    /// say); `scratch` is a directory under [`shared_dir`] for the boot
    /// script. Waits until logind answers.
    pub fn boot(scratch: &Path, extra_units: &[(&str, &str)]) -> SystemdNs {
        let var_tmp_before = var_tmp_entries();
        let mut script = String::from(
            "set -e\n\
             mount --make-rprivate /\n\
             mount -t tmpfs tmpfs /run\n\
             mkdir -p /run/lock /run/systemd/system /run/sshd\n\
             mount -t tmpfs tmpfs /tmp\n",
        );
        let mut units = vec![("curfew-test.target", TARGET)];
        units.extend_from_slice(extra_units);
        for (name, text) in &units {
            script.push_str(&format!(
                "cat > /run/systemd/system/{name} <<'CURFEW_UNIT_EOF'\n{text}\nCURFEW_UNIT_EOF\n"
            ));
        }
        script.push_str("exec /lib/systemd/systemd --system --unit=curfew-test.target\n");
        let boot = scratch.join("boot.sh");
        std::fs::write(&boot, script).expect("write boot.sh");
        let child = Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--mount",
                "--uts",
                "--ipc",
                "--net",
                "--mount-proc",
                "sh",
            ])
            .arg(&boot)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unshare");
        let unshare = ChildGuard::new("unshare", child);
        let pid1 = wait_for(Duration::from_secs(10), || {
            let children = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                unshare.pid(),
                unshare.pid()
            ))
            .ok()?;
            let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "systemd").then_some(pid)
        })
        .expect("systemd did not start in the namespace");
        let ns = SystemdNs {
            unshare,
            pid1,
            _dir: scratch.to_owned(),
            var_tmp_before,
        };
        let up = wait_for(Duration::from_secs(30), || {
            let out =
                ns.run("systemctl is-active systemd-logind.service systemd-user-sessions.service");
            out.status.success().then_some(())
        });
        assert!(
            up.is_some(),
            "logind did not come up in the namespace: {}",
            all_text(&ns.run("systemctl --no-pager status; journalctl --no-pager -n 50"))
        );
        let lo = ns.run("ip link set lo up");
        assert!(lo.status.success(), "ip link set lo up: {}", all_text(&lo));
        ns
    }

    /// A command line for `sh -c CMD` inside every namespace of PID 1.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid1.to_string(), "-a", "sh", "-c", cmd]);
        c
    }

    /// Runs `sh -c CMD` inside and waits for it.
    pub fn run(&self, cmd: &str) -> Output {
        self.command(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }
}

impl Drop for SystemdNs {
    fn drop(&mut self) {
        // SIGKILL to the namespace's PID 1 ends every process in it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid1 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.child.wait();
        for name in var_tmp_entries() {
            let private = name.to_string_lossy().starts_with("systemd-private-");
            if private && !self.var_tmp_before.contains(&name) {
                let _ = std::fs::remove_dir_all(Path::new("/var/tmp").join(&name));
            }
        }
    }
}
