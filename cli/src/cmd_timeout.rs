//! `curfew timeout set | show`: a user's own token lifetime.

use anyhow::{bail, Result};
use clap::Subcommand;
use curfew_policy::duration::format as fmt_duration;
use curfew_policy::{AuditEvent, Subject};

use crate::context::{self, Context};
use crate::output::{self, outln, Format};
use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum TimeoutCommand {
    /// Choose a token lifetime within timeout.min..timeout.max, or `default`
    /// to go back to the policy's default.
    Set {
        /// The user [default: you].
        #[arg(long)]
        user: Option<String>,
        /// A duration ("15m", "3600") or `default`.
        duration: String,
    },
    /// Show a user's token lifetime and its bounds.
    Show {
        /// The user [default: you].
        #[arg(long)]
        user: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(ctx: &Context, cmd: TimeoutCommand) -> Result<Outcome> {
    let policy = ctx.policy()?;
    let store = ctx.store(&policy)?;
    let (user, set) = match &cmd {
        TimeoutCommand::Set { user, duration } => (user.clone(), Some(duration.clone())),
        TimeoutCommand::Show { user, .. } => (user.clone(), None),
    };
    let user = user.unwrap_or_else(context::current_user);
    let groups = context::system_groups(&user)?;
    let host = context::hostname();
    let eff = policy.effective(&Subject {
        user: &user,
        groups: &groups,
        host: host.as_deref(),
        ..Default::default()
    });
    if let Some(text) = set {
        if text == "default" {
            store.set_timeout_preference(&user, None)?;
            ctx.audit(
                &policy,
                ctx.now(),
                &AuditEvent::TimeoutSet {
                    actor: context::actor(),
                    user: user.clone(),
                    timeout: None,
                },
            );
            outln!(
                "{}: token lifetime back to the default, {}",
                output::escape(&user),
                fmt_duration(eff.timeout_default.value)
            );
            return Ok(Outcome::Success);
        }
        let d = match curfew_policy::duration::parse(&text) {
            Ok(d) => d,
            Err(e) => bail!("{e}"),
        };
        if let Err(e) = eff.check_preference(d) {
            bail!("{}: {e}", output::escape(&user));
        }
        store.set_timeout_preference(&user, Some(d))?;
        ctx.audit(
            &policy,
            ctx.now(),
            &AuditEvent::TimeoutSet {
                actor: context::actor(),
                user: user.clone(),
                timeout: Some(d.as_secs()),
            },
        );
        outln!(
            "{}: token lifetime set to {}",
            output::escape(&user),
            fmt_duration(d)
        );
        return Ok(Outcome::Success);
    }
    let pref = store.timeout_preference(&user)?;
    let lifetime = eff.token_lifetime(pref);
    let format = match cmd {
        TimeoutCommand::Show { format, .. } => format,
        TimeoutCommand::Set { .. } => Format::Text,
    };
    match format {
        Format::Json => output::json(&serde_json::json!({
            "user": user,
            "timeout": lifetime.value.as_secs(),
            "source": lifetime.source,
            "chosen": pref.map(|p| p.as_secs()),
            "default": eff.timeout_default.value.as_secs(),
            "min": eff.timeout_min.value.as_secs(),
            "max": eff.timeout_max.value.as_secs(),
        }))?,
        Format::Text => outln!(
            "{}: token lifetime {} ({}); allowed {}..{}, default {}",
            output::escape(&user),
            fmt_duration(lifetime.value),
            output::escape(&lifetime.source.to_string()),
            fmt_duration(eff.timeout_min.value),
            fmt_duration(eff.timeout_max.value),
            fmt_duration(eff.timeout_default.value)
        ),
    }
    Ok(Outcome::Success)
}
