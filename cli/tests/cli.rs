//! The `curfew` binary, driven as an administrator would: separate processes
//! against one SQLite store, so every state change survives a restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::Utc;
use curfew_policy::store::SqliteStore;
use curfew_policy::{Session, SessionKind, Store};

struct Env {
    dir: tempfile::TempDir,
    policy: PathBuf,
}

impl Env {
    fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        let text = format!(
            "version: 1\nsession: {{ inactivity: 20m }}\nbanner: {{ text: \"hello\" }}\nrules:\n  - name: admins\n    match: {{ groups: [wheel], services: [sshd] }}\n    session: {{ inactivity: 10m, max_duration: 8h }}\nstore: {{ path: {} }}\n{extra}",
            dir.path().join("state.db").display()
        );
        std::fs::write(&policy, text).unwrap();
        Env { dir, policy }
    }

    fn run(&self, args: &[&str]) -> Output {
        curfew(&self.policy, args, None)
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("state.db")).unwrap()
    }
}

fn curfew(policy: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_curfew"));
    cmd.arg("--policy").arg(policy).args(args);
    cmd.env_remove("CURFEW_POLICY")
        .env_remove("CURFEW_STORE_PATH");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "check"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn policy_check_accepts_every_example() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let o = check(&p);
            assert!(
                o.status.success(),
                "{}: {}{}",
                p.display(),
                stdout(&o),
                stderr(&o)
            );
            assert!(stdout(&o).ends_with(": valid\n"));
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn policy_check_rejects_with_file_line_col_path() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("version: 1\nsession:\n  inactivity: 2h1s\n", "bad.yaml:3:15: session.inactivity: 2h 1s exceeds the ceiling of 2h"),
        ("version: 1\nsession:\n  max_duration: 24h1s\n", "bad.yaml:3:17: session.max_duration: 24h 1s exceeds the ceiling of 24h"),
        ("version: 1\nsession:\n  timeout: { min: 29s }\n", "bad.yaml:3:19: session.timeout.min: 29s is below the floor of 30s"),
        ("version: 1\nsession:\n  timeout: { max: 2147483s }\n", "bad.yaml:3:19: session.timeout.max: 24d 20h 31m 23s exceeds the ceiling"),
        ("version: 1\nsession:\n  timeout: { default: 1h, max: 30m }\n", "bad.yaml:3:23: session.timeout.default: timeout.default 1h is outside timeout.min..timeout.max (30s..30m)"),
        ("version: 1\nsesion: {}\n", "bad.yaml:2:1: unknown field `sesion`"),
        ("version: 1\nsession:\n  inactivity: soon\n", "bad.yaml:3:15: session.inactivity: \"soon\" is not a duration"),
        ("version: 1\nsession: [\n", "bad.yaml:3:1: "),
    ];
    for (text, expected) in cases {
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, text).unwrap();
        let o = check(&f);
        assert_eq!(o.status.code(), Some(1), "{text:?}");
        let out = stdout(&o).replace(&format!("{}/", dir.path().display()), "");
        assert!(
            out.starts_with(expected),
            "{text:?}\n got: {out}\nwant: {expected}"
        );
        assert!(stderr(&o).contains("1 problem"), "{}", stderr(&o));
    }
}

