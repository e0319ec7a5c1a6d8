//! `curfew enforce`: the per-host enforcer.
//!
//! A PAM module only acts at login and logout. The enforcer ends live
//! sessions of this host that are revoked, terminated by an administrator,
//! past `max_duration`, or idle past `inactivity` (tty atime, as `w` reads
//! it), after a one-line warning on the session's terminal `warn_before`
//! ahead of a forced end. Decisions come from `curfew_policy::decide`; this
//! module observes and acts.
//!
//! - [`timeline`]: the decision turned into an action (pure, injected clock)
//! - [`enforcer`]: one pass over the sessions, against a [`enforcer::Host`]
//! - [`procfs`], [`members`]: which processes belong to a session
//! - [`tty`], [`notice`]: terminals, their input times, the notices
//! - [`signal`]: SIGHUP, SIGTERM, SIGKILL through pidfds
//! - [`policy_source`]: reloading, keeping the last good policy
//! - [`linux`]: the real host

mod enforcer;
mod linux;
mod members;
mod notice;
mod policy_source;
mod procfs;
mod signal;
mod timeline;
mod tty;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use curfew_policy::store::{EventStream, StoreEvent};

use crate::context::{self, Context};
use crate::output::escape;
use crate::Outcome;

/// Options of `curfew enforce`.
#[derive(Args, Debug)]
pub struct EnforceArgs {
    /// One pass, then exit (1 if the pass could not look at every session).
    #[arg(long)]
    once: bool,
    /// Time between passes (100ms to 1h).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

fn log(line: &str) {
    eprintln!("curfew enforce: {}", escape(line));
}

/// Runs the enforcer.
pub fn run(ctx: &Context, args: EnforceArgs) -> Result<Outcome> {
    if args.interval < Duration::from_millis(100) || args.interval > Duration::from_secs(3600) {
        bail!(
            "--interval {} is out of range: give 100ms to 1h",
            humantime::format_duration(args.interval)
        );
    }
    let hostname = context::hostname().context("cannot read this host's name")?;
    let path = ctx.policy_path();
    let mut enforcer = enforcer::Enforcer::new(
        linux::LinuxHost::new(signal::Grace::default()),
        policy_source::PolicySource::new(path.clone()),
        hostname.clone(),
        Box::new(|p| ctx.store(p)),
    );
    if !args.once {
        log(&format!(
            "enforcing the PAM sessions of host {hostname} every {} (policy {})",
            humantime::format_duration(args.interval),
            path.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in".into())
        ));
    }
    // A store that pushes its changes (Redis) wakes the loop at once on a
    // revocation or a termination request; others are polled every interval.
    let mut watch: Option<(u64, Box<dyn EventStream>)> = None;
    // Whether the change feed failed and has not come back yet (the stream
    // reconnects by itself and says so with a Resync).
    let mut feed_down = false;
    loop {
        let started = Instant::now();
        let pass = enforcer.pass(ctx.now());
        for e in &pass.events {
            log(&e.to_string());
        }
        if args.once {
            return Ok(if pass.complete {
                Outcome::Success
            } else {
                Outcome::Failure
            });
        }
        let generation = enforcer.store_generation();
        if watch.as_ref().is_none_or(|(g, _)| *g != generation) {
            watch = None;
            feed_down = false;
            if let Some(store) = enforcer.store() {
                match store.watch() {
                    Ok(Some(stream)) => {
                        log(&format!(
                            "the store {} pushes its changes: revocations and terminations act at once",
                            store.location()
                        ));
                        watch = Some((generation, stream));
                    }
                    Ok(None) => {}
                    Err(e) => log(&format!(
                        "cannot subscribe to the store's changes: {e}; polling"
                    )),
                }
            }
        }
        wait(
            watch.as_mut().map(|(_, s)| s),
            started + args.interval,
            &mut feed_down,
        );
    }
}

/// Waits until `until`, or until the store pushes a change that may end a
/// session now. A failure of the feed is logged once, and its return (the
/// stream's Resync after it reconnected) once.
fn wait(stream: Option<&mut Box<dyn EventStream>>, until: Instant, feed_down: &mut bool) {
    let Some(stream) = stream else {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        return;
    };
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match stream.next(left) {
            Ok(Some(StoreEvent::Resync)) => {
                if std::mem::take(feed_down) {
                    log(
                        "the store's change feed is back: revocations and terminations act at once",
                    );
                }
                return;
            }
            Ok(Some(
                StoreEvent::RevocationAdded { .. } | StoreEvent::TerminationRequested { .. },
            )) => return,
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                if !std::mem::replace(feed_down, true) {
                    log(&format!(
                        "the store's change feed is down: {e}; polling until it is back"
                    ));
                }
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                return;
            }
        }
    }
}
