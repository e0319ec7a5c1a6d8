//! The OpenID Connect side: the signing key and JWKS, discovery, ID and
//! logout tokens, UserInfo and RP-initiated logout.
//!
//! Tokens are ES256 (ECDSA P-256, SHA-256), signed with `jsonwebtoken`
//! over ring: short keys drawn in microseconds (RSA key generation in a
//! debug build takes seconds), and supported by every relying party we test
//! (openid-client, mod_auth_openidc).
//!
//! JWT times (`iat`, `exp`, `auth_time`) are on the real clock, which the
//! relying parties check against theirs; the `curfew_*` claims are on the
//! policy's clock (the same unless the test-only clock offset is set).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use curfew_oidc::{Clock as _, SystemClock, TokenSession};
use curfew_policy::EndReason;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::oauth::{bearer, blocking, redirect};
use crate::{lock, pages, sso, web, App};

/// The `events` member of a logout token (OIDC Back-Channel Logout 2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long an ID token is valid for its first use by the client.
const ID_TOKEN_LIFE: i64 = 300;
/// How long a logout token is valid.
const LOGOUT_TOKEN_LIFE: i64 = 120;

/// Now on the real clock, seconds since the epoch.
pub fn real_now() -> i64 {
    SystemClock.now().timestamp()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider's signing key.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    x: String,
    y: String,
}

impl Keys {
    /// The key in `path` (PKCS#8 PEM, P-256), or a new one.
    pub fn load_or_generate(path: Option<&Path>) -> Result<Keys, String> {
        let rng = SystemRandom::new();
        let pkcs8 = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("--signing-key {}: {e}", p.display()))?;
                let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
                if !text.contains("-----BEGIN PRIVATE KEY-----") {
                    return Err(format!(
                        "--signing-key {}: expected a PKCS#8 PEM (BEGIN PRIVATE KEY)",
                        p.display()
                    ));
                }
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("--signing-key {}: {e}", p.display()))?
            }
            None => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| "cannot generate a P-256 key".to_owned())?
                .as_ref()
                .to_vec(),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| format!("the signing key is not a P-256 PKCS#8 key: {e}"))?;
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref().to_vec();
        if point.len() != 65 || point[0] != 4 {
            return Err("unexpected public key encoding".into());
        }
        let kid = b64url(&Sha256::digest(&point)[..12]);
        Ok(Keys {
            encoding: EncodingKey::from_ec_der(&pkcs8),
            decoding: DecodingKey::from_ec_der(&point),
            kid,
            x: b64url(&point[1..33]),
            y: b64url(&point[33..]),
        })
    }

    /// The JWK Set (RFC 7517) of the public key.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
            "use": "sig", "alg": "ES256", "kid": self.kid,
        }]})
    }

    /// Signs `claims` (ES256, with the key id; `typ` if given, else `JWT`).
    pub fn sign(&self, claims: &Value, typ: &str) -> Result<String, String> {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        h.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&h, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// The claims of a token this provider signed for `issuer`, expired or
    /// not (an `id_token_hint`); `None` if the signature or issuer is wrong.
    pub fn verify_hint(&self, token: &str, issuer: &str) -> Option<Value> {
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.set_issuer(&[issuer]);
        v.required_spec_claims.clear();
        // A logout token is no ID token (Back-Channel Logout 1.0 2.4): it
        // carries `typ: logout+jwt` and `events`, and is never a hint.
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("logout+jwt"))
        {
            return None;
        }
        jsonwebtoken::decode::<Value>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
            .filter(|c| c.get("events").is_none())
    }
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
pub async fn discovery(State(app): State<Arc<App>>) -> Response {
    let i = &app.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/end_session"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "scopes_supported": ["openid", "profile", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp",
            "preferred_username", "groups", "curfew_absolute_deadline",
            "curfew_idle_deadline", "curfew_warn_at", "curfew_banner"
        ],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    }))
    .into_response()
}

/// `GET /jwks`.
pub async fn jwks(State(app): State<Arc<App>>) -> Response {
    Json(app.keys.jwks()).into_response()
}

