//! Property tests: no accepted policy yields a decision outside the hard
//! bounds, and a revoked subject is never allowed.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use curfew_policy::policy::{
    INACTIVITY_CEILING, MAX_DURATION_CEILING, REMEMBER_ME_CEILING, TIMEOUT_CEILING, TIMEOUT_FLOOR,
};
use curfew_policy::{
    decide, Decision, Deny, Policy, Revocation, RevocationSet, SessionState, Subject, Target,
};
use proptest::prelude::*;

/// A duration field: mostly absent or inside `lo..hi`, sometimes anywhere
/// (including just past the hard bounds), so both sides of every bound and
/// cross-field rule are exercised.
fn field(lo: u64, hi: u64) -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        4 => Just(None),
        5 => (lo..hi).prop_map(Some),
        1 => prop_oneof![
            0u64..40,
            7_190u64..7_210,
            86_390u64..86_410,
            2_147_470u64..2_147_490,
            7_775_990u64..7_776_010,
        ]
        .prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
struct Section {
    default: Option<u64>,
    min: Option<u64>,
    max: Option<u64>,
    max_duration: Option<u64>,
    inactivity: Option<u64>,
    warn_before: Option<u64>,
    remember: Option<u64>,
}

fn section() -> impl Strategy<Value = Section> {
    (
        field(300, 3_600),
        field(30, 600),
        field(3_600, 2_147_482),
        field(3_600, 86_400),
        field(60, 3_600),
        field(0, 60),
        field(86_400, 7_776_000),
    )
        .prop_map(
            |(default, min, max, max_duration, inactivity, warn_before, remember)| Section {
                default,
                min,
                max,
                max_duration,
                inactivity,
                warn_before,
                remember,
            },
        )
}

fn render(s: &Section, indent: &str) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: Option<u64>| {
        if let Some(v) = v {
            out.push_str(&format!("{indent}{k}: {v}s\n"));
        }
    };
    line("max_duration", s.max_duration);
    line("inactivity", s.inactivity);
    line("warn_before", s.warn_before);
    if s.default.is_some() || s.min.is_some() || s.max.is_some() {
        out.push_str(&format!("{indent}timeout:\n"));
        for (k, v) in [("default", s.default), ("min", s.min), ("max", s.max)] {
            if let Some(v) = v {
                out.push_str(&format!("{indent}  {k}: {v}\n"));
            }
        }
    }
    if let Some(v) = s.remember {
        out.push_str(&format!(
            "{indent}remember_me:\n{indent}  max_duration: {v}\n"
        ));
    }
    out
}

