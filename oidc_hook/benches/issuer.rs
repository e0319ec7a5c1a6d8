//! The overhead of `PolicyIssuer` over the bare oxide-auth `TokenMap` it
//! wraps: issue, recover (resource access) and refresh, with the in-memory
//! store (the policy work alone) and with SQLite (what a server pays), plus
//! one token-hook decision without HTTP. Results: BENCHMARKS.md.
#![allow(missing_docs)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use curfew_oidc::hook::hydra::TokenHookRequest;
use curfew_oidc::hook::{HookAuth, HookOptions, HookState, Outcome};
use curfew_oidc::issuer::conformance::grant_template;
use curfew_oidc::{Gate, ManualClock, PolicyCell, PolicyIssuer};
use curfew_policy::store::{MemoryStore, SqliteStore};
use curfew_policy::{Policy, Store};
use oxide_auth::primitives::generator::RandomGenerator;
use oxide_auth::primitives::issuer::{Issuer, TokenMap};

const POLICY: &str = r#"
version: 1
session: { timeout: { default: 5m }, max_duration: 12h, inactivity: 30m }
banner: { text: "Authorized use only. Activity is logged." }
rules:
  - name: admins
    match: { groups: [wheel] }
    session: { inactivity: 15m }
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn gate(store: Arc<dyn Store>) -> Gate {
    let policy = Policy::parse(POLICY, "policy.yaml").unwrap();
    Gate::new(
        PolicyCell::new(policy),
        store,
        Arc::new(ManualClock::new(t0())),
    )
}

fn bare() -> TokenMap<RandomGenerator> {
    TokenMap::new(RandomGenerator::new(16))
}

fn wrapped(store: Arc<dyn Store>) -> PolicyIssuer<TokenMap<RandomGenerator>> {
    PolicyIssuer::new(bare(), gate(store))
}

fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap())
}

fn issue(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue");
    let grant = grant_template(t0());
    g.bench_function("token_map", |b| {
        let mut i = bare();
        b.iter(|| i.issue(grant.clone()).unwrap())
    });
    // A fresh in-memory store per issue: its session list is a plain Vec.
    g.bench_function("policy_issuer_memory", |b| {
        b.iter_batched(
            || wrapped(Arc::new(MemoryStore::new())),
            |mut i| i.issue(grant.clone()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    g.bench_function("policy_issuer_sqlite", |b| {
        let mut i = wrapped(store.clone());
        b.iter(|| i.issue(grant.clone()).unwrap())
    });
    g.finish();
}

fn recover(c: &mut Criterion) {
    let mut g = c.benchmark_group("recover_token");
    let grant = grant_template(t0());
    g.bench_function("token_map", |b| {
        let mut i = bare();
        let t = i.issue(grant.clone()).unwrap();
        b.iter(|| i.recover_token(&t.token).unwrap().unwrap())
    });
    g.bench_function("policy_issuer_memory", |b| {
        let mut i = wrapped(Arc::new(MemoryStore::new()));
        let t = i.issue(grant.clone()).unwrap();
        b.iter(|| i.recover_token(&t.token).unwrap().unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("policy_issuer_sqlite", |b| {
        let mut i = wrapped(sqlite(&dir));
        let t = i.issue(grant.clone()).unwrap();
        b.iter(|| i.recover_token(&t.token).unwrap().unwrap())
    });
    g.finish();
}

/// What oxide-auth's refresh flow calls: recover the refresh token, then refresh.
fn refresh_cycle(i: &mut dyn Issuer, rt: &mut String) {
    let mut grant = i.recover_refresh(rt).unwrap().unwrap();
    grant.until = t0() + Duration::hours(1);
    let r = i.refresh(rt, grant).unwrap();
    *rt = r.refresh.unwrap();
}

fn refresh(c: &mut Criterion) {
    let mut g = c.benchmark_group("refresh");
    let grant = grant_template(t0());
    g.bench_function("token_map", |b| {
        let mut i = bare();
        let mut rt = i.issue(grant.clone()).unwrap().refresh.unwrap();
        b.iter(|| refresh_cycle(&mut i, &mut rt))
    });
    g.bench_function("policy_issuer_memory", |b| {
        let mut i = wrapped(Arc::new(MemoryStore::new()));
        let mut rt = i.issue(grant.clone()).unwrap().refresh.unwrap();
        b.iter(|| refresh_cycle(&mut i, &mut rt))
    });
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("policy_issuer_sqlite", |b| {
        let mut i = wrapped(sqlite(&dir));
        let mut rt = i.issue(grant.clone()).unwrap().refresh.unwrap();
        b.iter(|| refresh_cycle(&mut i, &mut rt))
    });
    g.finish();
}

fn hook_answer(c: &mut Criterion) {
    let body = serde_json::json!({
        "session": {"id_token": {"id_token_claims": {"sub": "alice",
            "auth_time": (t0() - Duration::minutes(1)).to_rfc3339(), "ext": {"sid": "h1"}},
            "subject": "alice"}, "extra": {}, "client_id": "web"},
        "request": {"client_id": "web", "granted_scopes": ["openid", "offline"],
            "grant_types": ["refresh_token"]}
    });
    let req: TokenHookRequest = serde_json::from_value(body).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = HookState::new(
        gate(sqlite(&dir)),
        HookOptions::default(),
        None,
        HookAuth::default(),
    );
    c.bench_function("hook_answer/refresh_sqlite", |b| {
        b.iter(|| {
            let n = req.to_neutral(&HookOptions::default().hydra).unwrap();
            match state.decide(&n) {
                Outcome::Allow { claims, .. } => {
                    criterion::black_box(req.response(&claims));
                }
                a => panic!("{a:?}"),
            }
        })
    });
}

criterion_group!(benches, issue, recover, refresh, hook_answer);
criterion_main!(benches);
