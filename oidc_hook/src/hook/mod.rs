//! The HTTP token hook: `curfew hook serve`.
//!
//! An OIDC server calls it before it issues tokens (Ory Hydra's
//! `oauth2.token_hook`, or any server speaking the same shape, see
//! [`hydra`]), and it answers with the same decision as [`PolicyIssuer`]:
//!
//! | route | answer |
//! |---|---|
//! | `POST /token-hook` | `200` + session claims (allow), `204` (allow, tokens for a client, no user), `403` (deny), `400`/`413` (unreadable), `503` (store down, `on_unavailable: deny`) |
//! | `GET /healthz` | `200` + the policy in force; `503` (`"status": "policy_reload_failing"`) with the last reload error while the policy file cannot be put in force (decisions go on by the last good policy) |
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

pub mod core;
pub mod ends;
pub mod hydra;
pub mod hydra_admin;
pub mod metrics;
pub mod neutral;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::gate::Gate;
use crate::policy_file::{PolicyFile, Reload};
pub use core::{session_id_for, FieldError, GrantKind, Outcome, Reason, TokenRequest, MAX_SKEW};
use curfew_policy::audit::AuditEvent;
use ends::{Ends, Seen};
use hydra::TokenHookRequest;
pub use hydra::{HydraOptions, RememberMe};
use metrics::{Metrics, Outcome as MetricOutcome};
use neutral::DecideRequest;

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
#[derive(Debug, Clone, Default)]
pub struct HookOptions {
    /// How Hydra-shaped requests are read (remember-me signal, groups claim).
    pub hydra: HydraOptions,
}

/// Limits of the HTTP service, against clients that connect and stall.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// A client must send a request's headers within this (and, on a kept
    /// connection, start the next request within it), else the connection
    /// is closed.
    pub header_timeout: Duration,
    /// A client must send the body within this once the headers are in.
    pub body_timeout: Duration,
    /// At most this many connections at once; further ones wait in the
    /// listen backlog until one closes. Lowered at start to what the open
    /// file limit allows.
    pub max_connections: usize,
    /// At most this many store calls at once (`--store-threads`): each may
    /// hold a store connection of its own (Redis keeps 8 idle ones and a
    /// call that finds none opens one), a file descriptor that
    /// `max_connections` leaves room for.
    pub store_calls: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 4096,
            store_calls: 8,
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
    /// Timeouts and the connection limit.
    pub limits: ServiceLimits,
    /// How often known sessions are decided at `now`, to find and tell
    /// ends nobody asked about (revoke, terminate, idle, max_duration).
    pub sweep_interval: Duration,
    /// Hydra's admin API, told of every end; none: not told.
    pub hydra_admin: Option<hydra_admin::HydraAdminConfig>,
}

/// The bearer tokens the hook requires.
#[derive(Debug, Clone, Default)]
pub struct HookAuth {
    /// Required from callers of `/token-hook`; none: any caller.
    pub hook: Option<String>,
    /// Required from callers of `/admin/*`; none: no admin routes (404).
    pub admin: Option<String>,
}

struct Inner {
    gate: Gate,
    options: HookOptions,
    metrics: Metrics,
    policy_file: Option<Mutex<PolicyFile>>,
    /// The `store` section in force when the hook started (its store was
    /// opened by the caller): see [`Gate::sync_store`].
    initial_store: curfew_policy::StoreConfig,
    hook_token: Option<String>,
    admin_token: Option<String>,
    body_timeout: Duration,
    ends: Arc<Ends>,
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
        let initial_store = gate.policy().current().store.clone();
        HookState {
            inner: Arc::new(Inner {
                initial_store,
                gate,
                options,
                metrics: Metrics::default(),
                policy_file,
                hook_token: auth.hook,
                admin_token: auth.admin,
                body_timeout: ServiceLimits::default().body_timeout,
                ends: Arc::new(Ends::default()),
            }),
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The same state with another body timeout.
    pub fn with_body_timeout(self, body_timeout: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| {
            unreachable!("with_body_timeout is called before the state is shared")
        });
        HookState {
            inner: Arc::new(Inner {
                body_timeout,
                ..inner
            }),
        }
    }

