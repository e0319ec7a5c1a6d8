//! Issue 12 end to end, through real libpam: two ways a local user could
//! walk around host enforcement, each shown failing.
//!
//! - **Two spellings, one account.** A throwaway user and an alias entry in
//!   /etc/passwd sharing its uid (`useradd --non-unique`): the name service
//!   resolves both names to one account. `curfew revoke user` of either
//!   spelling refuses a login under the other one (pamtester through
//!   pam_wrapper, so the service file stays in a private directory).
//! - **`on_unavailable: allow` in a setuid program.** A root-owned 4755 copy
//!   of pamtester, run by a throwaway unprivileged user against a service
//!   file /etc/pam.d/curfew-test-PID whose only account module is
//!   pam_curfew, with a policy that says `on_unavailable: allow` and a store
//!   that cannot be opened: the setuid run is refused; the same stack run by
//!   root (not setuid) is let through degraded, as the policy says.
//!
//! Both need root (users, a setuid file, /etc/pam.d). Every user and file
//! added is held by a guard that removes it, whatever the test did.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use curfew_e2e::common::{is_root, pam_module, write_file};
use curfew_e2e::pam::{of_user, text, AddedFile, PamSandbox};
use curfew_e2e::sshd::ThrowawayUser;
use serde_json::Value;

const POLICY: &str = "version: 1\nsession: { max_duration: 12h, inactivity: 30m }\n";

/// User management takes /etc/passwd's lock: one test at a time here.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A short name unique to this process and `tag` (useradd allows 32 bytes).
fn user_name(tag: &str) -> String {
    format!("cfw{tag}{}", std::process::id())
}

/// A throwaway user, an alias entry sharing its uid, and the sandbox
/// directory that holds their home. Fields drop in order: the alias entry
/// first, then the user, then the directory.
struct TwoSpellings {
    alias: ThrowawayUser,
    user: ThrowawayUser,
    _home: tempfile::TempDir,
}

impl TwoSpellings {
    fn create(tag: &str) -> TwoSpellings {
        let home = tempfile::tempdir().expect("tempdir for the home");
        let user = ThrowawayUser::create(&user_name(tag), home.path(), "unused-Passw0rd");
        let alias = user.alias(&user_name(&format!("{tag}a")));
        TwoSpellings {
            alias,
            user,
            _home: home,
        }
    }
}

fn assert_refused_as_revoked(sb: &PamSandbox, service: &str, login: &str, account: &str) {
    let out = sb.pamtester(service, login, &["acct_mgmt"]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "{login} must be refused: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("user {account} is revoked")),
        "the refusal names the account, not the spelling {login}: {stderr}"
    );
    let out = sb.pamtester(service, login, &["open_session"]);
    assert!(!out.status.success(), "{login}: {:?}", text(&out));
}

#[test]
#[ignore = "needs root: throwaway users and an alias passwd entry; run by scripts/test as root"]
fn a_revoked_account_cannot_log_in_under_another_spelling() {
    assert!(is_root(), "run as root (scripts/test does)");
    let _serial = serial();
    let names = TwoSpellings::create("sp");
    let (account, alias) = (names.user.name.as_str(), names.alias.name.as_str());
    assert_eq!(names.user.uid, names.alias.uid);

    // Revoking the account's own name refuses the alias spelling.
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-spelling", "");
    let out = sb.pamtester(
        "curfew-spelling",
        alias,
        &["acct_mgmt", "open_session", "close_session"],
    );
    assert!(out.status.success(), "before: {:?}", text(&out));
    let sessions = sb.sessions();
    assert!(
        of_user(&sessions, alias).is_empty() && of_user(&sessions, account).len() == 1,
        "the alias's login is recorded under the account name: {sessions:#?}"
    );
    sb.revoke("user", account);
    assert_refused_as_revoked(&sb, "curfew-spelling", alias, account);
    assert_refused_as_revoked(&sb, "curfew-spelling", account, account);
    // An unrelated account is not touched.
    let out = sb.pamtester("curfew-spelling", "daemon", &["acct_mgmt"]);
    assert!(out.status.success(), "daemon: {:?}", text(&out));

    // Revoking the alias spelling refuses the account (a fresh store).
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-spelling", "");
    let out = sb.pamtester("curfew-spelling", account, &["acct_mgmt"]);
    assert!(out.status.success(), "before: {:?}", text(&out));
    sb.revoke("user", alias);
    assert_refused_as_revoked(&sb, "curfew-spelling", account, account);
    assert_refused_as_revoked(&sb, "curfew-spelling", alias, account);
}

