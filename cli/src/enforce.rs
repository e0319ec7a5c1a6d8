//! `curfew enforce`: the per-host enforcer. It lives in `curfew_enforce`;
//! this only gathers its options and the store to open.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use curfew_enforce::daemon::{self, Finished, Options};

use crate::context::Context;
use crate::Outcome;

/// Options of `curfew enforce`.
#[derive(Args, Debug)]
pub struct EnforceArgs {
    /// One pass, then exit (1 if the pass could not look at every session).
    #[arg(long)]
    once: bool,
    /// Time between passes (100ms to 1h).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// Runs the enforcer.
pub fn run(ctx: &Context, args: EnforceArgs) -> Result<Outcome> {
    let options = Options {
        once: args.once,
        interval: args.interval,
        policy_path: ctx.policy_path(),
        store_path: ctx.store_path_override(),
    };
    let finished = daemon::run(
        &options,
        Box::new(|policy| curfew_policy::store::open(&ctx.store_config(policy))),
        &|| ctx.now(),
    )?;
    Ok(match finished {
        Finished::Complete => Outcome::Success,
        Finished::Incomplete => Outcome::Failure,
    })
}
