//! The hooks against a scripted PAM handle: every step checked, in order.

use std::time::Duration;

use curfew_policy::{EndReason, Revocation, SessionKind, Store, Target};

use super::*;
use crate::args::ModuleArgs;
use crate::handler::{Item, LogLevel, MessageStyle};
use crate::mock::{t0, unavailable, FakeSystem, ScriptedPam, Step};

const POLICY: &str = r#"
version: 1
session:
  timeout: { default: 5m }
  max_duration: 12h
  inactivity: 30m
banner:
  text: "Authorized use only."
rules:
  - name: admins
    match: { groups: [wheel], services: [sshd] }
    session: { inactivity: 15m, max_duration: 8h, timeout: { default: 2m } }
    banner: { text: "Admins: every command is logged." }
store:
  path: /var/lib/curfew/state.db
"#;

fn with_store_line(line: &str) -> String {
    POLICY.replace(
        "  path: /var/lib/curfew/state.db",
        &format!("  path: /var/lib/curfew/state.db\n  {line}"),
    )
}

fn call(args: &ModuleArgs) -> Call<'_> {
    Call {
        args,
        silent: false,
    }
}

fn revoke(sys: &FakeSystem, target: Target, expires_in: Option<i64>) -> String {
    let id = format!("rev-{}", target.value());
    sys.store
        .add_revocation(&Revocation {
            id: id.clone(),
            target,
            not_before: t0() - chrono::Duration::hours(1),
            expires_at: expires_in.map(|s| t0() + chrono::Duration::seconds(s)),
            reason: Some("offboarding".into()),
            actor: "root".into(),
            created_at: t0() - chrono::Duration::hours(1),
        })
        .unwrap();
    id
}

fn account_steps(user: &'static str, service: &'static str) -> Vec<Step> {
    vec![
        Step::User(Ok(user)),
        Step::Item(Item::Service, Some(service)),
    ]
}

fn session_items(user: &'static str, service: &'static str) -> Vec<Step> {
    vec![
        Step::User(Ok(user)),
        Step::Item(Item::Service, Some(service)),
        Step::Item(Item::Tty, Some("/dev/pts/3")),
        Step::Item(Item::RHost, Some("192.0.2.7")),
    ]
}

fn id_steps() -> Vec<Step> {
    vec![
        Step::SetSessionId(Ok(())),
        Step::PutEnv("CURFEW_SESSION_ID", None, Ok(())),
    ]
}

// ---- acct_mgmt -------------------------------------------------------------

#[test]
fn account_of_an_unrevoked_user_is_allowed_silently() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new(account_steps("bob", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.logs.is_empty(), "{}", pam.log_text());
}

#[test]
fn revoked_user_is_denied_with_a_message() {
    let sys = FakeSystem::new(POLICY);
    let rev = revoke(&sys, Target::User("alice".into()), None);
    let args = ModuleArgs::default();
    let mut steps = account_steps("alice", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "Access denied: user alice is revoked",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::PermDenied);
    assert!(pam.logged(LogLevel::Notice, &rev), "{}", pam.log_text());
    // The reason is for the log, not for the user.
    assert!(pam.logged(LogLevel::Notice, "offboarding"));
}

