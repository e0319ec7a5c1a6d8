//! What each call does, for one authenticated caller: authorization first
//! (nothing to another user unless the caller is an administrator), then
//! the store. No I/O here but the store and the group lookup it is handed,
//! and `now` is an argument, so every rule is unit-tested with a memory
//! store. The CLI runs the same handlers when it can open the store itself
//! (as root), so the rules (the current session, sign-out without a lock)
//! are the same on both paths.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use curfew_policy::admission::{
    admit_effective, store_failure_verdict, Admission, Caller as Invoker, StoreAnswer, Which, Who,
};
use curfew_policy::duration::format as fmt_duration;
use curfew_policy::host::Resolved;
use curfew_policy::status::{self, LastActive, Status};
use curfew_policy::store::Lift;
use curfew_policy::{
    ActivitySet, ApiCaller, AuditEvent, Policy, Revocation, Session, SessionFilter, SessionKind,
    Sourced, Store, StoreError, Subject, Target,
};
use curfew_policy::{GroupsLookup, RevocationSet, SessionListing, UnreadableRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::protocol::{
    ApiError, Choice, Code, ExplainArgs, ListArgs, Request, RevokeArgs, TerminateArgs,
    TimeoutSetArgs, ME,
};

/// Who is calling, as the kernel and the user database say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The effective uid at connect time (SO_PEERCRED).
    pub uid: u32,
    /// The account name of `uid`: the user the caller acts as.
    pub user: String,
    /// The calling process, when known.
    pub pid: Option<u32>,
    /// The login uid of the process (`/proc/PID/loginuid`): the person
    /// behind it even after su or sudo.
    pub login_uid: Option<u32>,
    /// The account name of `login_uid`.
    pub login_user: Option<String>,
    /// The kernel audit session of the process: which login it is typed in.
    pub audit_session: Option<u32>,
    /// Root, or named by the policy's `admin` section.
    pub admin: bool,
}

impl Caller {
    /// The name the audit trail records: the person (login user) if known,
    /// else the effective user.
    pub fn actor(&self) -> String {
        match &self.login_user {
            Some(l) if *l != self.user => format!("{l} (as {})", self.user),
            _ => self.user.clone(),
        }
    }

    /// The person behind the call, as a termination records who asked: for
    /// an administrator the login user if known (the one who typed `sudo`),
    /// so that the session's owner ending it from another session (even
    /// through `sudo`) is told so, not "an administrator"; for anyone else
    /// the effective user, the only account whose sessions they may end
    /// (after `su` from alice to bob, bob's session ended is bob's own
    /// doing: recording alice would tell bob "an administrator (alice)").
    pub fn person(&self) -> &str {
        if self.admin {
            self.login_user.as_deref().unwrap_or(&self.user)
        } else {
            &self.user
        }
    }

    /// The caller for the audit trail.
    pub fn audit(&self) -> ApiCaller {
        ApiCaller {
            uid: self.uid,
            user: self.user.clone(),
            pid: self.pid,
            login_uid: self.login_uid,
            login_user: self.login_user.clone(),
            audit_session: self.audit_session,
            admin: Some(self.admin),
        }
    }

    /// The caller as JSON, for `whoami`.
    pub fn describe(&self) -> Value {
        json!({
            "user": self.user,
            "uid": self.uid,
            "pid": self.pid,
            "login_user": self.login_user,
            "login_uid": self.login_uid,
            "audit_session": self.audit_session,
            "admin": self.admin,
        })
    }
}

/// What a handler works with.
pub struct Env<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The policy in force.
    pub policy: &'a Policy,
    /// This host's name (PAM sessions are recorded under it).
    pub host: Option<&'a str>,
    /// A user name resolved as the PAM module resolves it
    /// ([`curfew_policy::host::resolve`]): the canonical account and its
    /// groups, which are empty for a name no local account has (an OIDC
    /// subject) and an error when the user or group database fails (never
    /// guessed as "no groups").
    pub resolve: &'a dyn Fn(&str) -> Resolved,
    /// The time of the call.
    pub now: DateTime<Utc>,
}

/// A handler's outcome.
#[derive(Debug)]
pub struct Handled {
    /// The answer.
    pub result: Result<Value, ApiError>,
    /// What changed, one audit event each (the actor is the caller).
    pub notes: Vec<AuditEvent>,
    /// Whether the enforcer should run a pass now (something may have to end).
    pub wake: bool,
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::new(Code::Unavailable, format!("{e}"))
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        Code::Forbidden,
        format!("{what}: only your own sessions and settings; ask an administrator"),
    )
}

/// Resolves a user argument: `None` and `me` are the caller. A name other
/// than the caller's needs an administrator.
fn whose(caller: &Caller, user: Option<&str>, what: &str) -> Result<String, ApiError> {
    match user {
        None | Some(ME) => Ok(caller.user.clone()),
        Some(u) if u == caller.user || caller.admin => Ok(u.to_owned()),
        Some(u) => Err(forbidden(&format!("{what} of user {u:?} refused"))),
    }
}

/// Resolves a user argument to its account as the PAM module would
/// ([`Env::resolve`]): `None` and `me` are the caller; an alias spelling of
/// the caller's own account is the caller; anyone else needs an
/// administrator.
fn whose_account(
    env: &Env<'_>,
    caller: &Caller,
    user: Option<&str>,
    what: &str,
) -> Result<Resolved, ApiError> {
    let resolved = (env.resolve)(match user {
        None | Some(ME) => &caller.user,
        Some(u) => u,
    });
    if resolved.user == caller.user || caller.admin {
        Ok(resolved)
    } else {
        Err(forbidden(&format!(
            "{what} of user {:?} refused",
            resolved.login
        )))
    }
}

fn admin_only(caller: &Caller, call: &str) -> Result<(), ApiError> {
    if caller.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::Forbidden,
            format!("{call} is for administrators (root or the policy's admin section); ask an administrator"),
        ))
    }
}

