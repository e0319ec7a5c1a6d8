//! The OAuth 2.0 side, on oxide-auth: authorization (with the SSO session
//! and `prompt`), token (with the ID token), introspection, revocation and
//! the protected resource.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use curfew_oidc::{GrantSession, Principal};
use curfew_policy::EndReason;
use oxide_auth::endpoint::{
    AccessTokenFlow, AuthorizationFlow, Endpoint, OAuthError, OwnerConsent, OwnerSolicitor,
    QueryParameter, RefreshFlow, ResourceFlow, Solicitation,
};
use oxide_auth::frontends::simple::endpoint::{Error, FnSolicitor, Generic, Vacant};
use oxide_auth::frontends::simple::extensions::{AddonList, Extended};
use oxide_auth::primitives::authorizer::Authorizer;
use oxide_auth::primitives::grant::Grant;
use oxide_auth::primitives::issuer::Issuer as _;
use oxide_auth::primitives::prelude::{
    AuthMap, Client, ClientMap, RandomGenerator, Scope, TokenMap,
};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, PasswordPolicy, PreGrant, RegisteredUrl, Registrar, RegistrarError,
};
use oxide_auth_axum::{OAuthRequest, OAuthResource, OAuthResponse, WebError};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::web::{self, Fields};
use crate::{lock, login, sso, App, ClientInfo, Tracked, User};
use curfew_oidc::PolicyIssuer;

/// Every scope a client may ask for.
pub const ALLOWED_SCOPE: &str = "openid profile offline_access";
/// What a client gets when it asks for nothing (or for too much).
pub const DEFAULT_SCOPE: &str = "openid profile";
/// The scope `/api/session` requires.
const RESOURCE_SCOPE: &str = "profile";
/// How long an unused authorization code's context is kept.
const CODE_CONTEXT_LIFE: Duration = Duration::from_secs(600);

/// Client secrets checked by SHA-256 in constant time (see `main::clients`).
pub struct Sha256Secrets;

impl PasswordPolicy for Sha256Secrets {
    fn store(&self, _client_id: &str, passphrase: &[u8]) -> Vec<u8> {
        Sha256::digest(passphrase).to_vec()
    }

