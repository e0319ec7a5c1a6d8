//! The decision path: effective policy (100 rules, first match at the end)
//! plus the revocation check against 1,000,000 revocations, through the
//! admission kernel (`admit`, what every enforcement point calls) side by
//! side with the baseline of `Policy::effective` + `decide` called
//! directly; and parsing examples/policy.yaml.
//!
//! cargo bench -p curfew-policy --bench decision

// criterion_group! generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use curfew_policy::{
    admit, decide, Caller, GroupsLookup, Policy, Revocation, RevocationSet, SessionState,
    StoreAnswer, Subject, Target, Which, Who,
};

fn policy_with_rules(n: usize) -> Policy {
    let mut text =
        String::from("version: 1\nsession: { max_duration: 12h, inactivity: 30m }\nrules:\n");
    for i in 0..n - 1 {
        text.push_str(&format!(
            "  - name: team{i}\n    match: {{ users: [u{i}a, u{i}b], groups: [g{i}], services: [sshd] }}\n    session: {{ inactivity: {}m }}\n",
            5 + i % 50
        ));
    }
    text.push_str(
        "  - name: last\n    match: { groups: [staff] }\n    session: { inactivity: 20m }\n",
    );
    Policy::parse(&text, "bench.yaml").expect("valid bench policy")
}

/// The worst case for the rule index: no rule names users or groups, so
/// every rule is a candidate and the 100th matches.
fn policy_with_unkeyed_rules(n: usize) -> Policy {
    let mut text = String::from("version: 1\nrules:\n");
    for i in 0..n - 1 {
        text.push_str(&format!(
            "  - name: svc{i}\n    match: {{ services: [svc{i}], hosts: [h{i}] }}\n    session: {{ inactivity: 10m }}\n"
        ));
    }
    text.push_str(
        "  - name: last\n    match: { services: [sshd] }\n    session: { inactivity: 20m }\n",
    );
    Policy::parse(&text, "bench.yaml").expect("valid bench policy")
}

fn revocations(n: usize) -> RevocationSet {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| Revocation {
            id: format!("r{i}"),
            target: match i % 3 {
                0 => Target::User(format!("user{i}")),
                1 => Target::Session(format!("{i:032x}")),
                _ => Target::Client(format!("client{i}")),
            },
            not_before: t,
            expires_at: None,
            reason: None,
            actor: "bench".into(),
            created_at: t,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let policy = policy_with_rules(100);
    let revs = revocations(1_000_000);
    let groups = vec!["users".to_string(), "staff".to_string()];
    let start = Utc.with_ymd_and_hms(2026, 1, 2, 9, 0, 0).unwrap();
    let now = start + chrono::Duration::minutes(10);
    let session_id = format!("{:032x}", u128::MAX - 7);
    let live = |user: &'static str| SessionState {
        id: Some(&session_id),
        user,
        client_id: None,
        started_at: start,
        last_activity: start,
        remember_me: false,
        terminate_requested: false,
        terminate_requested_by: None,
    };

    // Baseline: the path before the admission kernel (issue 11), the
    // effective policy and `decide` called directly, asked the same
    // question (the service as the client key, as the kernel builds it).
    let direct = |policy: &Policy, user: &'static str, mut state: SessionState<'_>| {
        state.client_id = Some("sshd");
        let subject = Subject {
            user: black_box(user),
            groups: &groups,
            service: Some("sshd"),
            client: None,
            host: Some("host1"),
        };
        let eff = policy.effective(&subject);
        let lifetime = eff.token_lifetime(None).value;
        decide(&eff, &state, &revs, lifetime, black_box(now))
    };
    // What every enforcement point calls now: `admit`, which also builds
    // the revocation keys and resolves the store's answer.
    let kernel = |policy: &Policy, user: &'static str, which: Which<'_>| {
        let who = Who {
            user: black_box(user),
            groups: GroupsLookup::Known(&groups),
            service: Some("sshd"),
            client: None,
            host: Some("host1"),
        };
        let answer = StoreAnswer::Read {
            revocations: &revs,
            preference: None,
        };
        admit(
            policy,
            &who,
            &which,
            answer,
            Caller::default(),
            black_box(now),
        )
    };

    // alice's live session on sshd, ten minutes in: the enforcer's question.
    c.bench_function(
        "decision/100 rules + 1M revocations (allow)/baseline: effective + decide",
        |b| b.iter(|| black_box(direct(&policy, "alice", live("alice")))),
    );
    c.bench_function("decision/100 rules + 1M revocations (allow)/admit", |b| {
        b.iter(|| black_box(kernel(&policy, "alice", Which::Session(live("alice")))))
    });

    // A new login of a revoked user: PAM's question, answered with a deny.
    c.bench_function(
        "decision/100 rules + 1M revocations (revoked user)/baseline: effective + decide",
        |b| {
            b.iter(|| {
                black_box(direct(
                    &policy,
                    "user999",
                    SessionState::login("user999", None, now),
                ))
            })
        },
    );
    c.bench_function(
        "decision/100 rules + 1M revocations (revoked user)/admit",
        |b| b.iter(|| black_box(kernel(&policy, "user999", Which::NewLogin))),
    );

    let unkeyed = policy_with_unkeyed_rules(100);
    c.bench_function(
        "decision/100 unkeyed rules (scan) + 1M revocations (allow)/baseline: effective + decide",
        |b| b.iter(|| black_box(direct(&unkeyed, "alice", live("alice")))),
    );
    c.bench_function(
        "decision/100 unkeyed rules (scan) + 1M revocations (allow)/admit",
        |b| b.iter(|| black_box(kernel(&unkeyed, "alice", Which::Session(live("alice"))))),
    );

    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policy.yaml"
    ))
    .expect("examples/policy.yaml");
    c.bench_function("parse/examples/policy.yaml", |b| {
        b.iter(|| black_box(Policy::parse(black_box(&example), "policy.yaml").is_ok()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
