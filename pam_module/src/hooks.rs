//! The three hooks: `acct_mgmt`, `open_session`, `close_session`.
//!
//! Each hook gathers what it needs through [`PamHandler`] and [`System`],
//! takes the policy's three steps in `curfew-policy` (policy → effective →
//! decision) and answers with one [`PamCode`]. Every refusal is logged with
//! its cause; nothing here panics.
#![forbid(unsafe_code)]

use chrono::{DateTime, Utc};
use curfew_policy::admission::{store_failure_verdict, FailureVerdict, Unusable};
use curfew_policy::audit::{
    revocation_of, AuditEvent, AuditSink, Priority, RefusalReason, StoreOutcome,
};
use curfew_policy::host::{Account, HostError};
use curfew_policy::{
    admit, Admission, Allow, Caller, Deny, Effective, EndReason, GroupsLookup, Policy,
    RevocationKeys, RevocationSet, Session, SessionKind, Store, StoreAnswer, StoreError, Subject,
    Which, Who,
};

use crate::args::ModuleArgs;
use crate::code::PamCode;
use crate::handler::{Item, LogLevel, MessageStyle, PamHandler, SESSION_ID_ENV, TMOUT_ENV};
use crate::system::System;

/// What the user is told when the policy or the store is unusable. The
/// cause goes to the log only: it is the administrator's business.
/// The kernel records a terminal's times to 8 seconds (Linux
/// `tty_update_time`), and the enforcer writes input as late as that window
/// allows; a TMOUT judged from the record's `last_seen` is met this early.
const TTY_TIME_WINDOW: std::time::Duration = std::time::Duration::from_secs(8);

const BROKEN_MESSAGE: &str =
    "Access denied: the login policy cannot be applied. Contact your administrator.";

/// One call of a hook.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The module's arguments.
    pub args: &'a ModuleArgs,
    /// The application passed `PAM_SILENT`: show the user nothing.
    pub silent: bool,
}

/// `pam_sm_acct_mgmt`: refuses a user or service that is revoked.
pub fn acct_mgmt(pam: &mut dyn PamHandler, sys: &dyn System, call: Call<'_>) -> PamCode {
    let mut cx = Cx::new(pam, sys, call);
    cx.account().unwrap_or_else(|code| code)
}

/// `pam_sm_open_session`: shows the banner, registers the session, hands
/// the absolute limit to pam_systemd and exports `TMOUT` and the session id.
pub fn open_session(pam: &mut dyn PamHandler, sys: &dyn System, call: Call<'_>) -> PamCode {
    let mut cx = Cx::new(pam, sys, call);
    cx.open().unwrap_or_else(|code| code)
}

/// `pam_sm_close_session`: marks the session ended (reason logout).
pub fn close_session(pam: &mut dyn PamHandler, sys: &dyn System, call: Call<'_>) -> PamCode {
    let mut cx = Cx::new(pam, sys, call);
    cx.close().unwrap_or_else(|code| code)
}

/// Who is logging in, from the PAM items.
struct Login {
    user: String,
    service: Option<String>,
    tty: Option<String>,
    rhost: Option<String>,
}

/// One hook call in progress.
struct Cx<'a> {
    pam: &'a mut dyn PamHandler,
    sys: &'a dyn System,
    args: &'a ModuleArgs,
    silent: bool,
    caller: Caller,
    /// The canonical user and the service, once known: what a store
    /// failure's audit event names.
    who: Option<(String, Option<String>)>,
}

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs()
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

impl<'a> Cx<'a> {
    fn new(pam: &'a mut dyn PamHandler, sys: &'a dyn System, call: Call<'a>) -> Self {
        let mut cx = Cx {
            pam,
            sys,
            args: call.args,
            silent: call.silent,
            caller: Caller {
                secure: sys.secure_caller(),
            },
            who: None,
        };
        for arg in &call.args.unknown {
            cx.log(
                LogLevel::Warning,
                &format!("unknown option {arg:?} ignored"),
            );
        }
        cx
    }

