//! The loop of `curfew enforce`: a pass every interval, or at once when the
//! store pushes a revocation or a termination request; one log line per
//! event on stderr (journald under systemd).
//!
//! SIGTERM and SIGINT stop it cleanly: the pass under way is finished, the
//! local API stops accepting, the requests it is answering get
//! [`API_DRAIN`] to finish, its socket is removed, systemd is told
//! `STOPPING=1`, and the run returns (exit status 0).

use curfew_policy::audit::Priority;
use curfew_policy::journal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use curfew_policy::store::{EventStream, StoreEvent};
use curfew_policy::Target;

use crate::enforcer::{Enforcer, Pass, StoreOpener};
use crate::error::Error;
use crate::linux::LinuxHost;
use crate::signal::Grace;
use crate::text::escape;
use curfew_policy::policy_source::PolicySource;

/// The shortest interval between passes.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval between passes.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// How the enforcer runs, as `curfew enforce` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// One pass, then return.
    pub once: bool,
    /// Time between passes ([`MIN_INTERVAL`] to [`MAX_INTERVAL`]).
    pub interval: Duration,
    /// The policy file; `None`: the built-in policy.
    pub policy_path: Option<PathBuf>,
    /// A SQLite file that replaces the policy's store (`--store-path`), for
    /// the local API's store as for the loop's.
    pub store_path: Option<PathBuf>,
}

/// How long the local API's requests under way are given to finish when the
/// daemon stops.
pub const API_DRAIN: Duration = Duration::from_secs(2);

/// How a run ended (a `once` run after its pass, a daemon on SIGTERM or
/// SIGINT: [`Finished::Complete`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The pass looked at every session (`once`), or the daemon was asked
    /// to stop and did.
    Complete,
    /// The pass could not look at every session (no policy, no store, or
    /// the processes could not be read); the log says why.
    Incomplete,
}

/// One log line at `priority`: under systemd the journal files it so
/// (`curfew_policy::journal`); elsewhere it is plain.
fn log(priority: Priority, line: &str) {
    eprintln!(
        "{}curfew enforce: {}",
        journal::prefix(priority),
        escape(line)
    );
}