fn policy_text() -> impl Strategy<Value = String> {
    (
        section(),
        prop::collection::vec((section(), 0usize..4), 0..4),
    )
        .prop_map(|(top, rules)| {
            let mut text = format!("version: 1\nsession:\n{}", render(&top, "  "));
            text.push_str("rules:\n");
            let matches = [
                "{}",
                "{ users: [alice] }",
                "{ groups: [wheel] }",
                "{ services: [sshd], clients: [web] }",
            ];
            for (i, (s, m)) in rules.iter().enumerate() {
                text.push_str(&format!("  - name: r{i}\n    match: {}\n", matches[*m]));
                let body = render(s, "      ");
                if !body.is_empty() {
                    text.push_str(&format!("    session:\n{body}"));
                }
            }
            if rules.is_empty() {
                text = text.replace("rules:\n", "");
            }
            text
        })
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

/// (user, groups, service, client)
type SubjectParts = (
    &'static str,
    Vec<String>,
    Option<&'static str>,
    Option<&'static str>,
);

fn subjects() -> Vec<SubjectParts> {
    vec![
        ("alice", vec!["wheel".into()], Some("sshd"), None),
        ("bob", vec![], Some("sshd"), Some("web")),
        ("carol", vec!["users".into()], Some("login"), None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_policies_stay_within_the_hard_bounds(
        text in policy_text(),
        pref in prop::option::of(0u64..3_000_000),
        started in 0i64..200_000,
        idle in 0i64..10_000,
        elapsed in 0i64..200_000,
        remember in any::<bool>(),
    ) {
        let Ok(policy) = Policy::parse(&text, "p.yaml") else { return Ok(()); };
        for (user, groups, service, client) in subjects() {
            let eff = policy.effective(&Subject { user, groups: &groups, service, client, host: None });
            let (min, def, max) = (eff.timeout_min.value, eff.timeout_default.value, eff.timeout_max.value);
            prop_assert!(TIMEOUT_FLOOR <= min && min <= def && def <= max && max <= TIMEOUT_CEILING, "{text}");
            prop_assert!(eff.max_duration.value <= MAX_DURATION_CEILING);
            prop_assert!(eff.inactivity.value <= INACTIVITY_CEILING);
            prop_assert!(eff.inactivity.value <= eff.max_duration.value);
            prop_assert!(eff.warn_before.value < eff.inactivity.value);
            prop_assert!(eff.remember_me_max_duration.value <= REMEMBER_ME_CEILING);
            prop_assert!(eff.remember_me_inactivity.value <= REMEMBER_ME_CEILING);
            prop_assert!(eff.inactivity.value <= eff.idle_limit(true));

            let lifetime = eff.token_lifetime(pref.map(Duration::from_secs)).value;
            prop_assert!(min <= lifetime && lifetime <= max);

            let start = t0() + secs(started);
            let now = start + secs(elapsed);
            let last = now - secs(idle).min(now - start);
            let state = SessionState {
                id: Some("s"), user, client_id: client, started_at: start,
                last_activity: last, remember_me: remember, terminate_requested: false, terminate_requested_by: None,
            };
            match decide(&eff, &state, &RevocationSet::new(), lifetime, now) {
                Decision::Allow(a) => {
                    let limit = if remember { REMEMBER_ME_CEILING } else { MAX_DURATION_CEILING };
                    prop_assert!(now < a.absolute_deadline && now < a.idle_deadline);
                    prop_assert!((a.absolute_deadline - start).to_std().unwrap() <= limit);
                    let idle_ceiling = if remember { REMEMBER_ME_CEILING } else { INACTIVITY_CEILING };
                    prop_assert!((a.idle_deadline - last).to_std().unwrap() <= idle_ceiling);
                    prop_assert!((a.idle_deadline - last).to_std().unwrap() == eff.idle_limit(remember));
                    prop_assert!(a.token_expires_at <= a.absolute_deadline);
                    prop_assert!((a.token_expires_at - now).to_std().unwrap() <= TIMEOUT_CEILING);
                    prop_assert!(a.warn_at <= a.idle_deadline.min(a.absolute_deadline));
                }
                Decision::Deny(Deny::MaxDuration { deadline }) => prop_assert!(now >= deadline),
                Decision::Deny(Deny::Idle { deadline }) => prop_assert!(now >= deadline),
                Decision::Deny(d) => prop_assert!(false, "unexpected denial {d}"),
            }
        }
    }

    #[test]
    fn a_revoked_subject_is_never_allowed(
        kind in 0usize..4,
        started in 0i64..10_000,
        created in 0i64..10_000,
        expires in prop::option::of(1i64..10_000),
        elapsed in 0i64..100,
        noise in 0usize..50,
    ) {
        let policy = Policy::builtin();
        let eff = policy.effective(&Subject { user: "alice", client: Some("web"), ..Default::default() });
        let start = t0() + secs(started);
        let now = start + secs(elapsed);
        let created_at = t0() + secs(created);
        let target = match kind {
            0 => Target::User("alice".into()),
            1 => Target::Session("s1".into()),
            2 => Target::Client("web".into()),
            _ => Target::All,
        };
        let rev = Revocation {
            id: "r".into(), target: target.clone(), not_before: created_at,
            expires_at: expires.map(|e| created_at + secs(e)),
            reason: None, actor: "root".into(), created_at,
        };
        let mut set: RevocationSet = (0..noise).map(|i| Revocation {
            id: format!("n{i}"), target: Target::User(format!("other{i}")),
            ..rev.clone()
        }).collect();
        set.insert(rev.clone());
        let state = SessionState {
            id: Some("s1"), user: "alice", client_id: Some("web"), started_at: start,
            last_activity: now, remember_me: false, terminate_requested: false, terminate_requested_by: None,
        };
        let lifetime = eff.token_lifetime(None).value;
        let decision = decide(&eff, &state, &set, lifetime, now);
        if rev.applies(start, now) {
            let is_revoked = matches!(decision, Decision::Deny(Deny::Revoked { .. }));
            prop_assert!(is_revoked, "{:?}", decision);
        }
        // The semantics themselves: what started before not_before is dead,
        // and a lock in force refuses everything of its target.
        if start < rev.not_before || (target != Target::All && rev.in_force(now)) {
            prop_assert!(!decision.is_allowed());
        }
    }
}

/// Guards the first property against vacuity: a fair share of generated
/// policies must be accepted (and a fair share rejected).
#[test]
fn the_generator_yields_both_valid_and_invalid_policies() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = policy_text();
    let (mut ok, total) = (0, 1000);
    for _ in 0..total {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        if Policy::parse(&text, "p").is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= total / 10, "only {ok} of {total} accepted");
    assert!(
        ok <= total * 9 / 10,
        "{ok} of {total} accepted: too few rejections"
    );
}

fn list(names: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<String>>> {
    prop_oneof![
        2 => Just(None),
        1 => prop::collection::vec(prop::sample::select(names), 1..3)
            .prop_map(|v| Some(v.into_iter().map(String::from).collect())),
    ]
}

proptest! {
    /// The rule index finds exactly the rule a first-match scan finds.
    #[test]
    fn indexed_rule_matching_equals_a_linear_scan(
        rules in prop::collection::vec(
            (list(&["alice", "bob", "carol"]), list(&["wheel", "staff", "users"]),
             list(&["sshd", "login"]), list(&["web", "ci"]), list(&["h1", "h2"])),
            0..12),
        user in prop::sample::select(&["alice", "bob", "carol", "dave"][..]),
        groups in prop::collection::vec(prop::sample::select(&["wheel", "staff", "users", "x"][..]), 0..3),
        service in prop::option::of(prop::sample::select(&["sshd", "login"][..])),
        client in prop::option::of(prop::sample::select(&["web", "ci"][..])),
        host in prop::option::of(prop::sample::select(&["h1", "h2"][..])),
    ) {
        let mut text = String::from("version: 1\nrules:\n");
        let fmt = |k: &str, v: &Option<Vec<String>>| v.as_ref().map(|v| format!("{k}: [{}], ", v.join(", "))).unwrap_or_default();
        for (i, (u, g, s, c, h)) in rules.iter().enumerate() {
            text.push_str(&format!(
                "  - name: r{i}\n    match: {{ {}{}{}{}{} }}\n",
                fmt("users", u), fmt("groups", g), fmt("services", s), fmt("clients", c), fmt("hosts", h)
            ));
        }
        if rules.is_empty() {
            text = "version: 1\n".into();
        }
        let policy = Policy::parse(&text, "p").unwrap();
        let groups: Vec<String> = groups.into_iter().map(String::from).collect();
        let subject = Subject { user, groups: &groups, service, client, host };
        let linear = policy.rules().iter().position(|r| r.matcher.matches(&subject));
        prop_assert_eq!(policy.matching_rule(&subject).map(|(i, _)| i), linear);
    }
}

/// Any time chrono can represent, from the earliest to the latest.
fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    let lo = DateTime::<Utc>::MIN_UTC.timestamp();
    let hi = DateTime::<Utc>::MAX_UTC.timestamp();
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (lo..=hi).prop_map(|s| Utc
            .timestamp_opt(s, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)),
        (-100_000i64..100_000).prop_map(|s| t0() + secs(s)),
    ]
}

proptest! {
    // Issue 12: `decide` is total. No time (a user's own terminal atime, a
    // stored record, an OIDC server's auth_time) makes it panic, a deadline
    // never lies before a start it was given, and nothing in the future
    // keeps a session alive past what `now` allows.
    #[test]
    fn decide_is_total_and_future_times_never_extend(
        started in any_time(),
        activity in any_time(),
        now in any_time(),
        lifetime in prop_oneof![Just(Duration::ZERO), Just(Duration::MAX), (0u64..10_000_000).prop_map(Duration::from_secs)],
        remember_me in any::<bool>(),
    ) {
        let policy = curfew_policy::Policy::parse("version: 1\nsession: { max_duration: 1h, inactivity: 10m }\n", "p.yaml").unwrap();
        let groups: Vec<String> = vec![];
        let eff = policy.effective(&Subject { user: "u", groups: &groups, ..Default::default() });
        let state = SessionState {
            id: Some("s"),
            user: "u",
            client_id: None,
            started_at: started,
            last_activity: activity,
            remember_me,
            terminate_requested: false, terminate_requested_by: None,
        };
        let decision = decide(&eff, &state, &RevocationSet::new(), lifetime, now);
        if let Decision::Allow(a) = decision {
            // Allowed only while `now` is inside both deadlines, and the
            // deadlines are never later than a start at `now` allows.
            prop_assert!(now < a.absolute_deadline && now < a.idle_deadline);
            let limit = eff.absolute_limit(remember_me);
            let latest = curfew_policy::time::add(now, limit);
            prop_assert!(a.absolute_deadline <= latest, "{a:?}");
            prop_assert!(a.idle_deadline <= curfew_policy::time::add(now, eff.idle_limit(remember_me)), "{a:?}");
            prop_assert!(a.token_expires_at <= a.absolute_deadline);
        }
    }
}
