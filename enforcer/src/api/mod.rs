//! The local API: self-service and delegated administration on this host,
//! served by the enforcer on a unix socket (default
//! `/run/curfew/curfew.sock`, the policy's `api.socket`).
//!
//! Each connection is authenticated by the kernel (SO_PEERCRED: uid and
//! pid, see [`peer`]) and by the caller's login session (the audit session
//! id of the pid), and each call is authorized in [`calls`]: an ordinary
//! user acts on their own sessions and token lifetime only; root and the
//! policy's `admin` section may do what root can through the CLI.
//!
//! The wire format ([`protocol`]) is JSON lines, version 1, documented in
//! `docs/api.md`. The server runs on its own threads (one accepting, one
//! per connection, at most [`Limits::max_connections`]), so the
//! enforcement loop never waits on a client; a call that may end a session
//! wakes the loop through a channel at once. Requests are bounded in size,
//! callers in rate and in connections (with slots that only root and
//! administrators may take, so that ordinary users cannot lock them out),
//! each request in time as a whole (waiting for it, reading it and writing
//! its answer) and each connection in time too. Every call, refusal and
//! malformed request is written to the audit trail with the real caller
//! (login uid and name, effective uid, pid); connections turned away as busy
//! are logged and audited at most once a second.

pub mod calls;
pub mod client;
pub mod peer;
pub mod protocol;
pub mod socket;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use curfew_policy::host;
use curfew_policy::policy_source::PolicySource;
use curfew_policy::{ApiCaller, AuditEvent, AuditSink, Policy, Store, StoreConfig, StoreError};

use self::calls::{Caller, Env, Handled};
use self::peer::PeerCred;
use self::protocol::{ApiError, Code, Request, Response, MAX_REQUEST_BYTES};
use self::socket::BoundSocket;

/// The bounds that keep the daemon working whatever its clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once, all callers together.
    pub max_connections: usize,
    /// Of those, how many only root and administrators may take: ordinary
    /// users together hold at most `max_connections - reserved_for_admins`.
    pub reserved_for_admins: usize,
    /// Connections served at once for one uid.
    pub max_connections_per_uid: usize,
    /// Requests on one connection before it is closed.
    pub max_requests_per_connection: usize,
    /// How long one request may take as a whole: from the moment the
    /// server waits for it (an idle connection is closed after this),
    /// through reading it, to its answer written.
    pub request_timeout: Duration,
    /// How long one connection may stay open, whatever it does.
    pub connection_timeout: Duration,
    /// Requests a uid may make at once (the bucket's size).
    pub burst: u32,
    /// Requests a uid may make per second, on average.
    pub per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            reserved_for_admins: 8,
            max_connections_per_uid: 4,
            max_requests_per_connection: 32,
            request_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
            burst: 20,
            per_second: 10,
        }
    }
}

/// Opens the store a policy names, from any thread.
pub type SharedStoreOpener =
    Arc<dyn Fn(&Policy) -> Result<Box<dyn Store>, StoreError> + Send + Sync>;

/// Writes one log line (stderr, journald under systemd).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// What the server needs.
pub struct Config {
    /// The policy file (`None`: the built-in policy).
    pub policy_path: Option<PathBuf>,
    /// This host's name, as PAM sessions are recorded under it.
    pub hostname: String,
    /// Opens the store.
    pub open_store: SharedStoreOpener,
    /// The bounds.
    pub limits: Limits,
    /// Where log lines go.
    pub log: Log,
}

/// A token bucket per uid.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    refusal_audited: Option<Instant>,
}

/// Connections turned away as busy since the last line about them.
#[derive(Debug, Default)]
struct BusyLog {
    last: Option<Instant>,
    suppressed: u64,
}

struct Shared {
    config: Config,
    policy: Mutex<PolicySource>,
    store: Mutex<Option<(StoreConfig, Arc<dyn Store>)>>,
    buckets: Mutex<HashMap<u32, Bucket>>,
    /// Connections being served, per uid.
    connections: Mutex<HashMap<u32, usize>>,
    /// The streams being served (by a number of their own), so that a stop
    /// can end the reads waiting on them.
    streams: Mutex<HashMap<u64, UnixStream>>,
    next_stream: AtomicU64,
    busy: Mutex<BusyLog>,
    stopping: AtomicBool,
    wake: Mutex<Sender<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running server; the socket is removed when it is dropped.
pub struct Server {
    socket: Arc<BoundSocket>,
    shared: Arc<Shared>,
}

impl Server {
    /// The socket's path.
    pub fn path(&self) -> &std::path::Path {
        self.socket.path()
    }