/// The live PAM session on this host that the caller is typing in: the one
/// whose audit session id is the caller's and whose user is the caller's
/// account. An administrator's is also the session of the account they
/// logged in as (`sudo curfew ...` from their own login: root acts, but
/// the session it would end is the administrator's). After `su` to an
/// ordinary user, the session of the account su started from is not that
/// user's current one: they cannot act on it anyway.
pub fn current_session(env: &Env<'_>, caller: &Caller) -> Result<Option<Session>, ApiError> {
    let Some(audit) = caller.audit_session else {
        return Ok(None);
    };
    let sessions = env
        .store
        .list_sessions(&SessionFilter {
            kind: Some(SessionKind::Pam),
            host: env.host.map(str::to_owned),
            ..Default::default()
        })
        .map_err(store_err)?;
    Ok(sessions.into_iter().find(|s| {
        s.audit_session_id == Some(audit)
            && (s.user == caller.user
                || (caller.admin && caller.login_user.as_deref() == Some(s.user.as_str())))
    }))
}

/// The most revocations `revocations.list` answers with (the newest); the
/// answer's `more` counts the rest. About 300 bytes each in JSON: some 3 MB.
pub const REVOCATIONS_LIST_LIMIT: usize = 10_000;

/// Runs one call.
pub fn handle(env: &Env<'_>, caller: &Caller, request: &Request) -> Handled {
    let mut notes = Vec::new();
    let mut wake = false;
    let result = match request {
        Request::Whoami => whoami(env, caller),
        Request::SessionsList(a) => list(env, caller, a),
        Request::SessionsTerminate(a) => terminate(env, caller, a, &mut notes, &mut wake),
        Request::Revoke(a) => revoke(env, caller, a, &mut notes, &mut wake),
        Request::RevocationsList => admin_only(caller, "revocations.list").and_then(|_| {
            let mut revs = env.store.list_revocations().map_err(store_err)?;
            // The newest first when there are too many: an answer stays
            // well under the client's 16 MiB cap however large the store.
            let more = revs.len().saturating_sub(REVOCATIONS_LIST_LIMIT);
            if more > 0 {
                revs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
                revs.truncate(REVOCATIONS_LIST_LIMIT);
            }
            Ok(json!({ "revocations": revs, "more": more }))
        }),
        // Unrevoke lifts the lock from now on; the sessions the revocation
        // ended (every matching session that existed when it was made)
        // stay ended: the record is kept with its `not_before`.
        Request::Unrevoke(a) => admin_only(caller, "unrevoke").and_then(|_| {
            match env
                .store
                .lift_revocation(&a.id, env.now)
                .map_err(store_err)?
            {
                Some(Lift::Lifted(r)) => {
                    notes.push(AuditEvent::unrevoke(&r, &caller.actor()));
                    Ok(json!({ "revocation": r, "already_lifted": false }))
                }
                // Already lifted (an earlier unrevoke, or its expiry):
                // nothing changes, and nothing is audited.
                Some(Lift::AlreadyLifted(r)) => {
                    Ok(json!({ "revocation": r, "already_lifted": true }))
                }
                None => Err(ApiError::new(
                    Code::NotFound,
                    format!("no revocation {:?}", a.id),
                )),
            }
        }),
        Request::TimeoutShow(a) => {
            whose_account(env, caller, a.user.as_deref(), "the token lifetime")
                .and_then(|r| timeout_show(env, &r))
        }
        Request::TimeoutSet(a) => timeout_set(env, caller, a, &mut notes),
        Request::PolicyExplain(a) => explain(env, caller, a),
        Request::Wake => admin_only(caller, "wake").map(|_| {
            wake = true;
            json!({})
        }),
    };
    if result.is_err() {
        notes.clear();
        wake = false;
    }
    Handled {
        result,
        notes,
        wake,
    }
}

fn whoami(env: &Env<'_>, caller: &Caller) -> Result<Value, ApiError> {
    let current = current_session(env, caller)?;
    let mut v = caller.describe();
    v["current_session"] = json!(current.map(|s| s.id));
    Ok(v)
}

/// One session of `sessions.list`: the record's fields and, in `state`,
/// its state at the call's `now` from the admission kernel
/// ([`curfew_policy::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The record.
    #[serde(flatten)]
    pub session: Session,
    /// Its state at the call's `now`.
    pub state: Status,
    /// Its last activity and what it was (LAST ACTIVE).
    pub last_active: LastActive,
}

/// The answer of `sessions.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The sessions, oldest first.
    pub sessions: Vec<Listed>,
    /// The caller's own session on this host, if it is one of them.
    pub current: Option<String>,
    /// Records passing the same filter that the store holds but cannot
    /// read (a value out of range, a missing field), by id with why: left
    /// out of `sessions`, never the cause of the whole listing failing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<UnreadableRecord>,
}

fn list(env: &Env<'_>, caller: &Caller, a: &ListArgs) -> Result<Value, ApiError> {
    let listing = sessions_list(env, caller, a)?;
    serde_json::to_value(listing).map_err(|e| {
        ApiError::new(
            Code::Unavailable,
            format!("cannot encode the sessions: {e}"),
        )
    })
}

/// `sessions.list`, typed: the sessions the caller may see (an
/// administrator: everyone's, or `a.user`'s; anyone else: their own), each
/// with its state at `env.now`. The state is the admission kernel's
/// decision for the session's user (with the groups the system gives that
/// name: an OIDC subject without a local account has none), service or
/// client, and host, against the whole revocation list.
pub fn sessions_list(env: &Env<'_>, caller: &Caller, a: &ListArgs) -> Result<Listing, ApiError> {
    let user = match (&a.user, caller.admin) {
        (None, true) => None,
        (u, _) => Some(whose(caller, u.as_deref(), "listing the sessions")?),
    };
    let SessionListing {
        sessions,
        unreadable,
    } = env
        .store
        .list_sessions_reporting(&SessionFilter {
            user,
            include_ended: a.all,
            ..Default::default()
        })
        .map_err(store_err)?;
    let revocations: RevocationSet = if sessions.iter().any(Session::is_live) {
        env.store
            .list_revocations()
            .map_err(store_err)?
            .into_iter()
            .collect()
    } else {
        RevocationSet::new()
    };
    let mut groups: HashMap<String, Result<Vec<String>, String>> = HashMap::new();
    let sessions = sessions
        .into_iter()
        .map(|session| {
            let state = if session.is_live() {
                let g = groups.entry(session.user.clone()).or_insert_with(|| {
                    (env.resolve)(&session.user)
                        .groups
                        .map_err(|e| e.to_string())
                });
                let lookup = match g {
                    Ok(g) => GroupsLookup::Known(g),
                    Err(e) => GroupsLookup::Failed(e),
                };
                status::status(env.policy, &session, lookup, &revocations, env.now)
            } else {
                status::status(
                    env.policy,
                    &session,
                    GroupsLookup::Known(&[]),
                    &revocations,
                    env.now,
                )
            };
            Listed {
                last_active: status::last_active(&session),
                session,
                state,
            }
        })
        .collect();
    let current = current_session(env, caller)?.map(|s| s.id);
    Ok(Listing {
        sessions,
        current,
        unreadable,
    })
}

