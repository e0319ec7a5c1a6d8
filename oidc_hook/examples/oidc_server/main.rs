//! An example OpenID Provider on oxide-auth-axum, with every token going
//! through curfew's [`PolicyIssuer`]. docs/oidc.md lists what it
//! implements and what it does not.
//!
//! | route | what | module |
//! |---|---|---|
//! | `GET /.well-known/openid-configuration` | OpenID Connect Discovery 1.0 | [`oidc`] |
//! | `GET /jwks` | the ES256 signing key (RFC 7517) | [`oidc`] |
//! | `GET`/`POST /authorize` | login page with the banner; SSO session cookie, `prompt=login`, `prompt=none` | [`oauth`] |
//! | `POST /token` | `authorization_code` (PKCE S256 required) and `refresh_token`; ID token and session claims | [`oauth`] |
//! | `GET`/`POST /userinfo` | UserInfo | [`oidc`] |
//! | `GET`/`POST /end_session` | RP-initiated logout 1.0 | [`oidc`] |
//! | `POST /introspect` | RFC 7662, for the authenticated client's own tokens | [`oauth`] |
//! | `POST /revoke` | RFC 7009: ends the session, so every token of the grant stops working | [`oauth`] |
//! | `GET /api/session` | a protected resource: the bearer token's session and deadlines | [`oauth`] |
//! | `GET`/`POST /login`, `/account/...` | the signed-in user's sessions page | [`account`] |
//! | `GET /healthz` | `ok` | |
//!
//! Back-channel logout ([`backchannel`]): whenever curfew ends a session
//! this provider issued (revocation, termination, idle, max duration,
//! logout), each client registered with `--backchannel-logout` gets a
//! logout token.
//!
//! ```text
//! cargo run -p curfew-oidc --example oidc_server -- --policy examples/policy.yaml \
//!     --user alice:wonderland:wheel --client web,http://127.0.0.1:8080/callback,s3cret \
//!     --backchannel-logout web=http://127.0.0.1:8080/backchannel
//! ```
//!
//! TEST ONLY: `--clock-offset-file FILE` runs the server's policy clock
//! ahead of the real one by the seconds written in FILE (re-read on every
//! decision), so that an end-to-end test moves time without sleeping. It is
//! an option of this example alone; never use it in production.
#![forbid(unsafe_code)]

mod account;
mod backchannel;
mod clock;
mod login;
mod oauth;
mod oidc;
mod pages;
mod sso;
mod throttle;
mod web;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use clap::Parser;
use curfew_oidc::{Clock, Gate, PolicyCell, PolicyIssuer, SystemClock};
use curfew_policy::{Policy, Store};
use oxide_auth::frontends::simple::extensions::{AddonList, Pkce};
use oxide_auth::primitives::prelude::{ClientMap, RandomGenerator, Scope, TokenMap};

use crate::oauth::{OAuth, Registry};

#[derive(Parser, Debug)]
#[command(about = "An example OpenID Provider whose tokens obey a curfew policy")]
struct Args {
    /// The curfew policy (its store is used too).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Use this SQLite file instead of the policy's `store` (as `curfew
    /// --store-path` does).
    #[arg(long, env = "CURFEW_STORE_PATH", value_name = "FILE")]
    store_path: Option<PathBuf>,
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8020")]
    listen: String,
    /// The issuer URL clients see; default `http(s)://<listen address>`.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// A user, `NAME:PASSWORD[:GROUP,GROUP...]`; repeat for several.
    #[arg(long = "user", value_name = "NAME:PASSWORD[:GROUPS]")]
    users: Vec<String>,
    /// A client, `ID,REDIRECT_URI[,SECRET]`; repeat for several.
    #[arg(long = "client", value_name = "ID,REDIRECT_URI[,SECRET]")]
    clients: Vec<String>,
    /// A client's back-channel logout URI, `ID=URI`.
    #[arg(long = "backchannel-logout", value_name = "ID=URI")]
    backchannel: Vec<String>,
    /// A post-logout redirect URI a client may name, `ID=URI`; repeat for several.
    #[arg(long = "post-logout-redirect", value_name = "ID=URI")]
    post_logout: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The ES256 signing key (PKCS#8 PEM, P-256); default: a new key at
    /// every start (tokens signed before a restart stop validating).
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// How often the store is read for ended sessions, in milliseconds
    /// (a Redis store also pushes its changes).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(20..=5000))]
    watch_interval_ms: u64,
    /// TEST ONLY: run the policy clock ahead by the seconds in this file.
    #[arg(long, value_name = "FILE")]
    clock_offset_file: Option<PathBuf>,
}

/// A user of the example, from `--user`.
pub struct User {
    /// Compared in constant time.
    pub password: String,
    /// For rules that match groups, and the `groups` claim.
    pub groups: Vec<String>,
}

/// A registered client, as checked outside the oxide-auth lock.
pub struct ClientInfo {
    /// Its one redirect URI.
    pub redirect_uri: url::Url,
    /// SHA-256 of its secret; `None` for a public client.
    pub secret_sha256: Option<[u8; 32]>,
    /// Where its logout tokens go.
    pub backchannel_logout_uri: Option<url::Url>,
    /// Where `/end_session` may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
}

/// A session this provider issued and watches: a client's grant, or the
/// provider's own SSO login (client [`sso::ACCOUNT_CLIENT`]).
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The user.
    pub user: String,
    /// The client (or [`sso::ACCOUNT_CLIENT`]).
    pub client_id: String,
    /// The grant asked for a persistent login.
    pub remember_me: bool,
    /// When the session started (policy clock).
    pub started_at: DateTime<Utc>,
    /// When the user authenticated (real clock, seconds since the epoch).
    pub auth_time: i64,
    /// The SSO session (cookie id) it belongs to, if any.
    pub sso: Option<String>,
    /// The earlier deadline of the last decision (policy clock): the
    /// watcher looks again then at the latest.
    pub next_check: DateTime<Utc>,
}

