//! What every route shares: the form extractor that never answers with a
//! parser's text, the security headers on every response, error answers
//! in this provider's own words, and the pre-session cookie that binds the
//! login and logout forms (login CSRF).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use ring::rand::SecureRandom as _;
use subtle::ConstantTimeEq;

use crate::{pages, App};

/// The pre-session cookie: a random value set on the first login or
/// logout page, to which those forms' tokens are bound. Over TLS it is
/// [`PRE_COOKIE_HOST`] instead.
pub const PRE_COOKIE: &str = "curfew_pre";
/// The pre-session cookie's name over TLS: the `__Host-` prefix makes the
/// browser refuse it unless it is `Secure`, `Path=/` and without `Domain`,
/// so a sibling host cannot plant one (cookie injection).
pub const PRE_COOKIE_HOST: &str = "__Host-curfew_pre";

/// The pre-session cookie's name for this server.
fn pre_cookie_name(app: &App) -> &'static str {
    if app.secure_cookies {
        PRE_COOKIE_HOST
    } else {
        PRE_COOKIE
    }
}

/// A new key for the form tokens (HMAC-SHA256, 256 random bits drawn at
/// start, never stored: a restart makes open forms ask to sign in again).
pub fn new_form_key() -> Result<ring::hmac::Key, String> {
    ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
        .map_err(|_| "the system random generator failed".to_owned())
}

/// A form body (`application/x-www-form-urlencoded`), parsed leniently: a
/// malformed pair is skipped, a repeated name keeps its last value. The
/// handler validates the fields it reads. A body that cannot be read (over
/// the 64 KiB limit) is a 413 in our words, never the framework's text.
pub struct Fields(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request refused",
                "The request body is unreadable or larger than 64 KiB.",
            )
        })?;
        Ok(Fields(
            url::form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}

/// Adds the headers every answer carries: no framing by any site
/// (`X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`, against
/// clickjacking of the login, logout and sessions pages), no MIME
/// sniffing, no referrer (authorization URLs carry state and codes).
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A body over the limit that an extractor refused with the framework's
/// plain text ("Failed to buffer the request body...") becomes our 413:
/// a JSON OAuth error on the JSON endpoints (also where [`Fields`] made
/// its HTML page), our HTML page elsewhere.
pub async fn our_413(req: Request, next: axum::middleware::Next) -> Response {
    let json = matches!(
        req.uri().path(),
        "/token" | "/introspect" | "/revoke" | "/userinfo" | "/api/session"
    );
    let r = next.run(req).await;
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if r.status() != StatusCode::PAYLOAD_TOO_LARGE || !(plain || json) {
        return r;
    }
    if json {
        crate::oauth::oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is larger than 64 KiB",
        )
    } else {
        error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request refused",
            "The request body is unreadable or larger than 64 KiB.",
        )
    }
}

/// An HTML error page with `status`.
pub fn error_page(status: StatusCode, title: &str, text: &str) -> Response {
    let mut r = (status, Html(pages::message(title, text))).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A random value (256 bits, hex).
pub fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random generator failed".to_owned())?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax` (the authorization
/// request arrives by a top-level cross-site navigation), `Secure` when
/// served over TLS.
pub fn set_cookie(app: &App, name: &str, value: &str, max_age: Option<u64>) -> String {
    let secure = if app.secure_cookies { "; Secure" } else { "" };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{age}{secure}")
}

/// The form token for `purpose` bound to the pre-session cookie `pre`:
/// HMAC-SHA256 under the server's secret key (ring's `hmac`), so that a
/// page that can plant a cookie it knows still cannot compute the token.
pub fn form_token(app: &App, purpose: &str, pre: &str) -> String {
    hex(ring::hmac::sign(
        &app.form_key,
        format!("curfew-form:{purpose}:{pre}").as_bytes(),
    )
    .as_ref())
}

/// The request's pre-session cookie, or a new one with its `Set-Cookie`.
pub fn pre_session(app: &App, headers: &HeaderMap) -> Result<(String, Option<String>), String> {
    match cookie(headers, pre_cookie_name(app)) {
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => Ok((v, None)),
        _ => {
            let v = random_id()?;
            let set = set_cookie(app, pre_cookie_name(app), &v, None);
            Ok((v, Some(set)))
        }
    }
}

/// Whether `form`'s `csrf` field is the token for `purpose` of the
/// request's pre-session cookie (compared in constant time).
pub fn form_token_ok(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    purpose: &str,
) -> bool {
    let (Some(pre), Some(sent)) = (cookie(headers, pre_cookie_name(app)), form.get("csrf")) else {
        return false;
    };
    bool::from(
        form_token(app, purpose, &pre)
            .as_bytes()
            .ct_eq(sent.as_bytes()),
    )
}

/// Appends a `Set-Cookie` header (a value that is not a valid header is
/// skipped; ours are ASCII).
pub fn append_cookie(r: &mut Response, set_cookie: Option<&str>) {
    if let Some(v) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}
