//! `curfew`: the admin CLI, the per-host enforcer and the HTTP token hook.
//!
//! Exit codes: 0 success; 1 the command ran and failed (an invalid policy, an
//! unknown id, a refused confirmation, an unavailable store); 2 the command
//! line itself is wrong.
#![forbid(unsafe_code)]

mod cmd_policy;
mod cmd_revoke;
mod cmd_sessions;
mod cmd_timeout;
mod context;
mod enforce;
mod generate;
mod hook;
mod output;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `curfew --version`: the package version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CURFEW_BUILD_COMMIT"),
    ")"
);

/// One policy for how long a login may live, how long it may sit idle, what
/// banner it shows and who is locked out.
#[derive(Parser, Debug)]
#[command(name = "curfew", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// The policy file [default: /etc/curfew/policy.yaml; the built-in
    /// policy when that file does not exist].
    #[arg(long, global = true, env = "CURFEW_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Use this SQLite file instead of the policy's `store.path`.
    #[arg(long, global = true, env = "CURFEW_STORE_PATH", value_name = "FILE")]
    pub store_path: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check, explain or describe the policy.
    #[command(subcommand)]
    Policy(cmd_policy::PolicyCommand),
    /// List or terminate sessions.
    #[command(subcommand)]
    Sessions(cmd_sessions::SessionsCommand),
    /// Revoke a user, a session, a client or everything started until now.
    Revoke(cmd_revoke::RevokeArgs),
    /// List revocations.
    #[command(subcommand)]
    Revocations(cmd_revoke::RevocationsCommand),
    /// Remove a revocation (lifts a lock; sessions it ended stay ended).
    Unrevoke(cmd_revoke::UnrevokeArgs),
    /// A user's own token lifetime, within timeout.min..timeout.max.
    #[command(subcommand)]
    Timeout(cmd_timeout::TimeoutCommand),
    /// Run the per-host enforcer that ends revoked, expired and idle sessions.
    Enforce(enforce::EnforceArgs),
    /// The HTTP token hook for OIDC servers.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Write man pages or shell completions (used by the package build).
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
}

/// What a command reports: success, or a failure already explained on stdout
/// (such as `policy check` printing every problem).
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1, with nothing more to print.
    Failure,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = context::Context::new(cli.policy.clone(), cli.store_path.clone());
    let result = match cli.command {
        Command::Policy(c) => cmd_policy::run(&ctx, c),
        Command::Sessions(c) => cmd_sessions::run(&ctx, c),
        Command::Revoke(a) => cmd_revoke::revoke(&ctx, a),
        Command::Revocations(c) => cmd_revoke::list(&ctx, c),
        Command::Unrevoke(a) => cmd_revoke::unrevoke(&ctx, a),
        Command::Timeout(c) => cmd_timeout::run(&ctx, c),
        Command::Enforce(a) => enforce::run(&ctx, a),
        Command::Hook(c) => hook::run(&ctx, c),
        Command::Generate(c) => generate::run(c),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(e) => {
            // Under systemd (the enforcer, the hook) the journal files this
            // at err; on a terminal the line is plain.
            eprintln!(
                "{}curfew: {}",
                curfew_policy::journal::prefix(curfew_policy::audit::Priority::Err),
                output::escape(&format!("{e:#}"))
            );
            ExitCode::from(1)
        }
    }
}
