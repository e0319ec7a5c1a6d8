//! The password login of `/authorize` and `/login`: the form (with the
//! banner, a "remember me" box and a token bound to the pre-session
//! cookie, against login CSRF) and its check (the form token, the
//! throttle, the password in constant time).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use curfew_policy::audit::{AuditEvent, RefusalReason};

use crate::throttle::Blocked;
use crate::{oauth, pages, web, App};

/// The form token's purpose.
const PURPOSE: &str = "login";

/// The login page and, if the browser had no pre-session cookie yet, the
/// `Set-Cookie` that gives it one.
pub struct Page {
    /// The HTML.
    pub html: String,
    /// A new pre-session cookie.
    pub set_cookie: Option<String>,
}

/// The login page posting to `action`; `client` is the client and scope
/// asking, if any.
pub fn page(
    app: &App,
    headers: &HeaderMap,
    client: Option<(&str, &str)>,
    banner: &str,
    action: &str,
    error: Option<&str>,
) -> Result<Page, String> {
    let (pre, set_cookie) = web::pre_session(app, headers)?;
    let token = web::form_token(app, PURPOSE, &pre);
    Ok(Page {
        html: pages::login(client, banner, action, error, &token),
        set_cookie,
    })
}

/// Why a posted login did not sign anyone in.
pub enum Refused {
    /// Show the form again with this message.
    Form(&'static str),
    /// Too many failures: answer [`throttled`].
    Throttled(Blocked),
}

/// A user who signed in.
pub struct SignedIn {
    /// The user name.
    pub user: String,
    /// "Remember me" was ticked.
    pub remember_me: bool,
}

/// Checks a posted login form (`csrf`, `username`, `password`,
/// `remember_me`) from `peer`, for `client_id` (for the audit trail).
pub fn check(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
    form: &HashMap<String, String>,
    client_id: &str,
) -> Result<SignedIn, Refused> {
    if !web::form_token_ok(app, headers, form, PURPOSE) {
        return Err(Refused::Form(
            "The sign-in form expired or did not come from this page; sign in again.",
        ));
    }
    let (Some(name), Some(password)) = (form.get("username"), form.get("password")) else {
        return Err(Refused::Form("Enter a user name and a password."));
    };
    if let Err(blocked) = app.throttle.check(name, peer) {
        eprintln!("oidc_server: refused the login of {name:?} from {peer}: {blocked}");
        app.gate.audit(&AuditEvent::LoginRefused {
            user: name.clone(),
            service: None,
            client: Some(client_id.to_owned()),
            reason: RefusalReason::Throttled,
            revocation: None,
            detail: format!("from {peer}: {blocked}"),
        });
        return Err(Refused::Throttled(blocked));
    }
    if oauth::check_password(app, name, password).is_none() {
        app.throttle.failed(name, peer);
        // The name as typed (it may be no account at all); never the
        // password.
        app.gate.audit(&AuditEvent::LoginRefused {
            user: name.clone(),
            service: None,
            client: Some(client_id.to_owned()),
            reason: RefusalReason::BadCredentials,
            revocation: None,
            detail: format!("from {peer}: wrong user name or password"),
        });
        return Err(Refused::Form("Wrong user name or password."));
    }
    app.throttle.succeeded(name);
    Ok(SignedIn {
        user: name.clone(),
        remember_me: form.get("remember_me").map(String::as_str) == Some("yes"),
    })
}

/// `429 Too Many Requests` with `Retry-After`, in our words.
pub fn throttled(blocked: &Blocked) -> Response {
    let mut r = web::error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed sign-ins",
        &format!(
            "Too many failed sign-ins for this {} in the last {} minutes. Try again in {} seconds.",
            blocked.what,
            crate::throttle::WINDOW.as_secs() / 60,
            blocked.retry_after.as_secs().max(1)
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&blocked.retry_after.as_secs().max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}
