//! Ends of sessions the hook knows, pushed to the OIDC servers.
//!
//! The hook remembers every login session it allowed since it started (its
//! subject, client and the server's own login session id). An end reaches
//! it two ways:
//!
//! - **decided**: a token request is refused (idle, too old, revoked,
//!   terminated): the gate ends the session in the store;
//! - **told of**: `curfew revoke …`, `curfew sessions terminate`, or simply
//!   time passing. A sweep every `--sweep-interval` decides each known
//!   session at `now` (an inspection, no activity), ends the ones the
//!   policy refuses in the store, and picks up the ones others ended.
//!
//! Each end becomes one [`EndEvent`], handed to every subscriber (the Hydra
//! admin client, [`super::hydra_admin`]) and kept in a bounded log that
//! adapters poll (`GET /v1/ends`, the oidc-provider adapter). Sessions that
//! started before the hook did are not known to it: they are refused at
//! their next token request, which ends them and tells the servers then.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use curfew_policy::EndReason;
use serde::Serialize;

use crate::gate::{Activity, Gate, Known, Principal, Refusal};

/// How many ends the log keeps for pollers.
pub const LOG_LEN: usize = 10_000;

/// How many live sessions the hook tracks; beyond it new ones are only
/// refused at their next request (logged once).
pub const MAX_TRACKED: usize = 200_000;

/// What the hook knows of a live session it allowed.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The server's subject.
    pub subject: String,
    /// The client.
    pub client_id: String,
    /// The server's own login (SSO) session id.
    pub login_session: Option<String>,
    /// The user's groups at the last request.
    pub groups: Vec<String>,
    /// A persistent login.
    pub remember_me: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// One session end, as told to the OIDC servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndEvent {
    /// Position in the log (1, 2, …), for `GET /v1/ends?after=`.
    pub seq: u64,
    /// The curfew session.
    pub session_id: String,
    /// The server's subject.
    pub subject: String,
    /// The client.
    pub client_id: String,
    /// The server's own login session id, if it sent one.
    pub login_session: Option<String>,
    /// Why it ended.
    pub reason: EndReason,
    /// The revocation's target (`user alice`, `client web`, `session …`,
    /// `all`) for a revocation.
    pub revoked: Option<String>,
    /// When the hook learnt of it.
    pub at: DateTime<Utc>,
}

impl EndEvent {
    /// Whether the end is about the user as a whole (a revocation of the
    /// user), not only this session.
    pub fn whole_user(&self) -> bool {
        self.revoked
            .as_deref()
            .is_some_and(|t| t.starts_with("user "))
    }

    /// Whether the end is about the client as a whole.
    pub fn whole_client(&self) -> bool {
        self.revoked
            .as_deref()
            .is_some_and(|t| t.starts_with("client "))
    }
}

#[derive(Default)]
struct Log {
    events: VecDeque<EndEvent>,
    last: u64,
}

/// The hook's known sessions and the ends log. Shared by the request
/// handlers, the sweep and the subscribers.
pub struct Ends {
    seen: Mutex<HashMap<String, Seen>>,
    log: Mutex<Log>,
    latest: tokio::sync::watch::Sender<u64>,
    sinks: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<EndEvent>>>,
    full_logged: std::sync::atomic::AtomicBool,
}

