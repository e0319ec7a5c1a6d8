//! `curfew hook serve`: the HTTP token hook. The service lives in
//! `curfew_oidc::hook`; this only gathers its configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use curfew_oidc::hook::hydra_admin::HydraAdminConfig;
use curfew_oidc::hook::{HookConfig, HookOptions, HydraOptions, RememberMe, ServiceLimits};
use curfew_oidc::{Gate, PolicyCell, SystemClock};
use curfew_policy::policy::{StoreBackend, DEFAULT_POLICY_PATH};
use curfew_policy::{Policy, Store};

use crate::context::{self, Context};
use crate::Outcome;

/// `curfew hook ...`.
#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Serve the token hook over HTTP (Ory Hydra's `oauth2.token_hook`
    /// shape): POST /token-hook, GET /healthz, GET /metrics.
    Serve {
        /// Address to listen on (loopback by default; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
        /// How often to look at the policy file for changes (SIGHUP reloads at once).
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        reload_interval: Duration,
        /// Require `Authorization: Bearer <token>` from the OIDC server; the
        /// token is read from this file (mode 0600).
        #[arg(long, value_name = "FILE")]
        hook_token_file: Option<PathBuf>,
        /// Enable POST /admin/reload, guarded by the bearer token in this
        /// file (mode 0600).
        #[arg(long, value_name = "FILE")]
        admin_token_file: Option<PathBuf>,
        /// The boolean claim (in the ID token's or the access token's extra
        /// claims) that marks a persistent login (remember_me.max_duration).
        /// Without it no login is persistent. The refresh scope
        /// (offline/offline_access) is never read as remember-me.
        #[arg(long, value_name = "CLAIM")]
        remember_me_claim: Option<String>,
        /// The claim holding the user's groups.
        #[arg(long, value_name = "CLAIM", default_value = "groups")]
        groups_claim: String,
        /// Close a connection whose request headers have not arrived within this.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        header_timeout: Duration,
        /// Answer 408 when a request body has not arrived within this.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        body_timeout: Duration,
        /// Serve at most this many connections at once (further ones wait).
        #[arg(long, default_value_t = 4096)]
        max_connections: usize,
        /// Threads for store calls (decisions, the sweep, policy reloads);
        /// requests beyond them wait in a queue. Default: 2 on a SQLite
        /// store (its one connection serves every call, so more threads
        /// only queue on its lock, each hand-over a context switch), 512 on
        /// Redis (tokio's default: a Redis that stops answering holds each
        /// call up to its 2 s timeout, and fewer threads would queue every
        /// other request behind those), as the policy at start names.
        /// Measured in BENCHMARKS.md (issue 17).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
        store_threads: Option<u16>,
        /// How often the sessions this hook allowed are decided at now, to
        /// end and report the ones revoked, terminated, idle or too old
        /// (0: only at their next token request).
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        sweep_interval: Duration,
        /// Ory Hydra's admin API (e.g. http://127.0.0.1:4445): told of every
        /// end (login session ended, consent and tokens revoked).
        #[arg(long, value_name = "URL")]
        hydra_admin_url: Option<String>,
        /// A bearer token for Hydra's admin API, read from this file (mode 0600).
        #[arg(long, value_name = "FILE", requires = "hydra_admin_url")]
        hydra_admin_token_file: Option<PathBuf>,
        /// Attempts per Hydra admin call (retried on errors, 429 and 5xx).
        #[arg(long, default_value_t = 3, requires = "hydra_admin_url")]
        hydra_admin_attempts: u32,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Runs a hook command.
pub fn run(ctx: &Context, cmd: HookCommand) -> Result<Outcome> {
    let HookCommand::Serve {
        listen,
        reload_interval,
        hook_token_file,
        admin_token_file,
        remember_me_claim,
        groups_claim,
        header_timeout,
        body_timeout,
        max_connections,
        store_threads,
        sweep_interval,
        hydra_admin_url,
        hydra_admin_token_file,
        hydra_admin_attempts,
    } = cmd;
    let hydra_admin = match hydra_admin_url {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("--hydra-admin-url {url}: not an http:// or https:// URL");
            }
            let mut c = HydraAdminConfig::new(url);
            c.token = hydra_admin_token_file
                .as_deref()
                .map(curfew_oidc::hook::read_token_file)
                .transpose()?;
            c.attempts = hydra_admin_attempts.max(1);
            Some(c)
        }
        None => None,
    };
    // An enforcement point: refuse a policy others can change.
    let policy_path = ctx.policy_path();
    let policy = match &policy_path {
        Some(p) => Policy::load_secure(p)?,
        None => {
            eprintln!(
                "curfew: note: {DEFAULT_POLICY_PATH} does not exist; using the built-in policy"
            );
            Policy::builtin()
        }
    };
    let store_threads = store_threads
        .map(usize::from)
        .unwrap_or(match policy.store.backend {
            StoreBackend::Sqlite { .. } => 2,
            StoreBackend::Redis { .. } => 512,
        });
    let store: Arc<dyn Store> = Arc::from(ctx.store(&policy)?);
    let gate = Gate::new(PolicyCell::new(policy), store, Arc::new(SystemClock))
        .with_host(context::hostname());
    let config = HookConfig {
        listen,
        gate,
        policy_file: policy_path,
        reload_interval,
        hook_token_file,
        admin_token_file,
        options: HookOptions {
            hydra: HydraOptions {
                remember_me: remember_me_claim.map_or(RememberMe::Never, RememberMe::Claim),
                groups_claim,
            },
        },
        limits: ServiceLimits {
            header_timeout,
            body_timeout,
            max_connections,
            store_calls: store_threads,
        },
        sweep_interval,
        hydra_admin,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(store_threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(curfew_oidc::hook::serve(config, shutdown()))?;
    Ok(Outcome::Success)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers, run until killed.
        _ => std::future::pending().await,
    }
}
