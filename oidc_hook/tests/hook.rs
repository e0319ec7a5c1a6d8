//! The token hook in process: Hydra-shaped requests through the router,
//! with a hand-set clock, so inactivity is tested without sleeping.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use curfew_oidc::hook::{router, HookAuth, HookOptions, HookState, MAX_BODY};
use curfew_oidc::{Gate, ManualClock, PolicyCell};
use curfew_policy::store::MemoryStore;
use curfew_policy::{Policy, Revocation, Store, Target};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const POLICY: &str = r#"
version: 1
session:
  max_duration: 1h
  inactivity: 10m
  warn_before: 2m
  remember_me: { max_duration: 1d }
banner: { text: "Authorized use only." }
rules:
  - name: admins
    match: { groups: [wheel] }
    session: { inactivity: 5m }
    banner: { text: "Admins: every command is recorded." }
"#;

const ADMIN: &str = "admin-token-0123456789";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

struct Hook {
    app: axum::Router,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
}

fn hook_with(policy: &str, auth: HookAuth, file: Option<&std::path::Path>) -> Hook {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(MemoryStore::new());
    let policy = Policy::parse(policy, "policy.yaml").unwrap();
    let gate = Gate::new(PolicyCell::new(policy), store.clone(), clock.clone());
    let state = HookState::new(gate, HookOptions::default(), file, auth);
    Hook {
        app: router(state),
        clock,
        store,
    }
}

fn hook() -> Hook {
    hook_with(POLICY, HookAuth::default(), None)
}

/// A request in the shape Hydra posts (see its test snapshots).
fn hydra(subject: &str, client: &str, auth_time: DateTime<Utc>, grant: &str) -> Value {
    json!({
        "session": {
            "id_token": {
                "id_token_claims": {
                    "jti": "", "iss": "http://127.0.0.1:4444/", "sub": subject, "aud": [client],
                    "nonce": "", "at_hash": "", "acr": "1", "amr": null, "c_hash": "",
                    "exp": "0001-01-01T00:00:00Z",
                    "iat": auth_time.to_rfc3339(),
                    "rat": auth_time.to_rfc3339(),
                    "auth_time": auth_time.to_rfc3339(),
                    "ext": {"sid": "hydra-login-1"}
                },
                "headers": {"extra": {}},
                "expires_at": {},
                "subject": subject
            },
            "extra": {"department": "ops"},
            "kid": "", "client_id": client, "consent_challenge": "",
            "exclude_not_before_claim": false, "allowed_top_level_claims": [],
            "mirror_top_level_claims": true, "preserve_ext_claims": false
        },
        "request": {
            "client_id": client,
            "requested_scopes": ["openid", "offline"],
            "granted_scopes": ["openid", "offline"],
            "granted_audience": [],
            "grant_types": [grant],
            "payload": {"grant_type": [grant]}
        }
    })
}

impl Hook {
    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let req = Request::post("/token-hook")
            .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.call(req).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }
}

fn at(v: &Value, token: &str, claim: &str) -> Value {
    v["session"][token][claim].clone()
}