    /// Stops serving: no new connection is accepted, connections waiting
    /// for a request are closed, and the requests being answered get up to
    /// `drain` to finish; then the socket is removed. Returns how many
    /// connections were still being served when the time was up
    /// (abandoned: their threads end on their own deadlines).
    pub fn stop(self, drain: Duration) -> usize {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accepting thread (accept(2) on a listener shut down
        // fails with EINVAL) and ends the reads of idle connections.
        let _ = rustix::net::shutdown(&self.socket.listener, rustix::net::Shutdown::Both);
        for stream in lock(&self.shared.streams).values() {
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
        let until = Instant::now() + drain;
        loop {
            let open: usize = lock(&self.shared.connections).values().sum();
            if open == 0 || Instant::now() >= until {
                return open;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // (The socket file is removed when `self` drops here.)
    }
}

/// The clock of the API threads (an entry point: each call reads it once).
#[allow(clippy::disallowed_methods)]
fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Binds the socket and starts serving on a thread of its own. `wake` gets
/// a message whenever a call may have to end a session now.
///
/// # Errors
///
/// When the socket cannot be made safely (see [`socket::SocketError`]).
pub fn start(
    path: &std::path::Path,
    config: Config,
    wake: Sender<()>,
) -> Result<Server, socket::SocketError> {
    let bound = Arc::new(socket::bind(path)?);
    let shared = Arc::new(Shared {
        policy: Mutex::new(PolicySource::new(config.policy_path.clone())),
        config,
        store: Mutex::new(None),
        buckets: Mutex::new(HashMap::new()),
        connections: Mutex::new(HashMap::new()),
        streams: Mutex::new(HashMap::new()),
        next_stream: AtomicU64::new(0),
        busy: Mutex::new(BusyLog::default()),
        stopping: AtomicBool::new(false),
        wake: Mutex::new(wake),
    });
    let listener = bound
        .listener
        .try_clone()
        .map_err(|source| socket::SocketError::Io {
            path: path.to_owned(),
            what: "cannot share the listener",
            source,
        })?;
    let accepting = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("curfew-api".into())
        .spawn(move || accept_loop(&accepting, &listener))
        .map_err(|source| socket::SocketError::Io {
            path: path.to_owned(),
            what: "cannot start the API thread",
            source,
        })?;
    Ok(Server {
        socket: bound,
        shared,
    })
}

fn accept_loop(shared: &Arc<Shared>, listener: &std::os::unix::net::UnixListener) {
    let mut last_error: Option<String> = None;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: say it once, back off, go on.
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    (shared.config.log)(&format!("local API: cannot accept a connection: {e}"));
                    last_error = Some(text);
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        last_error = None;
        let opened = Instant::now();
        let cred = match peer::peer_cred(&stream) {
            Ok(c) => c,
            Err(e) => {
                (shared.config.log)(&format!("local API: no peer credentials: {e}"));
                continue;
            }
        };
        if let Err(why) = admit(shared, cred) {
            turn_away(shared, &stream, cred, &why);
            continue;
        }
        let id = shared.next_stream.fetch_add(1, Ordering::Relaxed);
        if let Ok(copy) = stream.try_clone() {
            lock(&shared.streams).insert(id, copy);
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("curfew-api-conn".into())
            .spawn(move || {
                serve(&worker, &stream, cred, opened);
                release(&worker, cred.uid, id);
            });
        if spawned.is_err() {
            release(shared, cred.uid, id);
        }
    }
}

/// Frees the slot of a connection that ended.
fn release(shared: &Shared, uid: u32, id: u64) {
    lock(&shared.streams).remove(&id);
    let mut conns = lock(&shared.connections);
    if let Some(n) = conns.get_mut(&uid) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            conns.remove(&uid);
        }
    }
}

/// Takes a slot for a new connection of `cred`: one of the uid's own, and
/// one overall, the last [`Limits::reserved_for_admins`] of which only root
/// and administrators may take. `Err` says why not.
fn admit(shared: &Shared, cred: PeerCred) -> Result<(), String> {
    let limits = shared.config.limits;
    let (total, mine) = {
        let conns = lock(&shared.connections);
        (
            conns.values().sum::<usize>(),
            conns.get(&cred.uid).copied().unwrap_or(0),
        )
    };
    if mine >= limits.max_connections_per_uid {
        return Err(format!(
            "uid {} has {mine} connections open (at most {})",
            cred.uid, limits.max_connections_per_uid
        ));
    }
    if total >= limits.max_connections {
        return Err(format!(
            "{total} connections open (at most {})",
            limits.max_connections
        ));
    }
    let ordinary = limits
        .max_connections
        .saturating_sub(limits.reserved_for_admins);
    // Who is an administrator is asked only when it matters (NSS may be
    // slow): when the slots left are the reserved ones.
    if total >= ordinary && !is_admin_uid(shared, cred.uid) {
        return Err(format!(
            "{total} connections open; the last {} are kept for administrators",
            limits.reserved_for_admins
        ));
    }
    let mut conns = lock(&shared.connections);
    // Counted again under the lock: another thread may have released one
    // meanwhile (never taken one: only this thread takes).
    *conns.entry(cred.uid).or_insert(0) += 1;
    Ok(())
}

/// Whether `uid` is root or an administrator by the policy in force.
fn is_admin_uid(shared: &Shared, uid: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let policy = {
        let mut source = lock(&shared.policy);
        let _ = source.refresh(now());
        source.current().cloned()
    };
    let Some(policy) = policy else {
        return false;
    };
    let Ok(account) = host::account_of_uid(uid) else {
        return false;
    };
    let groups = host::groups(&account).unwrap_or_default();
    policy.admin.admits(&account.name, &groups)
}

/// Answers `busy` and closes a connection that got no slot, without
/// waiting on the client (the accepting thread must not). Logged and
/// audited at most once a second, with the number turned away since.
fn turn_away(shared: &Shared, stream: &UnixStream, cred: PeerCred, why: &str) {
    let e = ApiError::new(
        Code::Busy,
        "too many connections at once; try again in a moment",
    );
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = (&*stream).write_all(Response::of(Err(e.clone())).to_line().as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let now_i = Instant::now();
    let suppressed = {
        let mut busy = lock(&shared.busy);
        if busy
            .last
            .is_some_and(|t| now_i.duration_since(t) < Duration::from_secs(1))
        {
            busy.suppressed += 1;
            return;
        }
        busy.last = Some(now_i);
        std::mem::take(&mut busy.suppressed)
    };
    (shared.config.log)(&format!(
        "local API busy: turned away a connection of uid {} (pid {}): {why}{}",
        cred.uid,
        cred.pid,
        if suppressed > 0 {
            format!("; {suppressed} more turned away since the last such line")
        } else {
            String::new()
        }
    ));
    audit_refusal(shared, cred, None, None, &e, now());
}

/// Takes a token from the uid's bucket. `Err(audit)` when empty; `audit`
/// says whether this refusal is the first in a second (the rest are not
/// written, so a flood cannot flood the trail).
fn take_token(shared: &Shared, uid: u32) -> Result<(), bool> {
    let limits = shared.config.limits;
    let now = Instant::now();
    let mut buckets = lock(&shared.buckets);
    if buckets.len() > 4096 {
        buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
    }
    let b = buckets.entry(uid).or_insert(Bucket {
        tokens: f64::from(limits.burst),
        at: now,
        refusal_audited: None,
    });
    let elapsed = now.duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * f64::from(limits.per_second)).min(f64::from(limits.burst));
    b.at = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        return Ok(());
    }
    let audit = b
        .refusal_audited
        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
    if audit {
        b.refusal_audited = Some(now);
    }
    Err(audit)
}

/// The caller of a connection, as of this call's policy.
fn identify(cred: PeerCred, policy: &Policy) -> Result<Caller, ApiError> {
    let facts = peer::proc_facts(cred);
    let account = host::account_of_uid(cred.uid).map_err(|e| {
        ApiError::new(
            Code::Forbidden,
            format!(
                "your uid {} has no account here ({e}); ask an administrator",
                cred.uid
            ),
        )
    })?;
    let groups = host::groups(&account).unwrap_or_default();
    let admin = cred.uid == 0 || policy.admin.admits(&account.name, &groups);
    let login_user = facts
        .login_uid
        .and_then(|u| host::account_of_uid(u).ok())
        .map(|a| a.name);
    Ok(Caller {
        uid: cred.uid,
        user: account.name,
        pid: (cred.pid != 0).then_some(cred.pid),
        login_uid: facts.login_uid,
        login_user,
        audit_session: facts.audit_session,
        admin,
    })
}

/// The policy in force (reloaded if its file changed) and the store.
fn resources(shared: &Shared, at: DateTime<Utc>) -> Result<(Policy, Arc<dyn Store>), ApiError> {
    let policy = {
        let mut source = lock(&shared.policy);
        if let Some(e) = source.refresh(at) {
            (shared.config.log)(&format!("local API: {e}"));
        }
        source.current().cloned()
    };
    let policy = policy.ok_or_else(|| {
        ApiError::new(
            Code::Unavailable,
            "the daemon has no usable policy; ask an administrator",
        )
    })?;
    let mut cached = lock(&shared.store);
    if let Some((c, s)) = cached.as_ref() {
        if *c == policy.store {
            return Ok((policy, Arc::clone(s)));
        }
    }
    let store: Arc<dyn Store> = Arc::from((shared.config.open_store)(&policy).map_err(|e| {
        ApiError::new(
            Code::Unavailable,
            format!("the store cannot be opened ({e}); ask an administrator"),
        )
    })?);
    *cached = Some((policy.store.clone(), Arc::clone(&store)));
    Ok((policy, store))
}

/// A stream whose reads end at a deadline, however the bytes trickle in.
struct Deadlined<'s> {
    stream: &'s UnixStream,
    until: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        (&*self.stream).read(buf)
    }
}