    fn log(&mut self, level: LogLevel, text: &str) {
        // One syslog record per event: multi-line causes (every diagnostic
        // of an invalid policy) are joined.
        let line = text.replace('\n', "; ");
        self.pam.log(level, &line);
    }

    /// Appends `event` to the policy's audit file (the syslog half is the
    /// caller's `pam_syslog` line, at [`AuditEvent::priority`]). A failure
    /// is an `err` line and never refuses the login: an unwritable audit
    /// file must not lock everyone out, the administrator included, and the
    /// event still reaches syslog.
    fn audit(&mut self, policy: &Policy, event: &AuditEvent) {
        if policy.audit.file.is_none() {
            return;
        }
        let sink = AuditSink::new(&policy.audit, "pam_curfew", self.sys.hostname());
        if let Err(e) = sink.append(self.sys.now(), event) {
            self.log(
                LogLevel::Err,
                &format!(
                    "{e}; the {} goes to syslog only and the login is not refused for it",
                    event.name()
                ),
            );
        }
    }

    /// Logs `text` at the priority of `event` and appends the event to the
    /// audit file: the one way a refusal or an unchecked login is reported.
    fn report(&mut self, policy: &Policy, event: &AuditEvent, text: &str) {
        self.log(level_of(event.priority()), text);
        self.audit(policy, event);
    }

    fn debug(&mut self, text: impl FnOnce() -> String) {
        if self.args.debug {
            let t = text();
            self.log(LogLevel::Debug, &t);
        }
    }

    /// Shows a message unless the application asked for silence. A failed
    /// conversation is logged; it never changes the answer.
    fn tell(&mut self, style: MessageStyle, text: &str) {
        if self.silent {
            return;
        }
        if let Err(code) = self.pam.message(style, text) {
            self.log(
                LogLevel::Warning,
                &format!("cannot show a message through the conversation: {code}"),
            );
        }
    }

    fn login(&mut self, session_items: bool) -> Result<Login, PamCode> {
        let user = match self.pam.user() {
            Ok(u) if !u.is_empty() => u,
            Ok(_) => {
                self.log(LogLevel::Err, "the application gave an empty user name");
                return Err(PamCode::UserUnknown);
            }
            Err(code) => {
                self.log(LogLevel::Err, &format!("cannot get the user: {code}"));
                return Err(code);
            }
        };
        let service = self.item(Item::Service)?;
        let (tty, rhost) = if session_items {
            (self.item(Item::Tty)?, self.item(Item::RHost)?)
        } else {
            (None, None)
        };
        Ok(Login {
            user,
            service,
            tty,
            rhost,
        })
    }

    fn item(&mut self, item: Item) -> Result<Option<String>, PamCode> {
        self.pam.item(item).inspect_err(|&code| {
            self.log(LogLevel::Err, &format!("cannot get {item:?}: {code}"));
        })
    }

    /// Loads the policy. Unreadable, invalid or insecure: the login is
    /// refused, whatever `store.on_unavailable` might have said.
    fn policy(&mut self) -> Result<Policy, PamCode> {
        let path = self.args.policy.clone();
        if self.args.relative_policy {
            self.log(
                LogLevel::Err,
                &format!(
                    "policy={}: the policy must be named by an absolute path; refusing the login",
                    path.display()
                ),
            );
            self.tell(MessageStyle::ErrorMsg, BROKEN_MESSAGE);
            return Err(PamCode::SystemErr);
        }
        self.sys.load_policy(&path).map_err(|e| {
            self.log(
                LogLevel::Err,
                &format!("cannot use the policy: {e}; refusing the login"),
            );
            self.tell(MessageStyle::ErrorMsg, BROKEN_MESSAGE);
            PamCode::SystemErr
        })
    }

