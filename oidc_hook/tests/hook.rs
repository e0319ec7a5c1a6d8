//! The token hook in process: Hydra-shaped requests through the router,
//! with a hand-set clock, so inactivity is tested without sleeping.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use curfew_oidc::hook::{
    router, HookAuth, HookOptions, HookState, HydraOptions, RememberMe, MAX_BODY,
};
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
    hook_full(policy, auth, file, HookOptions::default())
}

fn hook_full(
    policy: &str,
    auth: HookAuth,
    file: Option<&std::path::Path>,
    options: HookOptions,
) -> Hook {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(MemoryStore::new());
    let policy = Policy::parse(policy, "policy.yaml").unwrap();
    let gate = Gate::new(PolicyCell::new(policy), store.clone(), clock.clone());
    let state = HookState::new(gate, options, file, auth);
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
    let h = hook_full(
        POLICY,
        HookAuth::default(),
        None,
        HookOptions {
            hydra: HydraOptions {
                remember_me: RememberMe::Claim("curfew_remember_me".into()),
                ..Default::default()
            },
        },
    );
    let old = t0() - Duration::minutes(61);
    let (status, v) = h
        .post(&hydra("alice", "web", old, "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["curfew_reason"], "max_duration");
    assert_eq!(v["rp_action"], "login_required");

    // The refresh-token scope is no "remember me", on either spelling.
    for scope in ["offline", "offline_access"] {
        let mut offline = hydra("alice", "web", old, "authorization_code");
        offline["request"]["granted_scopes"] = json!(["openid", scope]);
        let (status, v) = h.post(&offline).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scope}: {v}");
    }

    // The configured claim is.
    let mut remembered = hydra("alice", "web", old, "authorization_code");
    remembered["session"]["id_token"]["id_token_claims"]["ext"]["curfew_remember_me"] = json!(true);
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
            id: format!("rev-{}-{}", target.kind(), target.value()),
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
    // /healthz says so, and is not 200 while the file cannot be used.
    let (status, v) = h.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "policy_reload_failing");
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
    let (status, v) = h.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ok");
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

/// Client credentials as Hydra sends them: the client id in the subject,
/// no login time.
fn client_credentials(client: &str) -> Value {
    json!({
        "session": {
            "id_token": {"id_token_claims": {"sub": client, "auth_time": "0001-01-01T00:00:00Z",
                                             "iat": t0().to_rfc3339(), "ext": {}},
                         "headers": {"extra": {}}, "subject": client},
            "extra": {}, "client_id": client
        },
        "request": {"client_id": client, "granted_scopes": ["jobs"], "granted_audience": [],
                    "grant_types": ["client_credentials"],
                    "payload": {"grant_type": ["client_credentials"]}}
    })
}

#[tokio::test]
async fn client_credentials_never_age_only_a_client_revocation_refuses() {
    let h = hook();
    for _ in 0..4 {
        let (status, v) = h.post(&client_credentials("batch")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
        // Past inactivity and max_duration many times over.
        h.clock.advance(Duration::hours(30));
    }
    // A user revocation naming the client id is no client revocation: the
    // subject Hydra sends for client credentials is not a user.
    revoke(&h.store, Target::User("batch".into()), h.clock_now());
    assert_eq!(
        h.post(&client_credentials("batch")).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(h
        .store
        .list_sessions(&Default::default())
        .unwrap()
        .is_empty());
    revoke(&h.store, Target::Client("batch".into()), h.clock_now());
    let (status, v) = h.post(&client_credentials("batch")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["curfew_reason"], "revoked");
    assert_eq!(v["rp_action"], "access_denied");
}

#[tokio::test]
async fn jwt_bearer_is_refused_only_by_a_revocation_of_subject_or_client() {
    let h = hook();
    let jwt = |sub: &str| {
        let mut r = hydra(sub, "svc", t0() - Duration::days(3), "refresh_token");
        r["request"]["grant_types"] = json!(["urn:ietf:params:oauth:grant-type:jwt-bearer"]);
        r
    };
    let (status, v) = h.post(&jwt("robot")).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "a 3-day-old auth_time is no session: {v}"
    );
    h.clock.advance(Duration::minutes(1));
    revoke(&h.store, Target::User("robot".into()), h.clock_now());
    let (status, v) = h.post(&jwt("robot")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(h.post(&jwt("other")).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn every_grant_type_hydra_sends_gets_its_documented_answer() {
    let h = hook();
    let (status, v) = h
        .post(&hydra("alice", "web", t0(), "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let sid = at(&v, "access_token", "curfew_sid");
    // Hydra carries the access token's claims in session.extra: a refresh
    // that lost its auth_time and sid still finds its session.
    let mut refresh = hydra("alice", "web", t0(), "refresh_token");
    refresh["session"]["extra"] = v["session"]["access_token"].clone();
    refresh["session"]["id_token"]["id_token_claims"]["auth_time"] = json!("0001-01-01T00:00:00Z");
    refresh["session"]["id_token"]["id_token_claims"]["ext"] = json!({});
    h.clock.advance(Duration::minutes(9));
    let (status, v) = h.post(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(at(&v, "access_token", "curfew_sid"), sid);
    assert_eq!(
        at(&v, "access_token", "department"),
        "ops",
        "claims are kept"
    );
    assert_eq!(
        at(&v, "access_token", "curfew_idle_deadline"),
        (t0() + Duration::minutes(19)).timestamp()
    );
    assert_eq!(
        h.post(&client_credentials("batch")).await.0,
        StatusCode::NO_CONTENT
    );
    let mut jwt = hydra("robot", "svc", t0(), "refresh_token");
    jwt["request"]["grant_types"] = json!(["urn:ietf:params:oauth:grant-type:jwt-bearer"]);
    assert_eq!(h.post(&jwt).await.0, StatusCode::NO_CONTENT);
    let (status, v) = h.post(&hydra("alice", "web", t0(), "password")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "request.grant_types");
}

#[tokio::test]
async fn server_times_are_checked_where_they_enter() {
    let h = hook();
    // An auth_time in the future starts the session now, not then.
    let future = t0() + Duration::days(2);
    let (status, v) = h
        .post(&hydra("alice", "web", future, "authorization_code"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        at(&v, "access_token", "curfew_absolute_deadline"),
        (t0() + Duration::hours(1)).timestamp()
    );
    // So `revoke all` made after it catches it.
    h.clock.advance(Duration::minutes(1));
    revoke(&h.store, Target::All, h.clock_now());
    let (status, v) = h
        .post(&hydra("alice", "web", future, "refresh_token"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    // Values that are no time: 400 naming the field, no internal text.
    for bad in [
        json!("next tuesday"),
        json!(-1),
        json!(1e300),
        json!({"t": 1}),
    ] {
        let mut r = hydra("bob", "web", t0(), "authorization_code");
        r["session"]["id_token"]["id_token_claims"]["auth_time"] = bad.clone();
        let (status, v) = h.post(&r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(
            v["field"], "session.id_token.id_token_claims.auth_time",
            "{v}"
        );
    }
    // A wrong type elsewhere names its path.
    let mut r = hydra("bob", "web", t0(), "authorization_code");
    r["request"]["granted_scopes"] = json!("openid");
    let (status, v) = h.post(&r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "request.granted_scopes", "{v}");
    let text = v.to_string();
    assert!(!text.contains("line") && !text.contains("panick"), "{text}");
}

#[tokio::test]
async fn the_neutral_route_decides_the_same() {
    let h = hook();
    let post = |body: Value| {
        let req = Request::post("/v1/decide")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        h.call(req)
    };
    let login = json!({"grant_type": "authorization_code", "client_id": "web", "subject": "alice",
                       "login_session": "op-1", "auth_time": t0().timestamp()});
    let (status, v) = post(login.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["decision"], "allow");
    let sid = v["session_id"].as_str().unwrap().to_owned();
    assert_eq!(v["claims"]["sid"], sid.as_str());
    // The access-token lifetime, relative to the decision: the claims'
    // idle deadline is at least as far (the token never outlives the session).
    let expires_in = v["expires_in"].as_i64().expect("expires_in");
    assert!(expires_in > 0, "{v}");
    assert!(
        t0().timestamp() + expires_in <= v["claims"]["curfew_absolute_deadline"].as_i64().unwrap(),
        "{v}"
    );
    h.clock.advance(Duration::minutes(11));
    let refresh = json!({"grant_type": "refresh_token", "client_id": "web", "subject": "alice",
                         "session_id": sid});
    let (status, v) = post(refresh).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["reason"], "idle");
    assert_eq!(v["rp_action"], "login_required");
    assert_eq!(v["session_id"], sid.as_str());
    let (status, v) = post(json!({"grant_type": "client_credentials", "client_id": "ci"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["session_id"].is_null());
    assert!(
        v["expires_in"].is_null(),
        "no lifetime for a machine grant: {v}"
    );
    let (status, v) = post(json!({"grant_type": "refresh_token", "client_id": "web"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "subject");
    let (status, v) = post(json!({"grant_type": "refresh_token", "client_id": "web",
                                  "subject": "a", "remember": true}))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "remember", "{v}");
}