/// Writes `line` before `until` (at least 100 ms: an answer that took long
/// to make still gets its chance to leave).
fn write_before(stream: &UnixStream, line: &str, until: Instant) -> std::io::Result<()> {
    let left = until
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    stream.set_write_timeout(Some(left))?;
    (&*stream).write_all(line.as_bytes())
}

fn serve(shared: &Shared, stream: &UnixStream, cred: PeerCred, opened: Instant) {
    let limits = shared.config.limits;
    let closes_at = opened + limits.connection_timeout;
    let mut reader = BufReader::new(Deadlined {
        stream,
        until: closes_at,
    });
    for _ in 0..limits.max_requests_per_connection {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        // The whole request, from now: waiting for it, reading it, and
        // writing its answer.
        let until = (Instant::now() + limits.request_timeout).min(closes_at);
        reader.get_mut().until = until;
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_REQUEST_BYTES as u64 + 2)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        if line.len() > MAX_REQUEST_BYTES {
            let e = ApiError::new(
                Code::TooLarge,
                format!("the request is longer than {MAX_REQUEST_BYTES} bytes"),
            );
            refuse_and_close(shared, stream, cred, None, &e, until);
            return;
        }
        if !complete {
            // Only a line ending in a newline is a request: a line cut
            // short (the client closed, its deadline passed, the daemon is
            // stopping) is dropped unanswered, never run.
            return;
        }
        let at = now();
        match take_token(shared, cred.uid) {
            Ok(()) => {}
            Err(audit) => {
                let e = ApiError::new(
                    Code::RateLimited,
                    "too many requests; try again in a second",
                );
                if audit {
                    audit_refusal(shared, cred, None, None, &e, at);
                }
                if write_before(stream, &Response::of(Err(e)).to_line(), until).is_err() {
                    return;
                }
                continue;
            }
        }
        let request = match protocol::parse(&line) {
            Ok(r) => r,
            Err(e) => {
                refuse_and_close(shared, stream, cred, None, &e, until);
                return;
            }
        };
        let (answer, wake) = answer(shared, cred, &request, at);
        let written = write_before(stream, &answer.to_line(), until);
        // The answer first: a sign-out may end the very session the
        // client runs in, and it should read its answer before.
        if wake {
            let _ = lock(&shared.wake).send(());
        }
        if written.is_err() {
            return;
        }
    }
}

