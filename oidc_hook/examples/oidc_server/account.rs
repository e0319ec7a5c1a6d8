//! The signed-in user's pages, in the spirit of TrueNAS's Access/Sessions
//! widget: their live sessions, SSH and web alike, "end this session" and
//! "end all other sessions" behind a confirmation box, their token lifetime
//! and a form to change it within the policy's bounds, the banner, and on
//! every page the "your session ends at" dialog with "Extend session".
//!
//! The pages run in the provider's own SSO session (see [`sso`]); it is
//! the one marked current, and is not ended from the list (sign out
//! instead). Ending another session asks for its end in the store
//! (`request_termination`, as `curfew sessions terminate` does): the
//! enforcer of its host ends an SSH session, this provider's watcher a web
//! session (and tells its client by back-channel logout).

use std::collections::HashMap;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use curfew_oidc::{Activity, Principal};
use curfew_policy::{EndReason, SessionFilter, SessionKind, Subject};
use serde_json::json;

use crate::oauth::{blocking, redirect};
use crate::pages::{self, Row, SessionsPage};
use crate::sso::{self, Current};
use crate::web::{self, Fields};
use crate::{login, App};

/// The account routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/login", get(login).post(login))
        .route("/account", get(|| async { redirect("/account/sessions") }))
        .route("/account/sessions", get(sessions))
        .route("/account/sessions/end", post(end_one))
        .route("/account/sessions/end-others", post(end_others))
        .route("/account/lifetime", post(lifetime))
        .route("/account/session.json", get(session_json))
        .route("/account/extend", post(extend))
        .route("/account/logout", post(logout))
}

fn banner(app: &App, user: &str) -> String {
    let groups = app.groups(user);
    app.gate.banner(&Principal {
        user,
        groups: &groups,
        client_id: sso::ACCOUNT_CLIENT,
        remember_me: false,
    })
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The login page in our words, with a new pre-session cookie if needed.
fn login_page(app: &App, headers: &HeaderMap, banner: &str, error: Option<&str>) -> Response {
    match login::page(app, headers, None, banner, "/login", error) {
        Ok(p) => {
            let mut r = Html(p.html).into_response();
            web::append_cookie(&mut r, p.set_cookie.as_deref());
            r
        }
        Err(e) => {
            eprintln!("oidc_server: error: {e}");
            web::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server error",
                "The request could not be completed; try again later.",
            )
        }
    }
}

/// `GET`/`POST /login`: signs in to the provider itself (an SSO session).
async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    blocking(move || {
        let banner = banner(&app, "");
        if method != Method::POST {
            if sso::current(&app, &headers).is_some() {
                return redirect("/account/sessions");
            }
            return login_page(&app, &headers, &banner, None);
        }
        let signed_in = match login::check(&app, &headers, peer.ip(), &form, sso::ACCOUNT_CLIENT) {
            Ok(s) => s,
            Err(login::Refused::Form(message)) => {
                return login_page(&app, &headers, &banner, Some(message))
            }
            Err(login::Refused::Throttled(blocked)) => return login::throttled(&blocked),
        };
        let previous = sso::current(&app, &headers);
        let name = &signed_in.user;
        match sso::start(
            &app,
            name,
            signed_in.remember_me,
            previous.as_ref(),
            Some(peer.ip()),
        ) {
            Ok(started) => {
                let mut r = redirect("/account/sessions");
                web::append_cookie(&mut r, Some(&started.set_cookie));
                r
            }
            Err(e) => {
                eprintln!("oidc_server: refused the login of {name:?}: {e}");
                login_page(&app, &headers, &banner, Some("You may not sign in now."))
            }
        }
    })
    .await
}

/// A store failure, for the page: logged in full, shown in our words (the
/// store's text can name files and internals).
fn store_failed(e: &dyn std::fmt::Display) -> String {
    eprintln!("oidc_server: error: the store failed: {e}");
    "The session store is unavailable; try again later.".to_owned()
}