    /// Decides one neutral request, and keeps track of the session (see
    /// [`ends`]): an allowed one is remembered, a refused one's end is told
    /// to the OIDC servers. Blocks on the store.
    pub fn decide(&self, req: &TokenRequest) -> Outcome {
        let gate = &self.inner.gate;
        let outcome = core::decide(gate, req);
        let seen = || Seen {
            subject: req.subject.clone().unwrap_or_default(),
            client_id: req.client_id.clone(),
            login_session: req.login_session.clone(),
            groups: req.groups.clone(),
            remember_me: req.remember_me,
            started_at: req.auth_time.unwrap_or_else(|| gate.now()).min(gate.now()),
        };
        match &outcome {
            Outcome::Allow { granted, .. } if granted.recorded => {
                self.inner.ends.seen(
                    &granted.session_id,
                    Seen {
                        started_at: granted.started_at,
                        ..seen()
                    },
                );
            }
            Outcome::Deny {
                session_id: Some(sid),
                ended: Some(reason),
                revoked,
                ..
            } if req.subject.is_some() => {
                // Told even if this hook never saw the session allowed (it
                // started before the hook did): the server's login session
                // must end, or the user loops through silent re-logins.
                self.inner.ends.seen(sid, seen());
                self.inner
                    .ends
                    .ended(sid, *reason, revoked.clone(), gate.now());
            }
            _ => {}
        }
        outcome
    }

    /// The known sessions and the ends log.
    pub fn ends(&self) -> &Arc<Ends> {
        &self.inner.ends
    }

    /// Reloads the policy if its file changed. Blocks on the file system.
    pub fn poll_reload(&self) {
        if let Some(f) = &self.inner.policy_file {
            let r = f.lock().unwrap_or_else(|e| e.into_inner()).poll();
            self.count_reload(&r);
            self.sync_store();
        }
    }

    /// Opens the store a reloaded policy names, as the enforcer does; a
    /// store that fails to open is retried at every poll. Blocks.
    fn sync_store(&self) {
        let gate = &self.inner.gate;
        if let Some(line) = gate.sync_store(&self.inner.initial_store, curfew_policy::store::open) {
            eprintln!("curfew-oidc: {line}");
        }
    }

    /// Reloads the policy now; `None` without a policy file.
    pub fn reload_now(&self) -> Option<Reload> {
        let f = self.inner.policy_file.as_ref()?;
        let r = f.lock().unwrap_or_else(|e| e.into_inner()).reload();
        self.count_reload(&r);
        self.sync_store();
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
            Reload::Loaded { store_changed } => {
                self.inner.metrics.reloaded(true);
                self.inner.gate.audit(&AuditEvent::PolicyReloaded {
                    file: file(),
                    store_changed: *store_changed,
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
        // The body was never read: the connection cannot carry another
        // request, and the client must not put it back in its pool.
        [(header::WWW_AUTHENTICATE, "Bearer"), (header::CONNECTION, "close")],
        Json(json!({"error": "unauthorized", "error_description": "a valid bearer token is required"})),
    )
        .into_response()
}

/// Reads a request's body after its headers were accepted: at most
/// [`MAX_BODY`] bytes, within the body timeout. `Err` is the answer.
async fn read_body(state: &HookState, body: Body) -> Result<Bytes, Response> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match tokio::time::timeout(state.inner.body_timeout, limited.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        // An answer before the whole body was read closes the connection
        // (`Connection: close`), so a client never sends its next request on
        // a connection the server is dropping.
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            Json(json!({"error": "invalid_request", "error_description": format!("the body is larger than {MAX_BODY} bytes")})),
        )
            .into_response()),
        Ok(Err(_)) => Err((
            StatusCode::BAD_REQUEST,
            [(header::CONNECTION, "close")],
            Json(json!({"error": "invalid_request", "error_description": "the body could not be read"})),
        )
            .into_response()),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            Json(json!({"error": "invalid_request", "error_description": "the body did not arrive in time"})),
        )
            .into_response()),
    }
}