/// Runs one parsed request and writes its audit lines; says whether the
/// enforcement loop should be woken.
fn answer(
    shared: &Shared,
    cred: PeerCred,
    request: &Request,
    at: DateTime<Utc>,
) -> (Response, bool) {
    let (policy, store) = match resources(shared, at) {
        Ok(r) => r,
        Err(e) => {
            audit_refusal(shared, cred, None, Some(request.call()), &e, at);
            return (Response::of(Err(e)), false);
        }
    };
    let caller = match identify(cred, &policy) {
        Ok(c) => c,
        Err(e) => {
            audit_refusal(shared, cred, Some(&policy), Some(request.call()), &e, at);
            return (Response::of(Err(e)), false);
        }
    };
    let env = Env {
        store: store.as_ref(),
        policy: &policy,
        host: Some(&shared.config.hostname),
        resolve: &host::resolve,
        now: at,
    };
    let handled: Handled = calls::handle(&env, &caller, request);
    let actor = caller.actor();
    match &handled.result {
        Err(e) => record(
            shared,
            &policy,
            &AuditEvent::ApiRefused {
                actor,
                caller: caller.audit(),
                call: Some(request.call().to_owned()),
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
            },
            at,
        ),
        Ok(_) => {
            record(
                shared,
                &policy,
                &AuditEvent::ApiCall {
                    actor,
                    caller: caller.audit(),
                    call: request.call().to_owned(),
                },
                at,
            );
            for event in &handled.notes {
                record(shared, &policy, event, at);
            }
        }
    }
    (Response::of(handled.result), handled.wake)
}

/// The most a refused connection is drained of before it is closed.
const DRAIN_BYTES: u64 = 64 * 1024;

/// Writes a refusal, then closes the connection after a short drain (so
/// the client reads the answer rather than a reset). The drain ends at the
/// request's deadline `until` (or after [`DRAIN_BYTES`]), however slowly the
/// client trickles bytes: a refused client holds its slot no longer than
/// any other request.
fn refuse_and_close(
    shared: &Shared,
    stream: &UnixStream,
    cred: PeerCred,
    call: Option<&str>,
    e: &ApiError,
    until: Instant,
) {
    audit_refusal(shared, cred, None, call, e, now());
    let _ = write_before(stream, &Response::of(Err(e.clone())).to_line(), until);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut drain = Deadlined { stream, until }.take(DRAIN_BYTES);
    let _ = std::io::copy(&mut drain, &mut std::io::sink());
}

