//! `curfew policy explain` asks the question the PAM module asks, the same
//! way (issue 11): the same user resolution (an alias passwd entry is its
//! account), the same admission kernel (revocations of the account, the
//! store failure table), checked against real libpam (pamtester through
//! pam_wrapper) on the same policy.
//!
//! Needs root (a throwaway user and an alias entry, and explain answers
//! from the store as root does); every user added is held by a guard that
//! removes it.

use std::sync::{Mutex, MutexGuard};

use curfew_e2e::common::{curfew, is_root, write_file};
use curfew_e2e::pam::{text, PamSandbox};
use curfew_e2e::sshd::ThrowawayUser;
use serde_json::Value;

const SERVICE: &str = "curfew-explain";

/// User management takes /etc/passwd's lock: one test at a time here.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A short name unique to this process and `tag` (useradd allows 32 bytes).
fn user_name(tag: &str) -> String {
    format!("cfx{tag}{}", std::process::id())
}

/// `curfew policy explain --format json` with `args`.
fn explain(policy: &std::path::Path, args: &[&str]) -> Value {
    let policy = policy.to_str().expect("utf-8 path");
    let mut all = vec!["policy", "explain", "--policy", policy, "--format", "json"];
    all.extend_from_slice(args);
    let out = curfew(&all);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "curfew {all:?}: {stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{stdout:?}: {e}"))
}

/// The same, as text.
fn explain_text(policy: &std::path::Path, args: &[&str]) -> String {
    let policy = policy.to_str().expect("utf-8 path");
    let mut all = vec!["policy", "explain", "--policy", policy];
    all.extend_from_slice(args);
    let out = curfew(&all);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "curfew {all:?}: {stdout}\n{stderr}");
    stdout
}

#[test]
#[ignore = "needs root: a throwaway user and an alias passwd entry; run by scripts/test as root"]
fn explain_resolves_an_alias_to_its_account_as_the_pam_module_does() {
    assert!(is_root(), "run as root (scripts/test does)");
    let _serial = serial();
    let home = tempfile::tempdir().expect("tempdir for the home");
    let user = ThrowawayUser::create(&user_name("u"), home.path(), "unused-Passw0rd");
    let alias = user.alias(&user_name("ua"));
    let (account, spelling) = (user.name.as_str(), alias.name.as_str());

    // A rule on the account name: PAM applies it to the alias's login.
    let sb = PamSandbox::new(&format!(
        "version: 1\nsession: {{ max_duration: 12h, inactivity: 30m }}\n\
         rules:\n  - name: by-account\n    match: {{ users: [{account}] }}\n    \
         session: {{ inactivity: 5m }}\n"
    ));
    sb.standard_service(SERVICE, "");
    let v = explain(&sb.policy, &["--user", spelling, "--service", SERVICE]);
    assert_eq!(v["account"]["login"], spelling, "{v:#}");
    assert_eq!(v["account"]["user"], account, "{v:#}");
    assert_eq!(v["account"]["alias"], true, "{v:#}");
    assert_eq!(v["subject"]["user"], account, "{v:#}");
    assert_eq!(v["rule"], "by-account", "{v:#}");
    assert_eq!(v["values"]["inactivity"]["seconds"], 300, "{v:#}");
    assert_eq!(v["store"]["consulted"], true, "{v:#}");
    assert_eq!(v["admission"]["admission"], "allow", "{v:#}");
    let out = sb.pamtester(SERVICE, spelling, &["acct_mgmt"]);
    assert!(out.status.success(), "PAM agrees: {:?}", text(&out));
    let t = explain_text(&sb.policy, &["--user", spelling, "--service", SERVICE]);
    assert!(
        t.contains(&format!("{spelling} is the account {account}")),
        "{t}"
    );
    assert!(t.contains("a new login now: allowed"), "{t}");

    // The account revoked: explain for the alias says refused, as PAM does.
    sb.revoke("user", account);
    let v = explain(&sb.policy, &["--user", spelling, "--service", SERVICE]);
    assert_eq!(v["admission"]["admission"], "deny", "{v:#}");
    assert_eq!(v["admission"]["reason"], "revoked", "{v:#}");
    assert_eq!(v["admission"]["target"], format!("user {account}"), "{v:#}");
    let out = sb.pamtester(SERVICE, spelling, &["acct_mgmt"]);
    assert!(!out.status.success(), "PAM agrees: {:?}", text(&out));

    // A user's own token lifetime set under the alias spelling is the
    // account's, the one PAM records (a fresh store, no revocation).
    let sb = PamSandbox::new("version: 1\nsession: { timeout: { min: 1m, max: 2h } }\n");
    let policy = sb.policy.to_str().expect("utf-8 path");
    let out = curfew(&[
        "timeout", "set", "--policy", policy, "--user", spelling, "45m",
    ]);
    assert!(out.status.success(), "timeout set: {:?}", text(&out));
    let out = curfew(&[
        "timeout", "show", "--policy", policy, "--user", account, "--format", "json",
    ]);
    assert!(out.status.success(), "timeout show: {:?}", text(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["timeout"], 2700, "{shown:#}");
    assert_eq!(shown["user"], account, "{shown:#}");
    drop(alias);
}

#[test]
#[ignore = "needs root: explain answers as the PAM module (root) would; run by scripts/test as root"]
fn explain_without_a_store_still_explains_and_gives_the_failure_tables_verdict() {
    assert!(is_root(), "run as root (scripts/test does)");
    let _serial = serial();
    for (on_unavailable, admission, pam_ok) in
        [("deny", "unusable", false), ("allow", "degraded", true)]
    {
        let sb = PamSandbox::new("version: 1\n");
        sb.standard_service(SERVICE, "");
        let missing = sb.dir.path().join("no-such-dir").join("state.db");
        let policy = write_file(
            sb.dir.path(),
            "policy.yaml",
            &format!(
                "version: 1\nsession: {{ max_duration: 12h, inactivity: 30m }}\n\
                 rules:\n  - name: root-rule\n    match: {{ users: [root] }}\n    \
                 session: {{ inactivity: 7m }}\n\
                 store:\n  backend: sqlite\n  path: {}\n  on_unavailable: {on_unavailable}\n",
                missing.display()
            ),
        );
        let v = explain(&policy, &["--user", "root", "--service", SERVICE]);
        assert_eq!(v["rule"], "root-rule", "{v:#}");
        assert_eq!(v["values"]["inactivity"]["seconds"], 420, "{v:#}");
        assert_eq!(v["store"]["consulted"], false, "{v:#}");
        assert_eq!(v["store"]["on_unavailable"], on_unavailable, "{v:#}");
        assert!(
            v["store"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no-such-dir")),
            "{v:#}"
        );
        assert_eq!(v["admission"]["admission"], admission, "{v:#}");
        let t = explain_text(&policy, &["--user", "root", "--service", SERVICE]);
        assert!(t.contains("store:   NOT consulted"), "{t}");
        let expect = if pam_ok {
            "a new login now: let through WITHOUT checking revocations"
        } else {
            "a new login now: refused (PAM_SYSTEM_ERR)"
        };
        assert!(t.contains(expect), "{t}");
        // The PAM module on the same policy does what explain said.
        let out = sb.pamtester(SERVICE, "root", &["acct_mgmt"]);
        assert_eq!(
            out.status.success(),
            pam_ok,
            "on_unavailable {on_unavailable}: {:?}",
            text(&out)
        );
    }
}
