//! OIDC Back-Channel Logout 1.0: whenever curfew ends a session this
//! provider issued, for whatever reason, each client registered with a
//! back-channel logout URI gets a logout token naming the session (`sid`).
//!
//! curfew ends OIDC sessions in several places: `curfew revoke` and
//! `curfew sessions terminate` only write the store, idle and max-duration
//! ends are a matter of time, and a logout ends the session here. So a
//! watcher asks the gate about every session it tracks:
//!
//! - a SQLite store (or any store without [`Store::watch`]) is read every
//!   `--watch-interval-ms` (250 ms by default);
//! - a Redis store pushes its changes: each one wakes the watcher at once;
//!   between pushes only the sessions whose deadline has passed are looked
//!   at (every interval), and all of them every 5 s in case a push was lost.
//!
//! The gate ends a denied session in the store with the denial's reason,
//! so a session the watcher finds ended is ended for good. An SSO session
//! (the provider's own login) that is logged out, terminated or revoked
//! ends every client session signed in through it, as a logout; one that
//! goes idle or reaches its max duration only stops silent sign-in.
//!
//! [`Store::watch`]: curfew_policy::Store::watch

use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_oidc::{Activity, Known, Principal, Refusal};
use curfew_policy::EndReason;

use crate::{lock, oidc, sso, App, Tracked};

/// With a pushing store: how often every session is looked at anyway.
const FULL_SWEEP: Duration = Duration::from_secs(5);

/// A session the watcher found ended.
struct Ended {
    sid: String,
    t: Tracked,
    reason: Option<EndReason>,
}

/// Starts the watcher: a task that sweeps, and for a pushing store a thread
/// that waits for its events.
pub fn spawn(app: Arc<App>, interval: Duration) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let pushing = match app.gate.store().watch() {
        Ok(Some(mut stream)) => {
            let wake = wake.clone();
            std::thread::spawn(move || {
                let mut down = false;
                loop {
                    match stream.next(Duration::from_secs(5)) {
                        Ok(Some(_)) => {
                            down = false;
                            wake.notify_one();
                        }
                        Ok(None) => {}
                        Err(e) => {
                            if !down {
                                eprintln!("oidc_server: the store's change feed failed ({e}); reading it every interval until it is back");
                            }
                            down = true;
                            wake.notify_one();
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                }
            });
            true
        }
        Ok(None) => false,
        Err(e) => {
            eprintln!("oidc_server: cannot watch the store ({e}); reading it every interval");
            false
        }
    };
    tokio::spawn(async move {
        let mut last_full = Instant::now();
        loop {
            let woken = tokio::select! {
                _ = tokio::time::sleep(interval) => false,
                _ = wake.notified() => true,
            };
            let full = !pushing || woken || last_full.elapsed() >= FULL_SWEEP;
            if full {
                last_full = Instant::now();
            }
            let a = app.clone();
            let ended = match tokio::task::spawn_blocking(move || sweep(&a, full)).await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("oidc_server: error: the session sweep failed: {e}");
                    continue;
                }
            };
            for e in ended {
                let a = app.clone();
                tokio::spawn(async move { notify(&a, e).await });
            }
        }
    });
}