#[test]
fn revoked_service_is_denied_and_other_services_are_not() {
    let sys = FakeSystem::new(POLICY);
    revoke(&sys, Target::Client("sshd".into()), None);
    let args = ModuleArgs::default();
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "client sshd is revoked",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::PermDenied);

    let mut pam = ScriptedPam::new(account_steps("bob", "login"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
}

#[test]
fn an_expired_lock_lets_the_user_back_in() {
    let sys = FakeSystem::new(POLICY);
    revoke(&sys, Target::User("alice".into()), Some(-60));
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new(account_steps("alice", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
}

#[test]
fn silent_denial_shows_nothing() {
    let sys = FakeSystem::new(POLICY);
    revoke(&sys, Target::User("alice".into()), None);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new(account_steps("alice", "sshd"));
    let silent = Call {
        args: &args,
        silent: true,
    };
    assert_eq!(acct_mgmt(&mut pam, &sys, silent), PamCode::PermDenied);
    assert!(pam.logged(LogLevel::Notice, "access denied"));
}

#[test]
fn missing_policy_denies_with_system_error_and_names_the_file() {
    let mut sys = FakeSystem::new(POLICY);
    sys.policy = None;
    let args = ModuleArgs::parse(["policy=/etc/curfew/missing.yaml"]);
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(
        pam.logged(
            LogLevel::Err,
            "/etc/curfew/missing.yaml: cannot read the policy"
        ),
        "{}",
        pam.log_text()
    );
}

#[test]
fn invalid_policy_denies_even_when_the_store_would_allow() {
    let text =
        with_store_line("on_unavailable: allow").replace("inactivity: 30m", "inactivity: 3h");
    let sys = FakeSystem::new(&text);
    let args = ModuleArgs::parse(["policy=/etc/curfew/policy.yaml"]);
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(
        pam.logged(LogLevel::Err, "session.inactivity"),
        "{}",
        pam.log_text()
    );
    assert!(pam.logged(LogLevel::Err, "/etc/curfew/policy.yaml:"));
}

#[test]
fn relative_policy_path_is_refused() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["policy=policy.yaml"]);
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(pam.logged(LogLevel::Err, "absolute path"));
}

#[test]
fn unavailable_store_denies_by_default() {
    let mut sys = FakeSystem::new(POLICY);
    sys.open_error = Some(unavailable);
    let args = ModuleArgs::default();
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(
        pam.logged(LogLevel::Err, "on_unavailable: deny"),
        "{}",
        pam.log_text()
    );
    assert!(pam.logged(LogLevel::Err, "/var/lib/curfew/state.db"));
}

#[test]
fn unavailable_store_allows_when_the_policy_says_so() {
    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(unavailable);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new(account_steps("bob", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(
        pam.logged(LogLevel::Err, "on_unavailable: allow"),
        "{}",
        pam.log_text()
    );
}

#[test]
fn insecure_store_is_refused_even_when_unavailability_is_allowed() {
    fn insecure() -> StoreError {
        StoreError::Insecure(curfew_policy::fsperm::InsecureFile {
            path: "/var/lib/curfew/state.db".into(),
            reason: "it is writable by everyone (mode 666)".into(),
        })
    }
    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(insecure);
    let args = ModuleArgs::default();
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(pam.logged(LogLevel::Err, "writable by everyone"));
}

#[test]
fn unknown_user_is_user_unknown() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new(account_steps("mallory", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::UserUnknown);
}

#[test]
fn failing_group_lookup_is_a_system_error() {
    let mut sys = FakeSystem::new(POLICY);
    sys.groups_fail = true;
    let args = ModuleArgs::default();
    let mut steps = account_steps("alice", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(pam.logged(LogLevel::Err, "sssd is not running"));
}

#[test]
fn pam_errors_getting_the_user_are_passed_on() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new([Step::User(Err(PamCode::ConvErr))]);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::ConvErr);
    let mut pam = ScriptedPam::new([Step::User(Ok(""))]);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::UserUnknown);
}

#[test]
fn unknown_options_are_logged_and_ignored() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["verbose"]);
    let mut pam = ScriptedPam::new(account_steps("bob", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.logged(LogLevel::Warning, "unknown option \"verbose\""));
}

