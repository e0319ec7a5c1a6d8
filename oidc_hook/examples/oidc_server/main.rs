//! An example OAuth2 authorization server on oxide-auth-axum, with every
//! token going through curfew's [`PolicyIssuer`].
//!
//! | route | what |
//! |---|---|
//! | `GET /authorize` | login page, with the policy's banner |
//! | `POST /authorize` | checks the password and the policy (a revoked user gets `access_denied`), then redirects with a code |
//! | `POST /token` | `authorization_code` (PKCE S256 required) and `refresh_token`; the JSON carries the session claims |
//! | `POST /introspect` | RFC 7662 token introspection |
//! | `POST /revoke` | RFC 7009 token revocation: ends the session (a logout), so every token of the grant stops working |
//! | `GET /api/session` | a protected resource: the bearer token's session and its deadlines, for a "your session ends at" dialog |
//! | `GET /healthz` | `ok` |
//!
//! ```text
//! cargo run -p curfew-oidc --example oidc_server -- --policy examples/policy.yaml \
//!     --user alice:wonderland:wheel --client web,http://127.0.0.1:8080/callback
//! ```
//!
//! Clients are public (PKCE) unless a secret is given; each may ask for
//! `openid profile offline_access` and gets `openid profile` by default.
//! `offline_access` asks for a persistent login (`remember_me.max_duration`).
//!
//! TEST ONLY: `--clock-offset-file FILE` runs the server's policy clock
//! ahead of the real one by the seconds written in FILE (re-read on every
//! decision), so that an end-to-end test moves time without sleeping. It is
//! an option of this example alone; never use it in production.
#![forbid(unsafe_code)]

mod clock;
mod pages;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Form, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use clap::Parser;
use curfew_oidc::{Clock, Gate, PolicyCell, PolicyIssuer, Principal, SystemClock};
use curfew_policy::{EndReason, Policy, Store};
use oxide_auth::endpoint::{
    AccessTokenFlow, AuthorizationFlow, Endpoint, OwnerConsent, OwnerSolicitor, QueryParameter,
    RefreshFlow, ResourceFlow, Solicitation,
};
use oxide_auth::frontends::simple::endpoint::{Error, FnSolicitor, Generic, Vacant};
use oxide_auth::frontends::simple::extensions::{AddonList, Extended, Pkce};
use oxide_auth::primitives::issuer::Issuer as _;
use oxide_auth::primitives::prelude::{
    AuthMap, Client, ClientMap, RandomGenerator, Scope, TokenMap,
};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, PreGrant, RegisteredUrl, Registrar, RegistrarError,
};
use oxide_auth_axum::{OAuthRequest, OAuthResource, OAuthResponse, WebError};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

/// Every scope a client may ask for.
const ALLOWED_SCOPE: &str = "openid profile offline_access";
/// What a client gets when it asks for nothing (or for too much).
const DEFAULT_SCOPE: &str = "openid profile";
/// The scope `/api/session` requires.
const RESOURCE_SCOPE: &str = "profile";

#[derive(Parser, Debug)]
#[command(about = "An example OAuth2 server whose tokens obey a curfew policy")]
struct Args {
    /// The curfew policy (its store is used too).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8020")]
    listen: String,
    /// A user, `NAME:PASSWORD[:GROUP,GROUP...]`; repeat for several.
    #[arg(long = "user", value_name = "NAME:PASSWORD[:GROUPS]")]
    users: Vec<String>,
    /// A client, `ID,REDIRECT_URI[,SECRET]`; repeat for several.
    #[arg(long = "client", value_name = "ID,REDIRECT_URI[,SECRET]")]
    clients: Vec<String>,
    /// TEST ONLY: run the policy clock ahead by the seconds in this file.
    #[arg(long, value_name = "FILE")]
    clock_offset_file: Option<PathBuf>,
}

struct User {
    password: String,
    groups: Vec<String>,
}

/// The registered clients; unlike `ClientMap` alone, a client gets the
/// scope it asks for when that is within what it may have.
struct Registry {
    clients: ClientMap,
    allowed: Scope,
}

impl Registrar for Registry {
    fn bound_redirect<'a>(&self, bound: ClientUrl<'a>) -> Result<BoundClient<'a>, RegistrarError> {
        self.clients.bound_redirect(bound)
    }

    fn negotiate(
        &self,
        bound: BoundClient,
        scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        let pre = self.clients.negotiate(bound, None)?;
        Ok(match scope {
            Some(s) if self.allowed.priviledged_to(&s) => PreGrant { scope: s, ..pre },
            _ => pre,
        })
    }

    fn check(&self, client_id: &str, passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        self.clients.check(client_id, passphrase)
    }
}