    /// The account behind the login name: revocations, rules and the
    /// session record use its canonical name, however the login spelled it.
    fn account_of(
        &mut self,
        policy: &Policy,
        login: &str,
        service: Option<&str>,
    ) -> Result<Account, PamCode> {
        match self.sys.account(login) {
            Ok(a) => {
                if a.name != login {
                    self.debug(|| format!("login {login:?} is the account {:?}", a.name));
                }
                Ok(a)
            }
            Err(HostError::UnknownUser(_)) => {
                let text = format!("user {login:?} is unknown to the system; refusing the login");
                let event = refused(login, service, RefusalReason::UnknownUser, None, &text);
                self.report(policy, &event, &text);
                Err(PamCode::UserUnknown)
            }
            Err(e @ HostError::Lookup { .. }) => {
                let text =
                    format!("cannot look up the account of {login:?}: {e}; refusing the login");
                let event = refused(login, service, RefusalReason::Account, None, &text);
                self.report(policy, &event, &text);
                self.tell(MessageStyle::ErrorMsg, BROKEN_MESSAGE);
                Err(PamCode::SystemErr)
            }
        }
    }

    /// A store failure after admission (registering, ending): the failure
    /// table of the admission kernel decides. `Ok(())` means go on without
    /// the store.
    fn store_failed(&mut self, policy: &Policy, e: &StoreError) -> Result<(), PamCode> {
        let (user, service) = self.who.clone().unwrap_or_default();
        match store_failure_verdict(e, policy.store.on_unavailable, self.caller) {
            FailureVerdict::Degrade => {
                let text = format!(
                    "{e}; letting the login through WITHOUT checking revocations or \
                     registering the session (store.on_unavailable: allow)"
                );
                let event = AuditEvent::StoreUnavailable {
                    store: Some(store_location(policy)),
                    outcome: StoreOutcome::Degraded,
                    user: (!user.is_empty()).then_some(user),
                    client: service,
                    detail: e.to_string(),
                };
                self.report(policy, &event, &text);
                Ok(())
            }
            FailureVerdict::Deny(why) => {
                let text = format!("{e}; refusing the login ({why})");
                let event = refused(&user, service.as_deref(), RefusalReason::Store, None, &text);
                self.report(policy, &event, &text);
                self.tell(MessageStyle::ErrorMsg, BROKEN_MESSAGE);
                Err(PamCode::SystemErr)
            }
        }
    }

