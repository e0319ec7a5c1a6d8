//! `curfew sessions list | terminate`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use curfew_enforce::api::protocol::{ListArgs, Request, TerminateArgs as Terminate};
use curfew_policy::Status;

use crate::context::Context;
use crate::output::{self, outln, Format};
use crate::service::Service;
use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List live sessions (with --all, ended ones too). An ordinary user
    /// sees their own.
    List {
        /// Only this user's sessions (`me`: yours).
        #[arg(long)]
        user: Option<String>,
        /// Include ended sessions.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Ask for sessions to be ended: by id, or every session of a user
    /// ("terminate other sessions" with --except). The enforcer of the
    /// session's host ends PAM sessions; OIDC tokens are refused at once.
    Terminate(TerminateArgs),
}

#[derive(Args, Debug)]
pub struct TerminateArgs {
    /// Session ids.
    #[arg(required_unless_present = "user", conflicts_with = "user")]
    ids: Vec<String>,
    /// Every live session of this user (`me`: yours; the session this
    /// command runs in is kept unless --include-current).
    #[arg(long)]
    user: Option<String>,
    /// With --user: keep this session.
    #[arg(long, requires = "user")]
    except: Vec<String>,
    /// Also end the session this command runs in (refused otherwise, for
    /// root too).
    #[arg(long)]
    include_current: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub fn run(ctx: &Context, cmd: SessionsCommand) -> Result<Outcome> {
    match cmd {
        SessionsCommand::List { user, all, format } => list(ctx, user, all, format),
        SessionsCommand::Terminate(a) => terminate(ctx, a),
    }
}

/// The STATE cell: the session's state at `now`, from the decision.
fn state(s: &Status) -> String {
    match s {
        Status::Live { .. } => "live".into(),
        Status::Idle { since } => format!("idle since {}", output::time(*since)),
        Status::MaxDuration { since } => {
            format!("past max duration since {}", output::time(*since))
        }
        Status::Revoked { target, .. } => format!("revoked ({target})"),
        Status::Terminating => "terminating".into(),
        Status::Ended {
            reason: Some(r), ..
        } => format!("ended ({r})"),
        Status::Ended { reason: None, .. } => "ended".into(),
        Status::Unknown { detail } => format!("unknown ({detail})"),
    }
}

fn list(ctx: &Context, user: Option<String>, all: bool, format: Format) -> Result<Outcome> {
    let service = Service::open(ctx)?;
    let listing = service.sessions_list(ctx, ListArgs { user, all })?;
    let current = listing.current.as_deref();
    match format {
        Format::Json => {
            output::json(&listing.sessions)?;
            unreadable_note(&listing.unreadable);
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = listing
                .sessions
                .iter()
                .map(|l| {
                    let s = &l.session;
                    vec![
                        s.id.clone(),
                        s.user.clone(),
                        s.kind.to_string(),
                        s.service
                            .clone()
                            .or_else(|| s.client_id.clone())
                            .unwrap_or_else(|| "-".into()),
                        output::opt(&s.host),
                        output::opt(&s.tty),
                        output::opt(&s.rhost),
                        output::time(s.started_at),
                        format!(
                            "{} ({})",
                            output::time(l.last_active.at),
                            l.last_active.by.as_str()
                        ),
                        if current == Some(s.id.as_str()) {
                            format!("{} (current)", state(&l.state))
                        } else {
                            state(&l.state)
                        },
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID",
                    "USER",
                    "KIND",
                    "SERVICE",
                    "HOST",
                    "TTY",
                    "RHOST",
                    "STARTED",
                    "LAST ACTIVE",
                    "STATE",
                ],
                &rows,
            );
            unreadable_note(&listing.unreadable);
        }
    }
    Ok(Outcome::Success)
}

/// Says on stderr how many records the store holds but cannot read, by
/// id with why (issue 12): the listing above holds every other session.
fn unreadable_note(unreadable: &[curfew_policy::UnreadableRecord]) {
    if unreadable.is_empty() {
        return;
    }
    eprintln!(
        "{} session record(s) could not be read and are not listed:",
        unreadable.len()
    );
    for u in unreadable {
        eprintln!("  {}: {}", output::escape(&u.id), output::escape(&u.detail));
    }
}

fn terminate(ctx: &Context, a: TerminateArgs) -> Result<Outcome> {
    let service = Service::open(ctx)?;
    let mut args = Terminate {
        ids: a.ids,
        user: a.user,
        except: a.except,
        include_current: a.include_current,
        dry_run: true,
    };
    if !a.yes {
        let preview = service.call(ctx, &Request::SessionsTerminate(args.clone()))?;
        let targets = preview["sessions"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            keeping(&preview);
            outln!("no live sessions to terminate");
            return Ok(Outcome::Success);
        }
        if !confirm(&targets)? {
            eprintln!("curfew: nothing terminated");
            return Ok(Outcome::Failure);
        }
    }
    args.dry_run = false;
    let done = service.call(ctx, &Request::SessionsTerminate(args))?;
    keeping(&done);
    let ended = done["terminated"].as_array().cloned().unwrap_or_default();
    if ended.is_empty() {
        outln!("no live sessions to terminate");
        return Ok(Outcome::Success);
    }
    for s in &ended {
        outln!(
            "terminating {} ({}{})",
            output::escape(s["id"].as_str().unwrap_or_default()),
            output::escape(s["user"].as_str().unwrap_or_default()),
            s["tty"]
                .as_str()
                .map(|t| format!(" on {}", output::escape(t)))
                .unwrap_or_default()
        );
    }
    let n = ended.len();
    eprintln!(
        "curfew: {n} session{} marked for termination; the enforcer of each host ends them",
        if n == 1 { "" } else { "s" }
    );
    Ok(Outcome::Success)
}

/// Says which session was kept because the command runs in it.
fn keeping(answer: &serde_json::Value) {
    if let Some(id) = answer["kept_current"].as_str() {
        eprintln!(
            "curfew: keeping {} (the session this command runs in; --include-current ends it too)",
            output::escape(id)
        );
    }
}

fn confirm(targets: &[serde_json::Value]) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to terminate without confirmation: standard input is not a terminal; pass --yes");
    }
    let mut err = std::io::stderr();
    for s in targets {
        writeln!(
            err,
            "  {}  {}  {}  started {}",
            output::escape(s["id"].as_str().unwrap_or_default()),
            output::escape(s["user"].as_str().unwrap_or_default()),
            output::escape(
                s["service"]
                    .as_str()
                    .or_else(|| s["client_id"].as_str())
                    .unwrap_or_default()
            ),
            output::escape(s["started_at"].as_str().unwrap_or_default())
        )?;
    }
    write!(
        err,
        "Terminate {} session{}? [y/N] ",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" }
    )?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