/// Runs the enforcer on this host: forever, or one pass with
/// [`Options::once`]. `open_store` opens the store a policy names; `clock`
/// is read once per pass.
///
/// # Errors
///
/// [`Error::Interval`] for an interval out of bounds, [`Error::Hostname`]
/// when the host's name cannot be read, [`Error::Signals`] when SIGTERM and
/// SIGINT cannot be taken over. Nothing that happens during a pass is an
/// error of the run: it is logged and the next pass tries again.
pub fn run(
    options: &Options,
    open_store: StoreOpener<'_>,
    clock: &dyn Fn() -> DateTime<Utc>,
) -> Result<Finished, Error> {
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&options.interval) {
        return Err(Error::Interval {
            given: options.interval,
            min: MIN_INTERVAL,
            max: MAX_INTERVAL,
        });
    }
    let hostname = curfew_policy::host::hostname().ok_or_else(|| Error::Hostname {
        detail: "gethostname failed or the name is not UTF-8".into(),
    })?;
    // A panic is caught where it happens (per session record, per pass) and
    // logged once by the enforcer, with its message and place: the default
    // hook would print it again at every pass.
    std::panic::set_hook(Box::new(|info| {
        crate::enforcer::note_panic(info.to_string())
    }));
    // The local API wakes the loop at once after a revocation or a
    // termination made through it (or announced by the CLI with `wake`),
    // and so does a stop signal.
    let (wake_tx, wake_rx) = mpsc::channel();
    // Taken over before any other thread starts, so that every thread
    // inherits the blocked mask and only the watcher receives them.
    let stop = if options.once {
        None
    } else {
        Some(watch_stop_signals(wake_tx.clone())?)
    };
    let path = options.policy_path.clone();
    let mut enforcer = Enforcer::new(
        LinuxHost::new(Grace::default()).with_interval(options.interval),
        PolicySource::new(path.clone()),
        hostname.clone(),
        open_store,
    )
    .with_machine_id(curfew_policy::host::machine_id());
    if !options.once {
        log(
            Priority::Info,
            &format!(
                "enforcing the PAM sessions of host {hostname} every {} (policy {})",
                humantime::format_duration(options.interval),
                path.as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in".into())
            ),
        );
    }
    // The local API, started once the policy says where (see ApiStart).
    let start_api = {
        let (path, hostname, store_path) =
            (path.clone(), hostname.clone(), options.store_path.clone());
        move || {
            let store_path = store_path.clone();
            crate::api::start_for_daemon(
                path.clone(),
                hostname.clone(),
                Arc::new(move |policy: &curfew_policy::Policy| {
                    let mut config = policy.store.clone();
                    if let Some(p) = &store_path {
                        config.backend = curfew_policy::StoreBackend::Sqlite { path: p.clone() };
                    }
                    curfew_policy::store::open(&config)
                }),
                wake_tx.clone(),
                Arc::new(|line: &str| log(Priority::Info, line)) as crate::api::Log,
            )
        }
    };
    let mut api = None;
    // Whether the API waits for a readable policy, and the reason last logged.
    let mut api_waits: Option<String> = None;
    if !options.once {
        api_start(start_api(), &mut api, &mut api_waits);
    }
    // A store that pushes its changes (Redis) wakes the loop at once on a
    // revocation or a termination request; others are polled every interval.
    let mut watch: Option<(u64, Box<dyn EventStream>)> = None;
    // Whether the change feed failed and has not come back yet (the stream
    // reconnects by itself and says so with a Resync).
    let mut feed_down = false;
    let mut last_pass_panic: Option<String> = None;
    // What woke the loop: `Some(targets)` when only the store's change feed
    // did, with what it named (see `Enforcer::pass_woken`).
    let mut named: Option<Vec<Target>> = None;
    let systemd = Systemd::from_env();
    // When the next whole pass is due: only a whole pass moves it, so that
    // woken passes cut short (events for other hosts) cannot put it off.
    let mut next_whole = Instant::now();
    loop {
        if let Some(signal) = stop.as_ref().and_then(|s| stop_requested(s)) {
            log(
                Priority::Info,
                &format!(
                    "stopping on {signal}: the local API stops accepting and its socket is removed"
                ),
            );
            systemd.stopping();
            if let Some(server) = api.take() {
                let unfinished = server.stop(API_DRAIN);
                if unfinished > 0 {
                    log(
                        Priority::Warning,
                        &format!(
                            "stopping: {unfinished} local API request(s) still under way after {}; abandoned",
                            humantime::format_duration(API_DRAIN)
                        ),
                    );
                }
            }
            return Ok(Finished::Complete);
        }
        let started = Instant::now();
        let now = clock();
        let woken = std::mem::take(&mut named);
        let pass = match catch_unwind(AssertUnwindSafe(|| match &woken {
            Some(targets) => enforcer.pass_woken(now, targets),
            None => enforcer.pass(now),
        })) {
            Ok(pass) => pass,
            Err(panic) => {
                // Outside any one record: this pass is lost, the daemon is
                // not; the next pass starts afresh.
                let text = crate::enforcer::panic_text(panic.as_ref());
                if last_pass_panic.as_deref() != Some(text.as_str()) {
                    log(
                        Priority::Err,
                        &format!("internal error in a pass: {text}; trying again at the next pass"),
                    );
                    last_pass_panic = Some(text);
                }
                Pass::default()
            }
        };
        if pass.whole || woken.is_none() {
            next_whole = started + systemd.cap(options.interval);
        }
        for e in &pass.events {
            log(e.priority(), &e.to_string());
        }
        if options.once {
            return Ok(if pass.complete {
                Finished::Complete
            } else {
                Finished::Incomplete
            });
        }
        if api_waits.is_some() {
            api_start(start_api(), &mut api, &mut api_waits);
        }
        // Ready once the first pass is done (the sessions are being
        // enforced), and alive after every pass: a pass that hangs stops
        // the pings and systemd's watchdog restarts the daemon.
        systemd.pass_done();
        let generation = enforcer.store_generation();
        if watch.as_ref().is_none_or(|(g, _)| *g != generation) {
            watch = None;
            feed_down = false;
            if let Some(store) = enforcer.store() {
                match store.watch() {
                    Ok(Some(stream)) => {
                        log(
                            Priority::Info,
                            &format!(
                            "the store {} pushes its changes: revocations and terminations act at once",
                            store.location()
                        ));
                        watch = Some((generation, stream));
                    }
                    Ok(None) => {}
                    Err(e) => log(
                        Priority::Warning,
                        &format!("cannot subscribe to the store's changes: {e}; polling"),
                    ),
                }
            }
        }
        named = wait(
            watch.as_mut().map(|(_, s)| s),
            &wake_rx,
            next_whole,
            &mut feed_down,
        );
    }
}

