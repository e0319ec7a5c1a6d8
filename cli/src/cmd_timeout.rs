//! `curfew timeout set | show`: a user's own token lifetime.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;
use curfew_enforce::api::protocol::{Choice, Request, TimeoutSetArgs, UserArgs};
use curfew_policy::duration::format as fmt_duration;

use crate::context::Context;
use crate::output::{self, outln, Format};
use crate::service::Service;
use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum TimeoutCommand {
    /// Choose a token lifetime within timeout.min..timeout.max, or `default`
    /// to go back to the policy's default.
    Set {
        /// The user [default: you]; another user's needs an administrator.
        #[arg(long)]
        user: Option<String>,
        /// A duration ("15m", "3600") or `default`.
        duration: String,
    },
    /// Show a user's token lifetime and its bounds.
    Show {
        /// The user [default: you]; another user's needs an administrator.
        #[arg(long)]
        user: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(ctx: &Context, cmd: TimeoutCommand) -> Result<Outcome> {
    let service = Service::open(ctx)?;
    match cmd {
        TimeoutCommand::Set { user, duration } => {
            let timeout = if duration == "default" {
                Choice::Default
            } else {
                match curfew_policy::duration::parse(&duration) {
                    Ok(d) => Choice::Seconds(d.as_secs()),
                    Err(e) => bail!("{e}"),
                }
            };
            let v = service.call(ctx, &Request::TimeoutSet(TimeoutSetArgs { user, timeout }))?;
            let user = v["user"].as_str().unwrap_or_default();
            let secs = |k: &str| fmt_duration(Duration::from_secs(v[k].as_u64().unwrap_or(0)));
            match timeout {
                Choice::Default => outln!(
                    "{}: token lifetime back to the default, {}",
                    output::escape(user),
                    secs("default")
                ),
                Choice::Seconds(_) => outln!(
                    "{}: token lifetime set to {}",
                    output::escape(user),
                    secs("timeout")
                ),
            }
        }
        TimeoutCommand::Show { user, format } => {
            let v = service.call(ctx, &Request::TimeoutShow(UserArgs { user }))?;
            match format {
                Format::Json => output::json(&v)?,
                Format::Text => {
                    let secs =
                        |k: &str| fmt_duration(Duration::from_secs(v[k].as_u64().unwrap_or(0)));
                    outln!(
                        "{}: token lifetime {} ({}); allowed {}..{}, default {}",
                        output::escape(v["user"].as_str().unwrap_or_default()),
                        secs("timeout"),
                        output::escape(&output::source_text(&v["source"])),
                        secs("min"),
                        secs("max"),
                        secs("default")
                    )
                }
            }
        }
    }
    Ok(Outcome::Success)
}