#[tokio::test]
async fn allow_adds_session_claims_and_keeps_the_servers() {
    let h = hook();
    let login = t0() - Duration::minutes(3);
    let (status, v) = h
        .post(&hydra("alice", "web", login, "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let sid = at(&v, "access_token", "sid");
    assert_eq!(sid.as_str().unwrap().len(), 32);
    // max_duration counts from the login (auth_time), inactivity from now.
    assert_eq!(
        at(&v, "access_token", "curfew_absolute_deadline"),
        (login + Duration::hours(1)).timestamp()
    );
    assert_eq!(
        at(&v, "access_token", "curfew_idle_deadline"),
        (t0() + Duration::minutes(10)).timestamp()
    );
    assert_eq!(
        at(&v, "access_token", "curfew_warn_at"),
        (t0() + Duration::minutes(8)).timestamp()
    );
    assert_eq!(
        at(&v, "access_token", "curfew_banner"),
        "Authorized use only."
    );
    // Hydra replaces its session's claims with these: what was there stays.
    assert_eq!(at(&v, "access_token", "department"), "ops");
    assert_eq!(at(&v, "id_token", "sid"), "hydra-login-1");
    assert_eq!(at(&v, "id_token", "curfew_sid"), sid);

    let s = h.store.session(sid.as_str().unwrap()).unwrap().unwrap();
    assert_eq!(s.user, "alice");
    assert_eq!(s.client_id.as_deref(), Some("web"));
    assert_eq!(s.started_at, login);
}

#[tokio::test]
async fn refresh_is_allowed_inside_inactivity_and_denied_after_it() {
    let h = hook();
    let login = t0();
    let (status, v) = h
        .post(&hydra("alice", "web", login, "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let sid = at(&v, "access_token", "sid");
    h.clock.advance(Duration::minutes(9));
    let (status, v) = h.post(&hydra("alice", "web", login, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(at(&v, "access_token", "sid"), sid, "the same session");
    assert_eq!(
        at(&v, "access_token", "curfew_idle_deadline"),
        (t0() + Duration::minutes(19)).timestamp()
    );
    h.clock.advance(Duration::minutes(10));
    let (status, v) = h.post(&hydra("alice", "web", login, "refresh_token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "access_denied");
    assert_eq!(v["curfew_reason"], "idle");
    // The session stays ended: only a new login (a new auth_time) helps.
    let (status, v) = h.post(&hydra("alice", "web", login, "refresh_token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["curfew_reason"], "ended");
    let relogin = h.clock_now();
    let (status, v) = h
        .post(&hydra("alice", "web", relogin, "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_ne!(at(&v, "access_token", "sid"), sid);
}

impl Hook {
    fn clock_now(&self) -> DateTime<Utc> {
        use curfew_oidc::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn max_duration_counts_from_auth_time_unless_remember_me() {
    let h = hook();
    let old = t0() - Duration::minutes(61);
    let (status, v) = h
        .post(&hydra("alice", "web", old, "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["curfew_reason"], "max_duration");

    let mut remembered = hydra("alice", "web", old, "authorization_code");
    remembered["request"]["granted_scopes"] = json!(["openid", "offline_access"]);
    let (status, v) = h.post(&remembered).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        at(&v, "access_token", "curfew_absolute_deadline"),
        (old + Duration::days(1)).timestamp()
    );
}

#[tokio::test]
async fn group_rules_apply_from_the_claims() {
    let h = hook();
    let mut req = hydra("root", "web", t0(), "authorization_code");
    req["session"]["id_token"]["id_token_claims"]["ext"]["groups"] = json!(["wheel"]);
    let (status, v) = h.post(&req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        at(&v, "access_token", "curfew_idle_deadline"),
        (t0() + Duration::minutes(5)).timestamp()
    );
    assert_eq!(
        at(&v, "id_token", "curfew_banner"),
        "Admins: every command is recorded."
    );
}

fn revoke(store: &MemoryStore, target: Target, at: DateTime<Utc>) {
    store
        .add_revocation(&Revocation {
            id: format!("rev-{}", target.value()),
            target,
            not_before: at,
            expires_at: None,
            reason: Some("test".into()),
            actor: "root".into(),
            created_at: at,
        })
        .unwrap();
}

#[tokio::test]
async fn revoked_users_and_clients_are_denied() {
    let h = hook();
    let (status, _) = h
        .post(&hydra("alice", "web", t0(), "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK);
    h.clock.advance(Duration::minutes(1));
    revoke(&h.store, Target::User("alice".into()), h.clock_now());
    let (status, v) = h.post(&hydra("alice", "web", t0(), "refresh_token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["curfew_reason"], "revoked");
    // A new login of alice is refused too; bob is not.
    let (status, _) = h
        .post(&hydra("alice", "web", h.clock_now(), "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h
        .post(&hydra("bob", "web", t0(), "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Client credentials: no user; 204 unless the client is revoked.
    let cc = json!({"session": {"id_token": {"id_token_claims": {"auth_time": "0001-01-01T00:00:00Z"}},
                                "client_id": "ci"},
                    "request": {"client_id": "ci", "grant_types": ["client_credentials"]}});
    let (status, _) = h.post(&cc).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    revoke(&h.store, Target::Client("ci".into()), h.clock_now());
    let (status, v) = h.post(&cc).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn unreadable_requests_are_refused() {
    let h = hook();
    let (status, _) = h
        .post(&json!({"request": {"grant_types": ["refresh_token"]}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no client");
    let req = Request::post("/token-hook")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(h.call(req).await.0, StatusCode::BAD_REQUEST);
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_BODY));
    let req = Request::post("/token-hook")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .unwrap();
    assert_eq!(h.call(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn hook_token_is_required_when_configured() {
    let h = hook_with(
        POLICY,
        HookAuth {
            hook: Some("hook-token-0123456789".into()),
            admin: None,
        },
        None,
    );
    let body = hydra("alice", "web", t0(), "authorization_code").to_string();
    let (status, _) = h
        .post(&hydra("alice", "web", t0(), "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let req = Request::post("/token-hook")
        .header(header::AUTHORIZATION, "Bearer hook-token-0123456789")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(h.call(req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn healthz_metrics_and_admin_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let h = hook_with(
        POLICY,
        HookAuth {
            hook: None,
            admin: Some(ADMIN.into()),
        },
        Some(&path),
    );
    let (status, v) = h.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["policy"]["generation"], 1);

    h.post(&hydra("alice", "web", t0(), "authorization_code"))
        .await;
    h.post(&hydra(
        "alice",
        "web",
        t0() - Duration::hours(2),
        "authorization_code",
    ))
    .await;
    let (status, text) = h.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("curfew_hook_requests_total{outcome=\"allow\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("curfew_hook_denials_total{reason=\"max_duration\"} 1"),
        "{text}"
    );

    let reload = |auth: Option<&str>| {
        let mut r = Request::post("/admin/reload");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    };
    assert_eq!(h.call(reload(None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.call(reload(Some("Bearer wrong-token-0123456789")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // An invalid file: refused, the last good policy stays and says so.
    std::fs::write(&path, "version: 1\nsession: { inactivity: 3h }\n").unwrap();
    let bearer = format!("Bearer {ADMIN}");
    let (status, v) = h.call(reload(Some(&bearer))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, v) = h.get("/healthz").await;
    assert_eq!(v["policy"]["generation"], 1);
    assert!(v["policy"]["last_error"]
        .as_str()
        .unwrap()
        .contains("inactivity"));
    let (status, v) = h
        .post(&hydra("bob", "web", t0(), "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        at(&v, "access_token", "curfew_banner"),
        "Authorized use only."
    );
    // A valid one is put in force.
    std::fs::write(&path, "version: 1\nbanner: { text: \"New banner\" }\n").unwrap();
    let (status, v) = h.call(reload(Some(&bearer))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = h.get("/healthz").await;
    assert_eq!(v["policy"]["generation"], 2);
    assert_eq!(v["policy"]["last_error"], Value::Null);
    let (_, v) = h
        .post(&hydra("carol", "web", t0(), "authorization_code"))
        .await;
    assert_eq!(at(&v, "access_token", "curfew_banner"), "New banner");
}

#[tokio::test]
async fn admin_routes_are_absent_without_a_token() {
    let h = hook();
    let req = Request::post("/admin/reload").body(Body::empty()).unwrap();
    assert_eq!(h.call(req).await.0, StatusCode::NOT_FOUND);
}