/// The example's state.
pub struct App {
    /// oxide-auth's primitives, under one lock.
    pub oauth: Mutex<OAuth>,
    /// `--user`.
    pub users: HashMap<String, User>,
    /// `--client`, with their logout settings.
    pub clients: HashMap<String, ClientInfo>,
    /// The decision path.
    pub gate: Gate,
    /// The issuer URL.
    pub issuer: String,
    /// The signing key.
    pub keys: oidc::Keys,
    /// Sessions this provider watches, by curfew session id.
    pub tracked: Mutex<HashMap<String, Tracked>>,
    /// SSO sessions: cookie id to curfew session id.
    pub sso: Mutex<HashMap<String, String>>,
    /// Issued authorization codes and what the ID token needs of them.
    pub codes: Mutex<HashMap<String, oauth::AuthContext>>,
    /// Cookies get `Secure` (served over TLS).
    pub secure_cookies: bool,
    /// The key of the login and logout forms' tokens (HMAC-SHA256).
    pub form_key: ring::hmac::Key,
    /// Sends logout tokens.
    pub http: reqwest::Client,
    /// Failed sign-ins.
    pub throttle: throttle::Throttle,
}

/// Locks `m`, going on after a panic of another holder (the data is plain
/// maps that no half-done update can make unsafe to read).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    /// The oxide-auth primitives.
    pub fn oauth(&self) -> MutexGuard<'_, OAuth> {
        lock(&self.oauth)
    }

    /// A user's groups (none for an unknown user).
    pub fn groups(&self, user: &str) -> Vec<String> {
        self.users
            .get(user)
            .map(|u| u.groups.clone())
            .unwrap_or_default()
    }

    /// Starts watching session `sid`.
    pub fn track(&self, sid: &str, t: Tracked) {
        lock(&self.tracked).insert(sid.to_owned(), t);
    }
}

fn parse_pair<'a>(flag: &str, spec: &'a str) -> Result<(&'a str, &'a str), String> {
    spec.split_once('=')
        .filter(|(id, uri)| !id.is_empty() && !uri.is_empty())
        .ok_or_else(|| format!("--{flag} {spec:?}: expected ID=URI"))
}

fn clients(args: &Args) -> Result<(ClientMap, HashMap<String, ClientInfo>), String> {
    let default: Scope = oauth::DEFAULT_SCOPE
        .parse()
        .map_err(|_| "bad default scope")?;
    let mut map = ClientMap::new();
    // Client secrets are random strings the operator generates, not
    // passwords: SHA-256 is enough, and Argon2 (oxide-auth's default) under
    // the one oxide-auth lock would serialize every token request.
    map.set_password_policy(oauth::Sha256Secrets);
    let mut infos = HashMap::new();
    for spec in &args.clients {
        let (client, info, id) = oauth::parse_client(spec, &default)?;
        map.register_client(client);
        infos.insert(id, info);
    }
    for spec in &args.backchannel {
        let (id, uri) = parse_pair("backchannel-logout", spec)?;
        let info = infos
            .get_mut(id)
            .ok_or_else(|| format!("--backchannel-logout {spec:?}: no --client {id}"))?;
        let uri: url::Url = uri
            .parse()
            .map_err(|e| format!("--backchannel-logout {spec:?}: {e}"))?;
        if !matches!(uri.scheme(), "http" | "https") {
            return Err(format!(
                "--backchannel-logout {spec:?}: the URI must be http or https"
            ));
        }
        info.backchannel_logout_uri = Some(uri);
    }
    for spec in &args.post_logout {
        let (id, uri) = parse_pair("post-logout-redirect", spec)?;
        let info = infos
            .get_mut(id)
            .ok_or_else(|| format!("--post-logout-redirect {spec:?}: no --client {id}"))?;
        uri.parse::<url::Url>()
            .map_err(|e| format!("--post-logout-redirect {spec:?}: {e}"))?;
        info.post_logout_redirect_uris.push(uri.to_owned());
    }
    Ok((map, infos))
}