/// Whether the file system holding `path` honours setuid bits.
fn allows_setuid(path: &Path) -> bool {
    let st = nix::sys::statvfs::statvfs(path).expect("statvfs");
    !st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID)
}

/// The audit events in `file` (JSON lines), or none if it is missing.
fn audit_events(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn is_degraded(e: &Value) -> bool {
    e["event"] == "store_unavailable" && e["outcome"] == "degraded"
}

#[test]
#[ignore = "needs root: a setuid copy of pamtester, a throwaway user, /etc/pam.d; run by scripts/test as root"]
fn a_setuid_caller_cannot_turn_on_unavailable_allow_on() {
    assert!(is_root(), "run as root (scripts/test does)");
    let _serial = serial();
    // A store that cannot be opened (its directory does not exist), and a
    // policy that lets logins through unchecked when that happens.
    let sb = PamSandbox::new(POLICY);
    let missing = sb.dir.path().join("no-such-dir/state.db");
    let audit = sb.dir.path().join("audit.json");
    write_file(
        sb.dir.path(),
        "policy.yaml",
        &format!(
            "{POLICY}audit: {{ syslog: false, file: {} }}\n\
             store:\n  backend: sqlite\n  path: {}\n  on_unavailable: allow\n",
            audit.display(),
            missing.display()
        ),
    );

    // The setuid program: a root-owned 4755 copy of pamtester in a
    // directory others may enter but not change, on a file system without
    // nosuid (checked, not assumed).
    let bin_dir = tempfile::Builder::new()
        .prefix("curfew-setuid-")
        .tempdir()
        .expect("tempdir for the setuid copy");
    assert!(
        allows_setuid(bin_dir.path()),
        "{} is on a nosuid file system: a setuid program would not run setuid",
        bin_dir.path().display()
    );
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod the setuid directory");
    let pamtester = bin_dir.path().join("pamtester");
    std::fs::copy("/usr/bin/pamtester", &pamtester).expect("copy pamtester");
    std::os::unix::fs::chown(&pamtester, Some(0), Some(0)).expect("chown pamtester");
    std::fs::set_permissions(&pamtester, std::fs::Permissions::from_mode(0o4755))
        .expect("chmod 4755 pamtester");

    // The user's home lives in a directory it can reach; the user itself
    // only runs the setuid copy.
    let home_dir = tempfile::tempdir().expect("tempdir for the home");
    std::fs::set_permissions(home_dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod home dir");
    let home = home_dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir home");
    let user = ThrowawayUser::create(&user_name("su"), &home, "unused-Passw0rd");

    let service = format!("curfew-test-{}", std::process::id());
    let _service_file = AddedFile::create(
        &Path::new("/etc/pam.d").join(&service),
        &format!(
            "account required {} policy={}\n",
            pam_module().display(),
            sb.policy.display()
        ),
    );

    // Run by the unprivileged user, setuid root: refused.
    let out = Command::new(&pamtester)
        .args(["-v", &service, &user.name, "acct_mgmt"])
        .uid(user.uid)
        .gid(user.gid) // std drops supplementary groups when root sets uid
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run the setuid pamtester as the user");
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "a setuid caller must be refused: {stdout}\n{stderr}"
    );
    let events = audit_events(&audit);
    assert!(
        events.iter().any(|e| e["event"] == "login_refused"
            && e["user"] == user.name.as_str()
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("never applies to a setuid/setgid caller"))),
        "the audit file says why: {events:#?}\n{stdout}\n{stderr}"
    );
    assert!(
        !events.iter().any(is_degraded),
        "nothing was degraded for the setuid caller: {events:#?}"
    );

    // The same stack run by root, not setuid: let through degraded, as
    // `on_unavailable: allow` says.
    let out = Command::new("pamtester")
        .args(["-v", &service, &user.name, "acct_mgmt"])
        .stdin(Stdio::null())
        .output()
        .expect("run pamtester as root");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "root, not setuid, gets on_unavailable: allow: {stdout}\n{stderr}"
    );
    let events = audit_events(&audit);
    assert!(
        events
            .iter()
            .any(|e| is_degraded(e) && e["user"] == user.name.as_str()),
        "the degraded login is audited: {events:#?}"
    );
}