/// The oxide-auth primitives, used under one lock.
struct OAuth {
    registry: Registry,
    authorizer: AuthMap<RandomGenerator>,
    issuer: PolicyIssuer<TokenMap<RandomGenerator>>,
    addons: AddonList,
}

struct App {
    oauth: Mutex<OAuth>,
    users: HashMap<String, User>,
    gate: Gate,
}

impl App {
    fn oauth(&self) -> MutexGuard<'_, OAuth> {
        self.oauth.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn endpoint<'a, S>(
    o: &'a mut OAuth,
    solicitor: S,
    scopes: Vec<Scope>,
) -> impl Endpoint<OAuthRequest, Error = Error<OAuthRequest>> + 'a
where
    S: OwnerSolicitor<OAuthRequest> + 'a,
{
    let OAuth {
        registry,
        authorizer,
        issuer,
        addons,
    } = o;
    Extended::extend_with(
        Generic {
            registrar: &*registry,
            authorizer,
            issuer,
            solicitor,
            scopes,
            response: Vacant,
        },
        addons,
    )
}

/// Runs `f` on a blocking thread: the flows call the store synchronously.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

fn flow_response(r: Result<OAuthResponse, Error<OAuthRequest>>) -> Response {
    match r {
        Ok(r) => r.into_response(),
        Err(e) => {
            let e = WebError::from(e);
            eprintln!("oidc_server: error: {e}");
            e.into_response()
        }
    }
}

fn html(page: String) -> OAuthResponse {
    let r = OAuthResponse::default();
    match r.clone().content_type("text/html; charset=utf-8") {
        Ok(r) => r.body(&page),
        Err(_) => r.body(&page),
    }
}

fn consent(
    app: &App,
    method: &Method,
    query: &str,
    req: &mut OAuthRequest,
    sol: Solicitation,
) -> OwnerConsent<OAuthResponse> {
    let pre = sol.pre_grant();
    let client_id = pre.client_id.as_str();
    let scope = pre.scope.to_string();
    let banner = app.gate.banner(&Principal {
        user: "",
        groups: &[],
        client_id,
        remember_me: false,
    });
    let page = |error: Option<&str>| {
        OwnerConsent::InProgress(html(pages::login(client_id, &scope, &banner, query, error)))
    };
    if method != Method::POST {
        return page(None);
    }
    let form = req.body();
    let field = |name| {
        form.and_then(|b| b.unique_value(name))
            .map(|v| v.into_owned())
    };
    let (Some(name), Some(password)) = (field("username"), field("password")) else {
        return page(Some("Enter a user name and a password."));
    };
    let user = match app.users.get(&name) {
        Some(u) if bool::from(u.password.as_bytes().ct_eq(password.as_bytes())) => u,
        _ => return page(Some("Wrong user name or password.")),
    };
    let p = Principal {
        user: &name,
        groups: &user.groups,
        client_id,
        remember_me: pre
            .scope
            .iter()
            .any(|s| s == curfew_oidc::issuer::REMEMBER_ME_SCOPE),
    };
    match app.gate.admit(&p) {
        Ok(_) => OwnerConsent::Authorized(name),
        Err(e) => {
            eprintln!("oidc_server: refused the login of {name:?} at {client_id:?}: {e}");
            OwnerConsent::Denied
        }
    }
}

async fn authorize(
    State(app): State<Arc<App>>,
    method: Method,
    RawQuery(query): RawQuery,
    req: OAuthRequest,
) -> Response {
    blocking(move || {
        let query = query.unwrap_or_default();
        let mut o = app.oauth();
        let solicitor = FnSolicitor(|req: &mut OAuthRequest, sol: Solicitation| {
            consent(&app, &method, &query, req, sol)
        });
        let mut ep = endpoint(&mut o, solicitor, Vec::new());
        flow_response(AuthorizationFlow::prepare(&mut ep).and_then(|mut f| f.execute(req)))
    })
    .await
}

