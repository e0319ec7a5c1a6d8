//! The provider's own login session (SSO): a cookie naming a curfew session
//! of the pseudo-client [`ACCOUNT_CLIENT`], decided by the same gate as
//! every token. While it lives, `/authorize` signs the user in without the
//! form (unless `prompt=login`), and the account pages know who is there.
//! When it ends, for whatever reason, the sessions of the clients signed in
//! through it end with it (see `backchannel`).

use axum::http::HeaderMap;
use curfew_oidc::{Activity, Granted, Known, Principal, Refusal};
use curfew_policy::EndReason;

use crate::{lock, oidc, web, App, Tracked};

/// The client id under which SSO sessions are recorded in the store.
pub const ACCOUNT_CLIENT: &str = "curfew-account";
/// The SSO cookie.
pub const COOKIE: &str = "curfew_sso";

/// A live SSO session of the request.
#[derive(Debug, Clone)]
pub struct Current {
    /// The cookie's value.
    pub cookie: String,
    /// The curfew session id.
    pub sid: String,
    /// The user.
    pub user: String,
    /// When the user authenticated (seconds since the epoch, real clock).
    pub auth_time: i64,
    /// The user ticked "remember me" at the login: a persistent login,
    /// and so is every client sign-in through it.
    pub remember_me: bool,
    /// The decision now.
    pub granted: Granted,
}

/// A new SSO session.
pub struct Started {
    /// The cookie's value.
    pub cookie: String,
    /// The `Set-Cookie` header value.
    pub set_cookie: String,
    /// When the user authenticated (seconds since the epoch, real clock).
    pub auth_time: i64,
}

fn principal<'a>(user: &'a str, groups: &'a [String], remember_me: bool) -> Principal<'a> {
    Principal {
        user,
        groups,
        client_id: ACCOUNT_CLIENT,
        remember_me,
    }
}

fn decide(app: &App, sid: &str, t: &Tracked, activity: Activity) -> Result<Granted, Refusal> {
    let groups = app.groups(&t.user);
    let known = Known {
        started_at: t.started_at,
        last_activity: t.started_at,
    };
    // Under the oxide-auth lock, as every decision of this server (see
    // `backchannel::sweep`). Never called with that lock held.
    let _serial = app.oauth();
    app.gate.resume(
        sid,
        &principal(&t.user, &groups, t.remember_me),
        &known,
        activity,
    )
}

/// The request's SSO session, if its cookie names one that may go on
/// (asking the gate now: a revoked or idle one is not).
pub fn current(app: &App, headers: &HeaderMap) -> Option<Current> {
    resume(app, headers, Activity::Inspect)
}

/// Like [`current`], recording activity (the "Extend session" button).
pub fn resume(app: &App, headers: &HeaderMap, activity: Activity) -> Option<Current> {
    let cookie = web::cookie(headers, COOKIE)?;
    let sid = lock(&app.sso).get(&cookie).cloned()?;
    let t = lock(&app.tracked).get(&sid).cloned()?;
    match decide(app, &sid, &t, activity) {
        Ok(granted) => {
            if let Some(tr) = lock(&app.tracked).get_mut(&sid) {
                tr.next_check = granted
                    .allow
                    .idle_deadline
                    .min(granted.allow.absolute_deadline);
            }
            Some(Current {
                cookie,
                sid,
                user: t.user,
                auth_time: t.auth_time,
                remember_me: t.remember_me,
                granted,
            })
        }
        // Ended: the watcher tells the clients and forgets it.
        Err(_) => None,
    }
}

/// Starts an SSO session for `user` (just authenticated; `remember_me`:
/// the login's "remember me" box; `remote`: the browser's address, the
/// session's `rhost`). A session the browser had (`previous`) ends as a
/// logout.
pub fn start(
    app: &App,
    user: &str,
    remember_me: bool,
    previous: Option<&Current>,
    remote: Option<std::net::IpAddr>,
) -> Result<Started, String> {
    if let Some(p) = previous {
        end(app, p, EndReason::Logout);
    }
    let groups = app.groups(user);
    let granted = app
        .gate
        .start(&principal(user, &groups, remember_me), None, None, remote)
        .map_err(|e| e.to_string())?;
    let cookie = web::random_id()?;
    let auth_time = oidc::real_now();
    app.track(
        &granted.session_id,
        Tracked {
            user: user.to_owned(),
            client_id: ACCOUNT_CLIENT.to_owned(),
            remember_me,
            started_at: granted.started_at,
            auth_time,
            sso: Some(cookie.clone()),
            next_check: granted
                .allow
                .idle_deadline
                .min(granted.allow.absolute_deadline),
        },
    );
    // A remembered login outlives the browser: the cookie lasts until the
    // login's absolute deadline (the server ends the session then anyway).
    // Otherwise a session cookie, gone with the browser.
    let max_age = remember_me.then(|| {
        let left = granted.allow.absolute_deadline - app.gate.now();
        u64::try_from(left.num_seconds()).unwrap_or(0)
    });
    lock(&app.sso).insert(cookie.clone(), granted.session_id);
    Ok(Started {
        set_cookie: set_cookie(app, &cookie, max_age),
        cookie,
        auth_time,
    })
}

/// Ends the SSO session `c` (the watcher then ends the client sessions
/// signed in through it and sends the logout tokens).
pub fn end(app: &App, c: &Current, reason: EndReason) {
    if let Err(e) = app.gate.end(&c.sid, reason) {
        eprintln!("oidc_server: error: ending SSO session {}: {e}", c.sid);
    }
}

/// The `Set-Cookie` value for `cookie`, lasting `max_age` seconds (a
/// remembered login) or, without one, until the browser closes.
pub fn set_cookie(app: &App, cookie: &str, max_age: Option<u64>) -> String {
    web::set_cookie(app, COOKIE, cookie, max_age)
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(app: &App) -> String {
    web::set_cookie(app, COOKIE, "", Some(0))
}

/// The purpose under which the account pages' form tokens are derived
/// (see [`web::form_token`]; the login forms use others).
const ACCOUNT_FORMS: &str = "account";

/// The token of the account pages' forms and of "Extend session" (CSRF),
/// keyed to this browser's SSO session: HMAC-SHA256 of the session id
/// under the server's secret key ([`web::form_token`], as the login forms'
/// tokens), so a token shown in one session is refused in any other, and
/// nobody without the key can compute one (the session id is no secret:
/// the sessions page lists it; an unkeyed hash of it, or of the cookie,
/// could be forged by whoever learns either).
pub fn csrf(app: &App, c: &Current) -> String {
    web::form_token(app, ACCOUNT_FORMS, &c.sid)
}

/// Whether `sent` is the account-form token of `c`'s session, compared in
/// constant time.
pub fn csrf_ok(app: &App, c: &Current, sent: Option<&str>) -> bool {
    use subtle::ConstantTimeEq as _;
    sent.is_some_and(|sent| bool::from(csrf(app, c).as_bytes().ct_eq(sent.as_bytes())))
}
