//! The HTTP token hook: `curfew hook serve`.
//!
//! An OIDC server calls it before it issues tokens (Ory Hydra's
//! `oauth2.token_hook`, or any server speaking the same shape, see
//! [`hydra`]), and it answers with the same decision as [`PolicyIssuer`]:
//!
//! | route | answer |
//! |---|---|
//! | `POST /token-hook` | `200` + session claims (allow), `204` (allow, tokens for a client, no user), `403` (deny), `400`/`413` (unreadable), `503` (store down, `on_unavailable: deny`) |
//! | `GET /healthz` | `200` + the policy in force and the last reload error |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /admin/reload` | reloads the policy now; needs `Authorization: Bearer` + the admin token |
//!
//! The hook cannot set token lifetimes (Hydra's are configured in Hydra):
//! it enforces `max_duration` from the ID token's `auth_time` and
//! `inactivity` from its own record of each session, one per (client,
//! subject, login session, `auth_time`), which every token request touches.
//! A new login (a new `auth_time`) starts a new curfew session; a session
//! that ended (idle, revoked, too old) stays ended, so the client must send
//! the user through a real login again.
//!
//! [`PolicyIssuer`]: crate::PolicyIssuer

pub mod hydra;
pub mod metrics;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use curfew_policy::StoreError;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gate::{Activity, Gate, Granted, Known, Principal, Refusal};
use crate::policy_file::{PolicyFile, Reload};
use curfew_policy::audit::{AuditEvent, Grant};
use hydra::{ResponseSession, TokenHookRequest, TokenHookResponse};
use metrics::{Metrics, Outcome};

/// The largest request body read, in bytes (Hydra's are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Shortest bearer token accepted from a token file.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the hook could not start.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A token file is missing, too open or too short.
    #[error("the token file {path}: {detail}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The server failed.
    #[error("the token hook failed: {0}")]
    Serve(std::io::Error),
}

/// How token-hook requests are read.
#[derive(Debug, Clone)]
pub struct HookOptions {
    /// A granted scope among these asks for a persistent login
    /// (`remember_me.max_duration`). Default: `offline_access`.
    pub remember_me_scopes: Vec<String>,
    /// The claim (in the ID token's or the access token's extra claims)
    /// holding the user's groups. Default: `groups`.
    pub groups_claim: String,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            remember_me_scopes: vec![crate::issuer::REMEMBER_ME_SCOPE.to_owned()],
            groups_claim: "groups".to_owned(),
        }
    }
}

/// Everything `curfew hook serve` needs.
pub struct HookConfig {
    /// Where to listen, e.g. `127.0.0.1:8787` (port 0: any free port).
    pub listen: String,
    /// The decisions.
    pub gate: Gate,
    /// The policy file to reload when it changes (none for the built-in policy).
    pub policy_file: Option<PathBuf>,
    /// How often to look at the policy file.
    pub reload_interval: Duration,
    /// A file holding the bearer token the OIDC server must send (Hydra:
    /// `auth: {type: api_key, config: {in: header, name: Authorization,
    /// value: "Bearer …"}}`); none: the hook takes any caller.
    pub hook_token_file: Option<PathBuf>,
    /// A file holding the bearer token of `/admin/*`; none: no admin routes.
    pub admin_token_file: Option<PathBuf>,
    /// How requests are read.
    pub options: HookOptions,
}

/// The bearer tokens the hook requires.
#[derive(Debug, Clone, Default)]
pub struct HookAuth {
    /// Required from callers of `/token-hook`; none: any caller.
    pub hook: Option<String>,
    /// Required from callers of `/admin/*`; none: no admin routes (404).
    pub admin: Option<String>,
}

/// What the hook answers one request.
#[derive(Debug)]
pub enum Answer {
    /// 200: allowed; the tokens carry these claims.
    Claims(Box<TokenHookResponse>, Box<Granted>),
    /// 204: allowed, nothing to add (tokens for a client, not a user).
    Unchanged,
    /// 403: refused by the policy.
    Denied {
        /// Stable reason: revoked, terminated, max_duration, idle, ended, mismatch.
        reason: &'static str,
        /// For the log and the response body.
        message: String,
    },
    /// 400: the request cannot be decided.
    Invalid(String),
    /// 503: the store failed.
    Unavailable(String),
}

