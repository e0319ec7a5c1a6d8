//! `rediss://` with a password, against a real redis-server with TLS (its
//! own binary: the test sets `SSL_CERT_FILE`, which no other test may see,
//! to show that it changes nothing). Needs `redis-server` built with TLS
//! (Debian's is) and `openssl`.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicUsize, Ordering};

use curfew_policy::store::conformance::{self, revocation};
use curfew_policy::store::testing::RedisServer;
use curfew_policy::store::{RedisStore, StoreEvent};
use curfew_policy::{Store, StoreError, Target};

#[test]
fn rediss_with_a_password_works_and_checks_the_certificate() {
    let password = "tls-Pa55word-xyz";
    let server = RedisServer::start_tls(password).expect("start redis-server with TLS");
    let url = server.url_with_credentials("default");
    assert!(url.starts_with("rediss://"));

    // Issue 12, class 5: the environment names the test CA, but the roots
    // come from the policy only. Without store.tls_ca_file (the system
    // roots), the test CA's certificate is refused.
    std::env::set_var("SSL_CERT_FILE", server.ca_path());
    std::env::set_var("SSL_CERT_DIR", server.ca_path().parent().unwrap());
    let untrusted = RedisStore::open(&url, "tls:").unwrap();
    match untrusted.list_revocations() {
        Err(e @ StoreError::Unavailable { .. }) => {
            let msg = e.to_string();
            assert!(!msg.contains(password), "{msg}");
            assert!(msg.contains("rediss://default:***@127.0.0.1"), "{msg}");
        }
        other => panic!("a CA named only by SSL_CERT_FILE must not be trusted, got {other:?}"),
    }

    // An environment that cannot be read does not break a configured CA.
    std::env::set_var("SSL_CERT_FILE", "/nonexistent/ca.pem");
    std::env::set_var("SSL_CERT_DIR", "/nonexistent");
    let ca_path = server.ca_path();
    let ca = ca_path.as_path();
    let n = AtomicUsize::new(0);
    conformance::run(&|| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        Box::new(RedisStore::open_with_roots(&url, &format!("tls{i}:"), Some(ca)).unwrap())
    });

    let s = RedisStore::open_with_roots(&url, "tls:", Some(ca)).unwrap();
    let mut stream = s.watch().unwrap().unwrap();
    let first = stream.next(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(first, Some(StoreEvent::Resync));
    s.add_revocation(&revocation("r", Target::All, 1, None))
        .unwrap();
    let got = stream.next(std::time::Duration::from_secs(10)).unwrap();
    assert!(
        matches!(got, Some(StoreEvent::RevocationAdded { .. })),
        "{got:?}"
    );

    let wrong = url.replace(password, "not-the-password");
    let s = RedisStore::open_with_roots(&wrong, "tls:", Some(ca)).unwrap();
    assert!(matches!(
        s.list_revocations(),
        Err(StoreError::Unavailable { .. })
    ));
}

#[test]
fn a_ca_file_that_is_unusable_or_writable_by_others_is_refused_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let url = "rediss://127.0.0.1:1/0";
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let e = RedisStore::open_with_roots(url, "t:", Some(&empty))
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("empty.pem") && msg.contains("no PEM certificate"),
        "{msg}"
    );

    let missing = dir.path().join("missing.pem");
    let e = RedisStore::open_with_roots(url, "t:", Some(&missing))
        .err()
        .unwrap();
    assert!(e.to_string().contains("missing.pem"), "{e}");

    let open_to_all = dir.path().join("shared.pem");
    std::fs::write(&open_to_all, "").unwrap();
    std::fs::set_permissions(&open_to_all, std::fs::Permissions::from_mode(0o666)).unwrap();
    match RedisStore::open_with_roots(url, "t:", Some(&open_to_all)) {
        Err(StoreError::Insecure(e)) => assert_eq!(e.path, open_to_all),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a CA file anyone can write was accepted"),
    }
}
