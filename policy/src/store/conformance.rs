//! The conformance suite every [`Store`] backend runs.
//!
//! A backend's tests call [`run`] with a function that makes a fresh, empty
//! store. Each check panics with a message naming what broke.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{SessionFilter, Store, StoreError};
use crate::revocation::{Revocation, RevocationKeys, Target};
use crate::session::{EndReason, Session, SessionKind};

fn t(s: i64) -> DateTime<Utc> {
    // Millisecond precision is part of the contract: revocations made in
    // the same second as a login must still order correctly.
    Utc.timestamp_opt(1_700_000_000 + s, 123_000_000)
        .single()
        .unwrap_or_default()
}

/// A session fixture.
pub fn session(id: &str, user: &str, started: i64) -> Session {
    Session {
        id: id.into(),
        kind: SessionKind::Pam,
        user: user.into(),
        service: Some("sshd".into()),
        client_id: None,
        host: Some("host1".into()),
        machine_id: Some("0123456789abcdef0123456789abcdef".into()),
        rhost: Some("127.0.0.1".into()),
        tty: Some("/dev/pts/3".into()),
        pid: Some(4242),
        audit_session_id: Some(17),
        started_at: t(started),
        last_seen: t(started),
        timeout: Duration::from_secs(300),
        remember_me: false,
        terminate_requested_at: None,
        terminate_requested_by: None,
        ended_at: None,
        end_reason: None,
    }
}

/// A revocation fixture.
pub fn revocation(id: &str, target: Target, at: i64, expires: Option<i64>) -> Revocation {
    Revocation {
        id: id.into(),
        target,
        not_before: t(at),
        expires_at: expires.map(t),
        reason: Some("offboarding".into()),
        actor: "root".into(),
        created_at: t(at),
    }
}

/// Runs every check against fresh stores from `make`.
pub fn run(make: &dyn Fn() -> Box<dyn Store>) {
    sessions_round_trip(make().as_ref());
    list_filters(make().as_ref());
    touch_only_moves_forward(make().as_ref());
    end_is_first_wins(make().as_ref());
    a_logout_during_a_requested_end_gives_way_to_it(make().as_ref());
    termination_request(make().as_ref());
    revocations_round_trip(make().as_ref());
    unrevoke_lifts_the_lock_and_keeps_the_dead_dead(make().as_ref());
    revocations_for_selects_by_key(make().as_ref());
    preferences(make().as_ref());
    session_reads_are_the_three_reads(make().as_ref());
    duplicates_refused(make().as_ref());
    odd_bytes_survive(make().as_ref());
}

fn sessions_round_trip(s: &dyn Store) {
    let mut a = session("a1", "alice", 0);
    a.remember_me = true;
    s.create_session(&a).unwrap();
    let mut o = session("o1", "bob", 5);
    o.kind = SessionKind::Oidc;
    o.service = None;
    o.client_id = Some("web".into());
    o.pid = None;
    o.audit_session_id = None;
    o.tty = None;
    o.machine_id = None;
    s.create_session(&o).unwrap();
    assert_eq!(
        s.session("a1").unwrap().as_ref(),
        Some(&a),
        "pam session round trip"
    );
    assert_eq!(
        s.session("o1").unwrap().as_ref(),
        Some(&o),
        "oidc session round trip"
    );
    assert_eq!(s.session("nope").unwrap(), None, "unknown session");
}

fn list_filters(s: &dyn Store) {
    s.create_session(&session("b", "alice", 10)).unwrap();
    s.create_session(&session("a", "alice", 0)).unwrap();
    let mut c = session("c", "carol", 5);
    c.host = Some("host2".into());
    s.create_session(&c).unwrap();
    s.end_session("b", t(20), EndReason::Logout).unwrap();

    let ids = |f: SessionFilter| -> Vec<String> {
        s.list_sessions(&f)
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect()
    };
    assert_eq!(
        ids(SessionFilter::default()),
        ["a", "c"],
        "live, oldest first"
    );
    let all = SessionFilter {
        include_ended: true,
        ..Default::default()
    };
    assert_eq!(ids(all.clone()), ["a", "c", "b"], "with ended");
    assert_eq!(
        ids(SessionFilter {
            user: Some("alice".into()),
            ..all.clone()
        }),
        ["a", "b"],
        "by user"
    );
    assert_eq!(
        ids(SessionFilter {
            host: Some("host2".into()),
            ..all.clone()
        }),
        ["c"],
        "by host"
    );
    assert!(
        ids(SessionFilter {
            kind: Some(SessionKind::Oidc),
            ..all
        })
        .is_empty(),
        "by kind"
    );
}