#[test]
fn policy_check_json_and_world_writable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::write(
        &f,
        "version: 1\nsession: { inactivity: 3h, max_duration: 25h }\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "check", "--format", "json"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 2);
    assert_eq!(v["errors"][0]["path"], "session.inactivity");
    assert_eq!(v["errors"][0]["line"], 2);

    std::fs::write(&f, "version: 1\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A draft named on the command line: valid, with a warning.
    let o = check(&f);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("warning: ") && stdout(&o).contains("writable by everyone"),
        "{}",
        stdout(&o)
    );
    // The policy in force (--policy): a problem, as the PAM module says.
    let o = curfew(&f, &["policy", "check", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(
        v["file_errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("writable by everyone")),
        "{v}"
    );
}

/// Issue 12: a policy whose directory others can write (sticky or not) is
/// refused where it decides; `policy check` of a draft there only warns.
#[test]
fn policy_check_of_a_draft_in_an_unsafe_place_warns_the_policy_in_force_fails() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("tmp");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let f = open.join("draft.yaml");
    std::fs::write(&f, "version: 1\n").unwrap();
    let o = check(&f);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let want = format!(
        "warning: {}: refusing to use it: its directory {} is writable by everyone",
        f.display(),
        open.display()
    );
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    assert!(stdout(&o).ends_with(": valid\n"), "{}", stdout(&o));

    let o = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "check", "--format", "json"])
        .arg(&f)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert!(
        v["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("sticky bit or not")),
        "{v}"
    );

    let o = curfew(&f, &["policy", "check"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&want["warning: ".len()..]),
        "{}",
        stdout(&o)
    );
    // Commands that decide refuse it too.
    let o = curfew(
        &f,
        &["policy", "explain", "--user", "alice", "--group", "x"],
        None,
    );
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("writable by everyone"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explain_names_each_source() {
    let env = Env::new("");
    let o = env.run(&[
        "policy",
        "explain",
        "--user",
        "alice",
        "--group",
        "wheel",
        "--service",
        "sshd",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rule"], "admins");
    assert_eq!(v["values"]["inactivity"]["seconds"], 600);
    assert_eq!(v["values"]["inactivity"]["source"]["kind"], "rule");
    assert_eq!(v["values"]["inactivity"]["source"]["name"], "admins");
    assert_eq!(v["values"]["max_duration"]["value"], "8h");
    assert_eq!(v["values"]["timeout.default"]["source"]["kind"], "builtin");
    assert_eq!(v["banner"]["value"], "hello");
    assert_eq!(v["banner"]["source"]["kind"], "policy");
    assert_eq!(
        v["activity"]["value"],
        serde_json::json!(["input", "output", "traffic"])
    );
    assert_eq!(v["activity"]["source"]["kind"], "builtin");
    assert_eq!(v["values"]["remember_me.inactivity"]["value"], "3d");

    let o = env.run(&[
        "policy",
        "explain",
        "--user",
        "bob",
        "--group",
        "users",
        "--service",
        "sshd",
    ]);
    let out = stdout(&o);
    assert!(out.contains("none matched"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("activity")
            && l.contains("[input, output, traffic]")
            && l.contains("built-in default")),
        "{out}"
    );
    assert!(
        out.contains("with a terminal:") && out.contains("running build (output)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("inactivity") && l.contains("20m") && l.contains("policy")),
        "{out}"
    );
}

#[test]
fn revoke_list_unrevoke_across_processes() {
    let env = Env::new("");
    let o = env.run(&[
        "revoke",
        "user",
        "alice",
        "--reason",
        "offboarding",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = rev["id"].as_str().unwrap().to_owned();
    assert_eq!(rev["target"]["kind"], "user");
    assert_eq!(rev["expires_at"], serde_json::Value::Null);

    let o = env.run(&["revoke", "client", "ci", "--expires", "2h"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("the lock lifts at"));

    // A new process sees both; the store file is the only shared state.
    let o = env.run(&["revocations", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["reason"], "offboarding");
    assert!(list[1]["expires_at"].is_string());

    let text = stdout(&env.run(&["revocations", "list"]));
    assert!(
        text.contains("user alice") && text.contains("locked"),
        "{text}"
    );

    let o = env.run(&["unrevoke", &id]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("stay ended"), "{}", stdout(&o));
    let o = env.run(&["unrevoke", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("had already lifted"), "{}", stdout(&o));
    let o = env.run(&["unrevoke", "nosuchid"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no revocation"), "{}", stderr(&o));
    // Lifted, not forgotten: the record stays, its lock lifted at the
    // unrevoke, so the sessions it ended stay ended (issue 14).
    let list: serde_json::Value =
        serde_json::from_slice(&env.run(&["revocations", "list", "--format", "json"]).stdout)
            .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[0]["expires_at"].is_string(), "{list}");
    let text = stdout(&env.run(&["revocations", "list"]));
    assert!(
        text.lines()
            .any(|l| l.contains("user alice") && l.contains("lifted")),
        "{text}"
    );

    // Revoking an unknown session is refused (typo protection).
    let o = env.run(&["revoke", "session", "deadbeef"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no session deadbeef"));
    let o = env.run(&["revoke", "user", "x", "--expires", "soonish"]);
    assert_eq!(o.status.code(), Some(1));
}

// Sessions must look live to the CLI, which reads the real clock.
#[allow(clippy::disallowed_methods)]
fn add_session(store: &SqliteStore, user: &str, tty: &str) -> String {
    let mut s = Session::start(
        SessionKind::Pam,
        user,
        Utc::now(),
        std::time::Duration::from_secs(300),
    )
    .unwrap();
    s.tty = Some(tty.into());
    s.service = Some("sshd".into());
    store.create_session(&s).unwrap();
    s.id
}

/// Issue 14: the STATE of every session comes from the decision at `now`,
/// for PAM and OIDC alike; a revoked user's sessions are not `live`, and
/// stay revoked after `curfew unrevoke`, while a new session is live.
#[test]
#[allow(clippy::disallowed_methods)]
fn sessions_list_shows_each_state_from_the_decision() {
    let env = Env::new("");
    let store = env.store();
    let now = Utc::now();
    let make = |kind: SessionKind, user: &str, started_ago: i64, seen_ago: i64| {
        let mut s = Session::start(
            kind,
            user,
            now - chrono::Duration::seconds(started_ago),
            std::time::Duration::from_secs(300),
        )
        .unwrap();
        s.last_seen = now - chrono::Duration::seconds(seen_ago);
        match kind {
            SessionKind::Pam => s.service = Some("sshd".into()),
            SessionKind::Oidc => s.client_id = Some("web".into()),
        }
        store.create_session(&s).unwrap();
        s.id
    };
    // inactivity 20m, max_duration 12h (the default) for everyone here.
    let pam_live = make(SessionKind::Pam, "carol", 60, 30);
    let oidc_live = make(SessionKind::Oidc, "dave", 60, 30);
    let pam_idle = make(SessionKind::Pam, "erin", 3600, 1500);
    let oidc_idle = make(SessionKind::Oidc, "erin", 3600, 1500);
    let oidc_old = make(SessionKind::Oidc, "frank", 13 * 3600, 10);
    let alice_pam = make(SessionKind::Pam, "alice", 60, 5);
    let alice_oidc = make(SessionKind::Oidc, "alice", 60, 5);

    let states = |env: &Env| -> std::collections::HashMap<String, serde_json::Value> {
        let o = env.run(&["sessions", "list", "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_owned(), s["state"].clone()))
            .collect()
    };
    let st = states(&env);
    for id in [&pam_live, &oidc_live, &alice_pam, &alice_oidc] {
        assert_eq!(st[id]["state"], "live", "{id}: {st:?}");
        assert_eq!(st[id]["next_end"], "idle");
    }
    for id in [&pam_idle, &oidc_idle] {
        assert_eq!(st[id]["state"], "idle", "{st:?}");
        let since = chrono::DateTime::parse_from_rfc3339(st[id]["since"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        let expected = now - chrono::Duration::seconds(1500) + chrono::Duration::minutes(20);
        assert!(
            (since - expected).num_seconds().abs() <= 1,
            "{since} {expected}"
        );
    }
    assert_eq!(st[&oidc_old]["state"], "max_duration", "{st:?}");
    // LAST ACTIVE: last_seen and what it was, by kind of session.
    let o = env.run(&["sessions", "list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let last = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["last_active"].clone())
            .unwrap()
    };
    assert_eq!(last(&pam_live)["by"], "traffic", "no terminal: {listed}");
    assert_eq!(last(&oidc_live)["by"], "refresh", "{listed}");
    let at = chrono::DateTime::parse_from_rfc3339(last(&pam_idle)["at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(
        (at - (now - chrono::Duration::seconds(1500)))
            .num_seconds()
            .abs()
            <= 1,
        "{at}"
    );
    let text = stdout(&env.run(&["sessions", "list"]));
    assert!(text.contains("LAST ACTIVE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(oidc_live.as_str()) && l.contains("(refresh)")),
        "{text}"
    );

    let o = env.run(&["revoke", "user", "alice", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rid = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let st = states(&env);
    for id in [&alice_pam, &alice_oidc] {
        assert_eq!(st[id]["state"], "revoked", "{st:?}");
        assert_eq!(st[id]["revocation_id"], rid.as_str());
    }
    let text = stdout(&env.run(&["sessions", "list"]));
    for (id, shown) in [
        (&alice_oidc, "revoked (user alice)"),
        (&pam_idle, "idle since "),
        (&oidc_old, "past max duration since "),
        (&oidc_live, "live"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(id.as_str()) && l.contains(shown)),
            "{id} {shown}: {text}"
        );
    }
    assert!(env.run(&["unrevoke", &rid]).status.success());
    // A login after the unrevoke (the fixtures above start from `now`,
    // before the revocation).
    let mut fresh = Session::start(
        SessionKind::Oidc,
        "alice",
        Utc::now(),
        std::time::Duration::from_secs(300),
    )
    .unwrap();
    fresh.client_id = Some("web".into());
    store.create_session(&fresh).unwrap();
    let new_login = fresh.id;
    let st = states(&env);
    for id in [&alice_pam, &alice_oidc] {
        assert_eq!(st[id]["state"], "revoked", "after unrevoke: {st:?}");
    }
    assert_eq!(st[&new_login]["state"], "live", "{st:?}");
}

#[test]
fn sessions_list_and_terminate() {
    let env = Env::new("");
    let store = env.store();
    let a1 = add_session(&store, "alice", "pts/1");
    let a2 = add_session(&store, "alice", "pts/2");
    let b1 = add_session(&store, "bob", "pts/3");

    let o = env.run(&["sessions", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let o = env.run(&["sessions", "list", "--user", "bob", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["id"], b1.as_str());
    assert_eq!(v[0]["tty"], "pts/3");

    // Without --yes and without a terminal: refused, nothing changes.
    let o = env.run(&["sessions", "terminate", &b1]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pass --yes"), "{}", stderr(&o));
    assert!(store
        .session(&b1)
        .unwrap()
        .unwrap()
        .terminate_requested_at
        .is_none());

    // "Terminate other sessions": every alice session but a1.
    let o = env.run(&[
        "sessions",
        "terminate",
        "--user",
        "alice",
        "--except",
        &a1,
        "--yes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(store
        .session(&a1)
        .unwrap()
        .unwrap()
        .terminate_requested_at
        .is_none());
    assert!(store
        .session(&a2)
        .unwrap()
        .unwrap()
        .terminate_requested_at
        .is_some());
    assert!(store
        .session(&b1)
        .unwrap()
        .unwrap()
        .terminate_requested_at
        .is_none());
    let text = stdout(&env.run(&["sessions", "list"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with(&a2) && l.ends_with("terminating")),
        "{text}"
    );

    let o = env.run(&["sessions", "terminate", "nope", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no session nope"));
}

#[test]
fn sessions_list_never_prints_terminal_escapes() {
    let env = Env::new("");
    let store = env.store();
    add_session(&store, "evil\u{1b}]0;pwned\u{7}\u{1b}[2J", "pts/\u{9b}9");
    let o = env.run(&["sessions", "list"]);
    assert!(o.status.success());
    assert!(!o.stdout.contains(&0x1b), "ESC reached the terminal");
    assert!(!o.stdout.contains(&0x07), "BEL reached the terminal");
    let text = stdout(&o);
    assert!(!text.contains('\u{9b}'), "CSI reached the terminal");
    assert!(
        text.contains("evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"),
        "{text}"
    );
    // JSON keeps the exact bytes, escaped by JSON itself.
    let o = env.run(&["sessions", "list", "--format", "json"]);
    assert!(!o.stdout.contains(&0x1b));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["user"], "evil\u{1b}]0;pwned\u{7}\u{1b}[2J");
}

/// Issue 12: one session record with a pid out of range made `curfew
/// sessions list` fail entirely; now the others are listed and stderr says
/// which record could not be read.
#[test]
fn sessions_list_shows_the_others_when_one_record_is_unreadable() {
    let env = Env::new("");
    let store = env.store();
    let good = add_session(&store, "alice", "pts/1");
    let bad = add_session(&store, "bob", "pts/2");
    drop(store);
    let db = rusqlite::Connection::open(env.dir.path().join("state.db")).unwrap();
    db.execute("UPDATE sessions SET pid = -1 WHERE id = ?1", [&bad])
        .unwrap();
    drop(db);
    let o = env.run(&["sessions", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains(&good) && !out.contains(&bad), "{out}");
    assert!(
        err.contains("1 session record(s) could not be read") && err.contains(&bad),
        "{err}"
    );
    let o = env.run(&["sessions", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["id"], good.as_str());
    assert!(stderr(&o).contains(&bad));
}

/// Issue 18: bidi overrides and zero-width characters reached the terminal raw.
#[test]
fn sessions_list_escapes_bidi_and_zero_width_characters() {
    let env = Env::new("");
    let store = env.store();
    add_session(&store, "root\u{200b}\u{202e}nimda", "pts/\u{2066}1");
    for args in [vec!["sessions", "list"], vec!["revocations", "list"]] {
        if args[0] == "revocations" {
            let o = env.run(&["revoke", "user", "root\u{200b}\u{202e}nimda"]);
            assert!(o.status.success(), "{}", stderr(&o));
            // The warning and the confirmation are escaped too.
            assert!(!stderr(&o).contains('\u{202e}'), "{}", stderr(&o));
            assert!(!stdout(&o).contains('\u{202e}'), "{}", stdout(&o));
        }
        let o = env.run(&args);
        assert!(o.status.success());
        let text = stdout(&o);
        for c in ['\u{200b}', '\u{202e}', '\u{2066}'] {
            assert!(
                !text.contains(c),
                "{args:?}: U+{:04X} reached the terminal: {text}",
                c as u32
            );
        }
        assert!(text.contains("root\\u{200b}\\u{202e}nimda"), "{text}");
    }
}

/// Issue 18: `revoke user` with a typo succeeded silently.
#[test]
fn revoke_unknown_user_warns_but_revokes() {
    let env = Env::new("");
    let o = env.run(&["revoke", "user", "no-such-user-typo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: no account on this host and no session in the store is named no-such-user-typo"),
        "{err}"
    );
    // An account of this host, or a user the store has sessions of (an OIDC
    // subject), is no typo.
    let o = env.run(&["revoke", "user", "root"]);
    assert!(o.status.success());
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    add_session(&env.store(), "oidc-subject-7", "");
    let o = env.run(&["revoke", "user", "oidc-subject-7"]);
    assert!(o.status.success());
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

/// Issue 18: `--expires 0` said "omit --revoke"; `revoke all --expires`
/// talked about a lock that `all` never sets.
#[test]
fn revoke_expires_messages_name_the_right_option() {
    let env = Env::new("");
    let o = env.run(&["revoke", "user", "root", "--expires", "0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("omit --expires") && !err.contains("--revoke"),
        "{err}"
    );

    let o = env.run(&["revoke", "all", "--expires", "2h"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("`revoke all` is no lock"), "{err}");
    assert!(!stdout(&o).contains("lock lifts"), "{}", stdout(&o));
    let list: serde_json::Value =
        serde_json::from_slice(&env.run(&["revocations", "list", "--format", "json"]).stdout)
            .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing was stored");
}

#[test]
fn timeout_preferences_stay_within_bounds() {
    let env = Env::new("");
    let o = env.run(&["timeout", "set", "--user", "alice", "15m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["timeout", "show", "--user", "alice", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["timeout"], 900);
    assert_eq!(v["source"]["kind"], "user");
    for bad in ["10s", "2147483s"] {
        let o = env.run(&["timeout", "set", "--user", "alice", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(
            stderr(&o).contains("outside the allowed token lifetimes"),
            "{}",
            stderr(&o)
        );
    }
    let o = env.run(&["timeout", "set", "--user", "alice", "default"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(
        &env.run(&["timeout", "show", "--user", "alice", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(v["timeout"], 300);
    assert_eq!(v["chosen"], serde_json::Value::Null);
}

#[test]
fn errors_are_one_sentence_with_documented_codes() {
    let env = Env::new("");
    let o = env.run(&["revoke"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
    let o = curfew(
        Path::new("/nonexistent/policy.yaml"),
        &["sessions", "list"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("curfew: /nonexistent/policy.yaml: cannot read the policy"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = curfew(Path::new("/dev/null"), &["policy", "schema"], None);
    assert!(o.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema["title"], "curfew policy");
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let o = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "schema"])
        .output()
        .unwrap();
    let on_disk = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/schema/policy.schema.json"),
    )
    .unwrap();
    assert_eq!(stdout(&o), on_disk);
}

#[test]
fn admin_actions_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let env = Env::new(&format!(
        "audit: {{ syslog: false, file: {} }}\n",
        audit.display()
    ));
    let o = env.run(&[
        "revoke",
        "user",
        "mallory",
        "--reason",
        "compromised",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(env.run(&["unrevoke", &id]).status.success());
    let o = env.run(&["timeout", "set", "--user", "mallory", "10m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let actor = lines[0]["actor"].as_str().unwrap();
    assert!(!actor.is_empty());
    assert_eq!(lines[0]["event"], "revoke");
    assert_eq!(lines[0]["source"], "curfew");
    assert_eq!(lines[0]["user"], "mallory");
    assert_eq!(lines[0]["target"]["kind"], "user");
    assert_eq!(lines[0]["revocation"], id.as_str());
    assert_eq!(lines[0]["reason"], "compromised");
    assert!(chrono::DateTime::parse_from_rfc3339(lines[0]["at"].as_str().unwrap()).is_ok());
    assert_eq!(lines[1]["event"], "unrevoke");
    assert_eq!(lines[1]["revocation"], id.as_str());
    assert_eq!(lines[1]["user"], "mallory");
    assert_eq!(lines[1]["actor"], actor);
    assert_eq!(lines[2]["event"], "timeout_set");
    assert_eq!(lines[2]["user"], "mallory");
    assert_eq!(lines[2]["timeout"], 600);
}

#[test]
fn an_unsafe_audit_file_is_a_warning_naming_it_and_the_action_stands() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "").unwrap();
    let audit = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink(&target, &audit).unwrap();
    let env = Env::new(&format!(
        "audit: {{ syslog: false, file: {} }}\n",
        audit.display()
    ));
    let o = env.run(&["revoke", "user", "mallory"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&audit.display().to_string()), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(env.store().list_revocations().unwrap().len(), 1);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "schema"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// Issue 18: under systemd (stderr is the stream `$JOURNAL_STREAM` names)
/// an error line carries the `<3>` prefix journald files at `err`; on
/// anything else the line is plain.
#[test]
fn an_error_is_filed_at_err_by_the_journal_and_plain_elsewhere() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let run = |journal: bool| {
        let path = dir.path().join(format!("stderr-{journal}"));
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_curfew"));
        cmd.arg("--policy")
            .arg(&missing)
            .args(["revocations", "list"])
            .env_remove("CURFEW_POLICY")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        if journal {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        let status = cmd.status().unwrap();
        assert_eq!(status.code(), Some(1));
        std::fs::read_to_string(&path).unwrap()
    };
    let filed = run(true);
    assert!(filed.starts_with("<3>curfew: "), "{filed:?}");
    let plain = run(false);
    assert!(plain.starts_with("curfew: "), "{plain:?}");
    assert_eq!(filed.strip_prefix("<3>"), Some(plain.as_str()));
}

/// `curfew enforce` stops cleanly on SIGTERM and on SIGINT, sent by pid:
/// exit status 0, its local API socket removed, the stop logged.
#[test]
fn enforce_stops_on_sigterm_and_sigint_and_removes_its_socket() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for (signal, name) in [(Signal::SIGTERM, "SIGTERM"), (Signal::SIGINT, "SIGINT")] {
        let scratch = tempfile::tempdir().unwrap();
        let socket = scratch.path().join("run").join("curfew.sock");
        let env = Env::new(&format!(
            "audit: {{ syslog: false, file: {} }}\napi: {{ socket: {} }}\n",
            scratch.path().join("audit.jsonl").display(),
            socket.display()
        ));
        let log_path = scratch.path().join("enforce.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_curfew"))
            .arg("--policy")
            .arg(&env.policy)
            .arg("enforce")
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !socket.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if !socket.exists() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the enforcer never served its socket: {}", log_text());
        }
        kill(pid, signal).unwrap();
        let mut status = None;
        while std::time::Instant::now() < deadline + std::time::Duration::from_secs(10) {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the enforcer did not stop on {name}: {}", log_text());
        };
        assert!(status.success(), "{name}: {status:?}\n{}", log_text());
        assert!(!socket.exists(), "{name}: the socket was removed");
        assert!(
            log_text().contains(&format!("stopping on {name}")),
            "{}",
            log_text()
        );
    }
}