/// The sessions page for `c`, with a result line.
fn page(app: &App, c: &Current, notice: Option<String>, error: Option<String>) -> Response {
    let store = app.gate.store();
    let listed = store.list_sessions(&SessionFilter {
        user: Some(c.user.clone()),
        ..Default::default()
    });
    let (list, error) = match listed {
        Ok(l) => (l, error),
        Err(e) => (Vec::new(), Some(store_failed(&e))),
    };
    let rows = list
        .into_iter()
        .map(|s| {
            let kind = match s.kind {
                SessionKind::Pam if s.service.as_deref().is_some_and(|v| v.contains("ssh")) => {
                    "SSH"
                }
                SessionKind::Pam => "PAM",
                SessionKind::Oidc => "web",
            };
            Row {
                current: s.id == c.sid,
                kind: kind.to_owned(),
                service: s
                    .service
                    .clone()
                    .or_else(|| s.client_id.clone())
                    .unwrap_or_default(),
                host: s.host.clone().unwrap_or_default(),
                rhost: s.rhost.clone().unwrap_or_default(),
                started: utc(s.started_at),
                last_seen: utc(s.last_seen),
                id: s.id,
            }
        })
        .collect();
    let (lifetime, range) = lifetime_info(app, &c.user);
    let banner = banner(app, &c.user);
    let csrf = sso::csrf(app, c);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let html = pages::sessions(&SessionsPage {
        user: &c.user,
        rows,
        lifetime,
        range,
        notice,
        error,
        csrf: &csrf,
        banner: &banner,
    });
    let mut r = (status, Html(html)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The user's token lifetime ("5m (policy default)") and the allowed range.
fn lifetime_info(app: &App, user: &str) -> (String, String) {
    let policy = app.gate.policy().current();
    let groups = app.groups(user);
    let eff = policy.effective(&subject(user, &groups));
    let f = curfew_policy::duration::format;
    let preference = app.gate.store().timeout_preference(user).ok().flatten();
    let value = eff.token_lifetime(preference);
    let source = if preference.is_some() {
        "your choice"
    } else {
        "policy default"
    };
    (
        format!("{} ({source})", f(value.value)),
        format!("{}..{}", f(eff.timeout_min.value), f(eff.timeout_max.value)),
    )
}

/// The subject the lifetime bounds are read for: the user, as
/// `curfew timeout set` reads them (no service, no client).
fn subject<'a>(user: &'a str, groups: &'a [String]) -> Subject<'a> {
    Subject {
        user,
        groups,
        service: None,
        client: None,
        host: None,
    }
}

fn signed_in(app: &App, headers: &HeaderMap) -> Result<Current, Box<Response>> {
    sso::current(app, headers).ok_or_else(|| Box::new(redirect("/login")))
}

/// The signed-in session of a form post whose CSRF token matches.
fn posted(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Current, Box<Response>> {
    let c = signed_in(app, headers)?;
    if !sso::csrf_ok(app, &c, form.get("csrf").map(String::as_str)) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, "bad form token").into_response(),
        ));
    }
    // An action is activity.
    Ok(sso::resume(app, headers, Activity::Record).unwrap_or(c))
}

/// `GET /account/sessions`.
async fn sessions(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    blocking(move || match signed_in(&app, &headers) {
        Ok(c) => page(&app, &c, None, None),
        Err(r) => *r,
    })
    .await
}

fn confirmed(form: &HashMap<String, String>) -> bool {
    form.get("confirm").map(String::as_str) == Some("yes")
}

/// `POST /account/sessions/end`: another session of the user ends.
async fn end_one(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    blocking(move || {
        let c = match posted(&app, &headers, &form) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        if !confirmed(&form) {
            return page(&app, &c, None, Some("Tick the box to confirm.".into()));
        }
        let Some(id) = form.get("session") else {
            return page(&app, &c, None, Some("No session named.".into()));
        };
        if *id == c.sid {
            return page(
                &app,
                &c,
                None,
                Some("This is the session you are using: sign out instead.".into()),
            );
        }
        let store = app.gate.store();
        match store.session(id) {
            Ok(Some(s)) if s.user == c.user && s.is_live() => {}
            Ok(_) => {
                return page(
                    &app,
                    &c,
                    None,
                    Some("No such live session of yours.".into()),
                )
            }
            Err(e) => return page(&app, &c, None, Some(store_failed(&e))),
        }
        match store.request_termination(id, app.gate.now(), Some(&c.user)) {
            Ok(_) => page(&app, &c, Some(format!("Session {id} is ending.")), None),
            Err(e) => page(&app, &c, None, Some(store_failed(&e))),
        }
    })
    .await
}