/// Audits a refusal that happened before the caller could be fully
/// identified (malformed, oversized, rate-limited, busy).
fn audit_refusal(
    shared: &Shared,
    cred: PeerCred,
    policy: Option<&Policy>,
    call: Option<&str>,
    e: &ApiError,
    at: DateTime<Utc>,
) {
    let facts = peer::proc_facts(cred);
    let user = host::account_of_uid(cred.uid)
        .map(|a| a.name)
        .unwrap_or_else(|_| format!("uid {}", cred.uid));
    let login_user = facts
        .login_uid
        .and_then(|u| host::account_of_uid(u).ok())
        .map(|a| a.name);
    let actor = match &login_user {
        Some(l) if *l != user => format!("{l} (as {user})"),
        _ => user.clone(),
    };
    let event = AuditEvent::ApiRefused {
        actor: actor.clone(),
        caller: ApiCaller {
            uid: cred.uid,
            user,
            pid: (cred.pid != 0).then_some(cred.pid),
            login_uid: facts.login_uid,
            login_user,
            audit_session: facts.audit_session,
            admin: None,
        },
        call: call.map(str::to_owned),
        code: e.code.as_str().to_owned(),
        message: e.message.clone(),
    };
    let fallback;
    let policy = match policy {
        Some(p) => p,
        None => {
            fallback = {
                let mut source = lock(&shared.policy);
                if let Some(e) = source.refresh(at) {
                    (shared.config.log)(&format!("local API: {e}"));
                }
                source.current().cloned()
            };
            match &fallback {
                Some(p) => p,
                None => {
                    (shared.config.log)(&format!("local API: refused {actor}: {}", e.message));
                    return;
                }
            }
        }
    };
    record(shared, policy, &event, at);
}

fn record(shared: &Shared, policy: &Policy, event: &AuditEvent, at: DateTime<Utc>) {
    let sink = AuditSink::new(
        &policy.audit,
        "curfew-enforce",
        Some(shared.config.hostname.clone()),
    );
    if let Err(e) = sink.record(at, event) {
        (shared.config.log)(&format!(
            "local API: the {} is not in the audit trail: {e}",
            event.name()
        ));
    }
}

/// What [`start_for_daemon`] gave.
pub enum ApiStart {
    /// The API is served.
    Serving(Server),
    /// The API is off: disabled by the policy (`api.enabled: false`) or
    /// its socket could not be made (logged). Not tried again until the
    /// daemon restarts.
    Off,
    /// The policy could not be read, so neither whether the API is enabled
    /// nor its socket is known: nothing is served (never a guessed default
    /// socket, which may be another daemon's). The daemon tries again after
    /// each pass and serves the API once the policy reads.
    WaitingForPolicy {
        /// Why the policy could not be read (file, line, field).
        reason: String,
    },
}