/// The ID token for the grant behind `t` (OIDC Core 2): `sid` is the curfew
/// session of the grant, which logout tokens name too.
pub fn id_token(
    app: &App,
    t: &TokenSession,
    auth_time: i64,
    nonce: Option<&str>,
) -> Result<String, String> {
    let now = real_now();
    let user = &t.grant.owner_id;
    let mut claims = json!({
        "iss": app.issuer,
        "sub": user,
        "aud": t.grant.client_id,
        "azp": t.grant.client_id,
        "iat": now,
        "exp": now + ID_TOKEN_LIFE,
        "auth_time": auth_time,
        "preferred_username": user,
        "groups": app.groups(user),
    });
    if let (Some(n), Value::Object(m)) = (nonce, &mut claims) {
        m.insert("nonce".into(), n.into());
    }
    if let Value::Object(m) = &mut claims {
        m.extend(t.granted.claims().to_map());
    }
    app.keys.sign(&claims, "JWT")
}

/// A logout token (OIDC Back-Channel Logout 1.0, 2.4) for session `sid` of
/// `user` at `client_id`.
pub fn logout_token(app: &App, client_id: &str, user: &str, sid: &str) -> Result<String, String> {
    let now = real_now();
    let mut jti = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut jti)
        .map_err(|_| "the system random generator failed".to_owned())?;
    let claims = json!({
        "iss": app.issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFE,
        "jti": b64url(&jti),
        "sub": user,
        "sid": sid,
        "events": { BACKCHANNEL_EVENT: {} },
    });
    app.keys.sign(&claims, "logout+jwt")
}

/// `GET`/`POST /userinfo` (OIDC Core 5.3): the bearer token's user, for a
/// grant with the `openid` scope.
pub async fn userinfo(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    blocking(move || {
        let unauthorized = |e: &'static str| {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!("Bearer error=\"{e}\""))
                    .unwrap_or(HeaderValue::from_static("Bearer")),
            );
            r
        };
        let Some(token) = bearer(&headers) else {
            return unauthorized("invalid_request");
        };
        let Some(t) = app.oauth().issuer.inspect_access(token) else {
            return unauthorized("invalid_token");
        };
        if !t.grant.scope.iter().any(|s| s == "openid") {
            return unauthorized("insufficient_scope");
        }
        let user = &t.grant.owner_id;
        let mut body = json!({
            "sub": user,
            "preferred_username": user,
            "groups": app.groups(user),
        });
        if let Value::Object(m) = &mut body {
            m.extend(t.granted.claims().to_map());
        }
        Json(body).into_response()
    })
    .await
}

/// Whether a verified `id_token_hint` belongs to the browser's SSO
/// session `current`: the same user, and the hinted session is that SSO
/// session or a client session signed in through it.
fn hint_matches(app: &App, hint: &Value, current: Option<&sso::Current>) -> bool {
    let Some(c) = current else {
        return false;
    };
    if hint.get("sub").and_then(Value::as_str) != Some(c.user.as_str()) {
        return false;
    }
    let Some(sid) = hint.get("sid").and_then(Value::as_str) else {
        return false;
    };
    sid == c.sid
        || lock(&app.tracked)
            .get(sid)
            .is_some_and(|t| t.user == c.user && t.sso.as_deref() == Some(c.cookie.as_str()))
}

