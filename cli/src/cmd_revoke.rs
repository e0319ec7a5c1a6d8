//! `curfew revoke`, `curfew revocations list`, `curfew unrevoke`.

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use curfew_enforce::api::protocol::{
    ListArgs, Request, RevokeArgs as RevokeCall, UnrevokeArgs as Unrevoke, ME,
};
use curfew_policy::{Revocation, Target};

use crate::context::Context;
use crate::output::{self, outln, Format};
use crate::service::Service;
use crate::Outcome;

#[derive(Args, Debug)]
pub struct RevokeArgs {
    #[command(subcommand)]
    target: RevokeTarget,
}

#[derive(Args, Debug)]
struct RevokeOptions {
    /// Why, for the audit trail.
    #[arg(long)]
    reason: Option<String>,
    /// Lift the lock by itself after a duration ("2h") or at a time
    /// (RFC 3339). Sessions it ended stay ended.
    #[arg(long, value_name = "DURATION|RFC3339")]
    expires: Option<String>,
    /// The revocation may end the session this command runs in (a
    /// session target that is it, or a user, client or `all` it belongs
    /// to); without this flag that is refused.
    #[arg(long)]
    include_current: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Subcommand, Debug)]
enum RevokeTarget {
    /// Lock a user out: end every session, refuse every login and token.
    /// `me`: sign out everywhere (every session of yours ends, this one
    /// included; no lock: you can log in again).
    User {
        /// The user name, or `me`.
        name: String,
        #[command(flatten)]
        opts: RevokeOptions,
    },
    /// End one session.
    Session {
        /// The session id.
        id: String,
        #[command(flatten)]
        opts: RevokeOptions,
    },
    /// Refuse every token of an OIDC client; a PAM service counts as a
    /// client too (`revoke client sshd` ends and refuses SSH sessions).
    Client {
        /// The client id.
        id: String,
        #[command(flatten)]
        opts: RevokeOptions,
    },
    /// End every session that started before now (no lock: new logins work).
    All {
        #[command(flatten)]
        opts: RevokeOptions,
    },
}

#[derive(Subcommand, Debug)]
pub enum RevocationsCommand {
    /// List every revocation.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Args, Debug)]
pub struct UnrevokeArgs {
    /// The revocation id (see `curfew revocations list`).
    id: String,
}

fn parse_expires(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        let t = t.with_timezone(&Utc);
        if t <= now {
            bail!("--expires {text}: that time has passed");
        }
        return Ok(t);
    }
    let d = curfew_policy::duration::parse(text)
        .map_err(|e| anyhow::anyhow!("--expires: {e}; or give an RFC 3339 time"))?;
    if d.is_zero() {
        bail!(
            "--expires 0: a lock that lifts at once locks nothing; omit --expires for a lock \
             that lasts until `curfew unrevoke`, or use `curfew sessions terminate` to end \
             sessions without a lock"
        );
    }
    Ok(now + chrono::Duration::from_std(d).context("--expires is too far away")?)
}

pub fn revoke(ctx: &Context, a: RevokeArgs) -> Result<Outcome> {
    let (target, opts) = match a.target {
        RevokeTarget::User { name, opts } => (Target::User(canonical_user(name)), opts),
        RevokeTarget::Session { id, opts } => (Target::Session(id), opts),
        RevokeTarget::Client { id, opts } => (Target::Client(id), opts),
        RevokeTarget::All { opts } => (Target::All, opts),
    };
    if target.value().is_empty() && target != Target::All {
        bail!("the {} to revoke may not be empty", target.kind());
    }
    if target == Target::All && opts.expires.is_some() {
        bail!(
            "--expires: `revoke all` is no lock (it ends the sessions that started before now \
             and new logins work), so there is nothing to lift later"
        );
    }
    let now = ctx.now();
    let service = Service::open(ctx)?;
    if let Target::User(name) = &target {
        warn_if_unknown(ctx, &service, name);
    }
    let v = service.call(
        ctx,
        &Request::Revoke(RevokeCall {
            target,
            reason: opts.reason,
            expires_at: opts
                .expires
                .as_deref()
                .map(|e| parse_expires(e, now))
                .transpose()?,
            include_current: opts.include_current,
        }),
    )?;
    let revocation: Revocation = serde_json::from_value(v["revocation"].clone())?;
    let sign_out = v["sign_out"].as_bool().unwrap_or(false);
    match opts.format {
        Format::Json => output::json(&revocation)?,
        Format::Text if sign_out => outln!(
            "signed out everywhere: every session of {} that started until now ends; new logins work (revocation {})",
            output::escape(revocation.target.value()),
            revocation.id
        ),
        Format::Text => {
            outln!(
                "revoked {} (revocation {}){}",
                output::escape(&revocation.target.to_string()),
                revocation.id,
                revocation
                    .expires_at
                    .map(|e| format!("; the lock lifts at {}", output::time(e)))
                    .unwrap_or_default()
            );
        }
    }
    Ok(Outcome::Success)
}