/// Adds the session claims to a successful token response, and states
/// `expires_in` on the policy's clock.
fn with_session_claims(
    issuer: &PolicyIssuer<TokenMap<RandomGenerator>>,
    response: Response,
) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = tokio::runtime::Handle::current()
        .block_on(axum::body::to_bytes(body, 1 << 20))
        .unwrap_or_default();
    let mut json: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(j) => j,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    let token = json
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(t) = token.and_then(|t| issuer.inspect_access(&t)) {
        json.extend(t.granted.claims().to_map());
        let left = (t.expires_at - issuer.gate().now()).num_seconds().max(0);
        json.insert("expires_in".into(), left.into());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    let body = serde_json::to_vec(&json).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

async fn token(State(app): State<Arc<App>>, req: OAuthRequest) -> Response {
    blocking(move || {
        let grant_type = req
            .body()
            .and_then(|b| b.unique_value("grant_type"))
            .map(|v| v.into_owned());
        let mut o = app.oauth();
        let result = {
            let mut ep = endpoint(&mut o, Vacant, Vec::new());
            match grant_type.as_deref() {
                Some("refresh_token") => {
                    RefreshFlow::prepare(&mut ep).and_then(|mut f| f.execute(req))
                }
                // The flow rejects every other grant type itself.
                _ => AccessTokenFlow::prepare(&mut ep).and_then(|mut f| f.execute(req)),
            }
        };
        with_session_claims(&o.issuer, flow_response(result))
    })
    .await
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The answer to a client that failed to authenticate.
fn invalid_client() -> Response {
    let mut r = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic"),
    );
    r
}

/// The client authenticating an introspection or revocation request:
/// HTTP Basic (RFC 6749 2.3.1, form-encoded id and secret) or `client_id`
/// (and `client_secret`) in the body. `None` if it did not.
fn authenticate_client(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<String> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let (id, secret) = match basic {
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()?;
            let raw = String::from_utf8(raw).ok()?;
            let (id, secret) = raw.split_once(':')?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .ok()
            };
            let (id, secret) = (decode(id)?, decode(secret)?);
            (id, (!secret.is_empty()).then_some(secret))
        }
        None => (
            form.get("client_id").cloned()?,
            form.get("client_secret").cloned(),
        ),
    };
    app.oauth()
        .registry
        .check(&id, secret.as_deref().map(str::as_bytes))
        .ok()?;
    Some(id)
}

async fn introspect(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    blocking(move || {
        if authenticate_client(&app, &headers, &form).is_none() {
            return invalid_client();
        }
        let Some(token) = form.get("token") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is required",
            );
        };
        let o = app.oauth();
        let access = || o.issuer.inspect_access(token).map(|t| (t, true));
        let refresh = || o.issuer.inspect_refresh(token).map(|t| (t, false));
        let found = match form.get("token_type_hint").map(String::as_str) {
            Some("refresh_token") => refresh().or_else(access),
            _ => access().or_else(refresh),
        };
        let Some((t, is_access)) = found else {
            return Json(json!({"active": false})).into_response();
        };
        let allow = &t.granted.allow;
        let exp = if is_access {
            t.expires_at
        } else {
            allow.idle_deadline.min(allow.absolute_deadline)
        };
        let mut body = Map::new();
        body.insert("active".into(), true.into());
        body.insert("client_id".into(), t.grant.client_id.clone().into());
        body.insert("username".into(), t.grant.owner_id.clone().into());
        body.insert("sub".into(), t.grant.owner_id.clone().into());
        body.insert("scope".into(), t.grant.scope.to_string().into());
        body.insert("exp".into(), exp.timestamp().into());
        body.insert("iat".into(), t.granted.started_at.timestamp().into());
        if is_access {
            body.insert("token_type".into(), "bearer".into());
        }
        body.extend(t.granted.claims().to_map());
        Json(Value::Object(body)).into_response()
    })
    .await
}

async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    blocking(move || {
        let Some(client) = authenticate_client(&app, &headers, &form) else {
            return invalid_client();
        };
        let Some(token) = form.get("token") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is required",
            );
        };
        let mut o = app.oauth();
        let inner = o.issuer.inner();
        let grant = inner
            .recover_token(token)
            .ok()
            .flatten()
            .or_else(|| inner.recover_refresh(token).ok().flatten());
        // RFC 7009 2.2: an unknown (or already dead) token is answered 200.
        let Some(grant) = grant else {
            return StatusCode::OK.into_response();
        };
        if grant.client_id != client {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "the token was not issued to this client",
            );
        }
        if let Err(e) = o.issuer.end_session(&grant, EndReason::Logout) {
            eprintln!("oidc_server: error: ending a revoked grant's session: {e}");
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            );
        }
        o.issuer.inner_mut().revoke(token);
        StatusCode::OK.into_response()
    })
    .await
}

