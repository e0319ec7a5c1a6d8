//! `curfew policy check | explain | schema`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use curfew_policy::duration::format as fmt_duration;
use curfew_policy::{ActivitySet, Diagnostic, Policy, PolicyError, Sourced, Subject};
use serde_json::json;

use crate::context::{self, Context};
use crate::output::{self, out, outln, Format};
use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file: exit 0 when valid, 1 when not, with every
    /// problem as FILE:LINE:COL: PATH: message.
    Check {
        /// The file [default: --policy, then /etc/curfew/policy.yaml].
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show the effective values for a subject and the rule each came from.
    Explain(ExplainArgs),
    /// Print the JSON Schema of the policy file.
    Schema,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The user.
    #[arg(long)]
    user: String,
    /// A group of the user (repeatable) [default: the user's groups on this system].
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A PAM service, e.g. sshd.
    #[arg(long, conflicts_with = "client")]
    service: Option<String>,
    /// An OIDC client id.
    #[arg(long)]
    client: Option<String>,
    /// The host [default: this host].
    #[arg(long)]
    host: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(ctx: &Context, cmd: PolicyCommand) -> Result<Outcome> {
    match cmd {
        PolicyCommand::Check { file, format } => check(ctx, file, format),
        PolicyCommand::Explain(a) => explain(ctx, a),
        PolicyCommand::Schema => {
            out!("{}", curfew_policy::schema::policy_schema());
            Ok(Outcome::Success)
        }
    }
}

fn check(ctx: &Context, file: Option<PathBuf>, format: Format) -> Result<Outcome> {
    let Some(path) = file.or_else(|| ctx.policy_path()) else {
        bail!(
            "no policy file given and {} does not exist (the built-in policy is in force)",
            curfew_policy::policy::DEFAULT_POLICY_PATH
        );
    };
    let name = path.display().to_string();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    match Policy::load(&path) {
        Ok(_) => {}
        Err(PolicyError::Invalid { diagnostics: d }) => diagnostics = d,
        Err(e) => other.push(e.to_string()),
    }
    if other.is_empty() {
        // The PAM module and the enforcer refuse a policy others can change;
        // say so here rather than at the next login.
        if let Err(e) = curfew_policy::fsperm::check(&path) {
            other.push(format!(
                "{e} (the PAM module and the enforcer would refuse it)"
            ));
        }
    }
    let valid = diagnostics.is_empty() && other.is_empty();
    match format {
        Format::Json => output::json(&json!({
            "file": name,
            "valid": valid,
            "errors": diagnostics,
            "file_errors": other,
        }))?,
        Format::Text => {
            for d in &diagnostics {
                outln!("{}", output::escape(&d.to_string()));
            }
            for o in &other {
                outln!("{}", output::escape(o));
            }
            if valid {
                outln!("{}: valid", output::escape(&name));
            } else {
                let n = diagnostics.len() + other.len();
                eprintln!(
                    "curfew: {}: {n} problem{}",
                    output::escape(&name),
                    if n == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(if valid {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

fn explain(ctx: &Context, a: ExplainArgs) -> Result<Outcome> {
    let policy = ctx.policy()?;
    let groups = if a.groups.is_empty() {
        context::system_groups(&a.user)?
    } else {
        a.groups.clone()
    };
    let host = a.host.clone().or_else(context::hostname);
    let subject = Subject {
        user: &a.user,
        groups: &groups,
        service: a.service.as_deref(),
        client: a.client.as_deref(),
        host: host.as_deref(),
    };
    let eff = policy.effective(&subject);
    // The value applied to remembered logins (brought into
    // inactivity..=remember_me.max_duration), from where it was set.
    let remember_idle = Sourced {
        value: eff.idle_limit(true),
        source: eff.remember_me_inactivity.source,
    };
    let rows: [(&str, Sourced<'_, Duration>); 8] = [
        ("timeout.default", eff.timeout_default),
        ("timeout.min", eff.timeout_min),
        ("timeout.max", eff.timeout_max),
        ("max_duration", eff.max_duration),
        ("inactivity", eff.inactivity),
        ("warn_before", eff.warn_before),
        ("remember_me.max_duration", eff.remember_me_max_duration),
        ("remember_me.inactivity", remember_idle),
    ];
    let activity = eff.activity.value;
    match a.format {
        Format::Json => {
            let values: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        json!({
                            "value": fmt_duration(v.value),
                            "seconds": v.value.as_secs(),
                            "source": v.source,
                        }),
                    )
                })
                .collect();
            output::json(&json!({
                "policy": policy.origin,
                "subject": {
                    "user": a.user,
                    "groups": groups,
                    "service": a.service,
                    "client": a.client,
                    "host": host,
                },
                "rule": eff.rule.map(|r| &r.name),
                "values": values,
                "activity": {
                    "value": activity,
                    "source": eff.activity.source,
                    "terminal": activity_with_terminal(activity),
                    "no_terminal": activity_without_terminal(activity),
                },
                "banner": { "value": eff.banner.value, "source": eff.banner.source },
            }))?;
        }
        Format::Text => {
            outln!("policy:  {}", output::escape(&policy.origin));
            outln!(
                "subject: user {}, groups [{}], {}{}",
                output::escape(&a.user),
                output::escape(&groups.join(", ")),
                match (&a.service, &a.client) {
                    (Some(s), _) => format!("service {}", output::escape(s)),
                    (_, Some(c)) => format!("client {}", output::escape(c)),
                    _ => "any service".into(),
                },
                host.as_deref()
                    .map(|h| format!(", host {}", output::escape(h)))
                    .unwrap_or_default()
            );
            outln!(
                "rule:    {}",
                eff.rule
                    .map(|r| format!("\"{}\"", output::escape(&r.name)))
                    .unwrap_or_else(|| "none matched (top-level values apply)".into())
            );
            outln!();
            let mut table: Vec<Vec<String>> = rows
                .iter()
                .map(|(k, v)| vec![(*k).to_owned(), fmt_duration(v.value), v.source.to_string()])
                .collect();
            table.push(vec![
                "activity".into(),
                activity.to_string(),
                eff.activity.source.to_string(),
            ]);
            let banner = eff.banner.value;
            table.push(vec![
                "banner".into(),
                if banner.is_empty() {
                    "(none)".into()
                } else {
                    let first = banner.lines().next().unwrap_or("");
                    let more = if banner.trim_end().lines().count() > 1 {
                        " ..."
                    } else {
                        ""
                    };
                    format!("{first:?}{more}")
                },
                eff.banner.source.to_string(),
            ]);
            output::table(&["SETTING", "VALUE", "FROM"], &table);
            outln!();
            outln!(
                "A PAM session is idle after {} without activity (warned {} ahead):",
                fmt_duration(eff.inactivity.value),
                fmt_duration(eff.warn_before.value)
            );
            outln!("  with a terminal:    {}", activity_with_terminal(activity));
            outln!(
                "  without a terminal: {}",
                activity_without_terminal(activity)
            );
            outln!(
                "An OIDC session is idle after {} without a token refresh ({} for a remembered login).",
                fmt_duration(eff.inactivity.value),
                fmt_duration(eff.idle_limit(true))
            );
        }
    }
    Ok(Outcome::Success)
}

/// What keeps a session with a terminal active, in words.
fn activity_with_terminal(a: ActivitySet) -> String {
    let mut parts = Vec::new();
    if a.input {
        parts.push("a key or line read from the terminal (input)");
    }
    if a.output {
        parts.push("output written to the terminal, e.g. by a running build (output)");
    }
    if parts.is_empty() {
        "nothing but the login: neither input nor output is listed".into()
    } else {
        parts.join("; ")
    }
}

/// What keeps a session without a terminal active, in words.
fn activity_without_terminal(a: ActivitySet) -> String {
    if a.traffic {
        "data moved by its processes: scp, sftp, rsync, `ssh host cmd`, `ssh -N` forwards (traffic)"
            .into()
    } else {
        "nothing but the login: traffic is not listed".into()
    }
}