    fn check(
        &self,
        _client_id: &str,
        passphrase: &[u8],
        stored: &[u8],
    ) -> Result<(), RegistrarError> {
        let digest = Sha256::digest(passphrase);
        if bool::from(digest.as_slice().ct_eq(stored)) {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

/// The registered clients; unlike `ClientMap` alone, a client gets the
/// scope it asks for when that is within what it may have.
pub struct Registry {
    /// oxide-auth's client map.
    pub clients: ClientMap,
    /// What any client may ask for.
    pub allowed: Scope,
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
pub struct OAuth {
    /// The clients.
    pub registry: Registry,
    /// Authorization codes.
    pub authorizer: Codes,
    /// Tokens, through curfew's policy.
    pub issuer: PolicyIssuer<TokenMap<RandomGenerator>>,
    /// PKCE.
    pub addons: AddonList,
}

/// oxide-auth's code map, and which codes came from a persistent login:
/// their grant gets the remember-me extension when the code is exchanged
/// (the `PolicyIssuer` reads it, see `main`).
pub struct Codes {
    map: AuthMap<RandomGenerator>,
    remembered: HashMap<String, Instant>,
    /// The address of the browser each code was issued to.
    came_from: HashMap<String, (IpAddr, Instant)>,
}

impl Codes {
    /// An empty map.
    pub fn new() -> Codes {
        Codes {
            map: AuthMap::new(RandomGenerator::new(16)),
            remembered: HashMap::new(),
            came_from: HashMap::new(),
        }
    }

    /// Code `code` was issued to a browser at `addr`: its grant carries
    /// the address to the session (`rhost`).
    pub fn came_from(&mut self, code: &str, addr: IpAddr) {
        self.came_from
            .retain(|_, (_, at)| at.elapsed() < CODE_CONTEXT_LIFE);
        self.came_from
            .insert(code.to_owned(), (addr, Instant::now()));
    }

    /// Code `code` was issued to a persistent login.
    pub fn remember(&mut self, code: &str) {
        self.remembered
            .retain(|_, at| at.elapsed() < CODE_CONTEXT_LIFE);
        self.remembered.insert(code.to_owned(), Instant::now());
    }
}

impl Authorizer for Codes {
    fn authorize(&mut self, grant: Grant) -> Result<String, ()> {
        self.map.authorize(grant)
    }

    fn extract(&mut self, code: &str) -> Result<Option<Grant>, ()> {
        let remembered = self.remembered.remove(code).is_some();
        let came_from = self.came_from.remove(code);
        Ok(self.map.extract(code)?.map(|mut g| {
            if remembered {
                curfew_oidc::mark_remember_me(&mut g, curfew_oidc::REMEMBER_ME_EXTENSION);
            }
            if let Some((addr, _)) = came_from {
                curfew_oidc::mark_remote_address(
                    &mut g,
                    curfew_oidc::REMOTE_ADDRESS_EXTENSION,
                    addr,
                );
            }
            g
        }))
    }
}

/// What the ID token of a code needs from its authorization request.
pub struct AuthContext {
    /// The `nonce` parameter.
    pub nonce: Option<String>,
    /// When the user authenticated (seconds since the epoch, real clock).
    pub auth_time: i64,
    /// The SSO session the code was issued in.
    pub sso: Option<String>,
    /// The session of the tokens the code was exchanged for, once it was:
    /// a second use of the code ends it (RFC 6749 4.1.2).
    pub used: Option<String>,
    /// The client the code was issued to.
    pub client_id: Option<String>,
    created: Instant,
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
pub async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        // A panic's text is logged, never sent.
        eprintln!("oidc_server: error: a request handler failed: {e}");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    })
}

/// How an endpoint answers a failure: the authorization endpoint to a
/// browser (a page), the others to a client (OAuth JSON).
#[derive(Clone, Copy)]
pub enum Face {
    /// An HTML page.
    Page,
    /// `{"error": ..., "error_description": ...}`.
    Json,
}

/// The answer to an authorization request that names an unknown client or
/// a redirect URI that is not the client's registered one: a page in the
/// browser, never a redirect to the unverified URI (RFC 6749 4.1.2.1).
pub fn unverified_client(face: Face) -> Response {
    let text = "This sign-in request cannot be served: its client_id is not a registered \
                client, or its redirect_uri is not the one registered for that client.";
    match face {
        Face::Page => web::error_page(StatusCode::BAD_REQUEST, "Sign-in request refused", text),
        Face::Json => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", text),
    }
}

/// oxide-auth's answer, or for its errors an answer in our own words (its
/// error texts are logged, never sent).
fn flow_response(r: Result<OAuthResponse, Error<OAuthRequest>>, face: Face) -> Response {
    let e = match r {
        Ok(r) => return r.into_response(),
        Err(e) => WebError::from(e),
    };
    eprintln!("oidc_server: refused a request: {e}");
    match e {
        WebError::Endpoint(OAuthError::DenySilently) => unverified_client(face),
        WebError::Endpoint(OAuthError::PrimitiveError)
        | WebError::InternalError(_)
        | WebError::Header(_) => match face {
            Face::Page => web::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server error",
                "The request could not be completed; try again later.",
            ),
            Face::Json => oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the request could not be completed",
            ),
        },
        _ => match face {
            Face::Page => web::error_page(
                StatusCode::BAD_REQUEST,
                "Request refused",
                "The request is malformed.",
            ),
            Face::Json => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request is malformed",
            ),
        },
    }
}

fn html(page: String) -> OAuthResponse {
    let r = OAuthResponse::default();
    match r.clone().content_type("text/html; charset=utf-8") {
        Ok(r) => r.body(&page),
        Err(_) => r.body(&page),
    }
}

/// Who the authorization request ended up signed in as.
struct Outcome {
    auth_time: i64,
    sso: Option<String>,
    /// A persistent login ("remember me" at the login, or the SSO
    /// session's own flag for a silent sign-in).
    remember_me: bool,
    /// A new SSO session was started: its `Set-Cookie` value.
    set_cookie: Option<String>,
}

