//! End to end: the example OAuth2 server (oxide-auth-axum + `PolicyIssuer`)
//! driven by a real OAuth2 client library, the `oauth2` crate over reqwest.
//!
//! Time is injected, not slept: the server runs with the test-only
//! `--clock-offset-file`, and the test writes how many seconds its policy
//! clock runs ahead. Revocations and token lifetimes go through the real
//! `curfew` CLI against the same SQLite store.
//!
//! The browser's part (the login form) is plain HTTP, as a browser would
//! send it; every OAuth2 request (authorization URL with PKCE, code exchange,
//! refresh, RFC 7662 introspection, RFC 7009 revocation) is the oauth2
//! crate's.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use curfew_e2e::common::{curfew_bin, write_file, ChildGuard};
use curfew_e2e::oidc::{example_bin, hidden_fields, spawn_listening};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenType,
};
use oauth2::http;
use oauth2::{
    AccessToken, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, HttpRequest, HttpResponse,
    IntrospectionUrl, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    RevocationUrl, Scope, StandardRevocableToken, StandardTokenIntrospectionResponse,
    StandardTokenResponse, SyncHttpClient, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

const BANNER: &str = "Authorized use only. Activity is logged & <monitored>.";
const BANNER_HTML: &str = "Authorized use only. Activity is logged &amp; &lt;monitored&gt;.";
const REDIRECT: &str = "http://127.0.0.1:1/callback";
/// The client's secret: introspection answers authenticated clients only.
const SECRET: &str = "web-secret-e2e";

/// The session claims the server adds to token and introspection responses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Curfew {
    sid: Option<String>,
    curfew_absolute_deadline: Option<i64>,
    curfew_idle_deadline: Option<i64>,
    curfew_warn_at: Option<i64>,
    curfew_banner: Option<String>,
}
impl ExtraTokenFields for Curfew {}

type Tokens = StandardTokenResponse<Curfew, BasicTokenType>;
type Introspection = StandardTokenIntrospectionResponse<Curfew, BasicTokenType>;
type OAuthClient = Client<
    BasicErrorResponse,
    Tokens,
    Introspection,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointSet,
    EndpointSet,
    EndpointSet,
>;

/// The oauth2 crate's reqwest client, except that `https://127.0.0.1` is
/// sent as `http://127.0.0.1`: the crate insists on an HTTPS revocation URL
/// (RFC 7009 tells clients to), and the test server speaks plain HTTP on
/// loopback. Nothing else of the request is touched.
struct Loopback(reqwest::blocking::Client);

impl SyncHttpClient for Loopback {
    type Error = HttpClientError<reqwest::Error>;

    fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, Self::Error> {
        let uri = request.uri().to_string();
        if let Some(rest) = uri.strip_prefix("https://127.0.0.1:") {
            *request.uri_mut() = format!("http://127.0.0.1:{rest}")
                .parse::<http::Uri>()
                .expect("a loopback URI");
        }
        self.0.call(request)
    }
}

fn browser() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

struct Server {
    _guard: ChildGuard,
    base: String,
    policy: PathBuf,
    offset_file: PathBuf,
    offset: Cell<i64>,
    http: Loopback,
    _dir: tempfile::TempDir,
}

