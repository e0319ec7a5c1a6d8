//! Test doubles: a scripted [`PamHandler`] that checks every step the hooks
//! take, in order, and a [`System`] with a fixed clock, fixed groups and an
//! in-memory store the test can inspect.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use curfew_policy::store::MemoryStore;
use curfew_policy::{
    EndReason, Policy, PolicyError, Revocation, RevocationKeys, RevocationSet, Session,
    SessionFilter, Store, StoreConfig, StoreError,
};

use crate::code::PamCode;
use crate::handler::{Item, LogLevel, MessageStyle, PamHandler};
use crate::system::System;
use curfew_policy::host::{Account, HostError};

/// One expected call, and what the mock answers.
#[derive(Debug, Clone)]
pub enum Step {
    /// `user()`.
    User(Result<&'static str, PamCode>),
    /// `item(item)`.
    Item(Item, Option<&'static str>),
    /// `message(style, text)`; the text must contain the given part.
    Message(MessageStyle, &'static str, Result<(), PamCode>),
    /// `set_runtime_max_sec(seconds)`.
    RuntimeMaxSec(u64, Result<(), PamCode>),
    /// `putenv(name, value)`; `None` accepts any value.
    PutEnv(&'static str, Option<&'static str>, Result<(), PamCode>),
    /// `set_session_id(_)`.
    SetSessionId(Result<(), PamCode>),
    /// `session_id()`.
    SessionId(Option<&'static str>),
    /// `getenv(name)`.
    GetEnv(&'static str, Option<&'static str>),
}

/// A [`PamHandler`] that plays a script and fails the test on any call that
/// is not the next step, or, when dropped, on any step left unplayed.
#[derive(Debug)]
pub struct ScriptedPam {
    script: VecDeque<Step>,
    /// Every log line, in order.
    pub logs: Vec<(LogLevel, String)>,
    /// What was put into the PAM environment.
    pub env: HashMap<String, String>,
    /// The session id kept by set_session_id.
    pub kept_session_id: Option<String>,
    /// A `systemd.runtime_max_sec` an earlier module left (not scripted).
    pub earlier_runtime_max_sec: Option<String>,
}

impl ScriptedPam {
    /// A mock that expects exactly `steps`.
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        ScriptedPam {
            script: steps.into_iter().collect(),
            logs: Vec::new(),
            env: HashMap::new(),
            kept_session_id: None,
            earlier_runtime_max_sec: None,
        }
    }

    fn next(&mut self, call: &str) -> Step {
        match self.script.pop_front() {
            Some(step) => step,
            None => panic!("unexpected call {call}: the script is finished"),
        }
    }

    /// Whether a log line at `level` contains `part`.
    pub fn logged(&self, level: LogLevel, part: &str) -> bool {
        self.logs
            .iter()
            .any(|(l, t)| *l == level && t.contains(part))
    }

    /// The log, for assertion messages.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(l, t)| format!("{l:?}: {t}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ScriptedPam {
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.script.is_empty() {
            panic!(
                "steps never taken: {:?}\nlog:\n{}",
                self.script,
                self.log_text()
            );
        }
    }
}

impl PamHandler for ScriptedPam {
    fn user(&mut self) -> Result<String, PamCode> {
        match self.next("user()") {
            Step::User(r) => r.map(str::to_owned),
            other => panic!("expected {other:?}, got user()"),
        }
    }

    fn item(&mut self, item: Item) -> Result<Option<String>, PamCode> {
        match self.next(&format!("item({item:?})")) {
            Step::Item(want, value) if want == item => Ok(value.map(str::to_owned)),
            other => panic!("expected {other:?}, got item({item:?})"),
        }
    }

    fn message(&mut self, style: MessageStyle, text: &str) -> Result<(), PamCode> {
        match self.next(&format!("message({style:?}, {text:?})")) {
            Step::Message(want, part, r) if want == style && text.contains(part) => r,
            other => panic!("expected {other:?}, got message({style:?}, {text:?})"),
        }
    }

    fn log(&mut self, level: LogLevel, text: &str) {
        assert!(!text.contains('\n'), "a log line with a newline: {text:?}");
        self.logs.push((level, text.to_owned()));
    }

    fn runtime_max_sec(&mut self) -> Option<String> {
        self.earlier_runtime_max_sec.clone()
    }

    fn set_runtime_max_sec(&mut self, seconds: u64) -> Result<(), PamCode> {
        match self.next(&format!("set_runtime_max_sec({seconds})")) {
            Step::RuntimeMaxSec(want, r) if want == seconds => r,
            other => panic!("expected {other:?}, got set_runtime_max_sec({seconds})"),
        }
    }

    fn set_session_id(&mut self, id: &str) -> Result<(), PamCode> {
        match self.next(&format!("set_session_id({id:?})")) {
            Step::SetSessionId(r) => {
                if r.is_ok() {
                    self.kept_session_id = Some(id.to_owned());
                }
                r
            }
            other => panic!("expected {other:?}, got set_session_id({id:?})"),
        }
    }

    fn session_id(&mut self) -> Option<String> {
        match self.next("session_id()") {
            Step::SessionId(v) => v.map(str::to_owned),
            other => panic!("expected {other:?}, got session_id()"),
        }
    }

    fn putenv(&mut self, name: &str, value: &str) -> Result<(), PamCode> {
        match self.next(&format!("putenv({name:?}, {value:?})")) {
            Step::PutEnv(want, want_value, r)
                if want == name && want_value.is_none_or(|v| v == value) =>
            {
                if r.is_ok() {
                    self.env.insert(name.to_owned(), value.to_owned());
                }
                r
            }
            other => panic!("expected {other:?}, got putenv({name:?}, {value:?})"),
        }
    }

    fn getenv(&mut self, name: &str) -> Option<String> {
        match self.next(&format!("getenv({name:?})")) {
            Step::GetEnv(want, v) if want == name => v.map(str::to_owned),
            other => panic!("expected {other:?}, got getenv({name:?})"),
        }
    }
}

/// The clock of every test: 2026-01-05 09:00:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// A host with a fixed clock, fixed groups and a shared in-memory store.
pub struct FakeSystem {
    /// The time of every call.
    pub now: DateTime<Utc>,
    /// Users and their groups; a user not listed is unknown.
    pub groups: HashMap<String, Vec<String>>,
    /// Group lookups fail (an NSS backend is down).
    pub groups_fail: bool,
    /// Other spellings of an account's name: login -> canonical name.
    pub aliases: HashMap<String, String>,
    /// The caller is a setuid program (AT_SECURE).
    pub secure: bool,
    /// The policy text, or `None` for a missing file.
    pub policy: Option<String>,
    /// The store every open_store returns.
    pub store: Arc<MemoryStore>,
    /// open_store fails with this.
    pub open_error: Option<fn() -> StoreError>,
    /// create_session fails (the store went away mid-login).
    pub create_fails: bool,
    /// Terminals and their last input (atime).
    pub tty_input: HashMap<String, DateTime<Utc>>,
}

impl FakeSystem {
    /// Users alice (groups alice, wheel) and bob (group bob), `policy` as the policy.
    pub fn new(policy: &str) -> Self {
        FakeSystem {
            now: t0(),
            groups: HashMap::from([
                ("alice".into(), vec!["alice".into(), "wheel".into()]),
                ("bob".into(), vec!["bob".into()]),
            ]),
            groups_fail: false,
            aliases: HashMap::new(),
            secure: false,
            policy: Some(policy.to_owned()),
            store: Arc::new(MemoryStore::new()),
            open_error: None,
            create_fails: false,
            tty_input: HashMap::new(),
        }
    }

    /// Every session in the store, ended ones too.
    pub fn sessions(&self) -> Vec<Session> {
        self.store
            .list_sessions(&SessionFilter {
                include_ended: true,
                ..Default::default()
            })
            .unwrap()
    }
}

/// The error a store that went away gives.
pub fn unavailable() -> StoreError {
    StoreError::Unavailable {
        location: "/var/lib/curfew/state.db".into(),
        detail: "unable to open database file".into(),
    }
}

impl System for FakeSystem {
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn tty_input_time(&self, tty: &str) -> Option<DateTime<Utc>> {
        self.tty_input.get(tty).copied()
    }

    fn account(&self, login: &str) -> Result<Account, HostError> {
        let name = self.aliases.get(login).map_or(login, String::as_str);
        let uid = self
            .groups
            .keys()
            .position(|u| u == name)
            .ok_or_else(|| HostError::UnknownUser(login.to_owned()))?;
        Ok(Account {
            name: name.to_owned(),
            uid: 1000 + u32::try_from(uid).unwrap_or(0),
            gid: 1000,
        })
    }

    fn groups(&self, account: &Account) -> Result<Vec<String>, HostError> {
        if self.groups_fail {
            return Err(HostError::Lookup {
                what: format!("getgrouplist({})", account.name),
                detail: "sssd is not running".into(),
            });
        }
        self.groups
            .get(&account.name)
            .cloned()
            .ok_or_else(|| HostError::UnknownUser(account.name.clone()))
    }

    fn secure_caller(&self) -> bool {
        self.secure
    }

    fn hostname(&self) -> Option<String> {
        Some("host1".into())
    }

    fn machine_id(&self) -> Option<String> {
        Some("0123456789abcdef0123456789abcdef".into())
    }

    fn pid(&self) -> u32 {
        4242
    }

    fn audit_session_id(&self) -> Option<u32> {
        Some(17)
    }

    fn load_policy(&self, path: &Path) -> Result<Policy, PolicyError> {
        match &self.policy {
            Some(text) => Policy::parse(text, &path.display().to_string()),
            // The real loader's error for a file that is not there.
            None => Policy::load(path),
        }
    }

    fn open_store(&self, _config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
        if let Some(e) = self.open_error {
            return Err(e());
        }
        Ok(Box::new(SharedStore {
            inner: Arc::clone(&self.store),
            create_fails: self.create_fails,
        }))
    }
}

/// The test's [`MemoryStore`], shared with the hook under test.
struct SharedStore {
    inner: Arc<MemoryStore>,
    create_fails: bool,
}

impl Store for SharedStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        if self.create_fails {
            return Err(unavailable());
        }
        self.inner.create_session(session)
    }
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.inner.session(id)
    }
    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        self.inner.list_sessions(filter)
    }
    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.touch_session(id, at)
    }
    fn request_termination(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner.request_termination(id, at, by)
    }
    fn end_session(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: EndReason,
    ) -> Result<bool, StoreError> {
        self.inner.end_session(id, at, reason)
    }
    fn add_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.inner.add_revocation(revocation)
    }
    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
        self.inner.remove_revocation(id)
    }
    fn lift_revocation(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<curfew_policy::store::Lift>, StoreError> {
        self.inner.lift_revocation(id, at)
    }
    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.inner.list_revocations()
    }
    fn revocations_for(&self, keys: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
        self.inner.revocations_for(keys)
    }
    fn set_timeout_preference(
        &self,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.inner.set_timeout_preference(user, timeout)
    }
    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError> {
        self.inner.timeout_preference(user)
    }
}