struct Request<'a> {
    app: &'a App,
    method: &'a Method,
    headers: &'a HeaderMap,
    peer: IpAddr,
    query: &'a str,
    current: Option<sso::Current>,
    force_login: bool,
    outcome: &'a RefCell<Option<Outcome>>,
    /// A new pre-session cookie for the login page.
    pre_cookie: &'a RefCell<Option<String>>,
    /// An answer that replaces the flow's (a throttled login).
    replace: &'a RefCell<Option<Response>>,
}

fn consent(
    r: &Request<'_>,
    req: &mut OAuthRequest,
    sol: Solicitation,
) -> OwnerConsent<OAuthResponse> {
    let app = r.app;
    let pre = sol.pre_grant();
    let client_id = pre.client_id.as_str();
    let scope = pre.scope.to_string();
    let banner = app.gate.banner(&Principal {
        user: "",
        groups: &[],
        client_id,
        remember_me: false,
    });
    let action = format!("/authorize?{}", r.query);
    let page = |error: Option<&str>| match login::page(
        app,
        r.headers,
        Some((client_id, &scope)),
        &banner,
        &action,
        error,
    ) {
        Ok(p) => {
            *r.pre_cookie.borrow_mut() = p.set_cookie;
            OwnerConsent::InProgress(html(p.html))
        }
        Err(e) => OwnerConsent::Error(WebError::InternalError(Some(e))),
    };
    let admit = |name: &str, groups: &[String], remember_me: bool| {
        let p = Principal {
            user: name,
            groups,
            client_id,
            remember_me,
        };
        app.gate.admit(&p).map_err(|e| {
            eprintln!("oidc_server: refused the login of {name:?} at {client_id:?}: {e}");
        })
    };
    let form: HashMap<String, String> = ["csrf", "username", "password", "remember_me"]
        .into_iter()
        .filter_map(|k| {
            let v = req.body()?.unique_value(k)?.into_owned();
            Some((k.to_owned(), v))
        })
        .collect();
    let posted = *r.method == Method::POST && form.contains_key("username");
    if !posted {
        // Signed in already, and not asked to sign in again: no form.
        if let (Some(cur), false) = (&r.current, r.force_login) {
            let groups = app.groups(&cur.user);
            return match admit(&cur.user, &groups, cur.remember_me) {
                Ok(_) => {
                    *r.outcome.borrow_mut() = Some(Outcome {
                        auth_time: cur.auth_time,
                        sso: Some(cur.cookie.clone()),
                        remember_me: cur.remember_me,
                        set_cookie: None,
                    });
                    OwnerConsent::Authorized(cur.user.clone())
                }
                Err(()) => OwnerConsent::Denied,
            };
        }
        return page(None);
    }
    let signed_in = match login::check(app, r.headers, r.peer, &form, client_id) {
        Ok(s) => s,
        Err(login::Refused::Form(message)) => return page(Some(message)),
        Err(login::Refused::Throttled(blocked)) => {
            *r.replace.borrow_mut() = Some(login::throttled(&blocked));
            return OwnerConsent::InProgress(html(String::new()));
        }
    };
    let name = signed_in.user;
    if admit(&name, &app.groups(&name), signed_in.remember_me).is_err() {
        return OwnerConsent::Denied;
    }
    match sso::start(
        app,
        &name,
        signed_in.remember_me,
        r.current.as_ref(),
        Some(r.peer),
    ) {
        Ok(started) => {
            *r.outcome.borrow_mut() = Some(Outcome {
                auth_time: started.auth_time,
                sso: Some(started.cookie.clone()),
                remember_me: signed_in.remember_me,
                set_cookie: Some(started.set_cookie),
            });
            OwnerConsent::Authorized(name)
        }
        Err(e) => {
            eprintln!("oidc_server: refused the login of {name:?}: {e}");
            OwnerConsent::Denied
        }
    }
}

