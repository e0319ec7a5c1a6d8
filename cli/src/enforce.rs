//! `curfew enforce`: the per-host enforcer (issue 4; not built yet).

use anyhow::{bail, Result};
use clap::Args;

use crate::context::Context;
use crate::Outcome;

/// Options of `curfew enforce`.
#[derive(Args, Debug)]
pub struct EnforceArgs {
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
    /// Time between passes.
    #[arg(long, default_value = "1s")]
    interval: String,
}

/// Runs the enforcer.
pub fn run(_ctx: &Context, _args: EnforceArgs) -> Result<Outcome> {
    bail!("`curfew enforce` is not built yet (issue 4)")
}