fn touch_only_moves_forward(s: &dyn Store) {
    s.create_session(&session("a", "alice", 0)).unwrap();
    assert!(s.touch_session("a", t(50)).unwrap());
    assert!(s.touch_session("a", t(10)).unwrap());
    assert_eq!(
        s.session("a").unwrap().unwrap().last_seen,
        t(50),
        "never back"
    );
    assert!(!s.touch_session("zz", t(10)).unwrap(), "unknown session");
    s.end_session("a", t(60), EndReason::Logout).unwrap();
    assert!(!s.touch_session("a", t(70)).unwrap(), "ended session");
}

fn end_is_first_wins(s: &dyn Store) {
    s.create_session(&session("a", "alice", 0)).unwrap();
    assert!(s.end_session("a", t(10), EndReason::Revoked).unwrap());
    assert!(!s.end_session("a", t(20), EndReason::Logout).unwrap());
    let a = s.session("a").unwrap().unwrap();
    assert_eq!(a.ended_at, Some(t(10)));
    assert_eq!(a.end_reason, Some(EndReason::Revoked), "first end wins");
    assert!(!s.end_session("zz", t(10), EndReason::Logout).unwrap());
}

fn a_logout_during_a_requested_end_gives_way_to_it(s: &dyn Store) {
    // The enforcer asked for the end, then signalled: the PAM module saw the
    // logout first; the enforcer's reason replaces it once it is done.
    s.create_session(&session("a", "alice", 0)).unwrap();
    assert!(s.request_termination("a", t(5), None).unwrap());
    assert!(s.end_session("a", t(6), EndReason::Logout).unwrap());
    assert!(!s.end_session("a", t(7), EndReason::Logout).unwrap());
    assert!(s.end_session("a", t(8), EndReason::Revoked).unwrap());
    let a = s.session("a").unwrap().unwrap();
    assert_eq!(
        (a.ended_at, a.end_reason),
        (Some(t(8)), Some(EndReason::Revoked))
    );
    assert!(
        !s.end_session("a", t(9), EndReason::Idle).unwrap(),
        "then first wins"
    );
    // Without a request, a logout is final.
    s.create_session(&session("b", "alice", 0)).unwrap();
    assert!(s.end_session("b", t(6), EndReason::Logout).unwrap());
    assert!(!s.end_session("b", t(8), EndReason::Revoked).unwrap());
    let listed = s
        .list_sessions(&SessionFilter {
            include_ended: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|x| !x.is_live()));
}

fn termination_request(s: &dyn Store) {
    s.create_session(&session("a", "alice", 0)).unwrap();
    assert!(s.request_termination("a", t(5), Some("alice")).unwrap());
    assert!(s.request_termination("a", t(9), Some("root")).unwrap());
    let a = s.session("a").unwrap().unwrap();
    assert_eq!(a.terminate_requested_at, Some(t(5)), "first request kept");
    assert_eq!(
        a.terminate_requested_by.as_deref(),
        Some("alice"),
        "who asked first is kept with it"
    );
    assert!(a.is_live(), "a request does not end it by itself");
    s.end_session("a", t(10), EndReason::Terminated).unwrap();
    assert!(!s.request_termination("a", t(11), None).unwrap(), "ended");
    // The enforcer's own request names nobody, and a later named request
    // does not rewrite the first.
    s.create_session(&session("b", "bob", 0)).unwrap();
    assert!(s.request_termination("b", t(5), None).unwrap());
    assert!(s.request_termination("b", t(6), Some("root")).unwrap());
    let b = s.session("b").unwrap().unwrap();
    assert_eq!(
        (b.terminate_requested_at, b.terminate_requested_by),
        (Some(t(5)), None)
    );
    // A record carrying who asked round-trips.
    let mut c = session("c", "carol", 0);
    c.terminate_requested_at = Some(t(3));
    c.terminate_requested_by = Some("root".into());
    s.create_session(&c).unwrap();
    assert_eq!(s.session("c").unwrap().unwrap(), c);
}

