//! `curfew hook serve`: the HTTP token hook (issue 5; not built yet).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::context::Context;
use crate::Outcome;

/// `curfew hook ...`.
#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Serve the token hook over HTTP.
    Serve {
        /// Address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
    },
}

/// Runs a hook command.
pub fn run(_ctx: &Context, _cmd: HookCommand) -> Result<Outcome> {
    bail!("`curfew hook serve` is not built yet (issue 5)")
}