/// Keeps what starting the local API gave: the server, or why it waits for
/// the policy (logged when the reason is new, and once when it ends).
fn api_start(
    started: crate::api::ApiStart,
    api: &mut Option<crate::api::Server>,
    waits: &mut Option<String>,
) {
    use crate::api::ApiStart;
    match started {
        ApiStart::Serving(server) => {
            *api = Some(server);
            *waits = None;
        }
        ApiStart::Off => *waits = None,
        ApiStart::WaitingForPolicy { reason } => {
            if waits.as_deref() != Some(reason.as_str()) {
                log(
                    Priority::Err,
                    &format!(
                        "local API not served: cannot read the policy ({reason}); \
                         it starts once the policy reads, without a restart"
                    ),
                );
            }
            *waits = Some(reason);
        }
    }
}

/// The service manager, when it runs us as `Type=notify` (`$NOTIFY_SOCKET`)
/// and with `WatchdogSec=` (`$WATCHDOG_USEC`), through the `sd-notify` crate.
/// Without systemd every call does nothing.
struct Systemd {
    ready_sent: std::cell::Cell<bool>,
    /// Half the watchdog period: the longest wait between two pings.
    ping_every: Option<Duration>,
}

impl Systemd {
    fn from_env() -> Systemd {
        let mut usec = 0u64;
        let ping_every = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| Duration::from_micros(usec) / 2)
            .filter(|d| !d.is_zero());
        Systemd {
            ready_sent: std::cell::Cell::new(false),
            ping_every,
        }
    }

    fn stopping(&self) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }

    fn pass_done(&self) {
        if !self.ready_sent.replace(true) {
            if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
                log(
                    Priority::Warning,
                    &format!("cannot tell systemd the enforcer is ready: {e}"),
                );
            }
        }
        if self.ping_every.is_some() {
            // A lost ping is retried after the next pass; the watchdog only
            // fires after several are missed.
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }

    /// The wait before the next pass, never longer than the ping period.
    fn cap(&self, interval: Duration) -> Duration {
        self.ping_every.map_or(interval, |p| interval.min(p))
    }
}

/// Blocks SIGTERM and SIGINT in this thread (and so in every thread it
/// starts later) and starts a thread that waits for them: it notes which
/// one came and wakes the loop.
fn watch_stop_signals(wake: Sender<()>) -> Result<Arc<AtomicI32>, Error> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(|e| Error::Signals {
        detail: format!("cannot block SIGTERM and SIGINT: {e}"),
    })?;
    let stop = Arc::new(AtomicI32::new(0));
    let noted = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("curfew-signals".into())
        .spawn(move || loop {
            if let Ok(signal) = set.wait() {
                noted.store(signal as i32, Ordering::SeqCst);
                let _ = wake.send(());
            }
        })
        .map_err(|e| Error::Signals {
            detail: format!("cannot start the signal thread: {e}"),
        })?;
    Ok(stop)
}

/// The stop signal that came, by name, if one did.
fn stop_requested(stop: &AtomicI32) -> Option<&'static str> {
    match stop.load(Ordering::SeqCst) {
        0 => None,
        n if n == nix::sys::signal::Signal::SIGINT as i32 => Some("SIGINT"),
        _ => Some("SIGTERM"),
    }
}

/// How long a wait on the store's feed lasts before the local API's wake
/// channel is looked at again.
const FEED_SLICE: Duration = Duration::from_millis(50);