fn revocations_round_trip(s: &dyn Store) {
    let r1 = revocation("r1", Target::User("alice".into()), 10, None);
    let mut r2 = revocation("r2", Target::All, 20, Some(30));
    r2.reason = None;
    s.add_revocation(&r2).unwrap();
    s.add_revocation(&r1).unwrap();
    assert_eq!(
        s.list_revocations().unwrap(),
        [r1.clone(), r2.clone()],
        "oldest first"
    );
    assert_eq!(s.remove_revocation("r1").unwrap(), Some(r1));
    assert_eq!(s.remove_revocation("r1").unwrap(), None, "removed once");
    assert_eq!(s.list_revocations().unwrap(), [r2]);
}

/// Issue 14: `curfew unrevoke` lifts the lock but keeps the record, so a
/// session that existed when the revocation was made stays refused
/// whichever is checked first, and a new login is let through.
fn unrevoke_lifts_the_lock_and_keeps_the_dead_dead(s: &dyn Store) {
    use super::Lift;
    let r = revocation("r1", Target::User("alice".into()), 10, None);
    s.add_revocation(&r).unwrap();
    let lifted = match s.lift_revocation("r1", t(20)).unwrap() {
        Some(Lift::Lifted(l)) => l,
        other => panic!("{other:?}"),
    };
    assert_eq!(lifted.expires_at, Some(t(20)));
    assert_eq!(lifted.not_before, r.not_before);
    assert_eq!(
        s.list_revocations().unwrap(),
        std::slice::from_ref(&lifted),
        "kept"
    );
    assert_eq!(
        s.lift_revocation("r1", t(30)).unwrap(),
        Some(Lift::AlreadyLifted(lifted.clone())),
        "lifted once"
    );
    assert_eq!(s.lift_revocation("nope", t(30)).unwrap(), None);
    let keys = RevocationKeys {
        session: Some("old"),
        user: "alice",
        client: None,
    };
    let set = s.revocations_for(&keys).unwrap();
    assert!(
        set.find(&keys, t(5), t(40)).is_some(),
        "an old session stays dead"
    );
    assert!(set.find(&keys, t(40), t(40)).is_none(), "a new login works");
    // A lock with an expiry lifts earlier, never later.
    let e = revocation("r2", Target::Client("web".into()), 10, Some(15));
    s.add_revocation(&e).unwrap();
    assert!(matches!(
        s.lift_revocation("r2", t(20)).unwrap(),
        Some(Lift::AlreadyLifted(x)) if x.expires_at == Some(t(15))
    ));
}

fn revocations_for_selects_by_key(s: &dyn Store) {
    for r in [
        revocation("u", Target::User("alice".into()), 10, None),
        revocation("ub", Target::User("bob".into()), 10, None),
        revocation("s", Target::Session("s1".into()), 10, None),
        revocation("c", Target::Client("web".into()), 10, None),
        revocation("all", Target::All, 10, None),
    ] {
        s.add_revocation(&r).unwrap();
    }
    let set = s
        .revocations_for(&RevocationKeys {
            session: Some("s1"),
            user: "alice",
            client: Some("web"),
        })
        .unwrap();
    assert_eq!(set.len(), 4, "session, user, client and all; not bob's");
    let carol = s
        .revocations_for(&RevocationKeys {
            session: None,
            user: "carol",
            client: None,
        })
        .unwrap();
    assert_eq!(carol.len(), 1, "only the `all` revocation");
    let keys = RevocationKeys {
        session: None,
        user: "carol",
        client: None,
    };
    assert!(
        carol.find(&keys, t(11), t(12)).is_none(),
        "all: new sessions live"
    );
    assert!(
        carol.find(&keys, t(9), t(12)).is_some(),
        "all: old sessions dead"
    );
}