async fn shutdown_signal() {
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
    // rustls (server and the back-channel client) with ring, as the
    // workspace's Redis client uses it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = Policy::load_secure(&args.policy).map_err(|e| e.to_string())?;
    let mut store_config = policy.store.clone();
    if let Some(p) = &args.store_path {
        store_config.backend = curfew_policy::StoreBackend::Sqlite { path: p.clone() };
    }
    let store: Arc<dyn Store> =
        Arc::from(curfew_policy::store::open(&store_config).map_err(|e| e.to_string())?);
    let clock: Arc<dyn Clock> = match &args.clock_offset_file {
        Some(path) => {
            eprintln!(
                "oidc_server: WARNING: test clock: the policy clock runs ahead by the seconds in {}",
                path.display()
            );
            Arc::new(clock::OffsetFileClock { path: path.clone() })
        }
        None => Arc::new(SystemClock),
    };
    // Web sessions name this host, as the token hook's do (`curfew hook
    // serve`): the sessions page shows it, and rules may `match.hosts`.
    let gate =
        Gate::new(PolicyCell::new(policy), store, clock).with_host(curfew_policy::host::hostname());

    let users: HashMap<String, User> = args
        .users
        .iter()
        .map(|s| oauth::parse_user(s))
        .collect::<Result<_, _>>()?;
    let groups: HashMap<String, Vec<String>> = users
        .iter()
        .map(|(n, u)| (n.clone(), u.groups.clone()))
        .collect();
    let (client_map, client_infos) = clients(&args)?;
    // Remember-me is the login's own "remember me" box (a flag of the
    // login, carried to the grant as an extension), never `offline_access`.
    let issuer = PolicyIssuer::new(TokenMap::new(RandomGenerator::new(16)), gate.clone())
        .with_groups(move |u| groups.get(u).cloned().unwrap_or_default())
        .with_remember_me_extension(curfew_oidc::REMEMBER_ME_EXTENSION)
        // The user's address at the authorization request, not the relying
        // party's at the token request: the session's remote address.
        .with_remote_address_extension(curfew_oidc::REMOTE_ADDRESS_EXTENSION);
    let mut addons = AddonList::new();
    addons.push_code(Pkce::required());
    // Carries the login's remember-me flag from the code to the tokens.
    addons.push_access_token(curfew_oidc::RememberMeAddon);
    addons.push_access_token(curfew_oidc::RemoteAddressAddon);
    let keys = oidc::Keys::load_or_generate(args.signing_key.as_deref())?;

    let listener = std::net::TcpListener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = args.tls_cert.is_some();
    let scheme = if tls { "https" } else { "http" };
    let issuer_url = args
        .issuer
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"))
        .trim_end_matches('/')
        .to_owned();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the back-channel HTTP client: {e}"))?;
    let app = Arc::new(App {
        oauth: Mutex::new(OAuth {
            registry: Registry {
                clients: client_map,
                allowed: oauth::ALLOWED_SCOPE
                    .parse()
                    .map_err(|_| "bad allowed scope")?,
            },
            authorizer: oauth::Codes::new(),
            issuer,
            addons,
        }),
        users,
        clients: client_infos,
        gate,
        issuer: issuer_url,
        keys,
        tracked: Mutex::new(HashMap::new()),
        sso: Mutex::new(HashMap::new()),
        codes: Mutex::new(HashMap::new()),
        secure_cookies: tls,
        form_key: web::new_form_key()?,
        http,
        throttle: throttle::Throttle::default(),
    });
    backchannel::spawn(app.clone(), Duration::from_millis(args.watch_interval_ms));

    let router = Router::new()
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/jwks", get(oidc::jwks))
        .route("/authorize", get(oauth::authorize).post(oauth::authorize))
        .route(
            "/token",
            post(oauth::token).layer(axum::middleware::map_request(oauth::decode_basic)),
        )
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route(
            "/end_session",
            get(oidc::end_session).post(oidc::end_session),
        )
        .route("/introspect", post(oauth::introspect))
        .route("/revoke", post(oauth::revoke))
        .route("/api/session", get(oauth::session))
        .merge(account::routes())
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(web::our_413))
        .layer(axum::middleware::map_response(web::security_headers))
        .with_state(app);

    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        h.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    let mut out = std::io::stdout();
    let _ = writeln!(out, "oidc_server: listening on {scheme}://{addr}");
    let _ = out.flush();
    // The peer address is the login throttle's per-address key.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    format!(
                        "--tls-cert {} / --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?;
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(service)
                .await
        }
        _ => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    served.map_err(|e| e.to_string())
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