/// The user `name` if `password` is theirs (compared in constant time).
pub fn check_password<'a>(app: &'a App, name: &str, password: &str) -> Option<&'a User> {
    match app.users.get(name) {
        Some(u) if bool::from(u.password.as_bytes().ct_eq(password.as_bytes())) => Some(u),
        _ => None,
    }
}

/// `prompt=none` without a usable SSO session: `login_required` back to
/// the client (OIDC Core 3.1.2.6), if its redirect URI is the registered one.
fn login_required(app: &App, params: &HashMap<String, String>) -> Response {
    error_to_client(app, params, "login_required")
}

/// The authorization error `error` back to the client with `state`, if its
/// redirect URI is the registered one (else our 400 page, never a redirect).
fn error_to_client(app: &App, params: &HashMap<String, String>, error: &str) -> Response {
    let client = params.get("client_id").and_then(|c| app.clients.get(c));
    let Some(client) = client else {
        return unverified_client(Face::Page);
    };
    let registered = client.redirect_uri.as_str();
    match params.get("redirect_uri") {
        Some(r) if r != registered => return unverified_client(Face::Page),
        _ => {}
    }
    let mut url = client.redirect_uri.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", error);
        if let Some(s) = params.get("state") {
            q.append_pair("state", s);
        }
    }
    redirect(url.as_str())
}

/// A `302 Found` to `location`.
pub fn redirect(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `GET`/`POST /authorize`.
pub async fn authorize(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    req: Result<OAuthRequest, WebError>,
) -> Response {
    let Ok(req) = req else {
        return flow_response(Err(Error::Web(WebError::Authorization)), Face::Page);
    };
    blocking(move || {
        let query = query.unwrap_or_default();
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let prompt: Vec<&str> = params
            .get("prompt")
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        // Request objects are not supported (discovery says so): the
        // client learns it rather than having the parameter ignored (OIDC
        // Core 6).
        for (param, error) in [
            ("request", "request_not_supported"),
            ("request_uri", "request_uri_not_supported"),
        ] {
            if params.contains_key(param) {
                return error_to_client(&app, &params, error);
            }
        }
        // What oxide-auth would let through or answer in its own way:
        // no response_type (RFC 6749 4.1.1), a scope this server does not
        // know (never widened to the default; RFC 6749 4.1.2.1), an S256
        // challenge that is not 43 base64url characters (RFC 7636 4.2).
        if params.get("response_type").is_none_or(|t| t.is_empty()) {
            return error_to_client(&app, &params, "invalid_request");
        }
        if let Some(scope) = params.get("scope") {
            let allowed: Vec<&str> = ALLOWED_SCOPE.split(' ').collect();
            if scope
                .split(' ')
                .any(|s| !s.is_empty() && !allowed.contains(&s))
            {
                return error_to_client(&app, &params, "invalid_scope");
            }
        }
        if let Some(challenge) = params.get("code_challenge") {
            let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            if params.get("code_challenge_method").map(String::as_str) == Some("S256")
                && (challenge.len() != 43 || !challenge.bytes().all(base64url))
            {
                return error_to_client(&app, &params, "invalid_request");
            }
        }
        let max_age = match params.get("max_age").map(|m| m.parse::<u64>()) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(_)) => return error_to_client(&app, &params, "invalid_request"),
        };
        let current = sso::current(&app, &headers);
        // A login older than `max_age` seconds must be made again (OIDC
        // Core 3.1.2.1); `max_age=0` always asks.
        let too_old = match (max_age, &current) {
            (Some(m), Some(c)) => {
                let age = crate::oidc::real_now().saturating_sub(c.auth_time);
                m == 0 || u64::try_from(age).unwrap_or(0) > m
            }
            _ => false,
        };
        let force_login = prompt.contains(&"login") || too_old;
        if prompt.contains(&"none") && (current.is_none() || force_login) {
            return login_required(&app, &params);
        }
        let outcome = RefCell::new(None);
        let pre_cookie = RefCell::new(None);
        let replace = RefCell::new(None);
        let r = Request {
            app: &app,
            method: &method,
            headers: &headers,
            peer: peer.ip(),
            query: &query,
            current,
            force_login,
            outcome: &outcome,
            pre_cookie: &pre_cookie,
            replace: &replace,
        };
        let mut response = {
            let mut o = app.oauth();
            let solicitor =
                FnSolicitor(|req: &mut OAuthRequest, sol: Solicitation| consent(&r, req, sol));
            let mut ep = endpoint(&mut o, solicitor, Vec::new());
            flow_response(
                AuthorizationFlow::prepare(&mut ep).and_then(|mut f| f.execute(req)),
                Face::Page,
            )
        };
        if let Some(r) = replace.into_inner() {
            return r;
        }
        web::append_cookie(&mut response, pre_cookie.into_inner().as_deref());
        let Some(outcome) = outcome.into_inner() else {
            return response;
        };
        if let Some(cookie) = &outcome.set_cookie {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        let code = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url::Url::parse(l).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            });
        if let Some(code) = code {
            {
                let mut oauth = app.oauth();
                if outcome.remember_me {
                    oauth.authorizer.remember(&code);
                }
                oauth.authorizer.came_from(&code, peer.ip());
            }
            let mut codes = lock(&app.codes);
            codes.retain(|_, c| c.created.elapsed() < CODE_CONTEXT_LIFE);
            codes.insert(
                code,
                AuthContext {
                    nonce: params.get("nonce").filter(|n| !n.is_empty()).cloned(),
                    auth_time: outcome.auth_time,
                    sso: outcome.sso,
                    used: None,
                    client_id: params.get("client_id").cloned(),
                    created: Instant::now(),
                },
            );
        }
        response
    })
    .await
}