/// `GET`/`POST /end_session` (OpenID Connect RP-Initiated Logout 1.0).
///
/// Nothing ends without the user's say-so unless the request carries a
/// valid `id_token_hint` that belongs to the browser's SSO session (the
/// same user, and a session of that login): with no hint, a hint of
/// another user or another login, or no SSO session in the browser, the
/// user gets a page asking to confirm (section 2: the OP MUST ask then),
/// whose POST form carries a token bound to the pre-session cookie, so a
/// cross-site link or form cannot sign anyone out. A logout then ends the
/// browser's SSO session, every client session signed in through it, and
/// the hinted client session if it is of the same user (or the browser has
/// no SSO session); clients with a back-channel logout URI are told. The
/// browser then goes to `post_logout_redirect_uri` if the hint's client
/// (or `client_id`'s) registered it, else to a "signed out" page.
pub async fn end_session(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    blocking(move || {
        let mut params: HashMap<String, String> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if method == Method::POST {
            params.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        let refuse = |text: &str| web::error_page(StatusCode::BAD_REQUEST, "Sign out", text);
        let hint = params
            .get("id_token_hint")
            .and_then(|h| app.keys.verify_hint(h, &app.issuer));
        if params.contains_key("id_token_hint") && hint.is_none() {
            return refuse("The id_token_hint is not an ID token of this provider.");
        }
        let hint_client = hint
            .as_ref()
            .and_then(|h| h.get("aud"))
            .and_then(|a| match a {
                Value::String(s) => Some(s.clone()),
                Value::Array(v) => v.first().and_then(Value::as_str).map(str::to_owned),
                _ => None,
            });
        let client_id = match (hint_client, params.get("client_id")) {
            (Some(h), Some(c)) if h != *c => {
                return refuse("The client_id is not the audience of the id_token_hint.");
            }
            (Some(h), _) => Some(h),
            (None, c) => c.cloned(),
        };
        let back = params.get("post_logout_redirect_uri").cloned();
        if let Some(uri) = &back {
            let allowed = client_id
                .as_ref()
                .and_then(|c| app.clients.get(c))
                .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri));
            if !allowed {
                return refuse("The post_logout_redirect_uri is not registered for this client.");
            }
        }
        let current = sso::current(&app, &headers);
        let matches = hint
            .as_ref()
            .is_some_and(|h| hint_matches(&app, h, current.as_ref()));
        let confirmed =
            method == Method::POST && web::form_token_ok(&app, &headers, &params, "logout");
        if !matches && !confirmed {
            let (pre, set) = match web::pre_session(&app, &headers) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("oidc_server: error: {e}");
                    return web::error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Server error",
                        "The request could not be completed; try again later.",
                    );
                }
            };
            let mut r = Html(pages::confirm_logout(
                &params,
                &web::form_token(&app, "logout", &pre),
                current.as_ref().map(|c| c.user.as_str()),
                client_id.as_deref(),
            ))
            .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            web::append_cookie(&mut r, set.as_deref());
            return r;
        }
        if let Some(c) = &current {
            sso::end(&app, c, EndReason::Logout);
        }
        let hinted = hint.as_ref().and_then(|h| {
            let sid = h.get("sid").and_then(Value::as_str)?;
            let sub = h.get("sub").and_then(Value::as_str)?;
            let same_user = current.as_ref().is_none_or(|c| c.user == sub);
            let known = lock(&app.tracked).get(sid).is_some_and(|t| t.user == sub);
            (same_user && known).then(|| sid.to_owned())
        });
        if let Some(sid) = hinted {
            if let Err(e) = app.gate.end(&sid, EndReason::Logout) {
                eprintln!("oidc_server: error: ending session {sid}: {e}");
            }
        }
        let mut r = match back.and_then(|u| url::Url::parse(&u).ok()) {
            Some(mut url) => {
                if let Some(s) = params.get("state") {
                    url.query_pairs_mut().append_pair("state", s);
                }
                redirect(url.as_str())
            }
            None => Html(pages::message("Signed out", "You are signed out.")).into_response(),
        };
        web::append_cookie(&mut r, Some(&sso::clear_cookie(&app)));
        r
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Back-Channel Logout 2.4: a logout token, though signed by this
    /// provider for its issuer, is refused as `id_token_hint`, by its
    /// `typ` or by its `events` claim; an ID token is accepted.
    #[test]
    fn a_logout_token_is_no_id_token_hint() {
        let keys = Keys::load_or_generate(None).expect("a key");
        let iss = "https://op.test";
        let id = json!({"iss": iss, "sub": "alice", "sid": "s1"});
        let hint = keys.sign(&id, "JWT").expect("sign");
        assert_eq!(keys.verify_hint(&hint, iss), Some(id.clone()));
        let mut logout = id.clone();
        logout["events"] = json!({ BACKCHANNEL_EVENT: {} });
        let by_typ = keys.sign(&id, "logout+jwt").expect("sign");
        assert_eq!(keys.verify_hint(&by_typ, iss), None, "typ logout+jwt");
        let by_events = keys.sign(&logout, "JWT").expect("sign");
        assert_eq!(keys.verify_hint(&by_events, iss), None, "events claim");
    }
}