/// Starts the API for `curfew enforce`, as the policy's `api` section says;
/// logs what it did. See [`ApiStart`] for the three outcomes; the enforcer
/// goes on enforcing whichever it is.
pub fn start_for_daemon(
    policy_path: Option<PathBuf>,
    hostname: String,
    open_store: SharedStoreOpener,
    wake: Sender<()>,
    log: Log,
) -> ApiStart {
    let api = match &policy_path {
        Some(p) => match Policy::load_secure(p) {
            Ok(policy) => policy.api,
            Err(e) => {
                return ApiStart::WaitingForPolicy {
                    reason: e.to_string(),
                }
            }
        },
        None => curfew_policy::ApiConfig::default(),
    };
    if !api.enabled {
        log("local API disabled by the policy (api.enabled: false)");
        return ApiStart::Off;
    }
    let config = Config {
        policy_path,
        hostname,
        open_store,
        limits: Limits::default(),
        log: Arc::clone(&log),
    };
    match start(&api.socket, config, wake) {
        Ok(s) => {
            log(&format!(
                "serving the local API on {} (self-service; admins per the policy's admin section)",
                s.path().display()
            ));
            ApiStart::Serving(s)
        }
        Err(e) => {
            log(&format!(
                "cannot serve the local API: {e}; enforcement goes on without it"
            ));
            ApiStart::Off
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curfew_policy::store::MemoryStore;
    use serde_json::Value;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::mpsc;

    struct Running {
        dir: tempfile::TempDir,
        socket: PathBuf,
        _server: Server,
        wake: mpsc::Receiver<()>,
    }

    fn running(limits: Limits) -> Running {
        running_with_log(limits, Arc::new(|_| {}))
    }

    fn running_with_log(limits: Limits, log: Log) -> Running {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "version: 1\naudit: {{ syslog: false, file: {:?} }}\n",
                dir.path().join("audit.jsonl")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
        let socket = dir.path().join("api.sock");
        let (tx, rx) = mpsc::channel();
        let store = Arc::new(MemoryStore::new());
        let server = start(
            &socket,
            Config {
                policy_path: Some(policy),
                hostname: "here".into(),
                open_store: Arc::new(move |_| {
                    Ok(Box::new(SharedMemory(Arc::clone(&store))) as Box<dyn Store>)
                }),
                limits,
                log,
            },
            tx,
        )
        .unwrap();
        Running {
            dir,
            socket,
            _server: server,
            wake: rx,
        }
    }

    /// An unreadable policy serves nothing (not a guessed default socket);
    /// once it reads, the API is served on its `api.socket`, and a policy
    /// that disables the API turns it off.
    #[test]
    fn the_daemon_serves_the_api_only_where_a_readable_policy_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let policy = dir.path().join("policy.yaml");
        let socket = dir.path().join("api.sock");
        let start = |text: &str| {
            std::fs::write(&policy, text).unwrap();
            std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
            let (tx, _rx) = mpsc::channel();
            start_for_daemon(
                Some(policy.clone()),
                "here".into(),
                Arc::new(|_| Ok(Box::new(MemoryStore::new()) as Box<dyn Store>)),
                tx,
                Arc::new(|_| {}),
            )
        };
        match start("version: 1\nsession: { max_duration: 25h }\n") {
            ApiStart::WaitingForPolicy { reason } => {
                assert!(reason.contains("max_duration"), "{reason}");
            }
            _ => panic!("an unreadable policy must not serve the API"),
        }
        assert!(!socket.exists());
        let readable =
            format!("version: 1\napi: {{ socket: {socket:?} }}\naudit: {{ syslog: false }}\n");
        match start(&readable) {
            ApiStart::Serving(server) => {
                assert_eq!(server.path(), socket.as_path());
                assert!(socket.exists());
                server.stop(Duration::from_secs(1));
            }
            _ => panic!("a readable policy serves the API on its socket"),
        }
        assert!(matches!(
            start("version: 1\napi: { enabled: false }\n"),
            ApiStart::Off
        ));
    }

    /// One memory store behind every open.
    struct SharedMemory(Arc<MemoryStore>);
    macro_rules! forward {
        ($($name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {
            $(fn $name(&self, $($a: $t),*) -> $r { self.0.$name($($a),*) })*
        };
    }
    impl Store for SharedMemory {
        forward! {
            location() -> String;
            create_session(s: &curfew_policy::Session) -> Result<(), StoreError>;
            session(id: &str) -> Result<Option<curfew_policy::Session>, StoreError>;
            list_sessions(f: &curfew_policy::SessionFilter) -> Result<Vec<curfew_policy::Session>, StoreError>;
            touch_session(id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
            request_termination(id: &str, at: DateTime<Utc>, by: Option<&str>) -> Result<bool, StoreError>;
            end_session(id: &str, at: DateTime<Utc>, r: curfew_policy::EndReason) -> Result<bool, StoreError>;
            add_revocation(r: &curfew_policy::Revocation) -> Result<(), StoreError>;
            remove_revocation(id: &str) -> Result<Option<curfew_policy::Revocation>, StoreError>;
            lift_revocation(id: &str, at: DateTime<Utc>) -> Result<Option<curfew_policy::store::Lift>, StoreError>;
            list_revocations() -> Result<Vec<curfew_policy::Revocation>, StoreError>;
            revocations_for(k: &curfew_policy::RevocationKeys<'_>) -> Result<curfew_policy::RevocationSet, StoreError>;
            set_timeout_preference(u: &str, t: Option<Duration>) -> Result<(), StoreError>;
            timeout_preference(u: &str) -> Result<Option<Duration>, StoreError>;
        }
    }

    /// Sends raw bytes, returns every answer line until the server closes.
    fn exchange(socket: &std::path::Path, bytes: &[u8]) -> Vec<Response> {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = (&stream).write_all(bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        BufReader::new(&stream)
            .lines()
            .map_while(Result::ok)
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }

    fn audit_lines(r: &Running) -> Vec<Value> {
        std::fs::read_to_string(r.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn code(r: &Response) -> Option<Code> {
        r.error.as_ref().map(|e| e.code)
    }

    #[test]
    fn malformed_and_oversized_requests_are_refused_audited_and_the_server_goes_on() {
        let r = running(Limits::default());
        let me = rustix::process::geteuid().as_raw();

        let answers = exchange(&r.socket, b"not json\n{\"v\":1,\"call\":\"whoami\"}\n");
        assert_eq!(answers.len(), 1, "the connection closes after garbage");
        assert_eq!(code(&answers[0]), Some(Code::BadRequest));

        let mut big = vec![b'x'; MAX_REQUEST_BYTES + 100];
        big.push(b'\n');
        let answers = exchange(&r.socket, &big);
        assert_eq!(code(&answers[0]), Some(Code::TooLarge));

        let answers = exchange(&r.socket, b"{\"v\":9,\"call\":\"whoami\"}\n");
        assert_eq!(code(&answers[0]), Some(Code::UnsupportedVersion));

        // Still serving, and it knows who we are.
        let answers = exchange(&r.socket, b"{\"v\":1,\"call\":\"whoami\"}\n");
        let who = answers[0].result.clone().unwrap();
        assert_eq!(who["uid"], me);
        assert_eq!(who["pid"], std::process::id());

        let audit = audit_lines(&r);
        let refused: Vec<&Value> = audit
            .iter()
            .filter(|l| l["event"] == "api_refused")
            .collect();
        let codes: Vec<&str> = refused
            .iter()
            .map(|l| l["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["bad_request", "too_large", "unsupported_version"]);
        for l in &refused {
            assert_eq!(l["caller"]["uid"], me);
            assert_eq!(l["caller"]["pid"], std::process::id());
            assert_eq!(l["source"], "curfew-enforce");
        }
        assert!(audit
            .iter()
            .any(|l| l["event"] == "api_call" && l["call"] == "whoami"));
    }

    #[test]
    fn a_line_without_its_newline_is_never_run() {
        let r = running(Limits::default());
        let line = Request::Wake.to_line();
        let answers = exchange(&r.socket, line.trim_end().as_bytes());
        assert!(answers.is_empty(), "{answers:?}");
        assert!(r.wake.try_recv().is_err(), "the cut-short wake ran");
        assert!(!audit_lines(&r).iter().any(|l| l["call"] == "wake"));
        // The same line with its newline is a request.
        let answers = exchange(&r.socket, Request::Whoami.to_line().as_bytes());
        assert!(answers[0].ok, "{answers:?}");
    }

    #[test]
    fn a_flood_is_rate_limited_and_a_wake_reaches_the_loop() {
        let r = running(Limits {
            burst: 3,
            per_second: 1,
            ..Limits::default()
        });
        let line = Request::Whoami.to_line().repeat(6);
        let answers = exchange(&r.socket, line.as_bytes());
        assert_eq!(answers.len(), 6);
        assert!(answers[..3].iter().all(|a| a.ok));
        assert!(answers[3..]
            .iter()
            .all(|a| code(a) == Some(Code::RateLimited)));
        let limited = audit_lines(&r)
            .iter()
            .filter(|l| l["code"] == "rate_limited")
            .count();
        assert_eq!(limited, 1, "one audit line per second of refusals");

        std::thread::sleep(Duration::from_millis(1100));
        let answers = exchange(&r.socket, Request::Wake.to_line().as_bytes());
        if rustix::process::geteuid().is_root() {
            assert!(answers[0].ok, "{answers:?}");
            assert!(r.wake.recv_timeout(Duration::from_secs(5)).is_ok());
        } else {
            assert_eq!(code(&answers[0]), Some(Code::Forbidden));
            assert!(r.wake.try_recv().is_err());
        }
    }

    #[test]
    fn a_slow_client_holds_its_slot_no_longer_than_the_request_deadline() {
        let r = running(Limits {
            max_connections_per_uid: 1,
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        // Slowloris: the start of a request, then a byte every 20 ms, each
        // read by the server well within any per-read timeout.
        let slow = UnixStream::connect(&r.socket).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        (&slow).write_all(b"{\"v\":1,").unwrap();
        let mut closed = false;
        let mut buf = [0u8; 256];
        for _ in 0..500 {
            if (&slow).write_all(b" ").is_err() {
                closed = true;
                break;
            }
            match (&slow).read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        assert!(closed, "the server closed the trickling connection");
        // Its slot (the uid's only one) is free again.
        assert!(
            whoami_answers_within(&r.socket),
            "the uid may connect again"
        );
    }

    #[test]
    fn a_client_trickling_after_a_malformed_request_is_closed_at_the_deadline() {
        let r = running(Limits {
            max_connections_per_uid: 1,
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        let slow = UnixStream::connect(&r.socket).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        (&slow).write_all(b"not json\n").unwrap();
        // A byte every 20 ms, each read by the server well within any
        // per-read timeout: only the request's deadline ends the drain.
        let started = Instant::now();
        let mut answer = Vec::new();
        let mut closed = false;
        let mut buf = [0u8; 256];
        for _ in 0..500 {
            let _ = (&slow).write_all(b"x");
            match (&slow).read(&mut buf) {
                Ok(0) => {
                    // The answer was read and the server shut its side;
                    // a write now fails once the server has closed.
                    if (&slow).write_all(b"x").is_err() {
                        closed = true;
                        break;
                    }
                }
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let answer: Response = serde_json::from_slice(answer.trim_ascii_end()).unwrap();
        assert_eq!(code(&answer), Some(Code::BadRequest));
        assert!(closed, "the server closed the trickling connection");
        let held = started.elapsed();
        assert!(
            held < Duration::from_secs(5),
            "held {held:?}, the request deadline is 300 ms"
        );
        // Its slot (the uid's only one) is free again.
        assert!(
            whoami_answers_within(&r.socket),
            "the uid may connect again"
        );
    }

    /// Whether a `whoami` on `socket` is answered within about 2.5 s (50
    /// tries, 50 ms apart): a slot of this uid is free.
    fn whoami_answers_within(socket: &std::path::Path) -> bool {
        (0..50).any(|_| {
            exchange(socket, Request::Whoami.to_line().as_bytes())
                .first()
                .is_some_and(|a| a.ok)
                || {
                    std::thread::sleep(Duration::from_millis(50));
                    false
                }
        })
    }

    /// Connects to `socket` from a thread whose effective uid is `uid`
    /// (SO_PEERCRED names the connecting thread's), and asks `whoami`.
    /// Returns the connection (open) and the answer.
    fn connect_as(socket: &std::path::Path, uid: u32) -> (UnixStream, Response) {
        let socket = socket.to_owned();
        std::thread::spawn(move || {
            // Only this thread changes; it ends right after.
            rustix::thread::set_thread_res_uid(
                rustix::process::Uid::ROOT,
                rustix::process::Uid::from_raw(uid),
                rustix::process::Uid::ROOT,
            )
            .unwrap();
            let stream = UnixStream::connect(&socket).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // A connection turned away may be closed before the request
            // is written; its `busy` answer is there to read all the same.
            let _ = (&stream).write_all(Request::Whoami.to_line().as_bytes());
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let answer: Response = serde_json::from_str(&line).unwrap();
            (stream, answer)
        })
        .join()
        .unwrap()
    }

    #[test]
    #[ignore = "needs root: connects as other uids (setresuid); run by scripts/test as root"]
    fn many_ordinary_uids_cannot_lock_root_out() {
        let logged = Arc::new(Mutex::new(Vec::<String>::new()));
        let lines = Arc::clone(&logged);
        let r = running_with_log(
            Limits {
                max_connections: 6,
                reserved_for_admins: 2,
                max_connections_per_uid: 2,
                request_timeout: Duration::from_secs(20),
                ..Limits::default()
            },
            Arc::new(move |l: &str| lock(&lines).push(l.to_owned())),
        );
        // Three uids without accounts, two connections each, held open.
        let mut held = Vec::new();
        let mut busy = 0;
        for uid in [64_001, 64_002, 64_003] {
            for _ in 0..2 {
                let (stream, answer) = connect_as(&r.socket, uid);
                if code(&answer) == Some(Code::Busy) {
                    busy += 1;
                } else {
                    // Served (and refused: the uid has no account here).
                    assert_eq!(code(&answer), Some(Code::Forbidden), "{answer:?}");
                    held.push(stream);
                }
            }
        }
        assert_eq!(held.len(), 4, "ordinary users hold 6 - 2 slots at most");
        assert_eq!(busy, 2);
        // One more ordinary uid is turned away; root is not.
        assert_eq!(code(&connect_as(&r.socket, 64_004).1), Some(Code::Busy));
        let (_root, answer) = connect_as(&r.socket, 0);
        assert!(answer.ok, "root gets a reserved slot: {answer:?}");
        assert_eq!(answer.result.unwrap()["uid"], 0);

        // Busy refusals are logged and audited, at most once a second.
        let log = lock(&logged).clone();
        let busy_lines = log.iter().filter(|l| l.contains("local API busy")).count();
        assert!((1..=3).contains(&busy_lines), "{log:?}");
        assert!(
            log.iter().any(|l| l.contains("kept for administrators")),
            "{log:?}"
        );
        let audited = audit_lines(&r)
            .iter()
            .filter(|l| l["event"] == "api_refused" && l["code"] == "busy")
            .count();
        assert_eq!(audited, busy_lines, "one audit line per log line");
        drop(held);
    }

    #[test]
    fn connections_beyond_the_cap_are_turned_away() {
        let r = running(Limits {
            max_connections_per_uid: 1,
            ..Limits::default()
        });
        // One idle connection holds the uid's only slot.
        let held = UnixStream::connect(&r.socket).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let answers = exchange(&r.socket, Request::Whoami.to_line().as_bytes());
        assert_eq!(code(&answers[0]), Some(Code::Busy));
        drop(held);
        let ok = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            exchange(&r.socket, Request::Whoami.to_line().as_bytes())
                .first()
                .is_some_and(|a| a.ok)
        });
        assert!(ok, "the slot is free again once the connection closes");
    }
}