struct Inner {
    gate: Gate,
    options: HookOptions,
    metrics: Metrics,
    policy_file: Option<Mutex<PolicyFile>>,
    hook_token: Option<String>,
    admin_token: Option<String>,
}

/// The hook's shared state. Cloning shares it.
#[derive(Clone)]
pub struct HookState {
    inner: Arc<Inner>,
}

/// Reads a bearer token from `path`, refusing a file that others may read
/// or write, or a token shorter than [`MIN_TOKEN_LEN`].
pub fn read_token_file(path: &Path) -> Result<String, HookError> {
    let err = |detail: String| HookError::TokenFile {
        path: path.to_owned(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(err(format!(
            "mode {:04o} lets others read it; chmod 600 it",
            mode & 0o7777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = text.trim().to_owned();
    if token.len() < MIN_TOKEN_LEN {
        return Err(err(format!(
            "the token is shorter than {MIN_TOKEN_LEN} characters"
        )));
    }
    Ok(token)
}

/// The curfew session id of a login: the same for every token request of
/// one login of one user at one client, 32 hex digits like every session id.
pub fn session_id_for(
    client_id: &str,
    subject: &str,
    login_session: Option<&str>,
    auth_time: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        "curfew-token-hook-v1",
        client_id,
        subject,
        login_session.unwrap_or(""),
        &auth_time.map_or(String::new(), |t| t.timestamp().to_string()),
    ] {
        // Length-prefixed, so that no two tuples hash the same input.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn refusal_answer(e: Refusal) -> Answer {
    match e {
        Refusal::Store(e) => Answer::Unavailable(e.to_string()),
        e => Answer::Denied {
            reason: e.kind(),
            message: e.to_string(),
        },
    }
}

impl HookState {
    /// State for a hook deciding through `gate`. `policy_file` is reloaded
    /// on [`HookState::poll_reload`] and `/admin/reload`.
    pub fn new(
        gate: Gate,
        options: HookOptions,
        policy_file: Option<&Path>,
        auth: HookAuth,
    ) -> Self {
        let policy_file =
            policy_file.map(|p| Mutex::new(PolicyFile::new(p, gate.policy().clone())));
        HookState {
            inner: Arc::new(Inner {
                gate,
                options,
                metrics: Metrics::default(),
                policy_file,
                hook_token: auth.hook,
                admin_token: auth.admin,
            }),
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// Decides one token-hook request. Blocks on the store.
    pub fn answer(&self, req: &TokenHookRequest) -> Answer {
        let gate = &self.inner.gate;
        let opts = &self.inner.options;
        let Some(client_id) = req.client_id() else {
            return Answer::Invalid("the request names no client_id".into());
        };
        let groups = req.groups(&opts.groups_claim);
        let remember_me = req
            .granted_scopes()
            .iter()
            .any(|s| opts.remember_me_scopes.contains(s));
        let Some(subject) = req.subject() else {
            // Client credentials: tokens for the client itself, no user
            // session; only a revocation of the client (or all) applies.
            let p = Principal {
                user: "",
                groups: &[],
                client_id,
                remember_me: false,
            };
            return match gate.admit(&p) {
                Ok(_) => Answer::Unchanged,
                Err(e) => refusal_answer(e),
            };
        };
        let auth_time = req.auth_time();
        let sid = session_id_for(client_id, subject, req.login_session_id(), auth_time);
        let p = Principal {
            user: subject,
            groups: &groups,
            client_id,
            remember_me,
        };
        let now = gate.now();
        // Used only when the store is down and the policy allows going on.
        let known = Known {
            started_at: auth_time.unwrap_or(now),
            last_activity: now,
        };
        let resume = || {
            (
                gate.resume(&sid, &p, &known, Activity::Record),
                Grant::Refresh,
            )
        };
        let (granted, grant) = match resume() {
            (Err(Refusal::UnknownSession(_)), _) => {
                match gate.start(&p, Some(&sid), auth_time) {
                    // Another request of the same login recorded it first.
                    Err(Refusal::Store(StoreError::Duplicate(_))) => resume(),
                    r => (r, Grant::Issue),
                }
            }
            r => r,
        };
        // The first request of a login is its token issue; later ones
        // (refreshes, or a second code exchange of the same login) renew it.
        let granted = match granted {
            Ok(g) => {
                gate.audit(&g.audit_event(&p, grant));
                g
            }
            Err(e) => {
                gate.audit(&e.audit_event(&p, Some(&sid), grant));
                return refusal_answer(e);
            }
        };
        let claims = granted.claims();
        let response = TokenHookResponse {
            session: ResponseSession {
                access_token: claims.merge_into(req.access_token_claims()),
                id_token: claims.merge_into(req.id_token_claims()),
            },
        };
        Answer::Claims(Box::new(response), Box::new(granted))
    }

    /// Reloads the policy if its file changed. Blocks on the file system.
    pub fn poll_reload(&self) {
        if let Some(f) = &self.inner.policy_file {
            let r = f.lock().unwrap_or_else(|e| e.into_inner()).poll();
            self.count_reload(&r);
        }
    }

    /// Reloads the policy now; `None` without a policy file.
    pub fn reload_now(&self) -> Option<Reload> {
        let f = self.inner.policy_file.as_ref()?;
        let r = f.lock().unwrap_or_else(|e| e.into_inner()).reload();
        self.count_reload(&r);
        Some(r)
    }

    fn count_reload(&self, r: &Reload) {
        let file = || {
            self.inner
                .policy_file
                .as_ref()
                .map(|f| {
                    f.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .path()
                        .to_owned()
                })
                .unwrap_or_default()
        };
        match r {
            Reload::Unchanged => {}
            Reload::Loaded => {
                self.inner.metrics.reloaded(true);
                self.inner.gate.audit(&AuditEvent::PolicyReloaded {
                    file: file(),
                    store_changed: false,
                });
            }
            Reload::Rejected(e) => {
                self.inner.metrics.reloaded(false);
                self.inner.gate.audit(&AuditEvent::PolicyReloadFailed {
                    file: file(),
                    error: e.to_string(),
                });
            }
        }
    }
}

fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = value.strip_prefix("Bearer ") else {
        return false;
    };
    bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "unauthorized", "error_description": "a valid bearer token is required"})),
    )
        .into_response()
}

async fn token_hook(
    State(state): State<HookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let metrics = |o, d| state.inner.metrics.record(o, d, started.elapsed());
    if let Some(token) = &state.inner.hook_token {
        if !bearer_matches(&headers, token) {
            metrics(Outcome::Unauthorized, None);
            return unauthorized();
        }
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            metrics(Outcome::BadRequest, None);
            return (
                rejection.status(),
                Json(
                    json!({"error": "invalid_request", "error_description": rejection.body_text()}),
                ),
            )
                .into_response();
        }
    };
    let req: TokenHookRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            metrics(Outcome::BadRequest, None);
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_request", "error_description": format!("not a token-hook request: {e}")})),
            )
                .into_response();
        }
    };
    let st = state.clone();
    let answer = match tokio::task::spawn_blocking(move || st.answer(&req)).await {
        Ok(a) => a,
        Err(e) => Answer::Unavailable(format!("the decision failed: {e}")),
    };
    match answer {
        Answer::Claims(response, _) => {
            metrics(Outcome::Allow, None);
            (StatusCode::OK, Json(*response)).into_response()
        }
        Answer::Unchanged => {
            metrics(Outcome::Allow, None);
            StatusCode::NO_CONTENT.into_response()
        }
        Answer::Denied { reason, message } => {
            metrics(Outcome::Deny, Some(reason));
            eprintln!("curfew hook: denied: {message}");
            (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "access_denied", "error_description": message, "curfew_reason": reason})),
            )
                .into_response()
        }
        Answer::Invalid(message) => {
            metrics(Outcome::BadRequest, None);
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_request", "error_description": message})),
            )
                .into_response()
        }
        Answer::Unavailable(message) => {
            metrics(Outcome::Unavailable, None);
            eprintln!("curfew hook: error: {message}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable", "error_description": message})),
            )
                .into_response()
        }
    }
}