fn invalid(e: &FieldError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_request", "field": e.field, "error_description": e.to_string()})),
    )
        .into_response()
}

/// The bearer check, then the body: nothing of an unauthenticated
/// request's body is read.
async fn authenticated_body(state: &HookState, req: Request) -> Result<Bytes, Response> {
    if let Some(token) = &state.inner.hook_token {
        if !bearer_matches(req.headers(), token) {
            return Err(unauthorized());
        }
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > MAX_BODY as u64 {
            return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response());
        }
    }
    read_body(state, req.into_body()).await
}

/// Runs the decision on a blocking thread; a panic in it is a 503 whose
/// body says nothing of the panic (the detail goes to the log).
async fn decide_blocking(state: &HookState, req: TokenRequest) -> Outcome {
    let st = state.clone();
    match tokio::task::spawn_blocking(move || st.decide(&req)).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("curfew hook: error: the decision failed: {e}");
            Outcome::Unavailable
        }
    }
}

fn count(state: &HookState, outcome: &Outcome, started: Instant) {
    let (o, d) = match outcome {
        Outcome::Allow { .. } | Outcome::AllowUnchanged => (MetricOutcome::Allow, None),
        Outcome::Deny { reason, .. } => (MetricOutcome::Deny, Some(reason.as_str())),
        Outcome::Unavailable => (MetricOutcome::Unavailable, None),
    };
    state.inner.metrics.record(o, d, started.elapsed());
    if let Outcome::Deny {
        message, reason, ..
    } = outcome
    {
        eprintln!("curfew hook: denied ({}): {message}", reason.as_str());
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "temporarily_unavailable", "error_description": "the session store is unavailable; see the hook's log"})),
    )
        .into_response()
}

async fn token_hook(State(state): State<HookState>, req: Request) -> Response {
    let started = Instant::now();
    let fail = |status: MetricOutcome| state.inner.metrics.record(status, None, started.elapsed());
    let body = match authenticated_body(&state, req).await {
        Ok(b) => b,
        Err(r) => {
            fail(if r.status() == StatusCode::UNAUTHORIZED {
                MetricOutcome::Unauthorized
            } else {
                MetricOutcome::BadRequest
            });
            return r;
        }
    };
    let parsed = TokenHookRequest::parse(&body).and_then(|r| {
        let n = r.to_neutral(&state.inner.options.hydra)?;
        Ok((r, n))
    });
    let (hydra_req, neutral) = match parsed {
        Ok(p) => p,
        Err(e) => {
            fail(MetricOutcome::BadRequest);
            return invalid(&e);
        }
    };
    let outcome = decide_blocking(&state, neutral).await;
    count(&state, &outcome, started);
    match outcome {
        Outcome::Allow { claims, .. } => {
            (StatusCode::OK, Json(hydra_req.response(&claims))).into_response()
        }
        Outcome::AllowUnchanged => StatusCode::NO_CONTENT.into_response(),
        // Hydra answers the client `access_denied` for any 403 and drops the
        // body; it is for the hook's own callers and logs.
        Outcome::Deny {
            reason, message, ..
        } => (
            StatusCode::FORBIDDEN,
            Json(
                json!({"error": "access_denied", "error_description": message,
                        "curfew_reason": reason.as_str(), "rp_action": reason.rp_action()}),
            ),
        )
            .into_response(),
        Outcome::Unavailable => unavailable(),
    }
}