fn preferences(s: &dyn Store) {
    assert_eq!(s.timeout_preference("alice").unwrap(), None);
    s.set_timeout_preference("alice", Some(Duration::from_secs(600)))
        .unwrap();
    s.set_timeout_preference("alice", Some(Duration::from_secs(900)))
        .unwrap();
    assert_eq!(
        s.timeout_preference("alice").unwrap(),
        Some(Duration::from_secs(900)),
        "last write wins"
    );
    assert_eq!(s.timeout_preference("bob").unwrap(), None, "per user");
    s.set_timeout_preference("alice", None).unwrap();
    assert_eq!(s.timeout_preference("alice").unwrap(), None, "cleared");
}

fn session_reads_are_the_three_reads(s: &dyn Store) {
    let keys = RevocationKeys {
        session: Some("s1"),
        user: "alice",
        client: Some("web"),
    };
    // Nothing stored: no session, no preference, no revocation.
    let none = s.session_reads("s1", &keys).unwrap();
    assert!(none.session.is_none());
    assert_eq!(none.preference, None);
    assert!(none.revocations.is_empty());

    let mut a = session("s1", "alice", 5);
    a.client_id = Some("web".into());
    s.create_session(&a).unwrap();
    s.create_session(&session("s2", "alice", 6)).unwrap();
    s.set_timeout_preference("alice", Some(Duration::from_secs(600)))
        .unwrap();
    s.set_timeout_preference("bob", Some(Duration::from_secs(900)))
        .unwrap();
    for r in [
        revocation("u", Target::User("alice".into()), 10, None),
        revocation("ub", Target::User("bob".into()), 10, None),
        revocation("s", Target::Session("s1".into()), 10, None),
        revocation("s2", Target::Session("s2".into()), 10, None),
        revocation("c", Target::Client("web".into()), 10, None),
        revocation("all", Target::All, 10, None),
    ] {
        s.add_revocation(&r).unwrap();
    }
    let got = s.session_reads("s1", &keys).unwrap();
    assert_eq!(got.session, s.session("s1").unwrap());
    assert_eq!(got.session.as_ref().map(|x| x.id.as_str()), Some("s1"));
    assert_eq!(got.preference, Some(Duration::from_secs(600)), "alice's");
    assert_eq!(
        got.revocations.len(),
        s.revocations_for(&keys).unwrap().len()
    );
    assert_eq!(got.revocations.len(), 4, "session, user, client and all");
    let k = RevocationKeys {
        session: Some("s1"),
        user: "alice",
        client: Some("web"),
    };
    assert!(
        got.revocations.find(&k, t(5), t(12)).is_some(),
        "the revocations are usable"
    );
    // An unknown session with a known user: the user's reads still come.
    let other = s.session_reads("nope", &keys).unwrap();
    assert!(other.session.is_none());
    assert_eq!(other.preference, Some(Duration::from_secs(600)));
}

fn duplicates_refused(s: &dyn Store) {
    s.create_session(&session("a", "alice", 0)).unwrap();
    assert!(matches!(
        s.create_session(&session("a", "bob", 1)),
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(s.session("a").unwrap().unwrap().user, "alice", "first kept");
    let r = revocation("r", Target::All, 1, None);
    s.add_revocation(&r).unwrap();
    assert!(matches!(
        s.add_revocation(&r),
        Err(StoreError::Duplicate(_))
    ));
}

fn odd_bytes_survive(s: &dyn Store) {
    let odd = "al\u{1b}[31mice\n\u{0}'\"; DROP TABLE sessions;--";
    let mut a = session("odd", odd, 0);
    a.tty = Some("pts/\u{7f}\u{9b}".into());
    s.create_session(&a).unwrap();
    assert_eq!(s.session("odd").unwrap().unwrap(), a, "stored as given");
    s.add_revocation(&revocation("r", Target::User(odd.into()), 1, None))
        .unwrap();
    let set = s
        .revocations_for(&RevocationKeys {
            session: None,
            user: odd,
            client: None,
        })
        .unwrap();
    assert_eq!(set.len(), 1, "looked up by the same odd name");
}