    /// Runs `op` on the store, if there is one. A failure goes through
    /// [`Cx::store_failed`]; when it lets the login go on, the store is
    /// dropped for the rest of the call and `Ok(None)` is returned.
    fn with_store<T>(
        &mut self,
        policy: &Policy,
        store: &mut Option<Box<dyn Store>>,
        op: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
    ) -> Result<Option<T>, PamCode> {
        let Some(s) = store.as_deref() else {
            return Ok(None);
        };
        match op(s) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                *store = None;
                self.store_failed(policy, &e).map(|()| None)
            }
        }
    }

    fn open_store(&mut self, policy: &Policy) -> Result<Option<Box<dyn Store>>, PamCode> {
        match self.sys.open_store(&policy.store) {
            Ok(s) => Ok(Some(s)),
            Err(e) => self.store_failed(policy, &e).map(|()| None),
        }
    }

    fn describe(&mut self, login: &Login, groups: &[String], eff: &Effective<'_>) {
        self.debug(|| {
            format!(
                "user {:?} groups {groups:?} service {}: rule {}; inactivity {}s ({}), \
                 max_duration {}s ({}), timeout {}s ({}), banner from {}",
                login.user,
                or_dash(&login.service),
                eff.rule.map_or("-", |r| r.name.as_str()),
                secs(eff.inactivity.value),
                eff.inactivity.source,
                secs(eff.max_duration.value),
                eff.max_duration.source,
                secs(eff.timeout_default.value),
                eff.timeout_default.source,
                eff.banner.source,
            )
        });
    }

    /// What `account` and `open_session` both establish first, through the
    /// admission kernel: who logs in (the canonical account), the policy
    /// for them (described in the debug log), the store, and that no
    /// revocation refuses them. `with_preference` also reads the user's
    /// own token lifetime (open_session records it).
    fn admit(&mut self, session_items: bool, with_preference: bool) -> Result<Admitted, PamCode> {
        let mut login = self.login(session_items)?;
        let policy = self.policy()?;
        let account = self.account_of(&policy, &login.user, login.service.as_deref())?;
        login.user = account.name.clone();
        self.who = Some((login.user.clone(), login.service.clone()));
        let lookup = self.sys.groups(&account);
        let host = self.sys.hostname();
        let now = self.sys.now();
        let failed_groups = lookup.as_ref().err().map(ToString::to_string);
        let groups = lookup.unwrap_or_default();
        let who = Who {
            user: &login.user,
            groups: match &failed_groups {
                None => GroupsLookup::Known(&groups),
                Some(e) => GroupsLookup::Failed(e),
            },
            service: login.service.as_deref(),
            client: None,
            host: host.as_deref(),
        };
        if failed_groups.is_none() {
            let eff = policy.effective(&who.subject(&groups));
            self.describe(&login, &groups, &eff);
        }
        let mut store = None;
        let read = if failed_groups.is_some() {
            // The kernel refuses before any store answer matters.
            Ok((RevocationSet::new(), None))
        } else {
            match self.sys.open_store(&policy.store) {
                Err(e) => Err(e),
                Ok(s) => {
                    let keys = RevocationKeys {
                        session: None,
                        user: who.user,
                        client: who.client_key(),
                    };
                    let read = s.revocations_for(&keys).and_then(|r| {
                        let pref = if with_preference {
                            s.timeout_preference(who.user)?
                        } else {
                            None
                        };
                        Ok((r, pref))
                    });
                    store = Some(s);
                    read
                }
            }
        };
        let answer = match &read {
            Ok((revocations, preference)) => StoreAnswer::Read {
                revocations,
                preference: *preference,
            },
            Err(e) => StoreAnswer::Failed(e),
        };
        let allow = match admit(&policy, &who, &Which::NewLogin, answer, self.caller, now) {
            Admission::Allow(a) => a,
            Admission::Degraded(d) => {
                let text = format!(
                    "{}; letting the login through WITHOUT checking revocations or \
                     registering the session (store.on_unavailable: allow)",
                    d.detail
                );
                let event = AuditEvent::StoreUnavailable {
                    store: Some(store_location(&policy)),
                    outcome: StoreOutcome::Degraded,
                    user: Some(login.user.clone()),
                    client: login.service.clone(),
                    detail: d.detail.to_string(),
                };
                self.report(&policy, &event, &text);
                store = None;
                d.allow
            }
            Admission::Deny(deny) => {
                let text = format!(
                    "access denied for user {:?} (service {}): {deny}",
                    login.user,
                    or_dash(&login.service)
                );
                let event = AuditEvent::LoginRefused {
                    user: login.user.clone(),
                    service: login.service.clone(),
                    client: None,
                    reason: RefusalReason::of_deny(&deny),
                    revocation: revocation_of(&deny),
                    detail: deny.to_string(),
                };
                self.report(&policy, &event, &text);
                self.tell(MessageStyle::ErrorMsg, &user_message(&deny));
                return Err(PamCode::PermDenied);
            }
            Admission::Unusable(u) => {
                let text = match &u {
                    Unusable::Store { detail, why } => {
                        format!("{detail}; refusing the login ({why})")
                    }
                    Unusable::Groups { detail } => format!(
                        "cannot find the groups of {:?}: {detail}; refusing the login",
                        login.user
                    ),
                };
                let reason = match &u {
                    Unusable::Groups { .. } => RefusalReason::Groups,
                    Unusable::Store { .. } => RefusalReason::Store,
                };
                let event = refused(
                    &login.user,
                    login.service.as_deref(),
                    reason,
                    None,
                    &u.to_string(),
                );
                self.report(&policy, &event, &text);
                self.tell(MessageStyle::ErrorMsg, BROKEN_MESSAGE);
                return Err(PamCode::SystemErr);
            }
        };
        Ok(Admitted {
            login,
            policy,
            groups,
            host,
            now,
            store,
            allow,
        })
    }

    fn account(&mut self) -> Result<PamCode, PamCode> {
        let admitted = self.admit(false, false)?;
        self.debug(|| format!("account of user {:?} allowed", admitted.login.user));
        Ok(PamCode::Success)
    }

    fn open(&mut self) -> Result<PamCode, PamCode> {
        let Admitted {
            login,
            policy,
            groups,
            host,
            now,
            mut store,
            allow,
        } = self.admit(true, true)?;
        let eff = policy.effective(&Subject {
            user: &login.user,
            groups: &groups,
            service: login.service.as_deref(),
            client: None,
            host: host.as_deref(),
        });

        if !self.args.no_banner && !eff.banner.value.is_empty() {
            self.tell(MessageStyle::TextInfo, eff.banner.value);
        }

        let lifetime = allow.token_lifetime;

        // pam_systemd (later in the stack) reads this and has logind stop
        // the session's scope at max_duration, even if no enforcer runs. A
        // module earlier in the stack may have set a lower limit (the end
        // of a pam_time window, say): the smaller one stays.
        // The earlier value is read with systemd's time-span grammar, as
        // pam_systemd reads it ("1h", "300.5"); one curfew cannot read is
        // left as it is (never replaced by a possibly larger one) and logged.
        let ours = secs(eff.max_duration.value);
        // `max`: the limit in force, in whole seconds (for the audit line; an
        // unreadable earlier value: ours, the most it can be).
        let (keep_earlier, max) = match self.pam.runtime_max_sec() {
            None => (false, ours),
            Some(text) => match crate::timespan::parse(&text) {
                Ok(crate::timespan::Span::Micros(us))
                    if us > 0 && us < u128::from(ours) * 1_000_000 =>
                {
                    self.debug(|| {
                        format!(
                            "systemd.runtime_max_sec {text:?} set earlier in the stack is \
                             lower than max_duration ({ours}s): kept"
                        )
                    });
                    let whole = us.div_ceil(1_000_000);
                    (true, u64::try_from(whole).unwrap_or(ours))
                }
                Ok(_) => (false, ours),
                Err(e) => {
                    self.log(
                        LogLevel::Warning,
                        &format!(
                            "systemd.runtime_max_sec set earlier in the stack cannot be read \
                             ({e}): left as it is, max_duration ({ours}s) is not handed to \
                             pam_systemd"
                        ),
                    );
                    (true, ours)
                }
            },
        };
        if !keep_earlier {
            self.pam.set_runtime_max_sec(ours).map_err(|code| {
                self.log(
                    LogLevel::Err,
                    &format!("cannot hand systemd.runtime_max_sec to pam_systemd: {code}"),
                );
                PamCode::SessionErr
            })?;
        }
        if self.args.tmout && !self.args.no_tmout {
            let idle = secs(eff.inactivity.value).to_string();
            self.pam.putenv(TMOUT_ENV, &idle).map_err(|code| {
                self.log(LogLevel::Err, &format!("cannot export TMOUT: {code}"));
                PamCode::SessionErr
            })?;
        }

        let mut session =
            Session::start(SessionKind::Pam, &login.user, now, lifetime).map_err(|e| {
                self.log(LogLevel::Err, &format!("cannot draw a session id: {e}"));
                PamCode::SessionErr
            })?;
        session.service = login.service.clone();
        session.host = host.clone();
        session.machine_id = self.sys.machine_id();
        session.tty = login.tty.clone();
        session.rhost = login.rhost.clone();
        session.pid = Some(self.sys.pid());
        session.audit_session_id = self.sys.audit_session_id();

        let registered = self
            .with_store(&policy, &mut store, |s| s.create_session(&session))?
            .is_some();
        if registered {
            if let Err(code) = self.keep_session_id(&session.id) {
                // The application will not call close_session for a session
                // that failed to open: end the record now.
                self.with_store(&policy, &mut store, |s| {
                    s.end_session(&session.id, now, EndReason::Logout)
                })?;
                return Err(code);
            }
        }

        let event = AuditEvent::Login {
            user: login.user.clone(),
            service: login.service.clone(),
            session: registered.then(|| session.id.clone()),
            tty: login.tty.clone(),
            rhost: login.rhost.clone(),
            rule: eff.rule.map(|r| r.name.clone()),
            timeout: secs(lifetime),
            inactivity: secs(eff.inactivity.value),
            max_duration: max,
        };
        self.audit(&policy, &event);
        if policy.audit.syslog {
            let id = if registered {
                session.id.as_str()
            } else {
                "(unregistered)"
            };
            self.log(
                level_of(event.priority()),
                &format!(
                    "session {id} opened for user {:?} (service {}, tty {}, rhost {}): \
                     timeout {}s, inactivity {}s, max_duration {}s, rule {}",
                    login.user,
                    or_dash(&login.service),
                    or_dash(&login.tty),
                    or_dash(&login.rhost),
                    secs(lifetime),
                    secs(eff.inactivity.value),
                    max,
                    eff.rule.map_or("-", |r| r.name.as_str()),
                ),
            );
        }
        Ok(PamCode::Success)
    }

    fn keep_session_id(&mut self, id: &str) -> Result<(), PamCode> {
        if let Err(code) = self.pam.set_session_id(id) {
            self.log(
                LogLevel::Err,
                &format!("cannot keep the session id for close_session: {code}"),
            );
            return Err(PamCode::SessionErr);
        }
        if let Err(code) = self.pam.putenv(SESSION_ID_ENV, id) {
            self.log(
                LogLevel::Err,
                &format!("cannot export {SESSION_ID_ENV}: {code}"),
            );
            return Err(PamCode::SessionErr);
        }
        Ok(())
    }

    /// Why a session closes now: `idle` when this module exported `TMOUT`
    /// (the `tmout` argument) and the terminal has had no input for at
    /// least that long, so the shell logged itself out for idleness (bash
    /// prints its notice, which is output, so only input is looked at);
    /// `logout` otherwise. The terminal is PAM_TTY; a time in the future
    /// (a user can set their tty's times) is no news.
    ///
    /// sshd closes the PAM session after it has released the pty, and its
    /// PAM_TTY is `ssh`: then the terminal cannot be read, and the input
    /// time is the record's `last_seen` (`recorded`: last_seen and
    /// started_at), which the enforcer moves on terminal input, counted as
    /// late as the kernel's 8-second window allows (so the limit is met
    /// [`TTY_TIME_WINDOW`] early). A record whose `last_seen` never moved
    /// past its start (no enforcer wrote it) tells nothing: `logout`.
    fn tmout_reason(
        &mut self,
        now: DateTime<Utc>,
        recorded: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> EndReason {
        if !self.args.tmout || self.args.no_tmout {
            return EndReason::Logout;
        }
        let Some(limit) = self
            .pam
            .getenv(TMOUT_ENV)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&v| v > 0)
        else {
            return EndReason::Logout;
        };
        let limit = std::time::Duration::from_secs(limit);
        let tty = self.pam.item(Item::Tty).ok().flatten();
        let from_tty = tty
            .as_deref()
            .and_then(|tty| self.sys.tty_input_time(tty))
            .map(|t| curfew_policy::time::observed(t, now));
        let (input, limit, source) = match from_tty {
            Some(Some(input)) => (input, limit, "the terminal"),
            // Readable, but set into the future: no news.
            Some(None) => return EndReason::Logout,
            None => match recorded {
                Some((last_seen, started_at)) if last_seen > started_at => {
                    let Some(input) = curfew_policy::time::observed(last_seen, now) else {
                        return EndReason::Logout;
                    };
                    (
                        input,
                        limit.saturating_sub(TTY_TIME_WINDOW),
                        "the record's last activity",
                    )
                }
                _ => return EndReason::Logout,
            },
        };
        if now >= curfew_policy::time::add(input, limit) {
            self.debug(|| {
                format!(
                    "no input for TMOUT ({}s, from {source}): recorded as idle",
                    limit.as_secs()
                )
            });
            EndReason::Idle
        } else {
            EndReason::Logout
        }
    }

    fn close(&mut self) -> Result<PamCode, PamCode> {
        let user = match self.pam.user() {
            Ok(u) => u,
            Err(code) => {
                self.log(LogLevel::Err, &format!("cannot get the user: {code}"));
                return Err(code);
            }
        };
        // The record holds the canonical account name.
        let user = self.sys.account(&user).map(|a| a.name).unwrap_or(user);
        let (id, from_env) = match self.pam.session_id() {
            Some(id) => (id, false),
            None => match self.pam.getenv(SESSION_ID_ENV) {
                Some(id) if !id.is_empty() => (id, true),
                _ => {
                    self.debug(|| "no curfew session in this PAM handle; nothing to end".into());
                    return Ok(PamCode::Success);
                }
            },
        };
        let policy = self.policy()?;
        self.who = Some((user.clone(), None));
        let mut store = self.open_store(&policy)?;
        let mut service = None;
        // The record, when it had to be read already (a session named by
        // the environment): a TMOUT logout reads it from here, not again.
        let mut read = None;
        if from_env {
            // The PAM environment can be touched by other modules (pam_env
            // reads ~/.pam_environment): only end a session of this user.
            let found = self.with_store(&policy, &mut store, |s| s.session(&id))?;
            match found {
                None => return Ok(PamCode::Success),
                Some(Some(s)) if s.user == user && s.kind == SessionKind::Pam => {
                    service = s.service.clone();
                    read = Some(s);
                }
                Some(_) => {
                    self.log(
                        LogLevel::Warning,
                        &format!(
                            "{SESSION_ID_ENV}={id} does not name a session of user {user:?}; \
                             not ending it"
                        ),
                    );
                    return Ok(PamCode::Success);
                }
            }
        }
        let now = self.sys.now();
        // The record's activity, for a TMOUT logout when the terminal is
        // gone (only asked for with the `tmout` argument).
        let recorded = if self.args.tmout && !self.args.no_tmout {
            match read {
                Some(s) => Some((s.last_seen, s.started_at)),
                None => match self.with_store(&policy, &mut store, |s| s.session(&id)) {
                    Ok(Some(Some(s))) => Some((s.last_seen, s.started_at)),
                    _ => None,
                },
            }
        } else {
            None
        };
        let reason = self.tmout_reason(now, recorded);
        let ended = self.with_store(&policy, &mut store, |s| s.end_session(&id, now, reason))?;
        match ended {
            Some(true) => {
                let event = AuditEvent::Logout {
                    user: user.clone(),
                    service: service.clone(),
                    session: id.clone(),
                };
                self.audit(&policy, &event);
                if policy.audit.syslog {
                    self.log(
                        level_of(event.priority()),
                        &format!("session {id} closed for user {user:?}"),
                    );
                }
            }
            Some(false) => {
                self.log(
                    LogLevel::Info,
                    &format!("session {id} of user {user:?} had already ended (or is unknown)"),
                );
            }
            None => {}
        }
        Ok(PamCode::Success)
    }
}