/// The account a user name resolves to on this host (issue 12): logins
/// are recorded and revocations matched under the canonical name, so a
/// revocation of an alias spelling (`Alice`, an entry sharing the uid)
/// must name the account, or it would lock nobody. A name with no account
/// here (an OIDC subject, a user of another host of the fleet) stays as
/// given; so does `me`.
fn canonical_user(name: String) -> String {
    if name == ME {
        return name;
    }
    match curfew_policy::host::account(&name) {
        Ok(account) if account.name != name => {
            eprintln!(
                "curfew: note: {} is the account {}; revoking {}",
                output::escape(&name),
                output::escape(&account.name),
                output::escape(&account.name)
            );
            account.name
        }
        _ => name,
    }
}

/// A typo would otherwise lock nobody, silently. An OIDC subject or a user
/// of another host may have no account here, so this warns and goes on
/// rather than refusing.
fn warn_if_unknown(ctx: &Context, service: &Service, name: &str) {
    if name == ME || matches!(nix::unistd::User::from_name(name), Ok(Some(_))) {
        return;
    }
    let known = service
        .call(
            ctx,
            &Request::SessionsList(ListArgs {
                user: Some(name.to_owned()),
                all: true,
            }),
        )
        .map(|v| v["sessions"].as_array().is_some_and(|s| !s.is_empty()))
        // An ordinary user may not look; the revoke itself says why.
        .unwrap_or(true);
    if !known {
        eprintln!(
            "curfew: warning: no account on this host and no session in the store is \
             named {}; revoking anyway (check the spelling)",
            output::escape(name)
        );
    }
}

pub fn list(ctx: &Context, cmd: RevocationsCommand) -> Result<Outcome> {
    let RevocationsCommand::List { format } = cmd;
    let now = ctx.now();
    let service = Service::open(ctx)?;
    let v = service.call(ctx, &Request::RevocationsList)?;
    let revs: Vec<Revocation> = serde_json::from_value(v["revocations"].clone())?;
    if let Some(more) = v["more"].as_u64().filter(|m| *m > 0) {
        eprintln!(
            "curfew: note: {more} older revocations are not shown (at most {} are listed, the newest)",
            curfew_enforce::api::calls::REVOCATIONS_LIST_LIMIT
        );
    }
    match format {
        Format::Json => output::json(&revs)?,
        Format::Text => {
            let rows: Vec<Vec<String>> = revs
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.target.to_string(),
                        output::time(r.not_before),
                        r.expires_at
                            .map(output::time)
                            .unwrap_or_else(|| "never".into()),
                        match (&r.target, r.in_force(now)) {
                            (Target::All, _) => "ends older sessions".into(),
                            (_, true) => "locked".into(),
                            (_, false) => "lifted".into(),
                        },
                        r.actor.clone(),
                        output::opt(&r.reason),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID",
                    "TARGET",
                    "NOT BEFORE",
                    "EXPIRES",
                    "STATE",
                    "ACTOR",
                    "REASON",
                ],
                &rows,
            );
        }
    }
    Ok(Outcome::Success)
}

pub fn unrevoke(ctx: &Context, a: UnrevokeArgs) -> Result<Outcome> {
    let service = Service::open(ctx)?;
    let v = service.call(ctx, &Request::Unrevoke(Unrevoke { id: a.id }))?;
    let r: Revocation = serde_json::from_value(v["revocation"].clone())?;
    if v["already_lifted"].as_bool() == Some(true) {
        outln!(
            "revocation {} ({}) had already lifted at {}; the sessions it ended stay ended",
            r.id,
            output::escape(&r.target.to_string()),
            r.expires_at.map(output::time).unwrap_or_default()
        );
    } else {
        outln!(
            "lifted revocation {} ({}): new logins and sessions are no longer refused; \
             the sessions it ended stay ended",
            r.id,
            output::escape(&r.target.to_string())
        );
    }
    Ok(Outcome::Success)
}
