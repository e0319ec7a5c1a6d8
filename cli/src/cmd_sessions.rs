//! `curfew sessions list | terminate`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use curfew_policy::{AuditEvent, Session, SessionFilter};

use crate::context::{self, Context};
use crate::output::{self, outln, Format};
use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List live sessions (with --all, ended ones too).
    List {
        /// Only this user's sessions.
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
    /// Every live session of this user.
    #[arg(long)]
    user: Option<String>,
    /// With --user: keep this session.
    #[arg(long, requires = "user")]
    except: Vec<String>,
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

fn state(s: &Session) -> String {
    match (&s.ended_at, &s.end_reason, &s.terminate_requested_at) {
        (Some(_), Some(r), _) => format!("ended ({r})"),
        (Some(_), None, _) => "ended".into(),
        (None, _, Some(_)) => "terminating".into(),
        (None, _, None) => "live".into(),
    }
}

fn list(ctx: &Context, user: Option<String>, all: bool, format: Format) -> Result<Outcome> {
    let policy = ctx.policy()?;
    let store = ctx.store(&policy)?;
    let sessions = store.list_sessions(&SessionFilter {
        user,
        include_ended: all,
        ..Default::default()
    })?;
    match format {
        Format::Json => output::json(&sessions)?,
        Format::Text => {
            let rows: Vec<Vec<String>> = sessions
                .iter()
                .map(|s| {
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
                        output::time(s.last_seen),
                        state(s),
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
                    "LAST SEEN",
                    "STATE",
                ],
                &rows,
            );
        }
    }
    Ok(Outcome::Success)
}

/// The audit session id of the caller's own login, if the kernel keeps one.
fn own_audit_session() -> Option<u32> {
    curfew_policy::host::audit_session_id(None)
}

fn terminate(ctx: &Context, a: TerminateArgs) -> Result<Outcome> {
    let policy = ctx.policy()?;
    let store = ctx.store(&policy)?;
    let mut targets: Vec<Session> = Vec::new();
    if let Some(user) = &a.user {
        let mine = own_audit_session();
        let here = context::hostname();
        for s in store.list_sessions(&SessionFilter {
            user: Some(user.clone()),
            ..Default::default()
        })? {
            if a.except.contains(&s.id) {
                continue;
            }
            // Never end the session this command is typed in.
            if mine.is_some() && s.audit_session_id == mine && s.host == here {
                eprintln!(
                    "curfew: keeping {} (the session this command runs in)",
                    s.id
                );
                continue;
            }
            targets.push(s);
        }
        for e in &a.except {
            if store.session(e)?.is_none() {
                bail!("--except {}: no such session", output::escape(e));
            }
        }
    } else {
        for id in &a.ids {
            match store.session(id)? {
                Some(s) if s.is_live() => targets.push(s),
                Some(_) => bail!("session {} has already ended", output::escape(id)),
                None => bail!("no session {}", output::escape(id)),
            }
        }
    }
    if targets.is_empty() {
        outln!("no live sessions to terminate");
        return Ok(Outcome::Success);
    }
    if !a.yes && !confirm(&targets)? {
        eprintln!("curfew: nothing terminated");
        return Ok(Outcome::Failure);
    }
    let now = ctx.now();
    let actor = context::actor();
    let mut n = 0;
    for s in &targets {
        if store.request_termination(&s.id, now)? {
            n += 1;
            ctx.audit(
                &policy,
                now,
                &AuditEvent::Terminate {
                    actor: actor.clone(),
                    user: s.user.clone(),
                    session: s.id.clone(),
                    service: s.service.clone(),
                    client: s.client_id.clone(),
                    session_host: s.host.clone(),
                },
            );
            outln!(
                "terminating {} ({}{})",
                s.id,
                output::escape(&s.user),
                s.tty
                    .as_deref()
                    .map(|t| format!(" on {}", output::escape(t)))
                    .unwrap_or_default()
            );
        }
    }
    eprintln!(
        "curfew: {n} session{} marked for termination; the enforcer of each host ends them",
        if n == 1 { "" } else { "s" }
    );
    Ok(Outcome::Success)
}

fn confirm(targets: &[Session]) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to terminate without confirmation: standard input is not a terminal; pass --yes");
    }
    let mut err = std::io::stderr();
    for s in targets {
        writeln!(
            err,
            "  {}  {}  {}  started {}",
            s.id,
            output::escape(&s.user),
            output::escape(
                &s.service
                    .clone()
                    .or_else(|| s.client_id.clone())
                    .unwrap_or_default()
            ),
            output::time(s.started_at)
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
