//! `curfew policy check | explain | schema`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use curfew_enforce::api::calls::{explain_admission, ExplainStore};
use curfew_enforce::api::protocol::{ExplainArgs as Explain, Request, ME};
use curfew_policy::{host, Diagnostic, Policy, PolicyError};
use serde_json::json;

use crate::context::{self, Context};
use crate::output::{self, out, outln, Format};
use crate::service::{CallError, Service};
use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file: exit 0 when valid, 1 when not, with every
    /// problem as FILE:LINE:COL: PATH: message. Where the file lives is
    /// checked too (owner, mode, directory, symbolic links): for the policy
    /// in force (no FILE) a place the PAM module, the enforcer and the hook
    /// would refuse is a problem; for a FILE named here (a draft) it is a
    /// warning.
    Check {
        /// The file [default: --policy, then /etc/curfew/policy.yaml]; a
        /// file named here is checked as a draft.
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
    /// The user [default: you]; another user needs an administrator when
    /// the answer comes from the curfew daemon.
    #[arg(long)]
    user: Option<String>,
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
    let draft = file.is_some();
    let Some(path) = file.or_else(|| ctx.policy_path()) else {
        bail!(
            "no policy file given and {} does not exist (the built-in policy is in force)",
            curfew_policy::policy::DEFAULT_POLICY_PATH
        );
    };
    let name = path.display().to_string();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    match Policy::load(&path) {
        Ok(_) => {}
        Err(PolicyError::Invalid { diagnostics: d }) => diagnostics = d,
        Err(e) => other.push(e.to_string()),
    }
    if other.is_empty() {
        // The PAM module, the enforcer and the hook refuse a policy in a
        // place others can change; say so here rather than at the next
        // login. A draft may sit anywhere until it is installed.
        if let Err(e) = curfew_policy::fsperm::check(&path) {
            let text = format!("{e} (the PAM module, the enforcer and the hook would refuse it)");
            if draft {
                warnings.push(text);
            } else {
                other.push(text);
            }
        }
    }
    let valid = diagnostics.is_empty() && other.is_empty();
    match format {
        Format::Json => output::json(&json!({
            "file": name,
            "valid": valid,
            "errors": diagnostics,
            "file_errors": other,
            "warnings": warnings,
        }))?,
        Format::Text => {
            for d in &diagnostics {
                outln!("{}", output::escape(&d.to_string()));
            }
            for o in &other {
                outln!("{}", output::escape(o));
            }
            for w in &warnings {
                outln!("warning: {}", output::escape(w));
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
    // Root (as the PAM module runs) and what-ifs with --group answer here,
    // with the store if it opens and the failure table's verdict if not;
    // others ask the daemon, which can read the store for them.
    let v = if a.groups.is_empty() && !nix::unistd::geteuid().is_root() {
        let service = Service::open(ctx)?;
        let request = Request::PolicyExplain(Explain {
            user: a.user.clone(),
            service: a.service.clone(),
            client: a.client.clone(),
            host: a.host.clone(),
        });
        match service.call(ctx, &request) {
            Ok(v) => v,
            Err(CallError::Unreachable(why)) => {
                eprintln!("curfew: note: {why}; answering from the policy file alone");
                local(ctx, &a)?
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        // Groups given: a what-if from the policy file alone.
        local(ctx, &a)?
    };
    match a.format {
        Format::Json => output::json(&v)?,
        Format::Text => {
            let subject = &v["subject"];
            let groups: Vec<&str> = subject["groups"]
                .as_array()
                .map(|g| g.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            outln!(
                "policy:  {}",
                output::escape(v["policy"].as_str().unwrap_or_default())
            );
            outln!(
                "subject: user {}, groups [{}], {}{}",
                output::escape(subject["user"].as_str().unwrap_or_default()),
                output::escape(&groups.join(", ")),
                match (subject["service"].as_str(), subject["client"].as_str()) {
                    (Some(s), _) => format!("service {}", output::escape(s)),
                    (_, Some(c)) => format!("client {}", output::escape(c)),
                    _ => "any service".into(),
                },
                subject["host"]
                    .as_str()
                    .map(|h| format!(", host {}", output::escape(h)))
                    .unwrap_or_default()
            );
            let account = &v["account"];
            if account["alias"].as_bool() == Some(true) {
                outln!(
                    "account: {} is the account {} (uid {}): rules, revocations and \
                     sessions use {}, as the PAM module does",
                    output::escape(account["login"].as_str().unwrap_or_default()),
                    output::escape(account["user"].as_str().unwrap_or_default()),
                    account["uid"],
                    output::escape(account["user"].as_str().unwrap_or_default()),
                );
            } else if account["uid"].is_null() {
                outln!(
                    "account: none on this host (an OIDC subject; the PAM module refuses \
                     a login by an unknown user)"
                );
            } else {
                outln!(
                    "account: {} (uid {})",
                    output::escape(account["user"].as_str().unwrap_or_default()),
                    account["uid"]
                );
            }
            outln!(
                "rule:    {}",
                v["rule"]
                    .as_str()
                    .map(|r| format!("\"{}\"", output::escape(r)))
                    .unwrap_or_else(|| "none matched (top-level values apply)".into())
            );
            outln!();
            let mut table: Vec<Vec<String>> = Vec::new();
            for key in [
                "timeout.default",
                "timeout.min",
                "timeout.max",
                "token_lifetime",
                "max_duration",
                "inactivity",
                "warn_before",
                "remember_me.max_duration",
                "remember_me.inactivity",
            ] {
                let row = &v["values"][key];
                table.push(vec![
                    key.to_owned(),
                    row["value"].as_str().unwrap_or_default().to_owned(),
                    output::source_text(&row["source"]),
                ]);
            }
            let activity = &v["activity"];
            let text = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_owned();
            table.push(vec![
                "activity".into(),
                text(&activity["text"]),
                output::source_text(&activity["source"]),
            ]);
            let banner = v["banner"]["value"].as_str().unwrap_or_default();
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
                output::source_text(&v["banner"]["source"]),
            ]);
            output::table(&["SETTING", "VALUE", "FROM"], &table);
            let value = |k: &str| text(&v["values"][k]["value"]);
            outln!();
            outln!(
                "A PAM session is idle after {} without activity (warned {} ahead):",
                value("inactivity"),
                value("warn_before")
            );
            outln!("  with a terminal:    {}", text(&activity["terminal"]));
            outln!("  without a terminal: {}", text(&activity["no_terminal"]));
            outln!(
                "An OIDC session is idle after {} without a token refresh ({} for a remembered login).",
                value("inactivity"),
                value("remember_me.inactivity")
            );
            outln!();
            let store = &v["store"];
            if store["consulted"].as_bool() == Some(true) {
                outln!(
                    "store:   consulted ({} revocation(s) for this user or service; own token \
                     lifetime {})",
                    store["revocations"],
                    if store["preference"].is_null() {
                        "not chosen"
                    } else {
                        "chosen"
                    }
                );
            } else {
                outln!(
                    "store:   NOT consulted, so revocations and the user's own token lifetime \
                     are unknown: {} met {}",
                    output::escape(store["met_by"].as_str().unwrap_or("the caller")),
                    output::escape(store["error"].as_str().unwrap_or_default())
                );
            }
            outln!(
                "a new login now: {}",
                output::escape(v["admission_text"].as_str().unwrap_or_default())
            );
        }
    }
    Ok(Outcome::Success)
}

/// The explanation from this process: the policy file, the user resolved
/// as the PAM module resolves a login (`curfew_policy::host::resolve`),
/// and the store if this process can open it; if not, the admission
/// kernel's failure table says what its error means for a login.
fn local(ctx: &Context, a: &ExplainArgs) -> Result<serde_json::Value> {
    let policy = ctx.policy()?;
    let login = match a.user.as_deref() {
        None | Some(ME) => context::current_user(),
        Some(u) => u.to_owned(),
    };
    let resolved = host::resolve(&login);
    let groups = if a.groups.is_empty() {
        resolved.groups.clone().map_err(|e| {
            anyhow::anyhow!(
                "cannot find the groups of {login:?}: {e}; a login would be refused \
                 (PAM_SYSTEM_ERR); pass the groups with --group to see the policy"
            )
        })?
    } else {
        a.groups.clone()
    };
    let host = a.host.clone().or_else(context::hostname);
    let opened = ctx.open_store(&policy);
    let store: ExplainStore<'_> = match &opened {
        Ok(s) => Ok(s.as_ref()),
        Err(e) if nix::unistd::geteuid().is_root() => {
            Err((e.clone(), "this process (root, as the PAM module)"))
        }
        Err(e) => Err((
            e.clone(),
            "this process (not root: the PAM module, which runs as root, may open it)",
        )),
    };
    let args = Explain {
        user: Some(login.clone()),
        service: a.service.clone(),
        client: a.client.clone(),
        host: host.clone(),
    };
    explain_admission(
        &policy,
        &resolved,
        &groups,
        &args,
        host.as_deref(),
        store,
        ctx.now(),
    )
    .map_err(|e| anyhow::anyhow!("{}", e.message))
}