/// A session the caller may act on: theirs, or anyone's for an administrator.
/// Others' sessions and unknown ids get the same answer.
fn own_session(env: &Env<'_>, caller: &Caller, id: &str) -> Result<Session, ApiError> {
    match env.store.session(id).map_err(store_err)? {
        Some(s) if caller.admin || s.user == caller.user => Ok(s),
        Some(_) => Err(forbidden(&format!(
            "session {id} is not one of your sessions"
        ))),
        None if caller.admin => Err(ApiError::new(Code::NotFound, format!("no session {id}"))),
        None => Err(forbidden(&format!(
            "session {id} is not one of your sessions"
        ))),
    }
}

fn current_refusal(id: &str) -> ApiError {
    ApiError::new(
        Code::CurrentSession,
        format!("session {id} is the session you are using; to end it too, pass --include-current"),
    )
}

fn summary(s: &Session) -> Value {
    json!({
        "id": s.id,
        "user": s.user,
        "kind": s.kind,
        "service": s.service,
        "client_id": s.client_id,
        "host": s.host,
        "tty": s.tty,
        "started_at": s.started_at,
    })
}

fn terminate(
    env: &Env<'_>,
    caller: &Caller,
    a: &TerminateArgs,
    notes: &mut Vec<AuditEvent>,
    wake: &mut bool,
) -> Result<Value, ApiError> {
    let current = current_session(env, caller)?.map(|s| s.id);
    let mut targets: Vec<Session> = Vec::new();
    let mut kept_current = None;
    if let Some(user) = &a.user {
        // Sessions are recorded under the canonical account name.
        let user = whose_account(env, caller, Some(user), "ending the sessions")?.user;
        for e in &a.except {
            own_session(env, caller, e).map_err(|err| match err.code {
                Code::NotFound => {
                    ApiError::new(Code::NotFound, format!("except {e}: no such session"))
                }
                _ => err,
            })?;
        }
        let live = env
            .store
            .list_sessions(&SessionFilter {
                user: Some(user),
                ..Default::default()
            })
            .map_err(store_err)?;
        for s in live {
            if a.except.contains(&s.id) {
                continue;
            }
            if current.as_deref() == Some(s.id.as_str()) && !a.include_current {
                kept_current = Some(s.id.clone());
                continue;
            }
            targets.push(s);
        }
    } else {
        // Every id is checked before anything changes.
        for id in &a.ids {
            let s = own_session(env, caller, id)?;
            if !s.is_live() {
                return Err(ApiError::new(
                    Code::Ended,
                    format!("session {id} has already ended"),
                ));
            }
            if current.as_deref() == Some(id.as_str()) && !a.include_current {
                return Err(current_refusal(id));
            }
            if !targets.iter().any(|t| t.id == s.id) {
                targets.push(s);
            }
        }
    }
    if a.dry_run {
        return Ok(json!({
            "sessions": targets.iter().map(summary).collect::<Vec<_>>(),
            "kept_current": kept_current,
        }));
    }
    let mut done = Vec::new();
    for s in &targets {
        if env
            .store
            .request_termination(&s.id, env.now, Some(caller.person()))
            .map_err(store_err)?
        {
            notes.push(AuditEvent::Terminate {
                actor: caller.actor(),
                user: s.user.clone(),
                session: s.id.clone(),
                service: s.service.clone(),
                client: s.client_id.clone(),
                session_host: s.host.clone(),
            });
            done.push(summary(s));
        }
    }
    *wake = !done.is_empty();
    Ok(json!({ "terminated": done, "kept_current": kept_current }))
}

fn revoke(
    env: &Env<'_>,
    caller: &Caller,
    a: &RevokeArgs,
    notes: &mut Vec<AuditEvent>,
    wake: &mut bool,
) -> Result<Value, ApiError> {
    let now = env.now;
    // "Sign me out everywhere": the caller's own sessions end, and nothing
    // is locked (the lock lifts the moment it is made). `me` always means
    // that; an ordinary user naming themselves gets the same.
    let (target, sign_out) = match &a.target {
        Target::User(u) if u == ME => (Target::User(caller.user.clone()), true),
        // Revocations are matched under the canonical account name (as
        // the PAM module and the enforcer resolve a login), so an alias
        // spelling names its account.
        Target::User(u) => match (env.resolve)(u).user {
            c if c == caller.user && !caller.admin => (Target::User(c), true),
            c if caller.admin => (Target::User(c), false),
            _ => {
                return Err(forbidden(&format!("revoking user {u:?} refused")));
            }
        },
        Target::Session(id) => {
            let s = own_session(env, caller, id)?;
            // Nothing to end: no row (a row per call would let anyone
            // grow the store without bound).
            if !s.is_live() {
                return Err(ApiError::new(
                    Code::Ended,
                    format!("session {id} has already ended"),
                ));
            }
            if !a.include_current && current_session(env, caller)?.is_some_and(|c| c.id == s.id) {
                return Err(current_refusal(id));
            }
            (Target::Session(id.clone()), false)
        }
        t @ (Target::Client(_) | Target::All) => {
            admin_only(caller, &format!("revoke {}", t.kind()))?;
            (t.clone(), false)
        }
    };
    // An administrator's lock of a user, client or everyone may end the
    // session the administrator is using: that needs include_current, as
    // ending it by id does (only "sign out everywhere" goes without).
    if !sign_out && !a.include_current && !matches!(target, Target::Session(_)) {
        if let Some(c) = current_session(env, caller)? {
            let hit = match &target {
                Target::User(u) => c.user == *u,
                Target::Client(id) => {
                    c.client_id.as_deref() == Some(id.as_str())
                        || c.service.as_deref() == Some(id.as_str())
                }
                Target::All => true,
                Target::Session(_) => false,
            };
            if hit {
                return Err(ApiError::new(
                    Code::CurrentSession,
                    format!(
                        "revoking {target} would end session {} too, the session you are using; \
                         to end it too, pass --include-current",
                        c.id
                    ),
                ));
            }
        }
    }
    if sign_out && a.expires_at.is_some() {
        return Err(ApiError::new(
            Code::BadRequest,
            "signing out everywhere locks nothing, so it takes no expiry",
        ));
    }
    if let Some(e) = a.expires_at {
        if e <= now {
            return Err(ApiError::new(
                Code::OutOfBounds,
                format!("the expiry {} has passed", e.to_rfc3339()),
            ));
        }
    }
    if !caller.admin && matches!(target, Target::Session(_)) && a.expires_at.is_some() {
        return Err(ApiError::new(
            Code::BadRequest,
            "ending one of your sessions takes no expiry",
        ));
    }
    let revocation = Revocation {
        id: curfew_policy::session::new_id().map_err(|e| store_err(StoreError::from(e)))?,
        target,
        not_before: now,
        expires_at: if sign_out { Some(now) } else { a.expires_at },
        reason: a.reason.clone(),
        actor: caller.actor(),
        created_at: now,
    };
    env.store.add_revocation(&revocation).map_err(store_err)?;
    if sign_out {
        // An earlier sign-out of this user (a row lifted the moment it was
        // made) ends only sessions this one ends too: it is dropped, so
        // signing out again and again keeps one row per user, not one per
        // call. Best effort: a row left behind is harmless.
        if let Ok(all) = env.store.list_revocations() {
            for old in all.iter().filter(|r| {
                r.id != revocation.id
                    && r.target == revocation.target
                    && r.expires_at == Some(r.not_before)
                    && r.not_before <= revocation.not_before
            }) {
                let _ = env.store.remove_revocation(&old.id);
            }
        }
    }
    notes.push(AuditEvent::revoke(&revocation));
    *wake = true;
    Ok(json!({ "revocation": revocation, "sign_out": sign_out }))
}