/// Waits until `until`, or until the store pushes a change that may end a
/// session now, or the local API says one may. A failure of the feed is
/// logged once, and its return (the stream's Resync after it reconnected)
/// once. Returns what the store's feed named when only the feed woke the
/// loop (the targets of the revocations added, the sessions whose
/// termination was requested, and any more of those already waiting);
/// `None` for a whole pass (the interval is over, the local API woke it,
/// the feed resynchronised or failed).
fn wait(
    stream: Option<&mut Box<dyn EventStream>>,
    wake: &Receiver<()>,
    until: Instant,
    feed_down: &mut bool,
) -> Option<Vec<Target>> {
    let woken = || {
        let mut any = false;
        while wake.try_recv().is_ok() {
            any = true;
        }
        any
    };
    let Some(stream) = stream else {
        let left = until.saturating_duration_since(Instant::now());
        if wake.recv_timeout(left).is_ok() {
            woken();
        } else if wake.try_recv().is_err() {
            // Disconnected (no API): sleep out the interval.
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        return None;
    };
    loop {
        if woken() {
            return None;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match stream.next(left.min(FEED_SLICE)) {
            Ok(Some(StoreEvent::Resync)) => {
                if std::mem::take(feed_down) {
                    log(
                        Priority::Info,
                        "the store's change feed is back: revocations and terminations act at once",
                    );
                }
                return None;
            }
            Ok(Some(
                event @ (StoreEvent::RevocationAdded { .. }
                | StoreEvent::TerminationRequested { .. }),
            )) => {
                let mut named = Vec::new();
                let mut next = Some(event);
                // What else is waiting already goes into the same pass.
                while let Some(event) = next.take() {
                    match event {
                        StoreEvent::RevocationAdded { target, .. } => named.push(target),
                        StoreEvent::TerminationRequested { session } => {
                            named.push(Target::Session(session))
                        }
                        StoreEvent::Resync => return None,
                        _ => {}
                    }
                    match stream.next(Duration::ZERO) {
                        Ok(e) => next = e,
                        Err(e) => {
                            if !std::mem::replace(feed_down, true) {
                                log(
                                    Priority::Warning,
                                    &format!("the store's change feed is down: {e}; polling until it is back"),
                                );
                            }
                            return None;
                        }
                    }
                }
                return if woken() { None } else { Some(named) };
            }
            Ok(Some(_)) | Ok(None) => {}
            Err(e) => {
                if !std::mem::replace(feed_down, true) {
                    log(
                        Priority::Warning,
                        &format!("the store's change feed is down: {e}; polling until it is back"),
                    );
                }
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curfew_policy::EndReason;
    use std::collections::VecDeque;

    /// A change feed that hands out the events it was given, then nothing.
    struct Feed(VecDeque<StoreEvent>);

    impl EventStream for Feed {
        fn next(
            &mut self,
            _timeout: Duration,
        ) -> Result<Option<StoreEvent>, curfew_policy::StoreError> {
            Ok(self.0.pop_front())
        }
    }

    fn woken_by(events: Vec<StoreEvent>, api: bool) -> Option<Vec<Target>> {
        let mut stream: Box<dyn EventStream> = Box::new(Feed(events.into()));
        let (tx, rx) = mpsc::channel();
        if api {
            tx.send(()).unwrap();
        }
        let mut down = false;
        wait(
            Some(&mut stream),
            &rx,
            Instant::now() + Duration::from_millis(200),
            &mut down,
        )
    }

    /// Issue 17: a wake-up by the change feed says what it named (every
    /// event already waiting goes into the same pass); anything else asks
    /// for a whole pass.
    #[test]
    fn the_feed_names_what_woke_the_loop() {
        let revoked = |target| StoreEvent::RevocationAdded {
            id: "r".into(),
            target,
        };
        assert_eq!(
            woken_by(
                vec![
                    StoreEvent::SessionEnded {
                        session: "a".into(),
                        reason: EndReason::Logout
                    },
                    revoked(Target::User("alice".into())),
                    StoreEvent::TerminationRequested {
                        session: "s1".into()
                    },
                    revoked(Target::All),
                ],
                false
            ),
            Some(vec![
                Target::User("alice".into()),
                Target::Session("s1".into()),
                Target::All
            ])
        );
        // A resynchronisation in the same batch: re-read everything.
        assert_eq!(
            woken_by(
                vec![revoked(Target::User("bob".into())), StoreEvent::Resync],
                false
            ),
            None
        );
        // The local API woke it too, or only the interval ran out.
        assert_eq!(
            woken_by(vec![revoked(Target::User("bob".into()))], true),
            None
        );
        assert_eq!(woken_by(vec![], false), None);
    }
}