#[test]
fn debug_logs_the_effective_values_and_their_sources() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["debug"]);
    let mut pam = ScriptedPam::new(account_steps("alice", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(
        pam.logged(LogLevel::Debug, "inactivity 900s (rule \"admins\""),
        "{}",
        pam.log_text()
    );
    assert!(pam.logged(LogLevel::Debug, "allowed"));
}

// ---- open_session ----------------------------------------------------------

#[test]
fn open_session_takes_every_step_and_registers_the_session() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.extend([
        Step::Message(MessageStyle::TextInfo, "Authorized use only.", Ok(())),
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
    ]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);

    let sessions = sys.sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(pam.kept_session_id.as_deref(), Some(s.id.as_str()));
    assert_eq!(pam.env.get("CURFEW_SESSION_ID"), Some(&s.id));
    assert_eq!(s.kind, SessionKind::Pam);
    assert_eq!(s.user, "bob");
    assert_eq!(s.service.as_deref(), Some("sshd"));
    assert_eq!(s.tty.as_deref(), Some("/dev/pts/3"));
    assert_eq!(s.rhost.as_deref(), Some("192.0.2.7"));
    assert_eq!(s.host.as_deref(), Some("host1"));
    assert_eq!(
        s.machine_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef"),
        "the host's identity, beside its name"
    );
    assert_eq!(s.pid, Some(4242));
    assert_eq!(s.audit_session_id, Some(17));
    assert_eq!(s.started_at, t0());
    assert_eq!(s.timeout, Duration::from_secs(300));
    assert!(s.is_live());
    assert!(pam.logged(LogLevel::Info, &format!("session {} opened", s.id)));
}

#[test]
fn a_rule_matched_by_group_sets_banner_limits_and_timeout() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut steps = session_items("alice", "sshd");
    steps.extend([
        Step::Message(MessageStyle::TextInfo, "Admins: every command", Ok(())),
        Step::RuntimeMaxSec(8 * 3600, Ok(())),
    ]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert_eq!(sys.sessions()[0].timeout, Duration::from_secs(120));
    assert!(pam.logged(LogLevel::Info, "rule admins"));
}

#[test]
fn the_rule_does_not_apply_to_another_service() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut steps = session_items("alice", "login");
    steps.extend([
        Step::Message(MessageStyle::TextInfo, "Authorized use only.", Ok(())),
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
    ]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
}

#[test]
fn the_users_own_timeout_is_recorded_within_bounds() {
    let sys = FakeSystem::new(POLICY);
    sys.store
        .set_timeout_preference("bob", Some(Duration::from_secs(600)))
        .unwrap();
    let args = ModuleArgs::parse(["no_banner"]);
    let mut steps = session_items("bob", "sshd");
    steps.extend([Step::RuntimeMaxSec(12 * 3600, Ok(()))]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert_eq!(sys.sessions()[0].timeout, Duration::from_secs(600));
}

#[test]
fn empty_banner_no_banner_no_tmout_and_silence_skip_their_steps() {
    // An empty banner shows nothing.
    let sys = FakeSystem::new(&POLICY.replace("\"Authorized use only.\"", "\"\""));
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.extend([Step::RuntimeMaxSec(12 * 3600, Ok(()))]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);

    // no_banner and no_tmout.
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner", "no_tmout"]);
    let mut steps = session_items("bob", "sshd");
    steps.push(Step::RuntimeMaxSec(12 * 3600, Ok(())));
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(!pam.env.contains_key("TMOUT"));

    // PAM_SILENT.
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.extend([Step::RuntimeMaxSec(12 * 3600, Ok(()))]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    let silent = Call {
        args: &args,
        silent: true,
    };
    assert_eq!(open_session(&mut pam, &sys, silent), PamCode::Success);
}

#[test]
fn a_failing_conversation_does_not_fail_the_session() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.extend([
        Step::Message(MessageStyle::TextInfo, "Authorized", Err(PamCode::ConvErr)),
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
    ]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.logged(LogLevel::Warning, "PAM_CONV_ERR"));
}

#[test]
fn revoked_user_cannot_open_a_session() {
    let sys = FakeSystem::new(POLICY);
    revoke(&sys, Target::User("bob".into()), None);
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "user bob is revoked",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(
        open_session(&mut pam, &sys, call(&args)),
        PamCode::PermDenied
    );
    assert!(sys.sessions().is_empty());
}

#[test]
fn unavailable_store_with_allow_opens_an_unregistered_session() {
    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(unavailable);
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.extend([
        Step::Message(MessageStyle::TextInfo, "Authorized use only.", Ok(())),
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
    ]);
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.kept_session_id.is_none());
    assert!(pam.logged(LogLevel::Info, "(unregistered)"));
}