fn subject_groups(r: &Resolved) -> Result<&[String], ApiError> {
    r.groups.as_deref().map_err(|e| {
        ApiError::new(
            Code::Unavailable,
            format!(
                "cannot find the groups of {:?} ({e}); a login would be refused \
                 (the admission kernel never guesses \"no groups\"); ask an administrator",
                r.login
            ),
        )
    })
}

/// The token lifetime of the account `r` and its bounds (the shape of
/// `curfew timeout show --format json`; `user` is the canonical account,
/// `login` the name as given).
fn timeout_show(env: &Env<'_>, r: &Resolved) -> Result<Value, ApiError> {
    let groups = subject_groups(r)?;
    let user = r.user.as_str();
    let eff = env.policy.effective(&Subject {
        user,
        groups,
        host: env.host,
        ..Default::default()
    });
    let pref = env.store.timeout_preference(user).map_err(store_err)?;
    let lifetime = eff.token_lifetime(pref);
    Ok(json!({
        "user": user,
        "login": r.login,
        "timeout": lifetime.value.as_secs(),
        "source": lifetime.source,
        "chosen": pref.map(|p| p.as_secs()),
        "default": eff.timeout_default.value.as_secs(),
        "min": eff.timeout_min.value.as_secs(),
        "max": eff.timeout_max.value.as_secs(),
    }))
}

fn timeout_set(
    env: &Env<'_>,
    caller: &Caller,
    a: &TimeoutSetArgs,
    notes: &mut Vec<AuditEvent>,
) -> Result<Value, ApiError> {
    let resolved = whose_account(env, caller, a.user.as_deref(), "setting the token lifetime")?;
    let groups = subject_groups(&resolved)?;
    let user = resolved.user.clone();
    let eff = env.policy.effective(&Subject {
        user: &user,
        groups,
        host: env.host,
        ..Default::default()
    });
    let chosen = match a.timeout {
        Choice::Default => None,
        Choice::Seconds(s) => {
            let d = Duration::from_secs(s);
            eff.check_preference(d)
                .map_err(|e| ApiError::new(Code::OutOfBounds, format!("{user}: {e}")))?;
            Some(d)
        }
    };
    env.store
        .set_timeout_preference(&user, chosen)
        .map_err(store_err)?;
    notes.push(AuditEvent::TimeoutSet {
        actor: caller.actor(),
        user: user.clone(),
        timeout: chosen.map(|d| d.as_secs()),
    });
    timeout_show(env, &resolved)
}