/// `POST /token`: oxide-auth's flows, then the session claims, `expires_in`
/// on the policy's clock, and for `openid` grants the ID token.
pub async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    req: Result<OAuthRequest, WebError>,
) -> Response {
    let Ok(req) = req else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "more than one Authorization header",
        );
    };
    blocking(move || {
        let field = |name| {
            req.body()
                .and_then(|b| b.unique_value(name))
                .map(|v| v.into_owned())
        };
        let grant_type = field("grant_type");
        let code = field("code");
        let has_redirect_uri = field("redirect_uri").is_some();
        // The client asking: HTTP Basic (already decoded by `decode_basic`)
        // or, for a public client, the `client_id` field.
        let requester = basic_client(&headers).or_else(|| field("client_id"));
        let mut o = app.oauth();
        // A refusal left by an earlier request is not this one's.
        o.issuer.take_refusal();
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
        let response = flow_response(result, Face::Json);
        // oxide-auth answers an issuer's refusal with a server error; the
        // policy's refusals (revoked between login and exchange, idle, past
        // max_duration) are the client's `invalid_grant` (RFC 6749 5.2).
        if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
            if let Some(reason) = o.issuer.take_refusal().filter(|r| !r.is_failure()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    &format!("curfew: {reason}; sign in again"),
                );
            }
        }
        if response.status() != StatusCode::OK {
            // oxide-auth answers an unknown, used or expired code and a
            // PKCE mismatch with `invalid_request`; RFC 6749 5.2 and RFC
            // 7636 4.6 say `invalid_grant`.
            if let (StatusCode::BAD_REQUEST, Some("authorization_code"), Some(code), true) = (
                response.status(),
                grant_type.as_deref(),
                code.as_deref(),
                has_redirect_uri,
            ) {
                drop(o);
                return code_refused(&app, code, requester.as_deref());
            }
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
        let Some(t) = token.and_then(|t| o.issuer.inspect_access(&t)) else {
            return Response::from_parts(parts, Body::from(bytes));
        };
        let now = o.issuer.gate().now();
        let sid = t.granted.session_id.clone();
        // Marked used under the lock that the exchange ran under, so that a
        // second exchange of the code finds the mark.
        let ctx = match (grant_type.as_deref(), &code) {
            (Some("refresh_token"), _) | (_, None) => None,
            (_, Some(c)) => lock(&app.codes).get_mut(c).map(|ctx| {
                ctx.used = Some(sid.clone());
                (ctx.nonce.clone(), ctx.auth_time, ctx.sso.clone())
            }),
        };
        drop(o);
        let claims = t.granted.claims();
        json.extend(claims.to_map());
        // Rounded to the nearest second: a lifetime of 45 s answered a
        // few milliseconds after issue is 45, not 44.
        let left = ((t.expires_at - now).num_milliseconds().max(0) + 500) / 1000;
        json.insert("expires_in".into(), left.into());
        let next_check = t
            .granted
            .allow
            .idle_deadline
            .min(t.granted.allow.absolute_deadline);
        let (auth_time, nonce) = if grant_type.as_deref() == Some("refresh_token") {
            let mut tracked = lock(&app.tracked);
            match tracked.get_mut(&sid) {
                Some(tr) => {
                    tr.next_check = next_check;
                    (tr.auth_time, None)
                }
                None => (t.granted.started_at.timestamp(), None),
            }
        } else {
            let (nonce, auth_time, sso) =
                ctx.unwrap_or_else(|| (None, crate::oidc::real_now(), None));
            app.track(
                &sid,
                Tracked {
                    user: t.grant.owner_id.clone(),
                    client_id: t.grant.client_id.clone(),
                    remember_me: GrantSession::of(&t.grant).is_some_and(|s| s.remember_me),
                    started_at: t.granted.started_at,
                    auth_time,
                    sso,
                    next_check,
                },
            );
            (auth_time, nonce)
        };
        if t.grant.scope.iter().any(|s| s == "openid") {
            match crate::oidc::id_token(&app, &t, auth_time, nonce.as_deref()) {
                Ok(jwt) => {
                    json.insert("id_token".into(), jwt.into());
                }
                Err(e) => {
                    eprintln!("oidc_server: error: signing an ID token: {e}");
                    return oauth_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "cannot sign the ID token",
                    );
                }
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts
            .headers
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let body = serde_json::to_vec(&json).unwrap_or_default();
        Response::from_parts(parts, Body::from(body))
    })
    .await
}