#[test]
fn failing_registration_denies_by_default() {
    let mut sys = FakeSystem::new(POLICY);
    sys.create_fails = true;
    let args = ModuleArgs::default();
    let mut steps = session_items("bob", "sshd");
    steps.extend([
        Step::Message(MessageStyle::TextInfo, "Authorized use only.", Ok(())),
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
        Step::Message(MessageStyle::ErrorMsg, "cannot be applied", Ok(())),
    ]);
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(
        open_session(&mut pam, &sys, call(&args)),
        PamCode::SystemErr
    );
}

#[test]
fn a_session_whose_id_cannot_be_kept_is_ended_at_once() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner"]);
    let mut steps = session_items("bob", "sshd");
    steps.extend([
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
        Step::SetSessionId(Err(PamCode::BufErr)),
    ]);
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(
        open_session(&mut pam, &sys, call(&args)),
        PamCode::SessionErr
    );
    let sessions = sys.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(!sessions[0].is_live());
}

#[test]
fn failing_runtime_limit_fails_the_session() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner"]);
    let mut steps = session_items("bob", "sshd");
    steps.push(Step::RuntimeMaxSec(12 * 3600, Err(PamCode::BufErr)));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(
        open_session(&mut pam, &sys, call(&args)),
        PamCode::SessionErr
    );
    assert!(sys.sessions().is_empty());
}

#[test]
fn audit_syslog_false_keeps_session_lines_out_of_the_log() {
    let text = format!("{POLICY}audit:\n  syslog: false\n");
    let sys = FakeSystem::new(&text);
    let args = ModuleArgs::parse(["no_banner"]);
    let mut steps = session_items("bob", "sshd");
    steps.extend([Step::RuntimeMaxSec(12 * 3600, Ok(()))]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.logs.is_empty(), "{}", pam.log_text());
}

// ---- close_session ---------------------------------------------------------