/// The effective values for a subject (the shape of `curfew policy explain
/// --format json`), with the user's own token lifetime.
pub fn explain_value(
    policy: &Policy,
    subject: &Subject<'_>,
    preference: Option<Duration>,
) -> Value {
    let eff = policy.effective(subject);
    let lifetime = eff.token_lifetime(preference);
    // The value applied to remembered logins (brought into
    // inactivity..=remember_me.max_duration), from where it was set.
    let remember_idle = Sourced {
        value: eff.idle_limit(true),
        source: eff.remember_me_inactivity.source,
    };
    let activity = eff.activity.value;
    let rows: [(&str, Sourced<'_, Duration>); 9] = [
        ("timeout.default", eff.timeout_default),
        ("timeout.min", eff.timeout_min),
        ("timeout.max", eff.timeout_max),
        ("token_lifetime", lifetime),
        ("max_duration", eff.max_duration),
        ("inactivity", eff.inactivity),
        ("warn_before", eff.warn_before),
        ("remember_me.max_duration", eff.remember_me_max_duration),
        ("remember_me.inactivity", remember_idle),
    ];
    let values: serde_json::Map<String, Value> = rows
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
    json!({
        "policy": policy.origin,
        "subject": {
            "user": subject.user,
            "groups": subject.groups,
            "service": subject.service,
            "client": subject.client,
            "host": subject.host,
        },
        "rule": eff.rule.map(|r| &r.name),
        "values": values,
        "activity": {
            "value": activity,
            "text": activity.to_string(),
            "source": eff.activity.source,
            "terminal": activity_with_terminal(activity),
            "no_terminal": activity_without_terminal(activity),
        },
        "banner": { "value": eff.banner.value, "source": eff.banner.source },
    })
}

/// What keeps a session with a terminal active, in words.
pub fn activity_with_terminal(a: ActivitySet) -> String {
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
pub fn activity_without_terminal(a: ActivitySet) -> String {
    if a.traffic {
        "data moved by its processes: scp, sftp, rsync, `ssh host cmd`, `ssh -N` forwards (traffic)"
            .into()
    } else {
        "nothing but the login: traffic is not listed".into()
    }
}

fn explain(env: &Env<'_>, caller: &Caller, a: &ExplainArgs) -> Result<Value, ApiError> {
    let resolved = whose_account(env, caller, a.user.as_deref(), "explaining the policy")?;
    let groups = subject_groups(&resolved)?.to_vec();
    explain_admission(
        env.policy,
        &resolved,
        &groups,
        a,
        a.host.as_deref().or(env.host),
        Ok(env.store),
        env.now,
    )
}

/// Where the store's answer for `curfew policy explain` comes from: the
/// store, or why it could not be consulted.
pub type ExplainStore<'a> = Result<&'a dyn Store, (StoreError, &'a str)>;

/// `curfew policy explain` (the shape of its `--format json`): the
/// effective values for the account `resolved` (resolved as the PAM module
/// resolves a login) with `groups`, and what the admission kernel
/// ([`curfew_policy::admission::admit_effective`]) answers for a new login
/// by it now: the store's revocations and the user's own token lifetime
/// when `store` is one, else the failure table's verdict on its error
/// (`store` is then the error and who met it, e.g. `"this process (not
/// root)"`). The caller is taken to be an ordinary service (sshd, login),
/// not a setuid program.
pub fn explain_admission(
    policy: &Policy,
    resolved: &Resolved,
    groups: &[String],
    a: &ExplainArgs,
    host: Option<&str>,
    store: ExplainStore<'_>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let who = Who {
        user: &resolved.user,
        groups: GroupsLookup::Known(groups),
        service: a.service.as_deref(),
        client: a.client.as_deref(),
        host,
    };
    let subject = who.subject(groups);
    let eff = policy.effective(&subject);
    let (read, met_by) = match store {
        Ok(s) => (
            s.revocations_for(&who.revocation_keys(None))
                .and_then(|r| Ok((r, s.timeout_preference(who.user)?))),
            None,
        ),
        Err((e, by)) => (Err(e), Some(by)),
    };
    let answer = match &read {
        Ok((revocations, preference)) => StoreAnswer::Read {
            revocations,
            preference: *preference,
        },
        Err(e) => StoreAnswer::Failed(e),
    };
    let invoker = Invoker::default();
    let admission = admit_effective(
        &eff,
        &who,
        &Which::NewLogin,
        answer,
        policy.store.on_unavailable,
        invoker,
        now,
    );
    let preference = read.as_ref().ok().and_then(|(_, p)| *p);
    let mut v = explain_value(policy, &subject, preference);
    v["account"] = json!({
        "login": resolved.login,
        "user": resolved.user,
        "uid": resolved.uid,
        "alias": resolved.is_alias(),
    });
    v["store"] = match &read {
        Ok((revocations, _)) => json!({
            "consulted": true,
            "revocations": revocations.len(),
            "preference": preference.map(|p| p.as_secs()),
        }),
        Err(e) => json!({
            "consulted": false,
            "error": e.to_string(),
            "met_by": met_by,
            "on_unavailable": policy.store.on_unavailable,
            "verdict": store_failure_verdict(e, policy.store.on_unavailable, invoker),
        }),
    };
    v["now"] = json!(now);
    v["admission"] = serde_json::to_value(&admission).unwrap_or(Value::Null);
    v["admission_text"] = json!(admission_text(&admission));
    Ok(v)
}

/// What the admission kernel's answer means for a new login, in words.
pub fn admission_text(a: &Admission) -> String {
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    match a {
        Admission::Allow(allow) => format!(
            "allowed: idle after {}, ends by {} at the latest",
            when(allow.idle_deadline),
            when(allow.absolute_deadline)
        ),
        Admission::Deny(d) => format!("refused: {d}"),
        Admission::Unusable(u) => format!("refused (PAM_SYSTEM_ERR): {u}"),
        Admission::Degraded(d) => format!(
            "let through WITHOUT checking revocations and not recorded \
             (store.on_unavailable: allow): {}; idle after {}, ends by {}",
            d.detail,
            when(d.allow.idle_deadline),
            when(d.allow.absolute_deadline)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use curfew_policy::store::MemoryStore;
    use curfew_policy::EndReason;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn caller(user: &str, audit: Option<u32>, admin: bool) -> Caller {
        Caller {
            uid: 1000,
            user: user.into(),
            pid: Some(42),
            login_uid: Some(1000),
            login_user: Some(user.into()),
            audit_session: audit,
            admin,
        }
    }

    /// Found by review: after `su` from alice to bob (login user alice),
    /// an ordinary user's end of bob's session is bob's own doing; only an
    /// administrator is recorded as the login user behind the call.
    #[test]
    fn who_asked_is_the_account_for_an_ordinary_user_and_the_person_for_an_admin() {
        let su = Caller {
            user: "bob".into(),
            ..caller("alice", None, false)
        };
        assert_eq!(su.person(), "bob");
        let sudo = Caller {
            user: "root".into(),
            ..caller("alice", None, true)
        };
        assert_eq!(sudo.person(), "alice");
    }

    fn login(store: &MemoryStore, user: &str, audit: u32) -> String {
        let mut s = Session::start(SessionKind::Pam, user, t(0), Duration::from_secs(300)).unwrap();
        s.host = Some("here".into());
        s.audit_session_id = Some(audit);
        store.create_session(&s).unwrap();
        s.id
    }

    /// The scripted host: `ali` is an alias entry of the account `alice`;
    /// every other name is its own account without groups.
    fn scripted(login: &str) -> Resolved {
        let user = if login == "ali" { "alice" } else { login };
        Resolved {
            login: login.into(),
            user: user.into(),
            uid: Some(1000),
            groups: Ok(Vec::new()),
        }
    }

    struct World {
        store: MemoryStore,
        policy: Policy,
    }

    impl World {
        fn new() -> World {
            World {
                store: MemoryStore::new(),
                policy: Policy::parse(
                    "version: 1\nsession: { timeout: { min: 1m, max: 1h } }\nadmin: { users: [carol] }\n",
                    "p.yaml",
                )
                .unwrap(),
            }
        }
        fn call(&self, c: &Caller, r: Request) -> Handled {
            let env = Env {
                store: &self.store,
                policy: &self.policy,
                host: Some("here"),
                resolve: &scripted,
                now: t(10),
            };
            handle(&env, c, &r)
        }
        fn live(&self, id: &str) -> bool {
            self.store
                .session(id)
                .unwrap()
                .unwrap()
                .terminate_requested_at
                .is_none()
        }
    }

    fn code(h: &Handled) -> Code {
        h.result.as_ref().unwrap_err().code
    }

    #[test]
    fn a_user_sees_and_ends_only_their_own_sessions_and_never_the_current_one() {
        let w = World::new();
        let a1 = login(&w.store, "alice", 1);
        let a2 = login(&w.store, "alice", 2);
        let b1 = login(&w.store, "bob", 3);
        let alice = caller("alice", Some(1), false);

        let h = w.call(&alice, Request::SessionsList(ListArgs::default()));
        let v = h.result.unwrap();
        let mut ids: Vec<&str> = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        // Both started at the same moment: their order is not the point.
        ids.sort_unstable();
        let mut alices = [a1.as_str(), a2.as_str()];
        alices.sort_unstable();
        assert_eq!(ids, alices);
        assert_eq!(v["current"], a1.as_str());
        assert!(v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"]["state"] == "live"));

        let h = w.call(
            &alice,
            Request::SessionsList(ListArgs {
                user: Some("bob".into()),
                all: false,
            }),
        );
        assert_eq!(code(&h), Code::Forbidden);
        assert!(h
            .result
            .unwrap_err()
            .message
            .contains("ask an administrator"));

        // Bob's session, by id: refused, nothing changes, nothing audited.
        let h = w.call(
            &alice,
            Request::SessionsTerminate(TerminateArgs {
                ids: vec![a2.clone(), b1.clone()],
                ..Default::default()
            }),
        );
        assert_eq!(code(&h), Code::Forbidden);
        assert!(h.notes.is_empty() && !h.wake);
        assert!(w.live(&a2) && w.live(&b1));
        // An unknown id reads the same as another user's.
        let h = w.call(
            &alice,
            Request::SessionsTerminate(TerminateArgs {
                ids: vec!["nope".into()],
                ..Default::default()
            }),
        );
        assert_eq!(code(&h), Code::Forbidden);

        // The current session by id needs include_current.
        let h = w.call(
            &alice,
            Request::SessionsTerminate(TerminateArgs {
                ids: vec![a1.clone()],
                ..Default::default()
            }),
        );
        assert_eq!(code(&h), Code::CurrentSession);
        assert!(w.live(&a1));

        // "End my other sessions": a2 ends, a1 (current) is kept.
        let h = w.call(
            &alice,
            Request::SessionsTerminate(TerminateArgs {
                user: Some("me".into()),
                ..Default::default()
            }),
        );
        let v = h.result.unwrap();
        assert_eq!(v["kept_current"], a1.as_str());
        assert_eq!(v["terminated"][0]["id"], a2.as_str());
        assert_eq!(h.notes.len(), 1);
        assert!(h.wake);
        assert!(w.live(&a1) && !w.live(&a2) && w.live(&b1));

        // Another user's sessions by name: refused.
        let h = w.call(
            &alice,
            Request::SessionsTerminate(TerminateArgs {
                user: Some("bob".into()),
                ..Default::default()
            }),
        );
        assert_eq!(code(&h), Code::Forbidden);
        assert!(w.live(&b1));
    }

    #[test]
    fn an_administrator_acts_on_others_and_a_user_may_not() {
        let w = World::new();
        let b1 = login(&w.store, "bob", 3);
        let alice = caller("alice", None, false);
        let carol = caller("carol", None, true);
        for r in [
            Request::RevocationsList,
            Request::Wake,
            Request::Unrevoke(super::super::protocol::UnrevokeArgs { id: "x".into() }),
            revoke_req(Target::User("bob".into()), false),
            revoke_req(Target::All, false),
            revoke_req(Target::Session(b1.clone()), false),
            Request::TimeoutSet(TimeoutSetArgs {
                user: Some("bob".into()),
                timeout: Choice::Seconds(120),
            }),
            Request::TimeoutShow(super::super::protocol::UserArgs {
                user: Some("bob".into()),
            }),
            Request::PolicyExplain(ExplainArgs {
                user: Some("bob".into()),
                ..Default::default()
            }),
        ] {
            let h = w.call(&alice, r.clone());
            assert_eq!(code(&h), Code::Forbidden, "{r:?}");
            assert!(h.notes.is_empty() && !h.wake);
        }
        assert!(w.store.list_revocations().unwrap().is_empty());
        assert_eq!(w.store.timeout_preference("bob").unwrap(), None);

        let h = w.call(
            &carol,
            Request::SessionsTerminate(TerminateArgs {
                ids: vec![b1.clone()],
                ..Default::default()
            }),
        );
        assert!(h.result.is_ok(), "{:?}", h.result);
        assert!(!w.live(&b1));
        let h = w.call(
            &carol,
            Request::Revoke(RevokeArgs {
                target: Target::User("bob".into()),
                reason: Some("offboarding".into()),
                expires_at: None,
                include_current: false,
            }),
        );
        let v = h.result.unwrap();
        assert_eq!(v["sign_out"], false);
        assert_eq!(v["revocation"]["expires_at"], Value::Null, "a lock");
        assert_eq!(v["revocation"]["actor"], "carol");
    }

    fn revoke_req(target: Target, include_current: bool) -> Request {
        Request::Revoke(RevokeArgs {
            target,
            reason: None,
            expires_at: None,
            include_current,
        })
    }

    #[test]
    fn an_administrator_ends_their_own_session_only_with_include_current() {
        let w = World::new();
        let mut c =
            Session::start(SessionKind::Pam, "carol", t(0), Duration::from_secs(300)).unwrap();
        c.host = Some("here".into());
        c.audit_session_id = Some(5);
        c.service = Some("sshd".into());
        w.store.create_session(&c).unwrap();
        let c1 = c.id;
        let carol = caller("carol", Some(5), true);
        // Root through sudo from carol's login: the session is carol's.
        let sudo = Caller {
            uid: 0,
            user: "root".into(),
            ..caller("carol", Some(5), true)
        };
        for who in [&carol, &sudo] {
            for target in [
                Target::User("carol".into()),
                Target::All,
                Target::Client("sshd".into()),
            ] {
                let h = w.call(who, revoke_req(target.clone(), false));
                assert_eq!(code(&h), Code::CurrentSession, "{who:?} {target}");
                assert!(h.result.unwrap_err().message.contains(&c1));
                assert!(h.notes.is_empty() && !h.wake);
            }
        }
        assert!(w.store.list_revocations().unwrap().is_empty());
        // Another user, a client the session is not of: no flag needed.
        assert!(w
            .call(&carol, revoke_req(Target::User("bob".into()), false))
            .result
            .is_ok());
        assert!(w
            .call(&carol, revoke_req(Target::Client("web".into()), false))
            .result
            .is_ok());
        // With the flag: done.
        let h = w.call(&carol, revoke_req(Target::User("carol".into()), true));
        assert!(h.result.is_ok(), "{:?}", h.result);
        // "Sign out everywhere" needs no flag, for an administrator too.
        let h = w.call(&carol, revoke_req(Target::User(ME.into()), false));
        assert_eq!(h.result.unwrap()["sign_out"], true);
    }

    #[test]
    fn revoking_an_ended_session_writes_nothing() {
        let w = World::new();
        let a1 = login(&w.store, "alice", 1);
        let a2 = login(&w.store, "alice", 2);
        w.store.end_session(&a2, t(5), EndReason::Logout).unwrap();
        for who in [caller("alice", Some(1), false), caller("carol", None, true)] {
            for _ in 0..3 {
                let h = w.call(&who, revoke_req(Target::Session(a2.clone()), false));
                assert_eq!(code(&h), Code::Ended, "{who:?}");
                assert!(h.notes.is_empty() && !h.wake);
            }
        }
        assert!(w.store.list_revocations().unwrap().is_empty());
        // A live one still can be.
        let h = w.call(
            &caller("carol", None, true),
            revoke_req(Target::Session(a1.clone()), false),
        );
        assert!(h.result.is_ok(), "{:?}", h.result);
    }

    #[test]
    fn signing_out_again_and_again_keeps_one_row() {
        let w = World::new();
        login(&w.store, "alice", 1);
        let alice = caller("alice", Some(1), false);
        // An administrator's lock of alice is not a sign-out: it stays.
        let lock = w.call(
            &caller("carol", None, true),
            revoke_req(Target::User("alice".into()), false),
        );
        let lock_id = lock.result.unwrap()["revocation"]["id"].clone();
        let mut last = Value::Null;
        for _ in 0..5 {
            let h = w.call(&alice, revoke_req(Target::User(ME.into()), false));
            last = h.result.unwrap()["revocation"]["id"].clone();
        }
        let mut ids: Vec<String> = w
            .store
            .list_revocations()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        let mut want = vec![
            lock_id.as_str().unwrap().to_owned(),
            last.as_str().unwrap().to_owned(),
        ];
        want.sort();
        assert_eq!(ids, want);
    }

    #[test]
    fn revocations_list_is_bounded_with_a_count_of_the_rest() {
        let w = World::new();
        for i in 0..REVOCATIONS_LIST_LIMIT + 3 {
            w.store
                .add_revocation(&Revocation {
                    id: format!("r{i}"),
                    target: Target::User(format!("u{i}")),
                    not_before: t(0),
                    expires_at: None,
                    reason: None,
                    actor: "test".into(),
                    created_at: t(i64::try_from(i).unwrap()),
                })
                .unwrap();
        }
        let v = w
            .call(&caller("carol", None, true), Request::RevocationsList)
            .result
            .unwrap();
        let listed = v["revocations"].as_array().unwrap();
        assert_eq!(listed.len(), REVOCATIONS_LIST_LIMIT);
        assert_eq!(v["more"], 3);
        // The newest are kept.
        assert!(listed.iter().all(|r| r["id"] != "r0" && r["id"] != "r2"));
        assert!(listed.iter().any(|r| r["id"] == "r3"));
    }

    #[test]
    fn after_su_the_session_of_another_account_is_not_current() {
        let w = World::new();
        let r1 = login(&w.store, "root", 7);
        // `su cf16b` in root's login: same audit session, login user root.
        let cf = Caller {
            login_user: Some("root".into()),
            login_uid: Some(0),
            ..caller("cf16b", Some(7), false)
        };
        let v = w.call(&cf, Request::Whoami).result.unwrap();
        assert_eq!(v["current_session"], Value::Null);
        let v = w
            .call(&cf, Request::SessionsList(ListArgs::default()))
            .result
            .unwrap();
        assert_eq!(v["current"], Value::Null);
        // Root itself, in that login, is in it.
        let root = Caller {
            uid: 0,
            ..caller("root", Some(7), true)
        };
        let v = w.call(&root, Request::Whoami).result.unwrap();
        assert_eq!(v["current_session"], r1.as_str());
    }

    #[test]
    fn signing_out_everywhere_ends_every_session_and_locks_nothing() {
        let w = World::new();
        let a1 = login(&w.store, "alice", 1);
        let alice = caller("alice", Some(1), false);
        let h = w.call(&alice, revoke_req(Target::User("me".into()), false));
        let v = h.result.unwrap();
        assert_eq!(v["sign_out"], true);
        let revs = w.store.list_revocations().unwrap();
        assert_eq!(revs.len(), 1);
        let r = &revs[0];
        assert_eq!(r.target, Target::User("alice".into()));
        // Sessions started before it are dead (the current one included) ...
        let s = w.store.session(&a1).unwrap().unwrap();
        assert!(r.applies(s.started_at, t(11)));
        // ... and a login after it is not refused.
        assert!(!r.applies(t(11), t(11)));
        assert!(!r.in_force(t(10)));
        w.store.end_session(&a1, t(11), EndReason::Revoked).unwrap();
    }

    #[test]
    fn token_lifetimes_stay_within_bounds() {
        let w = World::new();
        let alice = caller("alice", None, false);
        let set = |secs| {
            w.call(
                &alice,
                Request::TimeoutSet(TimeoutSetArgs {
                    user: None,
                    timeout: Choice::Seconds(secs),
                }),
            )
        };
        assert_eq!(code(&set(30)), Code::OutOfBounds);
        assert_eq!(code(&set(7200)), Code::OutOfBounds);
        let v = set(600).result.unwrap();
        assert_eq!(v["timeout"], 600);
        assert_eq!(v["source"]["kind"], "user");
        assert_eq!(
            w.store.timeout_preference("alice").unwrap(),
            Some(Duration::from_secs(600))
        );
        let h = w.call(&alice, Request::PolicyExplain(ExplainArgs::default()));
        let v = h.result.unwrap();
        assert_eq!(v["values"]["token_lifetime"]["seconds"], 600);
        assert_eq!(v["subject"]["user"], "alice");
        let v = w
            .call(
                &alice,
                Request::TimeoutSet(TimeoutSetArgs {
                    user: Some("me".into()),
                    timeout: Choice::Default,
                }),
            )
            .result
            .unwrap();
        assert_eq!(v["chosen"], Value::Null);
        assert_eq!(w.store.timeout_preference("alice").unwrap(), None);
    }

    /// Issue 11: the local API resolves a user name as the PAM module does,
    /// so an alias spelling is its account for explain, timeout, revoke
    /// and terminate, and explain answers with the admission kernel.
    #[test]
    fn an_alias_spelling_is_its_account_as_for_the_pam_module() {
        let mut w = World::new();
        w.policy = Policy::parse(
            "version: 1\nsession: { inactivity: 30m, timeout: { min: 1m, max: 1h } }\n\
             admin: { users: [carol] }\nrules:\n  - name: by-account\n    \
             match: { users: [alice] }\n    session: { inactivity: 5m }\n",
            "p.yaml",
        )
        .unwrap();
        let alice = caller("alice", None, false);
        let carol = caller("carol", None, true);
        let bob = caller("bob", None, false);
        let explain_ali = || {
            Request::PolicyExplain(ExplainArgs {
                user: Some("ali".into()),
                service: Some("sshd".into()),
                ..Default::default()
            })
        };
        for who in [&alice, &carol] {
            let v = w.call(who, explain_ali()).result.unwrap();
            assert_eq!(v["account"]["user"], "alice", "{v:#}");
            assert_eq!(v["account"]["login"], "ali", "{v:#}");
            assert_eq!(v["account"]["alias"], true, "{v:#}");
            assert_eq!(v["subject"]["user"], "alice", "{v:#}");
            assert_eq!(v["rule"], "by-account", "{v:#}");
            assert_eq!(v["store"]["consulted"], true, "{v:#}");
            assert_eq!(v["admission"]["admission"], "allow", "{v:#}");
            assert_eq!(v["admission"]["idle_deadline"], json!(t(10 + 300)), "{v:#}");
        }
        assert_eq!(code(&w.call(&bob, explain_ali())), Code::Forbidden);

        // Her own token lifetime, set under the alias, is the account's.
        let h = w.call(
            &alice,
            Request::TimeoutSet(TimeoutSetArgs {
                user: Some("ali".into()),
                timeout: Choice::Seconds(120),
            }),
        );
        assert_eq!(h.result.unwrap()["user"], "alice");
        assert_eq!(
            w.store.timeout_preference("alice").unwrap(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(w.store.timeout_preference("ali").unwrap(), None);
        let v = w.call(&carol, explain_ali()).result.unwrap();
        assert_eq!(v["values"]["token_lifetime"]["seconds"], 120, "{v:#}");

        // Ending "ali"'s sessions ends the account's (recorded as alice).
        let a1 = login(&w.store, "alice", 1);
        let h = w.call(
            &carol,
            Request::SessionsTerminate(TerminateArgs {
                user: Some("ali".into()),
                ..Default::default()
            }),
        );
        assert_eq!(h.result.unwrap()["terminated"][0]["id"], a1.as_str());

        // Revoking "ali" revokes the account, and explain then says what
        // PAM says: refused.
        let h = w.call(&carol, revoke_req(Target::User("ali".into()), false));
        let v = h.result.unwrap();
        assert_eq!(v["revocation"]["target"]["value"], "alice", "{v:#}");
        let v = w.call(&carol, explain_ali()).result.unwrap();
        assert_eq!(v["admission"]["admission"], "deny", "{v:#}");
        assert_eq!(v["admission"]["reason"], "revoked", "{v:#}");
    }

    /// Issue 11: explain without a store still explains the policy and
    /// says what the failure table makes of the store's error.
    #[test]
    fn explain_without_a_store_gives_the_failure_tables_verdict() {
        let alice = scripted("alice");
        let error = StoreError::Unavailable {
            location: "redis://127.0.0.1:1".into(),
            detail: "connection refused".into(),
        };
        for (on_unavailable, admission, verdict) in [
            (
                "deny",
                "unusable",
                json!({"deny": "store.on_unavailable: deny"}),
            ),
            ("allow", "degraded", json!("degrade")),
        ] {
            let policy = Policy::parse(
                &format!(
                    "version: 1\nsession: {{ inactivity: 30m }}\nrules:\n  - name: r\n    \
                     match: {{ users: [alice] }}\n    session: {{ inactivity: 5m }}\n\
                     store: {{ backend: redis, url: \"redis://127.0.0.1:1\", \
                     on_unavailable: {on_unavailable} }}\n"
                ),
                "p.yaml",
            )
            .unwrap();
            let v = explain_admission(
                &policy,
                &alice,
                &[],
                &ExplainArgs::default(),
                Some("here"),
                Err((error.clone(), "this process")),
                t(0),
            )
            .unwrap();
            assert_eq!(v["rule"], "r", "{v:#}");
            assert_eq!(v["values"]["inactivity"]["seconds"], 300, "{v:#}");
            assert_eq!(v["store"]["consulted"], false, "{v:#}");
            assert_eq!(v["store"]["met_by"], "this process", "{v:#}");
            assert_eq!(v["store"]["verdict"], verdict, "{v:#}");
            assert_eq!(v["admission"]["admission"], admission, "{v:#}");
        }
        // A store written by a newer curfew is never degraded.
        let policy = Policy::parse(
            "version: 1\nstore: { backend: sqlite, path: /x/s.db, on_unavailable: allow }\n",
            "p.yaml",
        )
        .unwrap();
        let v = explain_admission(
            &policy,
            &alice,
            &[],
            &ExplainArgs::default(),
            None,
            Err((
                StoreError::TooNew {
                    location: "/x/s.db".into(),
                    found: 9,
                    supported: 3,
                },
                "this process",
            )),
            t(0),
        )
        .unwrap();
        assert_eq!(v["admission"]["admission"], "unusable", "{v:#}");
    }
}