/// The client id of an HTTP Basic `Authorization` header.
fn basic_client(headers: &HeaderMap) -> Option<String> {
    let b64 = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    Some(
        raw.split_once(':')
            .map_or(raw.as_str(), |(id, _)| id)
            .to_owned(),
    )
}

/// The answer to a refused code exchange (`invalid_grant`) by `requester`
/// (the authenticated client, or a public client's `client_id`). A code
/// that was exchanged before, presented again by the client it was issued
/// to, ends the session of the tokens issued from it (RFC 6749 4.1.2,
/// 4.1.3): someone else has had the code. Another client presenting it is
/// only refused: it must not be able to end the victim's session.
fn code_refused(app: &App, code: &str, requester: Option<&str>) -> Response {
    let used = lock(&app.codes)
        .get(code)
        .filter(|c| c.client_id.is_some() && c.client_id.as_deref() == requester)
        .and_then(|c| c.used.clone());
    match used {
        Some(sid) => {
            eprintln!(
                "oidc_server: an authorization code was presented a second time; ending session {sid}, issued from it"
            );
            if let Err(e) = app.gate.end(&sid, EndReason::Revoked) {
                eprintln!("oidc_server: error: ending session {sid}: {e}");
            }
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the authorization code was already used; the tokens issued from it are revoked",
            )
        }
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the authorization code is unknown, expired or used, or the code_verifier does not match its code_challenge",
        ),
    }
}

/// Rewrites an HTTP Basic `Authorization` header whose id and secret are
/// form-urlencoded (RFC 6749 2.3.1; openid-client sends `-` as `%2D`) into
/// their plain form, which is what oxide-auth's token flow compares.
pub async fn decode_basic(mut req: axum::extract::Request) -> axum::extract::Request {
    let decoded = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|raw| {
            let (id, secret) = raw.split_once(':')?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .ok()
            };
            Some(format!("{}:{}", decode(id)?, decode(secret)?))
        });
    if let Some(plain) = decoded {
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        if let Ok(v) = HeaderValue::from_str(&format!("Basic {b64}")) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
    req
}

/// An OAuth error response.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
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
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    r
}

