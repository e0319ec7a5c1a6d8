//! Store throughput: operations per second of the calls on the login and
//! logout paths, for SQLite (one host) and Redis (a fleet; unix socket and
//! loopback TCP), each op on one thread, one after the other, each store
//! beside its baseline in the same run: for SQLite a bare `rusqlite` table
//! (one key, one value) in WAL mode with `synchronous=NORMAL`, one insert
//! and one read by key; for Redis one `PING` round trip on a plain
//! connection (the floor of any call).
//!
//! `cargo bench -p curfew-policy --bench store` (needs `redis-server`; the
//! bench starts its own on a temporary socket and port and stops it).
//! Results and how to read them: BENCHMARKS.md.
// criterion_group! makes a public function without a doc comment.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use curfew_policy::store::conformance::{revocation, session};
use curfew_policy::store::testing::RedisServer;
use curfew_policy::store::{EventStream, RedisStore, SqliteStore, StoreEvent};
use curfew_policy::{EndReason, RevocationKeys, Store, Target};

/// Unrelated revocations in the store while `revocations_for` runs.
const OTHER_REVOCATIONS: usize = 1_000;

fn bench_one(c: &mut Criterion, name: &str, store: &dyn Store) {
    for i in 0..OTHER_REVOCATIONS {
        store
            .add_revocation(&revocation(
                &format!("other{i}"),
                Target::User(format!("user{i}")),
                0,
                None,
            ))
            .unwrap();
    }
    for r in [
        revocation("mine", Target::User("alice".into()), 0, Some(60)),
        revocation("everyone", Target::All, 0, None),
    ] {
        store.add_revocation(&r).unwrap();
    }
    let next = AtomicU64::new(0);
    let fresh_id = || format!("{name}-{}", next.fetch_add(1, Ordering::Relaxed));
    let at = Utc.timestamp_opt(1_700_000_100, 0).unwrap();

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("create_session", |b| {
        b.iter(|| {
            store
                .create_session(&session(&fresh_id(), "alice", 0))
                .unwrap()
        })
    });
    let keys = RevocationKeys {
        session: Some("s1"),
        user: "alice",
        client: None,
    };
    g.bench_function("revocations_for", |b| {
        b.iter(|| assert_eq!(store.revocations_for(&keys).unwrap().len(), 2))
    });
    g.bench_function("end_session", |b| {
        b.iter_batched(
            || {
                let id = fresh_id();
                store.create_session(&session(&id, "bob", 0)).unwrap();
                id
            },
            |id| assert!(store.end_session(&id, at, EndReason::Logout).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// From `add_revocation` on one store to its event arriving at two other
/// subscribers (each its own connection and thread, as two enforcers have):
/// the store's share of revocation propagation.
fn propagation(c: &mut Criterion, name: &str, url: &str) {
    let writer = RedisStore::open(url, "prop:").unwrap();
    let watchers = [
        RedisStore::open(url, "prop:").unwrap(),
        RedisStore::open(url, "prop:").unwrap(),
    ];
    let mut streams: Vec<Box<dyn EventStream>> = watchers
        .iter()
        .map(|w| w.watch().unwrap().expect("redis pushes"))
        .collect();
    for s in &mut streams {
        let first = s.next(Duration::from_secs(10)).unwrap();
        assert_eq!(first, Some(StoreEvent::Resync));
    }
    let next = AtomicU64::new(0);
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("revocation_to_two_watchers", |b| {
        b.iter(|| {
            let id = format!("p{}", next.fetch_add(1, Ordering::Relaxed));
            writer
                .add_revocation(&revocation(&id, Target::User("alice".into()), 0, None))
                .unwrap();
            for s in &mut streams {
                match s.next(Duration::from_secs(10)).unwrap() {
                    Some(StoreEvent::RevocationAdded { id: got, .. }) if got == id => {}
                    other => panic!("expected {id}, got {other:?}"),
                }
            }
        })
    });
    g.finish();
}

/// SQLite's floor: a one-table database with the store's journal settings,
/// one autocommitted insert and one read by primary key.
fn sqlite_baseline(c: &mut Criterion, path: &std::path::Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    db.pragma_update(None, "synchronous", "NORMAL").unwrap();
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT)", [])
        .unwrap();
    db.execute("INSERT INTO t VALUES ('alice', 'x')", [])
        .unwrap();
    let next = AtomicU64::new(0);
    let mut g = c.benchmark_group("sqlite");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("baseline: bare insert", |b| {
        b.iter(|| {
            let id = format!("b{}", next.fetch_add(1, Ordering::Relaxed));
            db.execute("INSERT INTO t VALUES (?1, 'x')", [&id]).unwrap()
        })
    });
    g.bench_function("baseline: bare read by key", |b| {
        b.iter(|| {
            let v: String = db
                .query_row("SELECT v FROM t WHERE id = 'alice'", [], |r| r.get(0))
                .unwrap();
            v
        })
    });
    g.finish();
}

/// Redis's floor: one `PING` round trip on a plain connection.
fn redis_baseline(c: &mut Criterion, name: &str, url: &str) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("baseline: PING round trip", |b| {
        b.iter(|| redis::cmd("PING").query::<String>(&mut con).unwrap())
    });
    g.finish();
}

fn stores(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    sqlite_baseline(c, &dir.path().join("baseline.db"));
    let sqlite = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    bench_one(c, "sqlite", &sqlite);

    let unix = RedisServer::start().expect("start redis-server");
    let store = RedisStore::open(&unix.url(), "bench:").unwrap();
    redis_baseline(c, "redis-unix", &unix.url());
    bench_one(c, "redis-unix", &store);
    propagation(c, "redis-unix", &unix.url());

    let tcp = RedisServer::start_loopback().expect("start redis-server");
    let store = RedisStore::open(&tcp.url(), "bench:").unwrap();
    redis_baseline(c, "redis-tcp", &tcp.url());
    bench_one(c, "redis-tcp", &store);
    propagation(c, "redis-tcp", &tcp.url());
}

criterion_group!(benches, stores);
criterion_main!(benches);