/// The syslog priority of a PAM log line for an event of `priority`.
fn level_of(priority: Priority) -> LogLevel {
    match priority {
        Priority::Err => LogLevel::Err,
        Priority::Warning => LogLevel::Warning,
        Priority::Notice => LogLevel::Notice,
        Priority::Info => LogLevel::Info,
    }
}

/// A `login_refused` event of a PAM login.
fn refused(
    user: &str,
    service: Option<&str>,
    reason: RefusalReason,
    revocation: Option<String>,
    detail: &str,
) -> AuditEvent {
    AuditEvent::LoginRefused {
        user: user.to_owned(),
        service: service.map(str::to_owned),
        client: None,
        reason,
        revocation,
        detail: detail.to_owned(),
    }
}

fn store_location(policy: &Policy) -> String {
    curfew_policy::audit::store_location(&policy.store)
}

/// What a refused user reads. The revocation's reason stays in the log.
fn user_message(deny: &Deny) -> String {
    match deny {
        Deny::Revoked {
            target,
            revocation_id,
            ..
        } => format!(
            "Access denied: {target} is revoked (revocation {revocation_id}). \
             Contact your administrator."
        ),
        other => format!("Access denied: the session is {other}."),
    }
}

/// The outcome of `Cx::admit`: a login that may go on.
struct Admitted {
    login: Login,
    policy: Policy,
    groups: Vec<String>,
    host: Option<String>,
    now: DateTime<Utc>,
    store: Option<Box<dyn Store>>,
    allow: Allow,
}

#[cfg(test)]
mod tests;
