//! libpam_curfew.so through real libpam, with pam_wrapper: no root, nothing
//! under /etc. Each test has its own policy, store and service directory.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use curfew_e2e::common::{wait_for, write_file, ChildGuard};
use curfew_e2e::pam::{of_user, text, wrapper_start_lock, PamSandbox, PAM_MATRIX, PAM_SET_ITEMS};

const POLICY: &str = r#"
version: 1
session:
  timeout: { default: 5m }
  max_duration: 12h
  inactivity: 30m
banner:
  text: "Authorized use only. Activity is logged."
rules:
  - name: operators
    match: { groups: [man] }
    session: { inactivity: 10m, max_duration: 2h, timeout: { default: 1m } }
    banner: { text: "Operators: every command is recorded." }
"#;

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn banner_is_shown_at_open_session() {
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-banner", "");
    let out = sb.pamtester(
        "curfew-banner",
        "daemon",
        &["open_session", "close_session"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Authorized use only. Activity is logged."),
        "{stdout}\n{stderr}"
    );

    sb.standard_service("curfew-quiet", "no_banner");
    let out = sb.pamtester("curfew-quiet", "daemon", &["open_session", "close_session"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("Authorized use only"), "{stdout}");
}

#[test]
fn session_is_registered_listed_and_ended_by_close_session() {
    let sb = PamSandbox::new(POLICY);
    // pam_matrix's password prompt holds pamtester between open_session and
    // close_session, so the test can look at the live session.
    let passdb = write_file(sb.dir.path(), "passdb", "daemon:gate:curfew-life\n");
    sb.service(
        "curfew-life",
        &[
            format!("auth required {PAM_MATRIX} passdb={}", passdb.display()),
            sb.module_line("account", ""),
            format!("session required {PAM_SET_ITEMS}"),
            sb.module_line("session", ""),
        ],
    );
    let mut cmd = sb.pamtester_cmd(
        "curfew-life",
        "daemon",
        &["acct_mgmt", "open_session", "authenticate", "close_session"],
    );
    cmd.env("PAM_TTY", "/dev/pts/7")
        .env("PAM_RHOST", "192.0.2.10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = wrapper_start_lock();
    let mut pamtester = ChildGuard::new("pamtester", cmd.spawn().expect("spawn pamtester"));

    let live = wait_for(Duration::from_secs(60), || {
        sb.sessions().into_iter().find(|s| s["ended_at"].is_null())
    })
    .expect("open_session registers the session");
    drop(start);
    assert_eq!(live["kind"], "pam");
    assert_eq!(live["user"], "daemon");
    assert_eq!(live["service"], "curfew-life");
    assert_eq!(live["tty"], "/dev/pts/7");
    assert_eq!(live["rhost"], "192.0.2.10");
    assert_eq!(live["pid"], pamtester.pid());
    assert_eq!(live["timeout"], 300);
    assert!(live["started_at"].is_string());
    let hostname = nix::unistd::gethostname().expect("hostname");
    assert_eq!(live["host"], hostname.to_string_lossy().as_ref());
    let id = live["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 32);

    // The password lets pamtester go on to close_session.
    let mut stdin = pamtester.child.stdin.take().expect("stdin");
    stdin.write_all(b"gate\n").expect("write password");
    drop(stdin);
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut out = pamtester.child.stdout.take().expect("stdout");
    out.read_to_string(&mut stdout).expect("read stdout");
    let mut err = pamtester.child.stderr.take().expect("stderr");
    err.read_to_string(&mut stderr).expect("read stderr");
    let status = pamtester.child.wait().expect("wait pamtester");
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Authorized use only."), "{stdout}");

    let sessions = sb.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    let ended = &sessions[0];
    assert_eq!(ended["id"], id.as_str());
    assert_eq!(ended["end_reason"], "logout");
    assert!(ended["ended_at"].is_string());
}

#[test]
fn session_id_and_tmout_are_exported() {
    let sb = PamSandbox::new(POLICY);
    // TMOUT only with the `tmout` argument (issue 13: where the enforcer
    // runs, bash's TMOUT would contradict its warning).
    sb.standard_service("curfew-env", "tmout");
    let r = sb.pypamtest(
        "curfew-env",
        "daemon",
        &["OPEN_SESSION", "GETENVLIST", "CLOSE_SESSION"],
    );
    assert_eq!(r["env"]["TMOUT"], "1800", "{r}");
    let id = r["env"]["CURFEW_SESSION_ID"]
        .as_str()
        .expect("CURFEW_SESSION_ID");
    let sessions = sb.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], id);
    assert_eq!(sessions[0]["end_reason"], "logout");

    for (service, args) in [
        ("curfew-notmout", "no_tmout"),
        ("curfew-default", ""),
        ("curfew-both", "tmout no_tmout"),
    ] {
        sb.standard_service(service, args);
        let r = sb.pypamtest(service, "daemon", &["OPEN_SESSION", "GETENVLIST"]);
        assert!(r["env"].get("TMOUT").is_none(), "{args:?}: {r}");
        assert!(r["env"]["CURFEW_SESSION_ID"].is_string(), "{r}");
    }
}

#[test]
fn rule_values_are_applied_by_group_membership() {
    // `man`'s primary group is `man`, which the `operators` rule names;
    // `daemon` is in no group the policy names.
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-rules", "tmout");
    let ops = ["OPEN_SESSION", "GETENVLIST", "CLOSE_SESSION"];

    let man = sb.pypamtest("curfew-rules", "man", &ops);
    assert_eq!(man["env"]["TMOUT"], "600", "{man}");
    assert_eq!(
        man["info"][0], "Operators: every command is recorded.",
        "{man}"
    );

    let daemon = sb.pypamtest("curfew-rules", "daemon", &ops);
    assert_eq!(daemon["env"]["TMOUT"], "1800", "{daemon}");
    assert_eq!(
        daemon["info"][0], "Authorized use only. Activity is logged.",
        "{daemon}"
    );

    let sessions = sb.sessions();
    let man_sessions = of_user(&sessions, "man");
    let daemon_sessions = of_user(&sessions, "daemon");
    assert_eq!(man_sessions.len(), 1);
    assert_eq!(daemon_sessions.len(), 1);
    assert_eq!(man_sessions[0]["timeout"], 60, "the rule's timeout.default");
    assert_eq!(
        daemon_sessions[0]["timeout"], 300,
        "the top-level timeout.default"
    );
}

#[test]
fn revoked_user_is_denied_and_others_are_not() {
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-revoke", "");
    let out = sb.pamtester("curfew-revoke", "daemon", &["acct_mgmt"]);
    assert!(out.status.success(), "{:?}", text(&out));

    sb.revoke("user", "daemon");
    let out = sb.pamtester("curfew-revoke", "daemon", &["acct_mgmt"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(
        stderr.contains("Access denied: user daemon is revoked"),
        "the conversation carries the reason: {stderr}"
    );
    let out = sb.pamtester("curfew-revoke", "daemon", &["open_session"]);
    assert!(!out.status.success(), "{:?}", text(&out));

    let out = sb.pamtester(
        "curfew-revoke",
        "bin",
        &["acct_mgmt", "open_session", "close_session"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let sessions = sb.sessions();
    assert!(of_user(&sessions, "daemon").is_empty(), "{sessions:#?}");
    assert_eq!(of_user(&sessions, "bin").len(), 1);
}

/// Issue 14: `curfew unrevoke` lets new logins in and never revives the
/// session the revocation ended: through real libpam, a session opened
/// before the revocation is still revoked after the unrevoke (the decision
/// the enforcer's next pass takes, as `sessions list` shows it), while a
/// new login and session work.
#[test]
fn unrevoke_lets_new_logins_in_and_the_old_session_stays_ended() {
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-unrevoke", "");
    let out = sb.pamtester("curfew-unrevoke", "daemon", &["acct_mgmt", "open_session"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let sessions = sb.sessions();
    let old = of_user(&sessions, "daemon");
    assert_eq!(old.len(), 1, "{sessions:#?}");
    let old_id = old[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(old[0]["state"]["state"], "live", "{sessions:#?}");

    sb.revoke("user", "daemon");
    let policy = sb.policy.to_str().expect("utf-8");
    let out = curfew_e2e::common::curfew(&[
        "revocations",
        "list",
        "--policy",
        policy,
        "--format",
        "json",
    ]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rid = list[0]["id"].as_str().expect("an id").to_owned();
    let out = curfew_e2e::common::curfew(&["unrevoke", &rid, "--policy", policy]);
    assert!(out.status.success(), "{:?}", text(&out));

    let out = sb.pamtester(
        "curfew-unrevoke",
        "daemon",
        &["acct_mgmt", "open_session", "close_session"],
    );
    assert!(out.status.success(), "a new login works: {:?}", text(&out));
    let sessions = sb.sessions();
    let old = sessions
        .iter()
        .find(|s| s["id"] == old_id.as_str())
        .expect("the old session");
    assert_eq!(old["state"]["state"], "revoked", "{old:#}");
    assert_eq!(old["state"]["revocation_id"], rid.as_str());
    let new: Vec<_> = of_user(&sessions, "daemon")
        .into_iter()
        .filter(|s| s["id"] != old_id.as_str())
        .collect();
    assert_eq!(new.len(), 1, "{sessions:#?}");
    assert_eq!(new[0]["end_reason"], "logout", "{sessions:#?}");
}

#[test]
fn revoked_service_is_denied_for_everyone_on_it() {
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-svc-a", "");
    sb.standard_service("curfew-svc-b", "");
    sb.revoke("client", "curfew-svc-a");
    let out = sb.pamtester("curfew-svc-a", "bin", &["acct_mgmt"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("client curfew-svc-a is revoked"),
        "{stderr}"
    );
    let out = sb.pamtester("curfew-svc-b", "bin", &["acct_mgmt"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn invalid_policy_denies_and_the_log_names_the_file() {
    // on_unavailable: allow does not help: an invalid policy cannot say so.
    let sb = PamSandbox::with_store_options(
        &POLICY.replace("inactivity: 30m", "inactivity: 3h"),
        "on_unavailable: allow",
    );
    sb.standard_service("curfew-invalid", "");
    for op in ["acct_mgmt", "open_session"] {
        let out = sb.pamtester("curfew-invalid", "daemon", &[op]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{op}: {stdout}\n{stderr}");
        assert!(stderr.contains("System error"), "{op}: {stderr}");
        let policy = sb.policy.display().to_string();
        assert!(
            stderr.lines().any(|l| l.contains("SYSLOG(3)")
                && l.contains(&policy)
                && l.contains("session.inactivity")),
            "{op}: the log line names the file and the field: {stderr}"
        );
    }
    assert!(!sb.store.exists(), "no store was opened");
}

#[test]
fn unreadable_policy_denies() {
    let sb = PamSandbox::new(POLICY);
    std::fs::remove_file(&sb.policy).expect("rm policy");
    sb.standard_service("curfew-missing", "");
    let out = sb.pamtester("curfew-missing", "daemon", &["acct_mgmt"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("System error"), "{stderr}");
    let policy = sb.policy.display().to_string();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("SYSLOG(3)") && l.contains(&policy) && l.contains("No such file")),
        "{stderr}"
    );
}

#[test]
fn world_or_group_writable_policy_is_refused() {
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-perms", "");
    for (mode, why) in [
        (0o666, "writable by everyone"),
        (0o664, "writable by group"),
    ] {
        chmod(&sb.policy, mode);
        let out = sb.pamtester("curfew-perms", "daemon", &["acct_mgmt"]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "mode {mode:o}: {stderr}");
        assert!(stderr.contains("System error"), "{stderr}");
        assert!(stderr.contains(why), "mode {mode:o}: {stderr}");
    }
    chmod(&sb.policy, 0o644);
    let out = sb.pamtester("curfew-perms", "daemon", &["acct_mgmt"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// Issue 12: a policy that others could replace (its directory writable by
/// others, sticky or not; a symbolic link leading there) is refused like
/// an invalid one, even with `on_unavailable: allow`, and the log names
/// the file and the reason. A link between safe places is followed.
#[test]
fn a_policy_in_an_unsafe_place_is_refused_with_the_file_and_the_reason() {
    let sb = PamSandbox::with_store_options(POLICY, "on_unavailable: allow");
    let open = sb.dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir open");
    chmod(&open, 0o1777);
    let body = std::fs::read_to_string(&sb.policy).expect("read policy");
    let in_open = write_file(&open, "policy.yaml", &body);
    let link = sb.dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&in_open, &link).expect("symlink");
    let safe_link = sb.dir.path().join("safe-link.yaml");
    std::os::unix::fs::symlink(&sb.policy, &safe_link).expect("symlink");
    let line = |policy: &std::path::Path| {
        sb.module_line("account", "").replace(
            &sb.policy.display().to_string(),
            &policy.display().to_string(),
        )
    };
    let because = format!("directory {} is writable by everyone", open.display());
    for (service, policy, why) in [
        (
            "curfew-place-dir",
            in_open.clone(),
            format!("its {because}"),
        ),
        (
            "curfew-place-link",
            link.clone(),
            format!(
                "it leads (by symbolic link) to {}, whose {because}",
                in_open.display()
            ),
        ),
    ] {
        sb.service(service, &[line(&policy)]);
        let out = sb.pamtester(service, "daemon", &["acct_mgmt"]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{service}: {stderr}");
        assert!(stderr.contains("System error"), "{service}: {stderr}");
        let named = format!("{}: refusing to use it: {why}", policy.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("SYSLOG(3)") && l.contains(&named)),
            "{service}: the log line names the file and the reason ({named}): {stderr}"
        );
    }
    sb.service("curfew-place-safe", &[line(&safe_link)]);
    let out = sb.pamtester("curfew-place-safe", "daemon", &["acct_mgmt"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn world_writable_store_is_refused_even_with_on_unavailable_allow() {
    let sb = PamSandbox::with_store_options(POLICY, "on_unavailable: allow");
    sb.standard_service("curfew-store-perms", "");
    let out = sb.pamtester("curfew-store-perms", "daemon", &["acct_mgmt"]);
    assert!(out.status.success(), "{:?}", text(&out));
    chmod(&sb.store, 0o666);
    let out = sb.pamtester("curfew-store-perms", "daemon", &["acct_mgmt"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    // The message names the file and the reason (issue 12, class 6).
    assert!(
        stderr.contains(&format!("{}: refusing to use it", sb.store.display()))
            && stderr.contains("by everyone"),
        "{stderr}"
    );
}

#[test]
fn unreachable_store_answers_as_on_unavailable_says() {
    let missing_dir = "/nonexistent-curfew-dir/state.db";
    let deny = PamSandbox::new(POLICY);
    let body = POLICY.to_owned();
    let text_deny = format!("{body}\nstore:\n  path: {missing_dir}\n");
    write_file(deny.dir.path(), "policy.yaml", &text_deny);
    deny.standard_service("curfew-down", "");
    let out = deny.pamtester("curfew-down", "daemon", &["acct_mgmt"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("System error"), "{stderr}");
    assert!(
        stderr.contains("on_unavailable: deny") && stderr.contains(missing_dir),
        "{stderr}"
    );

    let allow = PamSandbox::new(POLICY);
    let text_allow = format!("{body}\nstore:\n  path: {missing_dir}\n  on_unavailable: allow\n");
    write_file(allow.dir.path(), "policy.yaml", &text_allow);
    allow.standard_service("curfew-down", "tmout");
    let r = allow.pypamtest(
        "curfew-down",
        "daemon",
        &["ACCOUNT", "OPEN_SESSION", "GETENVLIST", "CLOSE_SESSION"],
    );
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["env"]["TMOUT"], "1800", "limits still apply: {r}");
    assert!(
        r["env"].get("CURFEW_SESSION_ID").is_none(),
        "nothing registered: {r}"
    );
}

#[test]
fn the_module_stacks_with_others_in_one_service() {
    // The account line alongside pam_permit, as in a real stack; unknown
    // options are logged and ignored.
    let sb = PamSandbox::new(POLICY);
    sb.service(
        "curfew-stacked",
        &[
            "account required pam_permit.so".into(),
            sb.module_line("account", "frobnicate"),
            format!("session required {PAM_SET_ITEMS}"),
            "session required pam_permit.so".into(),
            sb.module_line("session", "debug"),
        ],
    );
    let out = sb.pamtester(
        "curfew-stacked",
        "daemon",
        &["acct_mgmt", "open_session", "close_session"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("unknown option \"frobnicate\""), "{stderr}");
    assert!(stderr.contains("SYSLOG(7)"), "debug lines: {stderr}");
}

#[test]
fn every_pam_d_snippet_loads_and_works() {
    // The lines of examples/pam.d/*.snippet, with the built module and the
    // sandbox's policy in place of the installed ones.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pam.d");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/pam.d") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("snippet") {
            continue;
        }
        seen += 1;
        let sb = PamSandbox::new(POLICY);
        let snippet = std::fs::read_to_string(&path).expect("read snippet");
        let lines: Vec<String> = snippet
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                l.replace(
                    "pam_curfew.so",
                    &curfew_e2e::common::pam_module().display().to_string(),
                )
                .replace(
                    "policy=/etc/curfew/policy.yaml",
                    &format!("policy={}", sb.policy.display()),
                )
            })
            .collect();
        assert!(
            lines.iter().any(|l| l.starts_with("account"))
                && lines.iter().any(|l| l.starts_with("session")),
            "{}: {lines:?}",
            path.display()
        );
        sb.service("snippet", &lines);
        let out = sb.pamtester(
            "snippet",
            "daemon",
            &["acct_mgmt", "open_session", "close_session"],
        );
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{}: {stdout}\n{stderr}",
            path.display()
        );
        assert!(stdout.contains("Authorized use only."), "{stdout}");
        let sessions = sb.sessions();
        assert_eq!(sessions.len(), 1, "{}", path.display());
        assert_eq!(sessions[0]["end_reason"], "logout");
    }
    assert!(seen >= 2, "sshd and login snippets");
}

#[test]
fn logins_in_many_processes_keep_the_wal_short_and_lose_nothing() {
    // Each pamtester keeps its store connection until it exits and never
    // closes it (Lifetime::UntilExit): nothing is checkpointed at close, so
    // the WAL must stay bounded by the connection's own checkpoints, and
    // every login must be registered and ended all the same.
    let sb = PamSandbox::new(POLICY);
    sb.standard_service("curfew-many", "");
    let wal = sb.dir.path().join("state.db-wal");
    let mut largest = 0;
    let logins = 60;
    for _ in 0..logins {
        let out = sb.pamtester(
            "curfew-many",
            "daemon",
            &["acct_mgmt", "open_session", "close_session"],
        );
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    // SHORT_WAL_PAGES frames of one 4 KiB page and a 24-byte header, plus
    // one login's worth (< 16 pages) written before the checkpoint runs.
    let bound = u64::from(curfew_policy::store::SHORT_WAL_PAGES + 16) * (4096 + 24) + 32;
    assert!(largest > 0, "the WAL is kept between processes");
    assert!(
        largest <= bound,
        "the WAL reached {largest} bytes (bound {bound})"
    );
    let sessions = sb.sessions();
    let mine = of_user(&sessions, "daemon");
    assert_eq!(mine.len(), logins, "every login is registered");
    assert!(
        mine.iter().all(|s| s["end_reason"] == "logout"),
        "every login is ended: {mine:?}"
    );
}
