//! `rediss://` with a password, against a real redis-server with TLS (its
//! own binary: the test sets `SSL_CERT_FILE`, which no other test may see).
//! Needs `redis-server` built with TLS (Debian's is) and `openssl`.
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

    // Trusting only the system roots, the test CA's certificate is refused.
    std::env::set_var("SSL_CERT_FILE", "/dev/null");
    let untrusted = RedisStore::open(&url, "tls:").unwrap();
    match untrusted.list_revocations() {
        Err(e @ StoreError::Unavailable { .. }) => {
            let msg = e.to_string();
            assert!(!msg.contains(password), "{msg}");
            assert!(msg.contains("rediss://default:***@127.0.0.1"), "{msg}");
        }
        other => panic!("an unknown CA must be refused, got {other:?}"),
    }

    std::env::set_var("SSL_CERT_FILE", server.ca_path());
    let n = AtomicUsize::new(0);
    conformance::run(&|| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        Box::new(RedisStore::open(&url, &format!("tls{i}:")).unwrap())
    });

    let s = RedisStore::open(&url, "tls:").unwrap();
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
    let s = RedisStore::open(&wrong, "tls:").unwrap();
    assert!(matches!(
        s.list_revocations(),
        Err(StoreError::Unavailable { .. })
    ));
}