/// `POST /account/sessions/end-others`: every other live session of the
/// user ends.
async fn end_others(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    blocking(move || {
        let c = match posted(&app, &headers, &form) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        if !confirmed(&form) {
            return page(&app, &c, None, Some("Tick the box to confirm.".into()));
        }
        let store = app.gate.store();
        let others = match store.list_sessions(&SessionFilter {
            user: Some(c.user.clone()),
            ..Default::default()
        }) {
            Ok(l) => l,
            Err(e) => return page(&app, &c, None, Some(store_failed(&e))),
        };
        let now = app.gate.now();
        let mut n = 0;
        for s in others.iter().filter(|s| s.id != c.sid) {
            match store.request_termination(&s.id, now, Some(&c.user)) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => return page(&app, &c, None, Some(store_failed(&e))),
            }
        }
        let plural = if n == 1 { "" } else { "s" };
        page(
            &app,
            &c,
            Some(format!("{n} other session{plural} ending.")),
            None,
        )
    })
    .await
}

/// `POST /account/lifetime`: the user's own token lifetime, within the
/// policy's bounds (as `curfew timeout set`).
async fn lifetime(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Fields(form): Fields,
) -> Response {
    blocking(move || {
        let c = match posted(&app, &headers, &form) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        let store = app.gate.store();
        // "Use the default": the preference is cleared.
        if form.get("default").map(String::as_str) == Some("yes") {
            return match store.set_timeout_preference(&c.user, None) {
                Ok(()) => page(
                    &app,
                    &c,
                    Some(format!(
                        "Token lifetime: {}; it applies to tokens issued from now on.",
                        lifetime_info(&app, &c.user).0
                    )),
                    None,
                ),
                Err(e) => page(&app, &c, None, Some(store_failed(&e))),
            };
        }
        let text = form.get("lifetime").map(|t| t.trim()).unwrap_or_default();
        let policy = app.gate.policy().current();
        let groups = app.groups(&c.user);
        let eff = policy.effective(&subject(&c.user, &groups));
        let d = match curfew_policy::duration::parse(text) {
            Ok(d) => d,
            // The parser's own text (an overflow, say) is not shown: the
            // field, the bounds and an example are.
            Err(_) => {
                let f = curfew_policy::duration::format;
                return page(
                    &app,
                    &c,
                    None,
                    Some(format!(
                        "Token lifetime \u{201c}{}\u{201d} is not a duration from {} to {}; write, for example, \"15m\" or \"1h 30m\".",
                        // As typed (the page escapes it for HTML), without
                        // control characters, at most 40 characters.
                        text.chars()
                            .filter(|ch| !ch.is_control())
                            .take(40)
                            .collect::<String>(),
                        f(eff.timeout_min.value),
                        f(eff.timeout_max.value)
                    )),
                );
            }
        };
        if let Err(e) = eff.check_preference(d) {
            return page(&app, &c, None, Some(e));
        }
        match store.set_timeout_preference(&c.user, Some(d)) {
            Ok(()) => page(
                &app,
                &c,
                Some(format!(
                    "Token lifetime set to {}; it applies to tokens issued from now on.",
                    curfew_policy::duration::format(d)
                )),
                None,
            ),
            Err(e) => page(&app, &c, None, Some(store_failed(&e))),
        }
    })
    .await
}

fn claims_json(app: &App, c: &Current) -> Response {
    let mut m = c.granted.claims().to_map();
    m.insert("now".into(), app.gate.now().timestamp().into());
    let mut r = Json(serde_json::Value::Object(m)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /account/session.json`: the SSO session's claims and the server's
/// `now` (the page's script warns on the server's clock).
async fn session_json(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    blocking(move || match sso::current(&app, &headers) {
        Some(c) => claims_json(&app, &c),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "signed out"})),
        )
            .into_response(),
    })
    .await
}

/// `POST /account/extend` ("Extend session"): records activity, which
/// moves the idle deadline, and answers the new claims. Needs the page's
/// CSRF token in `X-CSRF-Token`.
async fn extend(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    blocking(move || {
        let Some(c) = sso::current(&app, &headers) else {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "signed out"})),
            )
                .into_response();
        };
        let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if !sso::csrf_ok(&app, &c, token) {
            return (StatusCode::FORBIDDEN, "bad form token").into_response();
        }
        match sso::resume(&app, &headers, Activity::Record) {
            Some(c) => claims_json(&app, &c),
            None => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "signed out"})),
            )
                .into_response(),
        }
    })
    .await
}

/// `POST /account/logout`: ends the SSO session (and with it the client
/// sessions signed in through it).
async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, Fields(form): Fields) -> Response {
    blocking(move || {
        let c = match posted(&app, &headers, &form) {
            Ok(c) => c,
            Err(r) => return *r,
        };
        sso::end(&app, &c, EndReason::Logout);
        let mut r = Html(pages::message("Signed out", "You are signed out.")).into_response();
        if let Ok(v) = HeaderValue::from_str(&sso::clear_cookie(&app)) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    })
    .await
}