async fn neutral_decide(State(state): State<HookState>, req: Request) -> Response {
    let started = Instant::now();
    let fail = |status: MetricOutcome| state.inner.metrics.record(status, None, started.elapsed());
    let body = match authenticated_body(&state, req).await {
        Ok(b) => b,
        Err(r) => {
            fail(if r.status() == StatusCode::UNAUTHORIZED {
                MetricOutcome::Unauthorized
            } else {
                MetricOutcome::BadRequest
            });
            return r;
        }
    };
    let neutral = match DecideRequest::parse(&body).and_then(|r| r.to_neutral()) {
        Ok(n) => n,
        Err(e) => {
            fail(MetricOutcome::BadRequest);
            return invalid(&e);
        }
    };
    let outcome = decide_blocking(&state, neutral).await;
    count(&state, &outcome, started);
    let (status, body) = neutral::answer(&outcome);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

/// `after` and `wait` of the ends feed's query (both whole numbers, 0 when
/// absent; other parameters are ignored), or the field that is wrong.
fn ends_query(query: Option<&str>) -> Result<(u64, u64), FieldError> {
    let (mut after, mut wait) = (0, 0);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "after" => &mut after,
            "wait" => &mut wait,
            _ => continue,
        };
        *slot = value
            .parse()
            .map_err(|_| FieldError::new(key, "must be a whole number, 0 or more"))?;
    }
    Ok((after, wait))
}

/// `GET /v1/ends?after=N&wait=S`: the ends after position `N`, waiting up
/// to `S` seconds (at most 30) for one if there is none yet. Needs the
/// hook token, like `/token-hook`.
async fn ends_feed(
    State(state): State<HookState>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    if let Some(token) = &state.inner.hook_token {
        if !bearer_matches(&headers, token) {
            return unauthorized();
        }
    }
    let (after, wait) = match ends_query(query.as_deref()) {
        Ok(q) => q,
        Err(e) => return invalid(&e),
    };
    let ends = &state.inner.ends;
    let mut watch = ends.watch();
    let wait = Duration::from_secs(wait.min(30));
    let (mut last, mut list) = ends.since(after);
    if list.is_empty() && !wait.is_zero() {
        let _ = tokio::time::timeout(wait, watch.wait_for(|seq| *seq > after)).await;
        (last, list) = ends.since(after);
    }
    Json(json!({"last": last, "ends": list})).into_response()
}

/// `GET /healthz`: `200 {"status": "ok", ...}` while the policy file is
/// in force as written; `503 {"status": "policy_reload_failing", ...}`
/// while the last reload failed (the hook still decides, by the last good
/// policy, but its file says something else: someone must look).
async fn healthz(State(state): State<HookState>) -> Response {
    let policy = state.inner.gate.policy().status();
    let (code, status) = match policy.last_error {
        None => (StatusCode::OK, "ok"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "policy_reload_failing"),
    };
    (
        code,
        Json(json!({
            "status": status,
            "policy": policy,
            "store": state.inner.gate.store().location(),
        })),
    )
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
        Ok(Some(Reload::Loaded { .. } | Reload::Unchanged)) => {
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
        .route("/v1/decide", post(neutral_decide))
        .route("/v1/ends", get(ends_feed))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/admin/reload", post(admin_reload))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The open-file limit (soft), if it can be read.
/// The open-file limit, raised first toward `want` descriptors (up to the
/// hard limit, as systemd asks of services that need more than its default
/// soft limit of 1024): the soft limit after that, `None` if unreadable.
fn open_file_limit(want: u64) -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < want {
        let raised = want.min(hard);
        if raised > soft && setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
            return Some(raised);
        }
    }
    Some(soft)
}

/// The warning printed at start when the hook listens on `addr`, which is
/// not a loopback address, and takes any caller (no hook token).
pub fn exposure_warning(addr: &SocketAddr, anyone: bool) -> Option<String> {
    (anyone && !addr.ip().is_loopback()).then(|| {
        format!(
            "curfew hook: WARNING: listening on {addr}, which is not a loopback address, \
             without --hook-token-file: anyone who reaches it can ask for decisions and \
             create sessions. Give the OIDC server a bearer token."
        )
    })
}