fn open(sys: &FakeSystem, user: &'static str) -> String {
    let args = ModuleArgs::parse(["no_banner", "no_tmout"]);
    let mut steps = session_items(user, "sshd");
    steps.push(Step::RuntimeMaxSec(
        if user == "alice" { 8 * 3600 } else { 12 * 3600 },
        Ok(()),
    ));
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, sys, call(&args)), PamCode::Success);
    pam.kept_session_id.clone().unwrap()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn close_session_ends_the_kept_session_with_reason_logout() {
    let mut sys = FakeSystem::new(POLICY);
    let id = open(&sys, "bob");
    sys.now = t0() + chrono::Duration::minutes(20);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new([
        Step::User(Ok("bob")),
        Step::SessionId(Some(leak(id.clone()))),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    let s = sys.store.session(&id).unwrap().unwrap();
    assert_eq!(s.end_reason, Some(EndReason::Logout));
    assert_eq!(s.ended_at, Some(sys.now));
    assert!(pam.logged(LogLevel::Info, &format!("session {id} closed")));
}

/// Issue 13: TMOUT only with the `tmout` argument, and a shell's TMOUT
/// logout of an idle prompt is recorded as `idle`, not `logout`.
#[test]
fn tmout_is_exported_only_when_asked_and_its_logout_is_recorded_idle() {
    let mut sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner", "tmout"]);
    let mut steps = session_items("bob", "sshd");
    steps.extend([
        Step::RuntimeMaxSec(12 * 3600, Ok(())),
        Step::PutEnv("TMOUT", Some("1800"), Ok(())),
    ]);
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert_eq!(pam.env.get("TMOUT").map(String::as_str), Some("1800"));
    let idle_id = sys.sessions()[0].id.clone();
    let active_id = open(&sys, "bob");

    // The last input was 30 minutes ago: bash's TMOUT ended the shell.
    sys.now = t0() + chrono::Duration::minutes(40);
    sys.tty_input
        .insert("/dev/pts/3".into(), t0() + chrono::Duration::minutes(10));
    let close = |sys: &FakeSystem, id: &str| {
        let mut pam = ScriptedPam::new([
            Step::User(Ok("bob")),
            Step::SessionId(Some(leak(id.to_owned()))),
            Step::GetEnv("TMOUT", Some("1800")),
            Step::Item(Item::Tty, Some("/dev/pts/3")),
        ]);
        assert_eq!(close_session(&mut pam, sys, call(&args)), PamCode::Success);
    };
    close(&sys, &idle_id);
    let s = sys.store.session(&idle_id).unwrap().unwrap();
    assert_eq!(s.end_reason, Some(EndReason::Idle));

    // Input a minute ago: the user logged out.
    sys.tty_input
        .insert("/dev/pts/3".into(), t0() + chrono::Duration::minutes(39));
    close(&sys, &active_id);
    let s = sys.store.session(&active_id).unwrap().unwrap();
    assert_eq!(s.end_reason, Some(EndReason::Logout));

    // A terminal time set into the future is no news: logout.
    let faked = open(&sys, "bob");
    sys.tty_input
        .insert("/dev/pts/3".into(), t0() + chrono::Duration::days(400));
    close(&sys, &faked);
    let s = sys.store.session(&faked).unwrap().unwrap();
    assert_eq!(s.end_reason, Some(EndReason::Logout));
}

/// sshd closes the PAM session after releasing the pty, with PAM_TTY
/// `ssh`: the TMOUT logout is judged from the record's last activity (which
/// the enforcer writes), and a record no enforcer moved tells nothing.
#[test]
fn a_tmout_logout_over_sshd_is_judged_from_the_records_last_activity() {
    let mut sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner", "tmout"]);
    let close = |sys: &FakeSystem, id: &str| {
        let mut pam = ScriptedPam::new([
            Step::User(Ok("bob")),
            Step::SessionId(Some(leak(id.to_owned()))),
            Step::GetEnv("TMOUT", Some("1800")),
            Step::Item(Item::Tty, Some("ssh")),
        ]);
        assert_eq!(close_session(&mut pam, sys, call(&args)), PamCode::Success);
        sys.store.session(id).unwrap().unwrap().end_reason
    };
    let touched = |sys: &FakeSystem, minutes: i64| {
        let id = open(sys, "bob");
        sys.store
            .touch_session(&id, t0() + chrono::Duration::minutes(minutes))
            .unwrap();
        id
    };
    let idle = touched(&sys, 10);
    let recent = touched(&sys, 39);
    let never = open(&sys, "bob");
    sys.now = t0() + chrono::Duration::minutes(40);
    // 30 minutes since the last input the enforcer saw: bash's TMOUT.
    assert_eq!(close(&sys, &idle), Some(EndReason::Idle));
    assert_eq!(close(&sys, &recent), Some(EndReason::Logout));
    // last_seen never moved past the start: no news, logout.
    assert_eq!(close(&sys, &never), Some(EndReason::Logout));
}

/// A session named by the environment (a handle without the module's
/// data) is judged from the same record the ownership check read: idle
/// when the enforcer saw no input for TMOUT, a logout otherwise.
#[test]
fn a_tmout_logout_of_a_session_named_by_the_environment_is_judged_from_its_record() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner", "tmout"]);
    let close = |sys: &FakeSystem, id: &str| {
        let mut pam = ScriptedPam::new([
            Step::User(Ok("bob")),
            Step::SessionId(None),
            Step::GetEnv("CURFEW_SESSION_ID", Some(leak(id.to_owned()))),
            Step::GetEnv("TMOUT", Some("1800")),
            Step::Item(Item::Tty, Some("ssh")),
        ]);
        assert_eq!(close_session(&mut pam, sys, call(&args)), PamCode::Success);
        sys.store.session(id).unwrap().unwrap().end_reason
    };
    let idle = open(&sys, "bob");
    sys.store
        .touch_session(&idle, t0() + chrono::Duration::minutes(10))
        .unwrap();
    let recent = open(&sys, "bob");
    sys.store
        .touch_session(&recent, t0() + chrono::Duration::minutes(39))
        .unwrap();
    let mut sys = sys;
    sys.now = t0() + chrono::Duration::minutes(40);
    assert_eq!(close(&sys, &idle), Some(EndReason::Idle));
    assert_eq!(close(&sys, &recent), Some(EndReason::Logout));
}

#[test]
fn close_session_falls_back_to_the_environment_for_the_same_user_only() {
    let sys = FakeSystem::new(POLICY);
    let bobs = open(&sys, "bob");
    let args = ModuleArgs::default();

    // alice's handle names bob's session: it stays live.
    let mut pam = ScriptedPam::new([
        Step::User(Ok("alice")),
        Step::SessionId(None),
        Step::GetEnv("CURFEW_SESSION_ID", Some(leak(bobs.clone()))),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(sys.store.session(&bobs).unwrap().unwrap().is_live());
    assert!(pam.logged(
        LogLevel::Warning,
        "does not name a session of user \"alice\""
    ));

    let mut pam = ScriptedPam::new([
        Step::User(Ok("bob")),
        Step::SessionId(None),
        Step::GetEnv("CURFEW_SESSION_ID", Some(leak(bobs.clone()))),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(!sys.store.session(&bobs).unwrap().unwrap().is_live());
}

#[test]
fn close_session_without_a_session_does_nothing() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new([
        Step::User(Ok("bob")),
        Step::SessionId(None),
        Step::GetEnv("CURFEW_SESSION_ID", None),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.logs.is_empty());
}

#[test]
fn closing_an_ended_session_is_not_an_error() {
    let sys = FakeSystem::new(POLICY);
    let id = open(&sys, "bob");
    sys.store
        .end_session(&id, t0(), EndReason::Revoked)
        .unwrap();
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new([
        Step::User(Ok("bob")),
        Step::SessionId(Some(leak(id.clone()))),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    let s = sys.store.session(&id).unwrap().unwrap();
    assert_eq!(s.end_reason, Some(EndReason::Revoked), "the first end wins");
    assert!(pam.logged(LogLevel::Info, "had already ended"));
}

#[test]
fn close_session_with_an_unavailable_store_follows_on_unavailable() {
    let mut sys = FakeSystem::new(POLICY);
    sys.open_error = Some(unavailable);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new([
        Step::User(Ok("bob")),
        Step::SessionId(Some("0123")),
        Step::Message(MessageStyle::ErrorMsg, "cannot be applied", Ok(())),
    ]);
    assert_eq!(
        close_session(&mut pam, &sys, call(&args)),
        PamCode::SystemErr
    );

    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(unavailable);
    let mut pam = ScriptedPam::new([Step::User(Ok("bob")), Step::SessionId(Some("0123"))]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
}

// ---- one admission path (issue 11) and host hardening (issue 12) ----------

#[test]
fn issue11_a_store_from_a_newer_curfew_is_refused_even_with_on_unavailable_allow() {
    fn too_new() -> StoreError {
        StoreError::TooNew {
            location: "/var/lib/curfew/state.db".into(),
            found: 99,
            supported: 3,
        }
    }
    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(too_new);
    let args = ModuleArgs::default();
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(
        pam.logged(LogLevel::Err, "newer curfew always denies"),
        "{}",
        pam.log_text()
    );
}

#[test]
fn issue12_a_setuid_caller_never_gets_on_unavailable_allow() {
    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(unavailable);
    sys.secure = true;
    let args = ModuleArgs::default();
    let mut steps = account_steps("bob", "su");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
    assert!(
        pam.logged(LogLevel::Err, "setuid/setgid caller"),
        "{}",
        pam.log_text()
    );
}

#[test]
fn issue12_local_resource_failures_always_deny() {
    fn no_descriptors() -> StoreError {
        StoreError::Resource {
            location: "/var/lib/curfew/state.db".into(),
            detail: "Too many open files (os error 24)".into(),
        }
    }
    let mut sys = FakeSystem::new(&with_store_line("on_unavailable: allow"));
    sys.open_error = Some(no_descriptors);
    let args = ModuleArgs::default();
    let mut steps = account_steps("bob", "sshd");
    steps.push(Step::Message(
        MessageStyle::ErrorMsg,
        "cannot be applied",
        Ok(()),
    ));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::SystemErr);
}

#[test]
fn issue12_a_revoked_account_cannot_log_in_under_another_spelling() {
    let mut sys = FakeSystem::new(POLICY);
    sys.aliases.insert("Alice".into(), "alice".into());
    sys.aliases
        .insert("alice@EXAMPLE.ORG".into(), "alice".into());
    revoke(&sys, Target::User("alice".into()), None);
    let args = ModuleArgs::default();
    for spelling in ["Alice", "alice@EXAMPLE.ORG", "alice"] {
        let mut steps = account_steps(spelling, "sshd");
        steps.push(Step::Message(
            MessageStyle::ErrorMsg,
            "Access denied: user alice is revoked",
            Ok(()),
        ));
        let mut pam = ScriptedPam::new(steps);
        assert_eq!(
            acct_mgmt(&mut pam, &sys, call(&args)),
            PamCode::PermDenied,
            "{spelling}: {}",
            pam.log_text()
        );
    }
}

#[test]
fn issue12_sessions_are_recorded_under_the_canonical_account_name() {
    let mut sys = FakeSystem::new(POLICY);
    sys.aliases.insert("BOB".into(), "bob".into());
    let args = ModuleArgs::parse(["no_banner", "no_tmout"]);
    let mut steps = session_items("BOB", "sshd");
    steps.push(Step::RuntimeMaxSec(12 * 3600, Ok(())));
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    let sessions = sys.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].user, "bob");

    // close_session under the other spelling ends it too.
    let id = pam.kept_session_id.clone().unwrap();
    let mut pam = ScriptedPam::new([
        Step::User(Ok("BOB")),
        Step::SessionId(None),
        Step::GetEnv("CURFEW_SESSION_ID", Some(leak(id.clone()))),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    let s = sys.store.session(&id).unwrap().unwrap();
    assert_eq!(s.end_reason, Some(EndReason::Logout), "{}", pam.log_text());
}

#[test]
fn issue12_a_lower_runtime_max_sec_set_earlier_in_the_stack_is_kept() {
    let sys = FakeSystem::new(POLICY);
    let args = ModuleArgs::parse(["no_banner", "no_tmout"]);
    // pam_time (or another module) ends the allowed window in 1 h, in
    // any of systemd's spellings (pam_systemd reads them all): it is left
    // as it is, not overwritten by max_duration (12 h).
    for earlier in ["3600", "1h", "60min", "3600s", "300.5", "1h 30min", "0.25d"] {
        let mut steps = session_items("bob", "sshd");
        steps.extend(id_steps());
        let mut pam = ScriptedPam::new(steps);
        pam.earlier_runtime_max_sec = Some(earlier.into());
        assert_eq!(
            open_session(&mut pam, &sys, call(&args)),
            PamCode::Success,
            "{earlier}"
        );
    }

    // A value curfew cannot read is left as it is too, and logged.
    let mut steps = session_items("bob", "sshd");
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    pam.earlier_runtime_max_sec = Some("5 fortnights".into());
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(
        pam.logs
            .iter()
            .any(|(_, l)| l.contains("cannot be read") && l.contains("fortnights")),
        "{:?}",
        pam.logs
    );

    // A higher earlier value (or infinity) gives way to max_duration (12 h).
    for earlier in ["172800", "48h", "2d", "infinity", "1y"] {
        let mut steps = session_items("bob", "sshd");
        steps.push(Step::RuntimeMaxSec(12 * 3600, Ok(())));
        steps.extend(id_steps());
        let mut pam = ScriptedPam::new(steps);
        pam.earlier_runtime_max_sec = Some(earlier.into());
        assert_eq!(
            open_session(&mut pam, &sys, call(&args)),
            PamCode::Success,
            "{earlier}"
        );
    }
}

// ---- the audit trail ---------------------------------------------------------

fn audited(file: &std::path::Path) -> Vec<curfew_policy::audit::AuditLine> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn refusals_logins_and_logouts_go_to_the_audit_file_and_syslog_at_their_priority() {
    use curfew_policy::audit::{AuditEvent, RefusalReason};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let text = format!(
        "{POLICY}audit: {{ syslog: true, file: {} }}\n",
        file.display()
    );
    let mut sys = FakeSystem::new(&text);
    let rev = revoke(&sys, Target::User("alice".into()), None);
    let args = ModuleArgs::default();
    let mut steps = account_steps("alice", "sshd");
    steps.push(Step::Message(MessageStyle::ErrorMsg, "revoked", Ok(())));
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::PermDenied);
    // The syslog half is the pam_syslog line, at the event's priority.
    assert!(pam.logged(LogLevel::Notice, "access denied for user \"alice\""));

    let id = open(&sys, "bob");
    sys.now = t0() + chrono::Duration::minutes(20);
    let mut pam = ScriptedPam::new([
        Step::User(Ok("bob")),
        Step::SessionId(Some(leak(id.clone()))),
    ]);
    assert_eq!(close_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(pam.logged(LogLevel::Info, &format!("session {id} closed")));

    let lines = audited(&file);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.source == "pam_curfew"));
    match &lines[0].event {
        AuditEvent::LoginRefused {
            user,
            service,
            reason,
            revocation,
            detail,
            ..
        } => {
            assert_eq!(user, "alice");
            assert_eq!(service.as_deref(), Some("sshd"));
            assert_eq!(*reason, RefusalReason::Revoked);
            assert_eq!(revocation.as_deref(), Some(rev.as_str()));
            assert!(detail.contains("offboarding"), "{detail}");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(lines[0].at, t0());
    match &lines[1].event {
        AuditEvent::Login {
            user,
            service,
            session,
            tty,
            rhost,
            max_duration,
            ..
        } => {
            assert_eq!(user, "bob");
            assert_eq!(service.as_deref(), Some("sshd"));
            assert_eq!(session.as_deref(), Some(id.as_str()));
            assert_eq!(tty.as_deref(), Some("/dev/pts/3"));
            assert_eq!(rhost.as_deref(), Some("192.0.2.7"));
            assert_eq!(*max_duration, 12 * 3600);
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(&lines[2].event,
        AuditEvent::Logout { user, session, .. } if user == "bob" && *session == id));
    assert_eq!(lines[2].at, t0() + chrono::Duration::minutes(20));
}

#[test]
fn an_unlocked_login_through_an_unavailable_store_is_audited_as_an_error() {
    use curfew_policy::audit::{AuditEvent, StoreOutcome};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let text = format!(
        "{}audit: {{ file: {} }}\n",
        with_store_line("on_unavailable: allow"),
        file.display()
    );
    let mut sys = FakeSystem::new(&text);
    sys.open_error = Some(unavailable);
    let args = ModuleArgs::default();
    let mut pam = ScriptedPam::new(account_steps("bob", "sshd"));
    assert_eq!(acct_mgmt(&mut pam, &sys, call(&args)), PamCode::Success);
    let lines = audited(&file);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(matches!(&lines[0].event,
        AuditEvent::StoreUnavailable { outcome: StoreOutcome::Degraded, user: Some(u), client: Some(s), .. }
            if u == "bob" && s == "sshd"));
    assert!(pam.logged(LogLevel::Err, "on_unavailable: allow"));
}

#[test]
fn an_unwritable_audit_file_never_refuses_a_login_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "").unwrap();
    let file = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink(&target, &file).unwrap();
    let text = format!("{POLICY}audit: {{ file: {} }}\n", file.display());
    let sys = FakeSystem::new(&text);
    let args = ModuleArgs::parse(["no_banner", "no_tmout"]);
    let mut steps = session_items("bob", "sshd");
    steps.push(Step::RuntimeMaxSec(12 * 3600, Ok(())));
    steps.extend(id_steps());
    let mut pam = ScriptedPam::new(steps);
    assert_eq!(open_session(&mut pam, &sys, call(&args)), PamCode::Success);
    assert!(
        pam.logged(LogLevel::Err, &format!("audit file {}", file.display())),
        "{}",
        pam.log_text()
    );
    assert!(pam.logged(LogLevel::Err, "symbolic link"));
    assert!(pam.logged(LogLevel::Info, "opened for user \"bob\""));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
}