/// Asks the gate about the tracked sessions (all of them, or only those
/// past their last known deadline), forgets the ended ones and returns
/// them, with the client sessions of ended SSO sessions.
fn sweep(app: &App, full: bool) -> Vec<Ended> {
    let now = app.gate.now();
    let due: Vec<(String, Tracked)> = lock(&app.tracked)
        .iter()
        .filter(|(_, t)| full || now >= t.next_check)
        .map(|(s, t)| (s.clone(), t.clone()))
        .collect();
    let mut ended = Vec::new();
    for (sid, t) in due {
        let groups = app.groups(&t.user);
        let p = Principal {
            user: &t.user,
            groups: &groups,
            client_id: &t.client_id,
            remember_me: t.remember_me,
        };
        let known = Known {
            started_at: t.started_at,
            last_activity: t.started_at,
        };
        // Under the oxide-auth lock, as the token flows decide: a refresh
        // cannot record activity between this decision's reading of the
        // clock and of the session (a test clock jumps minutes at once,
        // and a last activity "from the future" would not be believed).
        let decided = {
            let _serial = app.oauth();
            app.gate.resume(&sid, &p, &known, Activity::Inspect)
        };
        match decided {
            Ok(g) => {
                if let Some(tr) = lock(&app.tracked).get_mut(&sid) {
                    tr.next_check = g.allow.idle_deadline.min(g.allow.absolute_deadline);
                }
            }
            // The store is down: nothing is known to have ended.
            Err(Refusal::Store(_)) => {}
            Err(e) => {
                let reason = match &e {
                    Refusal::Denied(d) => Some(d.end_reason()),
                    Refusal::Ended { reason, .. } => *reason,
                    _ => None,
                };
                ended.push(Ended { sid, t, reason });
            }
        }
    }
    // An SSO session that was logged out, terminated or revoked takes its
    // clients' sessions with it. One that merely went idle or reached its
    // max duration does not: the clients' sessions have their own
    // activity and deadlines, and only silent sign-in stops.
    let mut cascade = Vec::new();
    for e in &ended {
        if e.t.client_id != sso::ACCOUNT_CLIENT {
            continue;
        }
        let Some(cookie) = &e.t.sso else { continue };
        lock(&app.sso).remove(cookie);
        if matches!(e.reason, Some(EndReason::Idle | EndReason::MaxDuration)) {
            continue;
        }
        {
            let linked: Vec<(String, Tracked)> = lock(&app.tracked)
                .iter()
                .filter(|(s, t)| {
                    t.sso.as_ref() == Some(cookie)
                        && t.client_id != sso::ACCOUNT_CLIENT
                        && !ended.iter().any(|x| &x.sid == *s)
                })
                .map(|(s, t)| (s.clone(), t.clone()))
                .collect();
            for (sid, t) in linked {
                if let Err(err) = app.gate.end(&sid, EndReason::Logout) {
                    eprintln!("oidc_server: error: ending session {sid}: {err}");
                    continue;
                }
                cascade.push(Ended {
                    sid,
                    t,
                    reason: Some(EndReason::Logout),
                });
            }
        }
    }
    ended.extend(cascade);
    let mut tracked = lock(&app.tracked);
    for e in &ended {
        tracked.remove(&e.sid);
    }
    ended
}

/// Sends the logout token of an ended session to its client, if the client
/// has a back-channel logout URI, and logs the outcome.
async fn notify(app: &App, e: Ended) {
    let reason = e.reason.map_or("ended", |r| r.as_str());
    eprintln!(
        "oidc_server: session {} of {:?} at {:?} ended ({reason})",
        e.sid, e.t.user, e.t.client_id
    );
    let Some(uri) = app
        .clients
        .get(&e.t.client_id)
        .and_then(|c| c.backchannel_logout_uri.clone())
    else {
        return;
    };
    let token = match oidc::logout_token(app, &e.t.client_id, &e.t.user, &e.sid) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("oidc_server: error: signing a logout token: {err}");
            return;
        }
    };
    let sent = app
        .http
        .post(uri.clone())
        .header(reqwest::header::CACHE_CONTROL, "no-store")
        .form(&[("logout_token", token)])
        .send()
        .await;
    match sent {
        Ok(r) => eprintln!(
            "oidc_server: back-channel logout of session {} to {:?}: HTTP {}",
            e.sid,
            e.t.client_id,
            r.status().as_u16()
        ),
        Err(err) => eprintln!(
            "oidc_server: error: back-channel logout of session {} to {:?} at {uri}: {err}",
            e.sid, e.t.client_id
        ),
    }
}