/// A client that identified itself: by id alone (a public client) or
/// authenticated by its secret.
pub struct Caller {
    /// The client id.
    pub id: String,
    /// It proved its secret.
    pub authenticated: bool,
}

/// The client of an introspection or revocation request: HTTP Basic
/// (RFC 6749 2.3.1, form-encoded id and secret) or `client_id` (and
/// `client_secret`) in the body. `None` if it is unknown, or a
/// confidential client without its secret. Reads only the immutable
/// client table: no lock is taken, so checks run in parallel.
pub fn identify_client(
    clients: &HashMap<String, ClientInfo>,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<Caller> {
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
    let client = clients.get(&id)?;
    match (&client.secret_sha256, secret) {
        (Some(stored), Some(secret)) => {
            let digest = Sha256::digest(secret.as_bytes());
            bool::from(digest.as_slice().ct_eq(stored)).then_some(Caller {
                id,
                authenticated: true,
            })
        }
        (None, None) => Some(Caller {
            id,
            authenticated: false,
        }),
        _ => None,
    }
}

/// `POST /introspect` (RFC 7662). The caller must authenticate as a
/// confidential client (section 2.1), and learns only about tokens issued
/// to it: any other token is `{"active": false}` (section 4).
pub async fn introspect(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    let caller = match identify_client(&app.clients, &headers, &form) {
        Some(c) if c.authenticated => c,
        _ => return invalid_client(),
    };
    blocking(move || {
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
        let Some((t, is_access)) = found.filter(|(t, _)| t.grant.client_id == caller.id) else {
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

/// `POST /revoke` (RFC 7009): ends the token's session. Public clients
/// name themselves by `client_id`; a confidential one must authenticate.
pub async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    let Some(caller) = identify_client(&app.clients, &headers, &form) else {
        return invalid_client();
    };
    blocking(move || {
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
        if grant.client_id != caller.id {
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

/// `GET /api/session`: a protected resource (oxide-auth's resource flow).
pub async fn session(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    res: Result<OAuthResource, WebError>,
) -> Response {
    let Ok(res) = res else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    blocking(move || {
        let mut o = app.oauth();
        let grant = {
            let Ok(scope) = RESOURCE_SCOPE.parse::<Scope>() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let mut ep = endpoint(&mut o, Vacant, vec![scope]);
            let mut flow = match ResourceFlow::prepare(&mut ep) {
                Ok(f) => f,
                Err(e) => return flow_response(Err(e), Face::Json),
            };
            match flow.execute(res.into()) {
                Ok(grant) => grant,
                Err(Ok(denied)) => return denied.into_response(),
                Err(Err(e)) => return flow_response(Err(e), Face::Json),
            }
        };
        let token = bearer(&headers).unwrap_or_default();
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

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// `--user NAME:PASSWORD[:GROUP,...]`.
pub fn parse_user(spec: &str) -> Result<(String, User), String> {
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

/// `--client ID,REDIRECT_URI[,SECRET]`.
pub fn parse_client(spec: &str, default: &Scope) -> Result<(Client, ClientInfo, String), String> {
    let mut parts = spec.splitn(3, ',');
    let (Some(id), Some(uri)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "--client {spec:?}: expected ID,REDIRECT_URI[,SECRET]"
        ));
    };
    if id.is_empty() || id == sso::ACCOUNT_CLIENT {
        return Err(format!(
            "--client {spec:?}: the id must be non-empty and not {}",
            sso::ACCOUNT_CLIENT
        ));
    }
    let url: url::Url = uri.parse().map_err(|e| format!("--client {spec:?}: {e}"))?;
    let registered = RegisteredUrl::Semantic(url.clone());
    let secret = parts.next();
    let info = ClientInfo {
        redirect_uri: url,
        secret_sha256: secret.map(|s| Sha256::digest(s.as_bytes()).into()),
        backchannel_logout_uri: None,
        post_logout_redirect_uris: Vec::new(),
    };
    let client = match secret {
        Some(secret) => Client::confidential(id, registered, default.clone(), secret.as_bytes()),
        None => Client::public(id, registered, default.clone()),
    };
    Ok((client, info, id.to_owned()))
}
