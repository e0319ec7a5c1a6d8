//! The Redis store against a real redis-server, started by each test on a
//! private unix socket (or loopback port) and stopped by its PID on drop.
//! Needs `redis-server` (Debian package redis-server) on PATH or in
//! `$REDIS_SERVER`.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use curfew_policy::store::conformance::{revocation, session};
use curfew_policy::store::redis::{redacted_url, RedisStore, ENDED_SESSION_RETENTION};
use curfew_policy::store::testing::RedisServer;
use curfew_policy::store::{self as store, EventStream, StoreEvent};
use curfew_policy::{
    EndReason, OnUnavailable, RevocationKeys, SessionFilter, Store, StoreBackend, StoreConfig,
    StoreError, Target,
};

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
}

/// Waits for the next event, skipping `None`s, for at most `tries` polls
/// of one second (a bound on waiting, not a timed assertion).
fn next_event(stream: &mut dyn EventStream, tries: usize) -> Result<StoreEvent, StoreError> {
    for _ in 0..tries {
        if let Some(e) = stream.next(Duration::from_secs(1))? {
            return Ok(e);
        }
    }
    panic!("no event after {tries} s");
}

/// The next event that is not an error (errors are expected while the
/// server is down).
fn next_ok_event(stream: &mut dyn EventStream, tries: usize) -> StoreEvent {
    for _ in 0..tries {
        match stream.next(Duration::from_secs(1)) {
            Ok(Some(e)) => return e,
            Ok(None) | Err(StoreError::Unavailable { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    panic!("no event after {tries} s");
}

#[test]
fn conformance_on_a_unix_socket() {
    let server = RedisServer::start().expect("start redis-server");
    let n = AtomicUsize::new(0);
    store::conformance::run(&|| {
        // A fresh, empty store per check: its own prefix on the one server.
        let i = n.fetch_add(1, Ordering::SeqCst);
        Box::new(RedisStore::open(&server.url(), &format!("t{i}:")).unwrap())
    });
}

#[test]
fn conformance_on_loopback_tcp_through_store_open() {
    let server = RedisServer::start_loopback().expect("start redis-server");
    let n = AtomicUsize::new(0);
    store::conformance::run(&|| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let config = StoreConfig {
            backend: StoreBackend::Redis {
                url: server.url(),
                prefix: format!("tcp{i}:"),
                tls_ca_file: None,
            },
            on_unavailable: OnUnavailable::Deny,
        };
        store::open(&config).unwrap()
    });
}

#[test]
fn prefixes_keep_stores_apart() {
    let server = RedisServer::start().unwrap();
    let a = RedisStore::open(&server.url(), "a:").unwrap();
    let b = RedisStore::open(&server.url(), "b:").unwrap();
    a.create_session(&session("s1", "alice", 0)).unwrap();
    a.add_revocation(&revocation("r1", Target::All, 1, None))
        .unwrap();
    assert!(b.session("s1").unwrap().is_none());
    assert!(b.list_revocations().unwrap().is_empty());
    assert_eq!(b.list_sessions(&SessionFilter::default()).unwrap(), []);
    b.create_session(&session("s1", "bob", 0)).unwrap();
    assert_eq!(a.session("s1").unwrap().unwrap().user, "alice");
}

#[test]
fn host_index_serves_the_enforcer_query() {
    let server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "h:").unwrap();
    let mut other = session("o", "alice", 1);
    other.host = Some("host2".into());
    let mut no_host = session("n", "alice", 2);
    no_host.host = None;
    for x in [session("a", "alice", 0), other, no_host] {
        s.create_session(&x).unwrap();
    }
    let mine = |include_ended| {
        s.list_sessions(&SessionFilter {
            host: Some("host1".into()),
            include_ended,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(mine(false), ["a"]);
    assert!(s.end_session("a", t(10), EndReason::Idle).unwrap());
    assert!(
        mine(false).is_empty(),
        "ended sessions leave the live host index"
    );
    assert_eq!(mine(true), ["a"], "and are still listed with ended ones");
    assert!(s.end_session("n", t(10), EndReason::Logout).unwrap());
}

#[test]
fn ended_sessions_expire_and_revocations_without_expiry_do_not() {
    let server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "x:").unwrap();
    s.create_session(&session("a", "alice", 0)).unwrap();
    s.end_session("a", t(10), EndReason::Logout).unwrap();
    s.add_revocation(&revocation("forever", Target::User("bob".into()), 0, None))
        .unwrap();
    let mut c = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg("x:session:a").query(&mut c).unwrap();
    let retention = ENDED_SESSION_RETENTION.as_millis() as i64;
    assert!(
        ttl > retention - 60_000 && ttl <= retention,
        "ended session expires after the retention, got {ttl} ms"
    );
    for key in ["x:revocations", "x:revoked:user:bob", "x:schema"] {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut c).unwrap();
        assert_eq!(ttl, -1, "{key} never expires");
    }
}

#[test]
fn expired_revocations_are_purged_only_after_the_grace() {
    let server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "g:").unwrap();
    // One that expired 100 days before the next one is made is past its
    // grace then, and purged by that add. One that expired a day before stays.
    s.add_revocation(&revocation("old", Target::User("a".into()), 0, Some(30)))
        .unwrap();
    let day = 86_400;
    let mut recent = revocation("recent", Target::User("b".into()), 30 + 99 * day, None);
    recent.created_at = t(30 + 100 * day);
    recent.expires_at = Some(recent.created_at - chrono::Duration::days(1));
    s.add_revocation(&recent).unwrap();
    let ids: Vec<String> = s
        .list_revocations()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["recent"], "the old one was purged by the newer add");
    let set = s
        .revocations_for(&RevocationKeys {
            session: None,
            user: "a",
            client: None,
        })
        .unwrap();
    assert!(set.is_empty(), "and its index entry is gone too");
    let set = s
        .revocations_for(&RevocationKeys {
            session: None,
            user: "b",
            client: None,
        })
        .unwrap();
    assert_eq!(set.len(), 1, "an expired lock still kills older sessions");
}

#[test]
fn unavailable_without_password_then_recovers_without_reopening() {
    let password = "s3cret-Pa55word";
    let mut server = RedisServer::start_with_password(password).unwrap();
    let url = server.url_with_credentials("default");
    let s = RedisStore::open(&url, "u:").unwrap();
    assert!(!s.location().contains(password));
    assert_eq!(s.location(), redacted_url(&url));
    s.create_session(&session("a", "alice", 0)).unwrap();

    server.stop();
    for call in 0..2 {
        match s.session("a") {
            Err(e @ StoreError::Unavailable { .. }) => {
                let msg = e.to_string();
                assert!(!msg.contains(password), "password in {msg:?}");
                assert!(msg.contains("pass=***"), "location shown: {msg:?}");
            }
            other => panic!("call {call} with the server down: {other:?}"),
        }
    }
    assert!(matches!(
        s.revocations_for(&RevocationKeys {
            session: None,
            user: "alice",
            client: None
        }),
        Err(StoreError::Unavailable { .. })
    ));
    // The hook's one-trip read fails as a whole, as unavailable.
    assert!(matches!(
        s.session_reads(
            "a",
            &RevocationKeys {
                session: Some("a"),
                user: "alice",
                client: None
            }
        ),
        Err(StoreError::Unavailable { .. })
    ));

    server.restart().unwrap();
    // The same store object, no reopen: works again (the restarted server
    // keeps nothing, so the old session is gone).
    assert_eq!(s.session("a").unwrap(), None);
    s.create_session(&session("b", "bob", 0)).unwrap();
    assert_eq!(s.session("b").unwrap().unwrap().user, "bob");
}

#[test]
fn wrong_password_is_unavailable_and_not_echoed() {
    let server = RedisServer::start_with_password("right-password").unwrap();
    let url = server.url().replace("unix://", "redis+unix://") + "?pass=wrong-password";
    let s = RedisStore::open(&url, "w:").unwrap();
    match s.list_revocations() {
        Err(e @ StoreError::Unavailable { .. }) => {
            let msg = e.to_string();
            assert!(!msg.contains("wrong-password"), "{msg}");
            assert!(!msg.contains("right-password"), "{msg}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[test]
fn opening_while_down_works_once_the_server_starts() {
    let mut server = RedisServer::start().unwrap();
    server.stop();
    let s = RedisStore::open(&server.url(), "late:").unwrap();
    assert!(matches!(s.ping(), Err(StoreError::Unavailable { .. })));
    server.restart().unwrap();
    s.ping().unwrap();
    s.set_timeout_preference("alice", Some(Duration::from_secs(600)))
        .unwrap();
    assert_eq!(
        s.timeout_preference("alice").unwrap(),
        Some(Duration::from_secs(600))
    );
}

#[test]
fn a_newer_layout_is_refused() {
    let server = RedisServer::start().unwrap();
    let mut c = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET")
        .arg("new:schema")
        .arg(99)
        .exec(&mut c)
        .unwrap();
    let s = RedisStore::open(&server.url(), "new:").unwrap();
    assert!(matches!(
        s.list_revocations(),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn watch_sees_every_change_and_resyncs_after_a_restart() {
    let mut server = RedisServer::start().unwrap();
    let writer = RedisStore::open(&server.url(), "w:").unwrap();
    let watcher = RedisStore::open(&server.url(), "w:").unwrap();
    let mut stream = watcher.watch().unwrap().expect("redis pushes changes");
    assert_eq!(
        next_event(stream.as_mut(), 10).unwrap(),
        StoreEvent::Resync,
        "the first subscription asks for a full read"
    );

    writer.create_session(&session("s1", "alice", 0)).unwrap();
    writer
        .add_revocation(&revocation("r1", Target::User("alice".into()), 1, None))
        .unwrap();
    assert!(writer
        .request_termination("s1", t(2), Some("root"))
        .unwrap());
    assert!(writer.end_session("s1", t(3), EndReason::Revoked).unwrap());
    assert!(!writer.end_session("s1", t(4), EndReason::Logout).unwrap());
    assert!(!writer.request_termination("s1", t(5), None).unwrap());
    writer.remove_revocation("r1").unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(stream.as_mut(), 10).unwrap());
    }
    assert_eq!(
        got,
        [
            StoreEvent::RevocationAdded {
                id: "r1".into(),
                target: Target::User("alice".into())
            },
            StoreEvent::TerminationRequested {
                session: "s1".into()
            },
            StoreEvent::SessionEnded {
                session: "s1".into(),
                reason: EndReason::Revoked
            },
            StoreEvent::RevocationRemoved { id: "r1".into() },
        ],
        "one event per change, none for the refused ones"
    );

    // Another prefix on the same server is another channel.
    let stranger = RedisStore::open(&server.url(), "other:").unwrap();
    stranger
        .add_revocation(&revocation("x", Target::All, 1, None))
        .unwrap();

    server.restart().unwrap();
    assert_eq!(
        next_ok_event(stream.as_mut(), 30),
        StoreEvent::Resync,
        "after the restart the stream resubscribes and asks for a full read"
    );
    writer
        .add_revocation(&revocation("r2", Target::Client("web".into()), 6, None))
        .unwrap();
    assert_eq!(
        next_event(stream.as_mut(), 10).unwrap(),
        StoreEvent::RevocationAdded {
            id: "r2".into(),
            target: Target::Client("web".into())
        },
        "and keeps delivering"
    );
}

#[test]
fn watch_reports_the_outage_once() {
    let mut server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "o:").unwrap();
    let mut stream = s.watch().unwrap().unwrap();
    assert_eq!(next_event(stream.as_mut(), 10).unwrap(), StoreEvent::Resync);
    server.stop();
    let err = loop {
        match stream.next(Duration::from_secs(1)) {
            Ok(None) => continue,
            Err(e) => break e,
            Ok(Some(e)) => panic!("unexpected {e:?}"),
        }
    };
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    // While it stays down: quiet, not an error per attempt.
    assert!(matches!(stream.next(Duration::from_secs(3)), Ok(None)));
    server.restart().unwrap();
    assert_eq!(next_event(stream.as_mut(), 30).unwrap(), StoreEvent::Resync);
}

#[test]
fn memory_and_sqlite_do_not_push() {
    let m = curfew_policy::store::MemoryStore::new();
    assert!(m.watch().unwrap().is_none());
}

/// The ACL that docs/fleet.md recommends is enough for every call,
/// including the subscription, and keeps the user inside its prefix.
#[test]
fn the_documented_acl_is_enough() {
    let server = RedisServer::start().unwrap();
    let mut admin = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // Keep in step with docs/fleet.md.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("curfew")
        .arg("reset")
        .arg("on")
        .arg(">curfew-acl-pass")
        .arg("~curfew:*")
        .arg("&curfew:*")
        .arg("+@connection")
        .arg("+@read")
        .arg("+@write")
        .arg("+@scripting")
        .arg("+@pubsub")
        .arg("+@transaction")
        .arg("-@dangerous")
        .exec(&mut admin)
        .unwrap();
    let url =
        server.url().replace("unix://", "redis+unix://") + "?user=curfew&pass=curfew-acl-pass";
    let n = AtomicUsize::new(0);
    store::conformance::run(&|| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        Box::new(RedisStore::open(&url, &format!("curfew:acl{i}:")).unwrap())
    });
    let s = RedisStore::open(&url, "curfew:").unwrap();
    let mut stream = s.watch().unwrap().unwrap();
    assert_eq!(next_event(stream.as_mut(), 10).unwrap(), StoreEvent::Resync);
    s.add_revocation(&revocation("r", Target::All, 1, None))
        .unwrap();
    assert!(matches!(
        next_event(stream.as_mut(), 10).unwrap(),
        StoreEvent::RevocationAdded { .. }
    ));
    let outside = RedisStore::open(&url, "elsewhere:").unwrap();
    assert!(
        outside.list_revocations().is_err(),
        "keys outside the prefix are refused"
    );
}

/// The hook service calls one store from many threads: each gets its own
/// pooled connection, and the scripts keep every write atomic.
#[test]
fn many_threads_share_one_store() {
    let server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "mt:").unwrap();
    std::thread::scope(|scope| {
        for th in 0..8 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..25 {
                    let id = format!("t{th}-{i}");
                    s.create_session(&session(&id, "u", i)).unwrap();
                    assert!(s.end_session(&id, t(100), EndReason::Logout).unwrap());
                }
            });
        }
    });
    let all = s
        .list_sessions(&SessionFilter {
            include_ended: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 200);
    assert!(all.iter().all(|x| x.end_reason == Some(EndReason::Logout)));

    // Racing ends of one session: exactly one wins.
    s.create_session(&session("race", "u", 0)).unwrap();
    let wins = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for th in 0..8 {
            let (s, wins) = (&s, &wins);
            scope.spawn(move || {
                if s.end_session("race", t(th), EndReason::Revoked).unwrap() {
                    wins.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.load(Ordering::SeqCst), 1, "first end wins, once");
    assert!(s.session("race").unwrap().unwrap().ended_at.is_some());
}

/// A session record whose pid is out of range (written behind the store's
/// back) is left out and reported by its id; the host's other sessions are
/// still listed (issue 12: one bad record blinded the enforcer).
#[test]
fn an_unreadable_session_record_is_reported_and_the_others_listed() {
    let server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "u:").unwrap();
    for x in [
        session("good1", "alice", 0),
        session("bad", "bob", 1),
        session("good2", "carol", 2),
    ] {
        s.create_session(&x).unwrap();
    }
    let mut c = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("HSET")
        .arg("u:session:bad")
        .arg("pid")
        .arg("-1")
        .query(&mut c)
        .unwrap();
    let filter = SessionFilter {
        host: Some("host1".into()),
        ..Default::default()
    };
    let listing = s.list_sessions_reporting(&filter).unwrap();
    let ids: Vec<&str> = listing.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["good1", "good2"]);
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(listing.unreadable[0].id, "bad");
    assert!(
        listing.unreadable[0].detail.contains("pid"),
        "{:?}",
        listing.unreadable
    );
    let plain: Vec<String> = s
        .list_sessions(&filter)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(plain, ["good1", "good2"]);
}

/// A revocation whose stored value is not UTF-8 (planted by someone who
/// can write to Redis) is a corrupt store, never an outage: an outage with
/// `on_unavailable: allow` would skip the revocations, a corrupt store
/// denies whatever that says. Found by review (issue 17).
#[test]
fn a_reply_that_is_not_utf8_is_corrupt_not_unavailable() {
    let server = RedisServer::start().unwrap();
    let s = RedisStore::open(&server.url(), "b:").unwrap();
    let r = revocation("r1", Target::User("mallory".into()), 0, None);
    s.add_revocation(&r).unwrap();
    s.create_session(&session("s1", "mallory", 0)).unwrap();
    let mut c = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("HSET")
        .arg("b:revocations")
        .arg("r1")
        .arg(&b"\xff\xfe"[..])
        .query(&mut c)
        .unwrap();
    let keys = RevocationKeys {
        session: Some("s1"),
        user: "mallory",
        client: None,
    };
    for (call, got) in [
        ("revocations_for", s.revocations_for(&keys).map(|_| ())),
        ("session_reads", s.session_reads("s1", &keys).map(|_| ())),
        ("list_revocations", s.list_revocations().map(|_| ())),
    ] {
        match got {
            Err(StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains("cannot read"), "{call}: {detail}")
            }
            other => panic!("{call}: expected a corrupt store, got {other:?}"),
        }
    }
    // The store itself still answers.
    assert!(s.session("s1").unwrap().is_some());

    // A key of curfew's holding another kind of value (WRONGTYPE inside
    // the scripts), and a schema version that is not text (read by every
    // new connection): corrupt too.
    let () = redis::cmd("SET")
        .arg("b:revocations")
        .arg("a string")
        .query(&mut c)
        .unwrap();
    for (call, got) in [
        ("revocations_for", s.revocations_for(&keys).map(|_| ())),
        ("session_reads", s.session_reads("s1", &keys).map(|_| ())),
    ] {
        assert!(
            matches!(got, Err(StoreError::Corrupt { .. })),
            "{call}: {got:?}"
        );
    }
    let () = redis::cmd("SET")
        .arg("b:schema")
        .arg(&b"\xff"[..])
        .query(&mut c)
        .unwrap();
    let again = RedisStore::open(&server.url(), "b:").and_then(|s| s.session("s1").map(|_| ()));
    assert!(
        matches!(again, Err(StoreError::Corrupt { .. })),
        "{again:?}"
    );
}