async fn session(State(app): State<Arc<App>>, headers: HeaderMap, res: OAuthResource) -> Response {
    blocking(move || {
        let mut o = app.oauth();
        let grant = {
            let Ok(scope) = RESOURCE_SCOPE.parse::<Scope>() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let mut ep = endpoint(&mut o, Vacant, vec![scope]);
            let mut flow = match ResourceFlow::prepare(&mut ep) {
                Ok(f) => f,
                Err(e) => return flow_response(Err(e)),
            };
            match flow.execute(res.into()) {
                Ok(grant) => grant,
                Err(Ok(denied)) => return denied.into_response(),
                Err(Err(e)) => return flow_response(Err(e)),
            }
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        match o.issuer.inspect_access(token) {
            Some(t) => Json(json!({
                "user": grant.owner_id,
                "client_id": grant.client_id,
                "scope": grant.scope.to_string(),
                "token_expires_at": t.expires_at.timestamp(),
                "session": t.granted.claims(),
            }))
            .into_response(),
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    })
    .await
}

fn parse_user(spec: &str) -> Result<(String, User), String> {
    let mut parts = spec.splitn(3, ':');
    let (Some(name), Some(password)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "--user {spec:?}: expected NAME:PASSWORD[:GROUP,...]"
        ));
    };
    let groups = parts
        .next()
        .map(|g| {
            g.split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok((
        name.to_owned(),
        User {
            password: password.to_owned(),
            groups,
        },
    ))
}

fn parse_client(spec: &str, default: &Scope) -> Result<Client, String> {
    let mut parts = spec.splitn(3, ',');
    let (Some(id), Some(uri)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "--client {spec:?}: expected ID,REDIRECT_URI[,SECRET]"
        ));
    };
    let uri: url::Url = uri.parse().map_err(|e| format!("--client {spec:?}: {e}"))?;
    let uri = RegisteredUrl::Semantic(uri);
    Ok(match parts.next() {
        Some(secret) => Client::confidential(id, uri, default.clone(), secret.as_bytes()),
        None => Client::public(id, uri, default.clone()),
    })
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

async fn run(args: Args) -> Result<(), String> {
    let policy = Policy::load_secure(&args.policy).map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> =
        Arc::from(curfew_policy::store::open(&policy.store).map_err(|e| e.to_string())?);
    let clock: Arc<dyn Clock> = match args.clock_offset_file {
        Some(path) => {
            eprintln!(
                "oidc_server: WARNING: test clock: the policy clock runs ahead by the seconds in {}",
                path.display()
            );
            Arc::new(clock::OffsetFileClock { path })
        }
        None => Arc::new(SystemClock),
    };
    let gate = Gate::new(PolicyCell::new(policy), store, clock);

    let users: HashMap<String, User> = args
        .users
        .iter()
        .map(|s| parse_user(s))
        .collect::<Result<_, _>>()?;
    let groups: HashMap<String, Vec<String>> = users
        .iter()
        .map(|(n, u)| (n.clone(), u.groups.clone()))
        .collect();
    let default: Scope = DEFAULT_SCOPE.parse().map_err(|_| "bad default scope")?;
    let mut clients = ClientMap::new();
    for spec in &args.clients {
        clients.register_client(parse_client(spec, &default)?);
    }
    let issuer = PolicyIssuer::new(TokenMap::new(RandomGenerator::new(16)), gate.clone())
        .with_groups(move |u| groups.get(u).cloned().unwrap_or_default());
    let mut addons = AddonList::new();
    addons.push_code(Pkce::required());
    let app = Arc::new(App {
        oauth: Mutex::new(OAuth {
            registry: Registry {
                clients,
                allowed: ALLOWED_SCOPE.parse().map_err(|_| "bad allowed scope")?,
            },
            authorizer: AuthMap::new(RandomGenerator::new(16)),
            issuer,
            addons,
        }),
        users,
        gate,
    });

    let router = Router::new()
        .route("/authorize", get(authorize).post(authorize))
        .route("/token", post(token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/api/session", get(session))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "oidc_server: listening on http://{addr}");
    let _ = out.flush();
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oidc_server: {e}");
            ExitCode::from(1)
        }
    }
}