fn policy_text(dir: &Path) -> String {
    format!(
        r#"version: 1
session:
  timeout: {{ default: 5m, min: 1m, max: 1h }}
  max_duration: 1h
  inactivity: 10m
  warn_before: 2m
  remember_me: {{ max_duration: 1d }}
banner:
  text: "Authorized use only. Activity is logged & <monitored>."
store: {{ backend: sqlite, path: {}/state.db }}
"#,
        dir.display()
    )
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = write_file(dir.path(), "policy.yaml", &policy_text(dir.path()));
        let offset_file = dir.path().join("clock-offset");
        std::fs::write(&offset_file, "0").expect("write offset");
        let mut cmd = Command::new(example_bin("oidc_server"));
        cmd.arg("--policy")
            .arg(&policy)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--user", "alice:wonderland:staff"])
            .args(["--user", "bob:builder"])
            .args(["--user", "carol:pw-carol"])
            .args(["--user", "dave:pw-dave"])
            .args(["--client", &format!("web,{REDIRECT},{SECRET}")])
            .arg("--clock-offset-file")
            .arg(&offset_file);
        let (guard, base) = spawn_listening(cmd, "oidc_server", &dir.path().join("server.err"));
        Server {
            _guard: guard,
            base,
            policy,
            offset_file,
            offset: Cell::new(0),
            http: Loopback(browser()),
            _dir: dir,
        }
    }

    /// Moves the server's policy clock `secs` further ahead.
    fn advance(&self, secs: i64) {
        self.offset.set(self.offset.get() + secs);
        std::fs::write(&self.offset_file, self.offset.get().to_string()).expect("write offset");
    }

    /// The server's policy clock, as seconds since the epoch (to within
    /// the time the test takes between two steps).
    fn now(&self) -> i64 {
        #[allow(clippy::disallowed_methods)] // the test is an entry point
        let real = chrono::Utc::now().timestamp();
        real + self.offset.get()
    }

    fn client(&self) -> OAuthClient {
        let url = |p: &str| format!("{}{p}", self.base);
        Client::new(ClientId::new("web".into()))
            .set_client_secret(ClientSecret::new(SECRET.into()))
            .set_auth_uri(AuthUrl::new(url("/authorize")).expect("url"))
            .set_token_uri(TokenUrl::new(url("/token")).expect("url"))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("url"))
            .set_introspection_url(IntrospectionUrl::new(url("/introspect")).expect("url"))
            .set_revocation_url(
                RevocationUrl::new(url("/revoke").replacen("http://", "https://", 1)).expect("url"),
            )
    }

    /// The user's part: open the authorization URL, read the login page,
    /// submit the form. Returns the redirect's query, and the PKCE
    /// verifier and CSRF state of the request.
    fn authorize(
        &self,
        user: &str,
        password: &str,
        scopes: &[&str],
    ) -> (Vec<(String, String)>, PkceCodeVerifier, CsrfToken) {
        self.authorize_with(user, password, scopes, false)
    }

    /// [`Server::authorize`], ticking "remember me" if `remember`.
    fn authorize_with(
        &self,
        user: &str,
        password: &str,
        scopes: &[&str],
        remember: bool,
    ) -> (Vec<(String, String)>, PkceCodeVerifier, CsrfToken) {
        let client = self.client();
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        for s in scopes {
            req = req.add_scope(Scope::new((*s).into()));
        }
        let (url, csrf) = req.url();
        // A browser of its own: the login form's token is bound to its
        // pre-session cookie.
        let browser = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("an HTTP client");
        let page = browser.get(url.clone()).send().expect("GET /authorize");
        assert_eq!(page.status(), 200);
        let page = page.text().expect("login page");
        assert!(
            page.contains(BANNER_HTML),
            "the login page shows the banner:\n{page}"
        );
        assert!(page.contains("<form method=\"post\" action=\"/authorize?"));
        let mut form = hidden_fields(&page, None);
        form.push(("username".into(), user.into()));
        form.push(("password".into(), password.into()));
        if remember {
            form.push(("remember_me".into(), "yes".into()));
        }
        let resp = browser
            .post(url)
            .form(&form)
            .send()
            .expect("POST /authorize");
        assert_eq!(resp.status(), 302, "the login redirects back to the client");
        let location = resp.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        let query = reqwest::Url::parse(&location)
            .expect("redirect URL")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        (query, verifier, csrf)
    }

    /// Logs `user` in through the code flow with PKCE.
    fn login(&self, user: &str, password: &str, scopes: &[&str]) -> Tokens {
        self.login_with(user, password, scopes, false)
    }

    /// [`Server::login`], ticking "remember me" if `remember`.
    fn login_with(&self, user: &str, password: &str, scopes: &[&str], remember: bool) -> Tokens {
        let (query, verifier, csrf) = self.authorize_with(user, password, scopes, remember);
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("state").as_deref(), Some(csrf.secret().as_str()));
        let code = get("code").unwrap_or_else(|| panic!("no code in {query:?}"));
        self.client()
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request(&self.http)
            .expect("the code exchange succeeds")
    }

    fn refresh(&self, t: &Tokens) -> Result<Tokens, String> {
        let rt = t.refresh_token().expect("a refresh token");
        self.client()
            .exchange_refresh_token(rt)
            .request(&self.http)
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    assert_eq!(*r.error(), BasicErrorResponseType::InvalidGrant, "{r:?}");
                    // Why, for a failure message of the caller.
                    eprintln!(
                        "refresh refused; server log:\n{}",
                        std::fs::read_to_string(self._dir.path().join("server.err"))
                            .unwrap_or_default()
                    );
                    "invalid_grant".to_owned()
                }
                e => panic!("the refresh failed otherwise than with invalid_grant: {e:?}"),
            })
    }

    fn introspect(&self, token: &AccessToken) -> Introspection {
        self.client()
            .introspect(token)
            .request(&self.http)
            .expect("introspection answers")
    }

    fn introspect_refresh(&self, t: &Tokens) -> Introspection {
        let rt = AccessToken::new(t.refresh_token().expect("refresh").secret().clone());
        self.client()
            .introspect(&rt)
            .set_token_type_hint("refresh_token")
            .request(&self.http)
            .expect("introspection answers")
    }

    /// The protected resource, with `token` as the bearer (plain HTTP, as
    /// a resource client sends it).
    fn get_session(&self, token: &AccessToken) -> reqwest::blocking::Response {
        self.http
            .0
            .get(format!("{}/api/session", self.base))
            .bearer_auth(token.secret())
            .send()
            .expect("GET /api/session")
    }

    fn curfew(&self, args: &[&str]) {
        let out = Command::new(curfew_bin())
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .env_remove("CURFEW_POLICY")
            .env_remove("CURFEW_STORE_PATH")
            .output()
            .expect("run curfew");
        assert!(
            out.status.success(),
            "curfew {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn expires_in(t: &Tokens) -> u64 {
    t.expires_in().expect("expires_in").as_secs()
}

#[test]
fn code_flow_with_pkce_issues_policy_tokens_and_refreshes_within_the_window() {
    let s = Server::start();
    let before = s.now();
    let t = s.login("alice", "wonderland", &["openid", "profile"]);
    let after = s.now();
    // The access token lives for the policy's timeout (5 min), not oxide-auth's hour.
    assert!(
        (295..=300).contains(&expires_in(&t)),
        "{:?}",
        t.expires_in()
    );
    let c = t.extra_fields();
    let sid = c.sid.clone().expect("sid");
    assert_eq!(sid.len(), 32);
    assert_eq!(c.curfew_banner.as_deref(), Some(BANNER));
    let idle = c.curfew_idle_deadline.expect("idle deadline");
    let absolute = c.curfew_absolute_deadline.expect("absolute deadline");
    assert!(
        (before + 600..=after + 600).contains(&idle),
        "inactivity 10m"
    );
    assert!(
        (before + 3600..=after + 3600).contains(&absolute),
        "max_duration 1h"
    );
    assert_eq!(
        c.curfew_warn_at,
        Some(idle - 120),
        "warn_before 2m ahead of the idle deadline"
    );

    // The access token works, and introspection says so, with the claims.
    let i = s.introspect(t.access_token());
    assert!(i.active());
    assert_eq!(i.username(), Some("alice"));
    assert_eq!(i.extra_fields().sid.as_deref(), Some(sid.as_str()));
    // The protected resource (oxide-auth's resource flow) shows the session.
    let r = s.get_session(t.access_token());
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().expect("JSON");
    assert_eq!(v["user"], "alice");
    assert_eq!(v["session"]["sid"], sid.as_str());
    assert_eq!(v["session"]["curfew_idle_deadline"], idle);

    // Four minutes later: the refresh (the "extend session" button) works,
    // rotates both tokens and moves the idle deadline.
    s.advance(240);
    let t2 = s.refresh(&t).expect("a refresh within the window succeeds");
    assert_ne!(t2.access_token().secret(), t.access_token().secret());
    let c2 = t2.extra_fields();
    assert_eq!(c2.sid.as_deref(), Some(sid.as_str()), "the same session");
    assert!(c2.curfew_idle_deadline.expect("idle") >= idle + 240);
    assert_eq!(
        c2.curfew_absolute_deadline,
        Some(absolute),
        "max_duration does not move"
    );
    assert!((295..=300).contains(&expires_in(&t2)));
    assert!(
        !s.introspect(t.access_token()).active(),
        "the old access token was rotated out"
    );
    assert!(s.introspect(t2.access_token()).active());
    assert!(
        s.refresh(&t).is_err(),
        "a spent refresh token does not work twice"
    );

    // The access token expires on the server's clock, the refresh token does not.
    s.advance(301);
    assert!(
        !s.introspect(t2.access_token()).active(),
        "expired after 5 min"
    );
    assert_eq!(
        s.get_session(t2.access_token()).status(),
        401,
        "an expired token opens no resource"
    );
    let t3 = s
        .refresh(&t2)
        .expect("refresh after the access token expired, within inactivity");
    assert!(s.introspect(t3.access_token()).active());
}

#[test]
fn pkce_is_required_and_checked() {
    let s = Server::start();
    let (query, _verifier, _) = s.authorize("alice", "wonderland", &[]);
    let code = query
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .expect("code");
    let wrong = PkceCodeVerifier::new("x".repeat(64));
    let r = s
        .client()
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(wrong)
        .request(&s.http);
    assert!(r.is_err(), "a wrong code_verifier is refused");
}

#[test]
fn refresh_after_the_inactivity_window_fails() {
    let s = Server::start();
    let t = s.login("alice", "wonderland", &[]);
    s.advance(9 * 60);
    let t = s
        .refresh(&t)
        .expect("9 minutes idle is within the 10 minute window");
    s.advance(10 * 60 + 5);
    assert_eq!(s.refresh(&t).unwrap_err(), "invalid_grant");
    assert!(!s.introspect(t.access_token()).active());
    assert!(!s.introspect_refresh(&t).active());
}

#[test]
fn refresh_after_max_duration_fails_unless_the_login_was_remembered() {
    let s = Server::start();
    // `offline_access` only asks for a refresh token (issue 14); "remember
    // me" ticked at the login is what makes a login persistent.
    let mut plain = s.login("alice", "wonderland", &["openid", "offline_access"]);
    let mut remembered = s.login_with("carol", "pw-carol", &["openid"], true);
    assert!(
        remembered
            .extra_fields()
            .curfew_absolute_deadline
            .expect("deadline")
            > s.now() + 86_000
    );
    // Active all along: a refresh every 9 minutes.
    for _ in 0..6 {
        s.advance(9 * 60);
        plain = s.refresh(&plain).expect("within max_duration");
        remembered = s
            .refresh(&remembered)
            .expect("within remember_me.max_duration");
    }
    s.advance(7 * 60); // 61 minutes after the logins
    assert_eq!(
        s.refresh(&plain).unwrap_err(),
        "invalid_grant",
        "past max_duration (1h)"
    );
    assert!(!s.introspect(plain.access_token()).active());
    let r = s
        .refresh(&remembered)
        .expect("remember_me.max_duration is 1 day");
    assert!(s.introspect(r.access_token()).active());
}

#[test]
fn curfew_revoke_user_stops_refresh_introspection_and_login() {
    let s = Server::start();
    let bob = s.login("bob", "builder", &[]);
    let carol = s.login("carol", "pw-carol", &[]);
    let bob = s.refresh(&bob).expect("refresh before the revocation");
    s.curfew(&["revoke", "user", "bob", "--reason", "e2e"]);
    assert_eq!(s.refresh(&bob).unwrap_err(), "invalid_grant");
    assert!(!s.introspect(bob.access_token()).active());
    assert!(!s.introspect_refresh(&bob).active());
    // A new login of bob is refused at the authorization step.
    let (query, _, _) = s.authorize("bob", "builder", &[]);
    assert!(
        query
            .iter()
            .any(|(k, v)| k == "error" && v == "access_denied"),
        "{query:?}"
    );
    // Others go on.
    let carol = s.refresh(&carol).expect("carol is not revoked");
    assert!(s.introspect(carol.access_token()).active());
}

#[test]
fn rfc7009_revocation_ends_every_token_of_the_grant() {
    let s = Server::start();
    let t = s.login("alice", "wonderland", &[]);
    let other = s.login("alice", "wonderland", &[]);
    let rt = t.refresh_token().expect("refresh").clone();
    s.client()
        .revoke_token(StandardRevocableToken::RefreshToken(rt))
        .expect("a revocation URL")
        .request(&s.http)
        .expect("the revocation succeeds");
    assert_eq!(s.refresh(&t).unwrap_err(), "invalid_grant");
    assert!(
        !s.introspect(t.access_token()).active(),
        "the access token died with the grant"
    );
    // An unknown token is answered 200 too (RFC 7009 2.2).
    s.client()
        .revoke_token(StandardRevocableToken::AccessToken(AccessToken::new(
            "nope".into(),
        )))
        .expect("a revocation URL")
        .request(&s.http)
        .expect("revoking an unknown token succeeds");
    // Another login of the same user is another session.
    assert!(s.introspect(other.access_token()).active());
    // Revoking an access token ends its session as well.
    s.client()
        .revoke_token(StandardRevocableToken::AccessToken(
            other.access_token().clone(),
        ))
        .expect("a revocation URL")
        .request(&s.http)
        .expect("the revocation succeeds");
    assert_eq!(s.refresh(&other).unwrap_err(), "invalid_grant");
}

#[test]
fn a_users_own_timeout_sets_the_access_token_lifetime() {
    let s = Server::start();
    s.curfew(&["timeout", "set", "--user", "dave", "10m"]);
    let t = s.login("dave", "pw-dave", &[]);
    assert!(
        (595..=600).contains(&expires_in(&t)),
        "{:?}",
        t.expires_in()
    );
    s.advance(9 * 60);
    assert!(
        s.introspect(t.access_token()).active(),
        "still valid after 9 minutes"
    );
    let alice = s.login("alice", "wonderland", &[]);
    assert!(
        (295..=300).contains(&expires_in(&alice)),
        "others keep the default"
    );
}