/// Runs the hook until `shutdown` completes: binds, prints
/// `curfew hook: listening on http://ADDR` on stdout, reloads the policy
/// when its file changes (and on SIGHUP), and serves.
///
/// The service is hardened against clients that connect and stall: the
/// headers must arrive within `limits.header_timeout`, the body within
/// `limits.body_timeout`, at most `limits.max_connections` connections are
/// served at once (capped below the open-file limit), and the bearer token
/// is checked before any of the body is read.
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
    let anyone = hook_token.is_none();
    let state = HookState::new(
        config.gate,
        config.options,
        config.policy_file.as_deref(),
        HookAuth {
            hook: hook_token,
            admin: admin_token,
        },
    )
    .with_body_timeout(config.limits.body_timeout);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|source| HookError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let addr: SocketAddr = listener.local_addr().map_err(HookError::Serve)?;
    if let Some(w) = exposure_warning(&addr, anyone) {
        eprintln!("{w}");
    }
    let mut max_connections = config.limits.max_connections.max(1);
    // Room for the store's connections (one per store call at most), the
    // policy file, logs and the runtime.
    let reserved = 64 + config.limits.store_calls as u64;
    if let Some(limit) = open_file_limit(max_connections as u64 + reserved) {
        let room = usize::try_from(limit.saturating_sub(reserved))
            .unwrap_or(usize::MAX)
            .max(1);
        if room < max_connections {
            eprintln!(
                "curfew hook: note: serving at most {room} connections at once \
                 (the open-file limit is {limit}, {reserved} kept for the store's \
                 connections and the rest; raise LimitNOFILE or lower --store-threads for more)"
            );
            max_connections = room;
        }
    }

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

    if !config.sweep_interval.is_zero() {
        let st = state.clone();
        let interval = config.sweep_interval.max(Duration::from_millis(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = st.clone();
                let _ = tokio::task::spawn_blocking(move || s.ends().sweep(s.gate())).await;
            }
        });
    }
    if let Some(admin) = config.hydra_admin {
        let client = hydra_admin::HydraAdmin::new(admin)
            .map_err(|e| HookError::Serve(std::io::Error::other(e)))?;
        let rx = state.ends().subscribe();
        tokio::spawn(client.run(rx, state.gate().clone()));
    }

    let mut out = std::io::stdout();
    let _ = writeln!(out, "curfew hook: listening on http://{addr}");
    let _ = out.flush();
    notify_systemd();
    accept_loop(
        listener,
        router(state),
        config.limits.header_timeout,
        max_connections,
        shutdown,
    )
    .await;
    Ok(())
}

/// Tells systemd (`Type=notify`) that the hook listens, and pings its
/// watchdog (`WatchdogSec=`) from the runtime at half the period, so a
/// runtime that stops scheduling tasks is restarted. Without systemd
/// (`$NOTIFY_SOCKET` unset) it does nothing.
fn notify_systemd() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        eprintln!("curfew hook: cannot tell systemd the hook is ready: {e}");
    }
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let every = Duration::from_micros(usec) / 2;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

/// Accepts connections until `shutdown`, each served by hyper with the
/// header timeout, at most `max_connections` at once. Accept errors (out of
/// descriptors) are logged and retried after a pause: the loop never ends
/// on them.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_error: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        eprintln!("curfew hook: error: accepting a connection: {e}; retrying");
                        last_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
        let _ = TokioExecutor::new();
    }
    let _ = stop_tx.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_address_without_a_token_is_warned_about() {
        let any: SocketAddr = "0.0.0.0:8787".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8787".parse().unwrap();
        assert!(exposure_warning(&any, true)
            .unwrap()
            .contains("--hook-token-file"));
        assert!(exposure_warning(&any, false).is_none());
        assert!(exposure_warning(&lo, true).is_none());
        assert!(exposure_warning(&lo6, true).is_none());
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