impl Default for Ends {
    fn default() -> Self {
        Ends {
            seen: Mutex::default(),
            log: Mutex::default(),
            latest: tokio::sync::watch::channel(0).0,
            sinks: Mutex::default(),
            full_logged: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop ends from being told.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ends {
    /// Remembers a session the hook allowed.
    pub fn seen(&self, session_id: &str, seen: Seen) {
        let mut map = lock(&self.seen);
        if map.len() >= MAX_TRACKED && !map.contains_key(session_id) {
            if !self
                .full_logged
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                eprintln!(
                    "curfew hook: warning: tracking {MAX_TRACKED} live sessions; newer ones \
                     are told to the OIDC server only when a token request is refused"
                );
            }
            return;
        }
        map.insert(session_id.to_owned(), seen);
    }

    /// How many live sessions are tracked.
    pub fn tracked(&self) -> usize {
        lock(&self.seen).len()
    }

    /// Records that session `session_id` ended; `false` if the hook did not
    /// know it (or had told of its end already).
    pub fn ended(
        &self,
        session_id: &str,
        reason: EndReason,
        revoked: Option<String>,
        at: DateTime<Utc>,
    ) -> bool {
        let Some(seen) = lock(&self.seen).remove(session_id) else {
            return false;
        };
        let event = {
            let mut log = lock(&self.log);
            log.last += 1;
            let event = EndEvent {
                seq: log.last,
                session_id: session_id.to_owned(),
                subject: seen.subject,
                client_id: seen.client_id,
                login_session: seen.login_session,
                reason,
                revoked,
                at,
            };
            log.events.push_back(event.clone());
            while log.events.len() > LOG_LEN {
                log.events.pop_front();
            }
            event
        };
        eprintln!(
            "curfew hook: session {} of {} at {} ended ({}{})",
            event.session_id,
            event.subject,
            event.client_id,
            event.reason,
            event
                .revoked
                .as_deref()
                .map(|t| format!(": {t}"))
                .unwrap_or_default()
        );
        lock(&self.sinks).retain(|s| s.send(event.clone()).is_ok());
        self.latest.send_replace(event.seq);
        true
    }

    /// The ends after `after`, oldest first, and the last position.
    pub fn since(&self, after: u64) -> (u64, Vec<EndEvent>) {
        let log = lock(&self.log);
        let events = log
            .events
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        (log.last, events)
    }

    /// The last position, to wait on for changes.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// A stream of every end from now on.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<EndEvent> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        lock(&self.sinks).push(tx);
        rx
    }

    /// Decides every tracked session at the gate's `now` (an inspection:
    /// no activity is recorded); ends in the store the ones the policy
    /// refuses and reports them, and reports the ones others ended. Blocks
    /// on the store. Returns how many ends it found.
    pub fn sweep(&self, gate: &Gate) -> usize {
        let snapshot: Vec<(String, Seen)> = lock(&self.seen)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut n = 0;
        for (sid, seen) in snapshot {
            let p = Principal {
                user: &seen.subject,
                groups: &seen.groups,
                client_id: &seen.client_id,
                remember_me: seen.remember_me,
            };
            let now = gate.now();
            let known = Known {
                started_at: seen.started_at,
                last_activity: seen.started_at,
            };
            let (reason, revoked) = match gate.resume(&sid, &p, &known, Activity::Inspect) {
                Ok(g) if g.recorded => continue,
                // Without the store nothing is known to have ended.
                Ok(_) => continue,
                Err(Refusal::Denied(d)) => {
                    let revoked = match &d {
                        curfew_policy::Deny::Revoked { target, .. } => Some(target.clone()),
                        _ => None,
                    };
                    (d.end_reason(), revoked)
                }
                Err(Refusal::Ended { reason, .. }) => (reason.unwrap_or(EndReason::Logout), None),
                Err(Refusal::UnknownSession(_) | Refusal::Mismatch(_)) => {
                    lock(&self.seen).remove(&sid);
                    continue;
                }
                Err(Refusal::Store(_)) => continue,
            };
            if self.ended(&sid, reason, revoked, now) {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn seen(user: &str) -> Seen {
        Seen {
            subject: user.into(),
            client_id: "web".into(),
            login_session: Some(format!("op-{user}")),
            groups: vec![],
            remember_me: false,
            started_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn an_end_is_told_once_to_subscribers_and_pollers() {
        let ends = Ends::default();
        let mut rx = ends.subscribe();
        let at = Utc.timestamp_opt(1_800_000_100, 0).unwrap();
        assert!(!ends.ended("s1", EndReason::Idle, None, at), "unknown");
        ends.seen("s1", seen("alice"));
        ends.seen("s2", seen("bob"));
        assert!(ends.ended("s1", EndReason::Revoked, Some("user alice".into()), at));
        assert!(!ends.ended("s1", EndReason::Revoked, None, at), "once");
        let e = rx.try_recv().unwrap();
        assert_eq!(e.subject, "alice");
        assert!(e.whole_user() && !e.whole_client());
        assert_eq!(e.login_session.as_deref(), Some("op-alice"));
        assert!(rx.try_recv().is_err());
        assert!(ends.ended("s2", EndReason::Idle, None, at));
        let (last, list) = ends.since(1);
        assert_eq!(last, 2);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].subject, "bob");
        assert_eq!(ends.tracked(), 0);
    }
}
