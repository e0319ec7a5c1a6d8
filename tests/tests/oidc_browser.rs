//! The sessions page in a real browser: headless Chromium (Debian's
//! `chromium`) driven by playwright-core (tests/node/sessions_page.mjs)
//! against the example provider, for a user who also has a live SSH session
//! on a loopback sshd with the enforcer (tests/src/enforce.rs). The browser
//! signs in and sees the banner, opens the sessions page (the SSH session
//! listed, the current one marked and without an end button), ends "all
//! other sessions" after ticking the box (the SSH session ends), changes
//! the token lifetime (out of bounds refused with the range, within
//! bounds set), and sees the "session ends at" dialog whose "Extend
//! session" moves the deadline. Screenshots of each step are written under
//! target/screenshots/oidc_browser/ (the path is printed).

use std::time::Duration;

use curfew_e2e::common::{target_dir, wait_for};
use curfew_e2e::enforce::EnforceFixture;
use curfew_e2e::node::node;
use curfew_e2e::oidc::{Provider, ProviderSpec};
use serde_json::Value;

const BANNER: &str = "Authorized use only. Sessions end after 30 minutes idle.";

#[test]
#[ignore = "needs root: sshd and a throwaway user (scripts/test runs it as root)"]
fn chromium_ends_other_sessions_sets_the_lifetime_and_extends_the_session() {
    let fixture = EnforceFixture::start("{ inactivity: 30m, warn_before: 2m }");
    let user = fixture.user.name.clone();
    let password = "web-Pw-5678";
    // The policy gets a banner (appended; the enforcer's reload is harmless).
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&fixture.sandbox.policy)
            .expect("open policy");
        writeln!(f, "banner: {{ text: \"{BANNER}\" }}").expect("append banner");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let offset_file = dir.path().join("clock-offset");
    std::fs::write(&offset_file, "0").expect("offset");
    let op = Provider::start(
        &fixture.sandbox.policy,
        dir.path(),
        &ProviderSpec {
            users: vec![format!("{user}:{password}")],
            clock_offset_file: Some(offset_file.clone()),
            ..Default::default()
        },
    );
    let mut shell = fixture.login();
    assert!(shell.answers(Duration::from_secs(10)));

    let shots = target_dir().join("../screenshots/oidc_browser");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("mkdir screenshots");
    eprintln!("screenshots: {}", shots.display());
    let profile = tempfile::tempdir().expect("profile dir");
    // 28 min 10 s: past warn_at (30m inactivity, warn_before 2m), before the end.
    let warn_offset = (28 * 60 + 10).to_string();
    let out = node("sessions_page.mjs")
        .env("BASE", &op.issuer)
        .env("USERNAME", &user)
        .env("PASSWORD", password)
        .env("OFFSET_FILE", &offset_file)
        .env("WARN_OFFSET", &warn_offset)
        .env("LIFETIME", "15m")
        .env("SHOTS", &shots)
        .env("PROFILE", profile.path())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the browser run failed: {}\nprovider log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        op.log_text()
    );
    let r: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .expect("a JSON line"),
    )
    .expect("JSON");
    eprintln!("{r:#}");

    // The banner, on the login page and the sessions page.
    assert_eq!(r["loginBanner"], BANNER);
    assert_eq!(r["sessionsBanner"], BANNER);
    // The SSH session is listed; the current (web) one is marked and has no end button.
    let rows = r["rowsBefore"].as_array().expect("rows");
    let ssh_id = shell.id();
    assert!(
        rows.iter()
            .any(|row| row["id"] == ssh_id.as_str() && row["kind"] == "SSH"),
        "{rows:?}"
    );
    assert_eq!(rows.iter().filter(|row| row["current"] == true).count(), 1);
    assert_eq!(r["currentHasEndButton"], false);
    // Without the box nothing was sent; with it, the others end.
    assert_eq!(r["stillOnPageWithoutTick"], true);
    assert!(
        r["endOthersNotice"]
            .as_str()
            .is_some_and(|n| n.contains("ending")),
        "{r}"
    );
    let ended = wait_for(Duration::from_secs(15), || shell.exited());
    assert!(
        ended.is_some(),
        "the SSH session survived: {}",
        fixture.logs()
    );
    // Its user ended it from the page: its terminal says so, not that an
    // administrator did (issue 16).
    assert!(
        shell
            .output()
            .contains("this session is being closed now: you ended it yourself."),
        "{}",
        shell.output()
    );
    assert!(
        !shell.output().contains("administrator"),
        "{}",
        shell.output()
    );
    // Token lifetime.
    let range = r["range"].as_str().expect("range");
    assert!(range.contains(".."), "{range}");
    assert!(
        r["outOfBoundsError"]
            .as_str()
            .is_some_and(|e| e.contains(range)),
        "refused with the range {range}: {r}"
    );
    assert!(
        r["lifetimeValue"]
            .as_str()
            .is_some_and(|v| v.starts_with("15m")),
        "{r}"
    );
    // The dialog and "Extend session".
    assert!(
        r["dialogText"]
            .as_str()
            .is_some_and(|t| t.contains("Your session ends at")),
        "{r}"
    );
    let before = r["deadlineBefore"].as_i64().expect("deadline before");
    let after = r["deadlineAfter"].as_i64().expect("deadline after");
    assert!(
        after > before + 20 * 60,
        "Extend moved the deadline: {before} -> {after}"
    );
    assert_eq!(r["shots"].as_array().map(Vec::len), Some(7));
}