async fn healthz(State(state): State<HookState>) -> Response {
    let policy = state.inner.gate.policy().status();
    Json(json!({
        "status": "ok",
        "policy": policy,
        "store": state.inner.gate.store().location(),
    }))
    .into_response()
}

async fn metrics_text(State(state): State<HookState>) -> Response {
    let text = state
        .inner
        .metrics
        .render(&state.inner.gate.policy().status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn admin_reload(State(state): State<HookState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.inner.admin_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !bearer_matches(&headers, token) {
        return unauthorized();
    }
    let st = state.clone();
    let r = tokio::task::spawn_blocking(move || st.reload_now()).await;
    let status = state.inner.gate.policy().status();
    match r {
        Ok(Some(Reload::Loaded | Reload::Unchanged)) => {
            Json(json!({"reloaded": true, "policy": status})).into_response()
        }
        Ok(Some(Reload::Rejected(e))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"reloaded": false, "error": e.to_string(), "policy": status})),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::CONFLICT,
            Json(json!({"reloaded": false, "error": "the built-in policy is in use; there is no file to reload"})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"reloaded": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// The hook's routes over `state`, with the body limit.
pub fn router(state: HookState) -> Router {
    Router::new()
        .route("/token-hook", post(token_hook))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/admin/reload", post(admin_reload))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Runs the hook until `shutdown` completes: binds, prints
/// `curfew hook: listening on http://ADDR` on stdout, reloads the policy
/// when its file changes (and on SIGHUP), and serves.
pub async fn serve(
    config: HookConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HookError> {
    let hook_token = config
        .hook_token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    let admin_token = config
        .admin_token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    let state = HookState::new(
        config.gate,
        config.options,
        config.policy_file.as_deref(),
        HookAuth {
            hook: hook_token,
            admin: admin_token,
        },
    );
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|source| HookError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addr: SocketAddr = listener.local_addr().map_err(HookError::Serve)?;

    if config.policy_file.is_some() {
        let st = state.clone();
        let interval = config.reload_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = st.clone();
                let _ = tokio::task::spawn_blocking(move || s.poll_reload()).await;
            }
        });
        let st = state.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let s = st.clone();
                    let _ = tokio::task::spawn_blocking(move || s.reload_now()).await;
                }
            });
        }
    }

    let mut out = std::io::stdout();
    let _ = writeln!(out, "curfew hook: listening on http://{addr}");
    let _ = out.flush();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HookError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn session_ids_are_stable_and_distinct() {
        let t = chrono::Utc.timestamp_opt(1_800_000_000, 0).single();
        let a = session_id_for("web", "alice", Some("s1"), t);
        assert_eq!(a.len(), 32);
        assert_eq!(a, session_id_for("web", "alice", Some("s1"), t));
        assert_ne!(a, session_id_for("web", "alice", Some("s2"), t));
        assert_ne!(a, session_id_for("ci", "alice", Some("s1"), t));
        assert_ne!(a, session_id_for("web", "alice", Some("s1"), None));
        // No ambiguity from concatenation.
        assert_ne!(
            session_id_for("ab", "c", None, None),
            session_id_for("a", "bc", None, None)
        );
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "0123456789abcdef"));
        h.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef".parse().unwrap(),
        );
        assert!(bearer_matches(&h, "0123456789abcdef"));
        assert!(!bearer_matches(&h, "0123456789abcdeF"));
        assert!(!bearer_matches(&h, "0123456789abcdef0"));
        h.insert(
            header::AUTHORIZATION,
            "Basic 0123456789abcdef".parse().unwrap(),
        );
        assert!(!bearer_matches(&h, "0123456789abcdef"));
    }

    #[test]
    fn token_files_must_be_private_and_long() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_token_file(&p)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "0123456789abcdef");
        std::fs::write(&p, "short").unwrap();
        assert!(read_token_file(&p).is_err());
    }
}
