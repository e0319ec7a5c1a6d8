//! The fleet store: one Redis shared by every host and OIDC server.
//!
//! Blocking client only (the PAM module runs inside sshd and must not start
//! an async runtime). Connections are made on demand, kept in a small idle
//! pool, and dropped on any error, so the first call after Redis comes back
//! works again without reopening the store. Connecting and every command
//! time out after [`CONNECT_TIMEOUT`] and [`COMMAND_TIMEOUT`]: a dead Redis
//! costs a login two seconds, never a hang. Every failure to reach the server
//! is [`StoreError::Unavailable`], whose location is the URL with its
//! password replaced by `***` (see [`redacted_url`]).
//!
//! # URL
//!
//! `redis://[USER][:PASSWORD@]HOST[:PORT][/DB]`, `rediss://…` for TLS
//! (rustls; the server's certificate must chain to the CAs of
//! `store.tls_ca_file`, or else to the system's trusted roots read from the
//! first of [`SYSTEM_CA_BUNDLES`] that exists: never from environment
//! variables such as `SSL_CERT_FILE`, which a user running a setuid
//! program like `su` controls), and
//! `unix:///PATH` or `redis+unix:///PATH?db=N&user=U&pass=P` for a local
//! socket. Passwords with reserved characters are percent-encoded. Only a
//! single endpoint (a primary, possibly behind a failover address) is
//! supported, not Redis Cluster: the scripts below touch several keys.
//!
//! # Key layout
//!
//! Every key starts with the configured prefix `P` (default `curfew:`); the
//! variable part (an id, a user or host name) always comes last, after a
//! fixed head, so no two kinds of key can collide whatever the names hold.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P schema` | string | the layout version, [`SCHEMA_VERSION`]; a newer one is refused |
//! | `P session:<id>` | hash | one session; times in Unix milliseconds, absent fields are `None` |
//! | `P sessions:live` | sorted set | ids of live sessions, scored by `started_at` |
//! | `P sessions:ended` | sorted set | ids of ended sessions, scored by `ended_at` |
//! | `P sessions:user-live:<user>` | sorted set | a user's live sessions, by `started_at` |
//! | `P sessions:user-ended:<user>` | sorted set | a user's ended sessions, by `ended_at` |
//! | `P sessions:host-live:<host>` | sorted set | a host's live sessions, by `started_at` (the enforcer's query) |
//! | `P revocations` | hash | revocation id → JSON record (times in milliseconds) |
//! | `P revoked:<kind>:<value>` | set | ids of the revocations of one target (`revoked:all:` for `all`) |
//! | `P revocations:purge` | sorted set | ids of revocations with `expires_at`, scored by when they may go |
//! | `P preferences` | hash | user → own token lifetime in seconds |
//!
//! Changes are published on the channel `P events` (see [`StoreEvent`]).
//!
//! # Expiry
//!
//! - An ended session's hash expires [`ENDED_SESSION_RETENTION`] (30 days)
//!   after it ended; the `ended` indexes drop entries older than that
//!   whenever a session ends, and index entries whose hash is gone are
//!   removed when a listing meets them.
//! - A live session's hash carries a safety expiry of [`LIVE_SESSION_TTL`]
//!   (the 90-day ceiling on any session's life plus the retention), so the
//!   sessions of a host that died without logging them out do not stay
//!   forever. No valid policy lets a session live that long.
//! - A revocation without `expires_at` never expires: it stays until
//!   `curfew unrevoke`. One with `expires_at` is *not* given a Redis TTL at
//!   its `expires_at`: its `not_before` keeps refusing the sessions that
//!   started before it after the lock lifts (see
//!   [`crate::revocation::Revocation`]), so deleting it then
//!   would revive them. It is purged [`EXPIRED_REVOCATION_GRACE`] (91 days)
//!   after the later of its `expires_at` and `not_before`, when no session
//!   it could refuse can still be within any policy's limits, and so without
//!   changing any decision. Purging happens when a revocation is added.
//!
//! # Atomicity
//!
//! Each write is one Lua script, so it is atomic on the server:
//! `create_session` and `add_revocation` refuse an existing id, `end_session`
//! is first-wins, `touch_session` only moves forward, and the publish of a
//! change happens in the same script as the change (never a publish for a
//! change that did not happen). Calls that find a pooled connection dead
//! (Redis restarted or closed it) retry once on a fresh connection: the
//! command never reached a live server.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use redis::{Client, Connection, RedisError, RedisResult, Script};
use serde::{Deserialize, Serialize};

use super::{
    EventStream, Lift, SessionFilter, SessionListing, SessionReads, Store, StoreError, StoreEvent,
    UnreadableRecord,
};
use crate::policy::REMEMBER_ME_CEILING;
use crate::revocation::{Revocation, RevocationKeys, RevocationSet, Target};
use crate::session::{EndReason, Session, SessionKind};

/// The key layout version this build writes (`P schema`).
pub const SCHEMA_VERSION: i64 = 1;

/// How long connecting (TCP, TLS, AUTH) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one command may wait for its answer.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an ended session is kept.
pub const ENDED_SESSION_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// The safety expiry of a live session's record.
pub const LIVE_SESSION_TTL: Duration =
    Duration::from_secs(REMEMBER_ME_CEILING.as_secs() + ENDED_SESSION_RETENTION.as_secs());

/// How long a revocation is kept after its `expires_at` (and `not_before`).
pub const EXPIRED_REVOCATION_GRACE: Duration =
    Duration::from_secs(REMEMBER_ME_CEILING.as_secs() + 86_400);

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// How often a subscriber wakes to see whether it was dropped.
const WATCH_POLL: Duration = Duration::from_millis(500);

/// A quiet subscription is checked with a PING this often, so a silently
/// dead link (no FIN, e.g. a network partition) is noticed.
const WATCH_PING_EVERY: Duration = Duration::from_secs(5);

/// Longest wait between two reconnection attempts of a subscriber.
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(1);

const CREATE_SESSION: &str = r"
-- KEYS[1] session hash, KEYS[2..] index sorted sets
-- ARGV[1] ttl ms, ARGV[2] id, ARGV[3] index score, ARGV[4..] field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2]) end
return 1
";

const TOUCH_SESSION: &str = r"
-- KEYS[1] session hash; ARGV[1] at ms
local v = redis.call('HMGET', KEYS[1], 'started_at', 'ended_at', 'last_seen')
if not v[1] or v[2] then return 0 end
if tonumber(ARGV[1]) > tonumber(v[3]) then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
end
return 1
";

const REQUEST_TERMINATION: &str = r"
-- KEYS[1] session hash; ARGV[1] at ms, ARGV[2] channel, ARGV[3] event,
-- ARGV[4] who asked or '' (the first request is kept, time and who alike)
local v = redis.call('HMGET', KEYS[1], 'started_at', 'ended_at')
if not v[1] or v[2] then return 0 end
if redis.call('HSETNX', KEYS[1], 'terminate_requested_at', ARGV[1]) == 1
   and ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'terminate_requested_by', ARGV[4])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

const END_SESSION: &str = r"
-- KEYS: 1 session, 2 live, 3 ended, 4 user-live, 5 user-ended, 6 host-live (if any)
-- ARGV: 1 id, 2 at ms, 3 reason, 4 user, 5 host or '', 6 retention ms,
--       7 prune before (ms), 8 channel, 9 event
local v = redis.call('HMGET', KEYS[1], 'user', 'host', 'ended_at', 'end_reason',
  'terminate_requested_at')
if not v[1] then return 0 end
-- A logout recorded after a termination request gives way to the end that
-- was requested (see Store::end_session).
if v[3] and (ARGV[3] == 'logout' or v[4] ~= 'logout' or not v[5]
             or tonumber(v[5]) > tonumber(v[3])) then return 0 end
if v[1] ~= ARGV[4] or (v[2] or '') ~= ARGV[5] then return -1 end
redis.call('HSET', KEYS[1], 'ended_at', ARGV[2], 'end_reason', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[6] then redis.call('ZREM', KEYS[6], ARGV[1]) end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[7])
redis.call('PEXPIRE', KEYS[5], ARGV[6])
redis.call('PUBLISH', ARGV[8], ARGV[9])
return 1
";

const ADD_REVOCATION: &str = r"
-- KEYS: 1 revocations hash, 2 target set, 3 purge sorted set
-- ARGV: 1 id, 2 record, 3 purge at ms or '', 4 channel, 5 event
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

const LIFT_REVOCATION: &str = r"
-- KEYS: 1 revocations hash, 2 purge sorted set
-- ARGV: 1 id, 2 the record as read, 3 the lifted record, 4 purge at ms,
--       5 channel, 6 event
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
";

const REMOVE_REVOCATION: &str = r"
-- KEYS: 1 revocations hash, 2 target set, 3 purge sorted set
-- ARGV: 1 id, 2 the record as read, 3 channel, 4 event or '' (a purge)
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
";

const REVOCATIONS_FOR: &str = r"
-- KEYS: 1 revocations hash, 2.. target sets. Returns the records; drops
-- index entries whose record was purged.
local out = {}
for i = 2, #KEYS do
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local v = redis.call('HGET', KEYS[1], id)
    if v then out[#out + 1] = v else redis.call('SREM', KEYS[i], id) end
  end
end
return out
";

const SESSION_READS: &str = r"
-- What one decision reads, in one round trip (Store::session_reads).
-- KEYS: 1 session hash, 2 preferences hash, 3 revocations hash, 4.. target
-- sets; ARGV[1] user. Returns {session fields and values, preference or
-- nil, revocation records}; drops index entries whose record was purged,
-- as REVOCATIONS_FOR does.
local session = redis.call('HGETALL', KEYS[1])
local preference = redis.call('HGET', KEYS[2], ARGV[1])
local out = {}
for i = 4, #KEYS do
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local v = redis.call('HGET', KEYS[3], id)
    if v then out[#out + 1] = v else redis.call('SREM', KEYS[i], id) end
  end
end
return {session, preference, out}
";

struct Scripts {
    session_reads: Script,
    create_session: Script,
    touch_session: Script,
    request_termination: Script,
    end_session: Script,
    add_revocation: Script,
    remove_revocation: Script,
    lift_revocation: Script,
    revocations_for: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        session_reads: Script::new(SESSION_READS),
        create_session: Script::new(CREATE_SESSION),
        touch_session: Script::new(TOUCH_SESSION),
        request_termination: Script::new(REQUEST_TERMINATION),
        end_session: Script::new(END_SESSION),
        add_revocation: Script::new(ADD_REVOCATION),
        remove_revocation: Script::new(REMOVE_REVOCATION),
        lift_revocation: Script::new(LIFT_REVOCATION),
        revocations_for: Script::new(REVOCATIONS_FOR),
    })
}

/// The URL with its password (in the userinfo or a `pass`/`password` query
/// parameter) replaced by `***`, for messages and logs.
///
/// ```
/// use curfew_policy::store::redis::redacted_url;
/// assert_eq!(
///     redacted_url("rediss://curfew:s3cret@redis.example:6380/0"),
///     "rediss://curfew:***@redis.example:6380/0",
/// );
/// assert_eq!(
///     redacted_url("redis+unix:///run/redis.sock?user=curfew&pass=s3cret"),
///     "redis+unix:///run/redis.sock?user=curfew&pass=***",
/// );
/// ```
pub fn redacted_url(url: &str) -> String {
    redact(url).0
}

/// The redacted URL, and the secrets taken out of it (as written).
fn redact(url: &str) -> (String, Vec<String>) {
    let mut secrets = Vec::new();
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we can take apart: show nothing of it.
        return ("(an unparsable Redis URL)".to_owned(), vec![url.to_owned()]);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pass)) => {
                secrets.push(pass.to_owned());
                format!("{user}:***@{host}")
            }
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (tail, None),
    };
    let tail = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if k == "pass" || k == "password" => {
                        secrets.push(v.to_owned());
                        format!("{k}=***")
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => before_fragment.to_owned(),
    };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    (format!("{scheme}://{authority}{tail}{fragment}"), secrets)
}

/// Where errors point, and what they must never show.
#[derive(Clone)]
struct ErrorContext {
    location: String,
    secrets: Vec<String>,
}

impl ErrorContext {
    fn scrub(&self, text: String) -> String {
        self.secrets
            .iter()
            .filter(|s| s.len() >= 4)
            .fold(text, |t, s| t.replace(s.as_str(), "***"))
    }

    fn unavailable(&self, cause: impl Display) -> StoreError {
        StoreError::Unavailable {
            location: self.location.clone(),
            detail: self.scrub(cause.to_string()),
        }
    }

    fn corrupt(&self, detail: impl Display) -> StoreError {
        StoreError::Corrupt {
            location: self.location.clone(),
            detail: self.scrub(detail.to_string()),
        }
    }

    /// A command that failed: a reply that cannot be read as what curfew
    /// stored (not UTF-8, another type: redis' `Parse` and
    /// `UnexpectedReturnType`), or a key of curfew's holding another kind
    /// of value (the server's `WRONGTYPE`), is the store's
    /// data gone bad, [`StoreError::Corrupt`], which denies whatever
    /// `on_unavailable` says; anything else (the connection, the server)
    /// is [`StoreError::Unavailable`]. Otherwise a value planted in Redis
    /// could make a revocation look like an outage, which `allow` skips.
    fn failed(&self, e: redis::RedisError) -> StoreError {
        if matches!(
            e.kind(),
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
        ) || e.code() == Some("WRONGTYPE")
        {
            self.corrupt(format!("a reply curfew cannot read: {e}"))
        } else {
            self.unavailable(e)
        }
    }
}

/// The keys of one store, under its prefix.
struct Keys {
    prefix: String,
}

impl Keys {
    fn key(&self, head: &str, tail: &str) -> String {
        format!("{}{head}{tail}", self.prefix)
    }
    fn schema(&self) -> String {
        self.key("schema", "")
    }
    fn session(&self, id: &str) -> String {
        self.key("session:", id)
    }
    fn live(&self) -> String {
        self.key("sessions:live", "")
    }
    fn ended(&self) -> String {
        self.key("sessions:ended", "")
    }
    fn user_live(&self, user: &str) -> String {
        self.key("sessions:user-live:", user)
    }
    fn user_ended(&self, user: &str) -> String {
        self.key("sessions:user-ended:", user)
    }
    fn host_live(&self, host: &str) -> String {
        self.key("sessions:host-live:", host)
    }
    fn revocations(&self) -> String {
        self.key("revocations", "")
    }
    fn purge(&self) -> String {
        self.key("revocations:purge", "")
    }
    fn revoked(&self, target: &Target) -> String {
        self.key("revoked:", &format!("{}:{}", target.kind(), target.value()))
    }
    fn preferences(&self) -> String {
        self.key("preferences", "")
    }
    fn channel(&self) -> String {
        self.key("events", "")
    }
}

/// Where the system's trusted roots are read from when the policy names no
/// `store.tls_ca_file`: the first of these files that exists (Debian and
/// Ubuntu, Fedora and RHEL, openSUSE, older RHEL, Alpine and the BSDs).
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// The largest CA file read: a system bundle is about 200 KiB.
const CA_FILE_LIMIT: u64 = 4 << 20;

/// Why the TLS roots cannot be used.
enum RootsError {
    Insecure(crate::fsperm::InsecureFile),
    Unusable(String),
}

/// The PEM text of the CAs to trust: `ca_file`'s, or the system bundle's.
/// The redis crate is built with its webpki-roots feature only so that it
/// never reads the environment (its rustls-native-certs path honours
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`); it always gets these roots, so
/// webpki-roots' own list is never used.
fn tls_roots(ca_file: Option<&std::path::Path>) -> Result<Vec<u8>, RootsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use std::io::Read;
    let path = match ca_file {
        Some(p) => {
            // Whoever can change the CA file can impersonate the store.
            crate::fsperm::check(p).map_err(RootsError::Insecure)?;
            p.to_owned()
        }
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                RootsError::Unusable(format!(
                    "no store.tls_ca_file is set and no system CA bundle was found (looked for {})",
                    SYSTEM_CA_BUNDLES.join(", ")
                ))
            })?
            .to_owned(),
    };
    let unusable =
        |why: String| RootsError::Unusable(format!("the CA file {}: {why}", path.display()));
    let file = std::fs::File::open(&path).map_err(|e| unusable(format!("cannot read it: {e}")))?;
    let mut pem = Vec::new();
    file.take(CA_FILE_LIMIT + 1)
        .read_to_end(&mut pem)
        .map_err(|e| unusable(format!("cannot read it: {e}")))?;
    if pem.len() as u64 > CA_FILE_LIMIT {
        return Err(unusable(format!("it is larger than {CA_FILE_LIMIT} bytes")));
    }
    let mut certificates = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| unusable(format!("it is not valid PEM: {e}")))?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err(unusable("it holds no PEM certificate".into()));
    }
    Ok(pem)
}

/// A store in a Redis server shared by a fleet.
pub struct RedisStore {
    client: Client,
    keys: Keys,
    ctx: ErrorContext,
    idle: Mutex<Vec<Connection>>,
    schema_checked: AtomicBool,
}

impl RedisStore {
    /// A store at `url` whose keys start with `prefix`, trusting the
    /// system's roots for `rediss://`; see [`RedisStore::open_with_roots`].
    pub fn open(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        RedisStore::open_with_roots(url, prefix, None)
    }

    /// A store at `url` whose keys start with `prefix`. Does not connect:
    /// the first call does, and every call after a failure tries again, so
    /// a store opened while Redis is down starts working when it is back.
    ///
    /// For `rediss://`, the server's certificate must chain to a CA of the
    /// PEM file `ca_file` (`store.tls_ca_file`) or, without one, to the
    /// system's trusted roots (see [`SYSTEM_CA_BUNDLES`]); the file is read
    /// and parsed here, once.
    ///
    /// Fails for a URL that cannot be used, and for a CA file that cannot
    /// be read, holds no certificate, or can be changed by others
    /// ([`StoreError::Insecure`]); the error names the file.
    pub fn open_with_roots(
        url: &str,
        prefix: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<RedisStore, StoreError> {
        let (location, mut secrets) = redact(url);
        let ctx = ErrorContext {
            location: location.clone(),
            secrets: secrets.clone(),
        };
        if url.starts_with("rediss://") {
            // redis enables rustls without a crypto provider; pick ring unless
            // the process already chose one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = if url.starts_with("rediss://") {
            let pem = tls_roots(ca_file).map_err(|e| match e {
                RootsError::Insecure(e) => StoreError::Insecure(e),
                RootsError::Unusable(detail) => ctx.unavailable(detail),
            })?;
            Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        } else {
            Client::open(url)
        }
        .map_err(|e| ctx.unavailable(format!("the URL cannot be used: {e}")))?;
        if let Some(p) = client.get_connection_info().redis_settings().password() {
            secrets.push(p.to_owned());
        }
        Ok(RedisStore {
            client,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            ctx: ErrorContext { location, secrets },
            idle: Mutex::new(Vec::new()),
            schema_checked: AtomicBool::new(false),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// The channel changes are published on (`<prefix>events`).
    pub fn channel(&self) -> String {
        self.keys.channel()
    }

    /// Checks that the server answers (a PING), for health checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let mut c = connect(&self.client, &self.ctx)?;
        if !self.schema_checked.load(Ordering::Relaxed) {
            self.check_schema(&mut c)?;
            self.schema_checked.store(true, Ordering::Relaxed);
        }
        Ok(c)
    }

    fn check_schema(&self, c: &mut Connection) -> Result<(), StoreError> {
        let key = self.keys.schema();
        let (found,): (String,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(SCHEMA_VERSION)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query(c)
            .map_err(|e| self.ctx.failed(e))?;
        let found: i64 = found.parse().map_err(|_| {
            self.ctx
                .corrupt(format!("{key} holds {found:?}, not a version"))
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                location: self.ctx.location.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Runs `f` on a pooled or new connection. A pooled connection that
    /// turns out dead is replaced once; any failure drops the connection.
    fn run<T>(
        &self,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle().pop();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(&mut conn) {
            Ok(v) => {
                self.give_back(conn);
                Ok(v)
            }
            Err(e) if reused && e.is_connection_dropped() && !e.is_timeout() => {
                // The server restarted or closed idle connections: the other
                // pooled ones are just as dead.
                self.idle().clear();
                let mut conn = self.connect()?;
                let v = f(&mut conn).map_err(|e| self.ctx.failed(e))?;
                self.give_back(conn);
                Ok(v)
            }
            // The connection is dropped either way: after a reply it
            // could not parse, its stream may be out of step.
            Err(e) => Err(self.ctx.failed(e)),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// The index sets of the revocations that could apply to `keys`.
    fn revocation_sets(&self, keys: &RevocationKeys<'_>) -> Vec<String> {
        let k = &self.keys;
        let mut targets = Vec::with_capacity(4);
        if let Some(s) = keys.session {
            targets.push(k.revoked(&Target::Session(s.to_owned())));
        }
        targets.push(k.revoked(&Target::User(keys.user.to_owned())));
        if let Some(c) = keys.client {
            targets.push(k.revoked(&Target::Client(c.to_owned())));
        }
        targets.push(k.revoked(&Target::All));
        targets
    }

    /// A user's stored token lifetime, read as `HGET` returned it.
    fn decode_preference(
        &self,
        user: &str,
        v: Option<String>,
    ) -> Result<Option<Duration>, StoreError> {
        v.map(|s| {
            s.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                self.ctx
                    .corrupt(format!("the preference of {user:?} is {s:?}"))
            })
        })
        .transpose()
    }

    fn event(&self, e: &StoreEvent) -> String {
        // Serializing a plain enum of strings cannot fail.
        serde_json::to_string(e).unwrap_or_default()
    }

    fn decode_session(&self, mut m: HashMap<String, String>) -> Result<Session, StoreError> {
        let ctx = &self.ctx;
        let id = m.remove("id").unwrap_or_default();
        let mut take = |f: &str| m.remove(f);
        let need = |v: Option<String>, f: &str| {
            v.ok_or_else(|| ctx.corrupt(format!("session {id:?} has no {f}")))
        };
        let num = |v: String, f: &str| {
            v.parse::<i64>()
                .map_err(|_| ctx.corrupt(format!("session {id:?}: {f} is {v:?}, not a number")))
        };
        let time = |v: String, f: &str| num(v, f).map(from_ms);
        let small = |v: String, f: &str| {
            v.parse::<u32>()
                .map_err(|_| ctx.corrupt(format!("session {id:?}: {f} is {v:?}, not a number")))
        };
        let kind = need(take("kind"), "kind")?;
        let end_reason = take("end_reason")
            .map(|r| r.parse::<EndReason>().map_err(|e| ctx.corrupt(e)))
            .transpose()?;
        Ok(Session {
            kind: kind.parse::<SessionKind>().map_err(|e| ctx.corrupt(e))?,
            user: need(take("user"), "user")?,
            service: take("service"),
            client_id: take("client_id"),
            host: take("host"),
            machine_id: take("machine_id"),
            rhost: take("rhost"),
            tty: take("tty"),
            pid: take("pid").map(|v| small(v, "pid")).transpose()?,
            audit_session_id: take("audit_session_id")
                .map(|v| small(v, "audit_session_id"))
                .transpose()?,
            started_at: time(need(take("started_at"), "started_at")?, "started_at")?,
            last_seen: time(need(take("last_seen"), "last_seen")?, "last_seen")?,
            timeout: Duration::from_secs(
                num(need(take("timeout"), "timeout")?, "timeout")?.max(0) as u64
            ),
            remember_me: take("remember_me").as_deref() == Some("1"),
            terminate_requested_at: take("terminate_requested_at")
                .map(|v| time(v, "terminate_requested_at"))
                .transpose()?,
            terminate_requested_by: take("terminate_requested_by"),
            ended_at: take("ended_at").map(|v| time(v, "ended_at")).transpose()?,
            end_reason,
            id,
        })
    }

    fn decode_revocation(&self, json: &str) -> Result<Revocation, StoreError> {
        let r: RevocationRecord = serde_json::from_str(json)
            .map_err(|e| self.ctx.corrupt(format!("a revocation record: {e}")))?;
        Ok(Revocation {
            target: Target::from_parts(&r.target_kind, &r.target).ok_or_else(|| {
                self.ctx.corrupt(format!(
                    "revocation {:?}: unknown target kind {:?}",
                    r.id, r.target_kind
                ))
            })?,
            id: r.id,
            not_before: from_ms(r.not_before),
            expires_at: r.expires_at.map(from_ms),
            reason: r.reason,
            actor: r.actor,
            created_at: from_ms(r.created_at),
        })
    }

    /// Removes a revocation whose record reads `record`; publishes unless
    /// this is a purge. False if it changed in between.
    fn remove_record(
        &self,
        r: &Revocation,
        record: &str,
        publish: bool,
    ) -> Result<bool, StoreError> {
        let event = if publish {
            self.event(&StoreEvent::RevocationRemoved { id: r.id.clone() })
        } else {
            String::new()
        };
        let removed: i64 = self.run(|c| {
            scripts()
                .remove_revocation
                .key(self.keys.revocations())
                .key(self.keys.revoked(&r.target))
                .key(self.keys.purge())
                .arg(&r.id)
                .arg(record)
                .arg(self.keys.channel())
                .arg(&event)
                .invoke(c)
        })?;
        Ok(removed == 1)
    }

    /// Drops revocations whose grace ended before `now` (best effort).
    fn purge_expired(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let ids: Vec<String> = self.run(|c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.purge())
                .arg("-inf")
                .arg(ms(now))
                .arg("LIMIT")
                .arg(0)
                .arg(100)
                .query(c)
        })?;
        for id in ids {
            let record: Option<String> = self.run(|c| {
                redis::cmd("HGET")
                    .arg(self.keys.revocations())
                    .arg(&id)
                    .query(c)
            })?;
            match record {
                Some(rec) => {
                    let r = self.decode_revocation(&rec)?;
                    self.remove_record(&r, &rec, false)?;
                }
                None => {
                    self.run(|c| {
                        redis::cmd("ZREM")
                            .arg(self.keys.purge())
                            .arg(&id)
                            .query::<i64>(c)
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// A connection with the short timeouts set.
fn connect(client: &Client, ctx: &ErrorContext) -> Result<Connection, StoreError> {
    let c = client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .map_err(|e| ctx.unavailable(e))?;
    c.set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|e| ctx.unavailable(e))?;
    c.set_write_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|e| ctx.unavailable(e))?;
    Ok(c)
}

/// A revocation as stored: the SQLite columns, as JSON.
#[derive(Serialize, Deserialize)]
struct RevocationRecord {
    id: String,
    target_kind: String,
    target: String,
    not_before: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    actor: String,
    created_at: i64,
}

impl RevocationRecord {
    fn new(r: &Revocation) -> Self {
        RevocationRecord {
            id: r.id.clone(),
            target_kind: r.target.kind().to_owned(),
            target: r.target.value().to_owned(),
            not_before: ms(r.not_before),
            expires_at: r.expires_at.map(ms),
            reason: r.reason.clone(),
            actor: r.actor.clone(),
            created_at: ms(r.created_at),
        }
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn ms_of(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn session_fields(s: &Session) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("id", s.id.clone()),
        ("kind", s.kind.as_str().to_owned()),
        ("user", s.user.clone()),
        ("started_at", ms(s.started_at).to_string()),
        ("last_seen", ms(s.last_seen).to_string()),
        ("timeout", s.timeout.as_secs().to_string()),
        (
            "remember_me",
            if s.remember_me { "1" } else { "0" }.to_owned(),
        ),
    ];
    let opt = [
        ("service", s.service.clone()),
        ("client_id", s.client_id.clone()),
        ("host", s.host.clone()),
        ("machine_id", s.machine_id.clone()),
        ("rhost", s.rhost.clone()),
        ("tty", s.tty.clone()),
        ("pid", s.pid.map(|v| v.to_string())),
        (
            "audit_session_id",
            s.audit_session_id.map(|v| v.to_string()),
        ),
        (
            "terminate_requested_at",
            s.terminate_requested_at.map(|t| ms(t).to_string()),
        ),
        ("terminate_requested_by", s.terminate_requested_by.clone()),
        ("ended_at", s.ended_at.map(|t| ms(t).to_string())),
        ("end_reason", s.end_reason.map(|r| r.as_str().to_owned())),
    ];
    f.extend(opt.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    f
}

impl Store for RedisStore {
    fn location(&self) -> String {
        self.ctx.location.clone()
    }

    fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        let k = &self.keys;
        let (ttl, score, indexes) = match s.ended_at {
            None => {
                let mut ix = vec![k.live(), k.user_live(&s.user)];
                ix.extend(s.host.as_deref().map(|h| k.host_live(h)));
                (LIVE_SESSION_TTL, ms(s.started_at), ix)
            }
            Some(end) => (
                ENDED_SESSION_RETENTION,
                ms(end),
                vec![k.ended(), k.user_ended(&s.user)],
            ),
        };
        let fields = session_fields(s);
        let created: i64 = self.run(|c| {
            let mut inv = scripts().create_session.key(k.session(&s.id));
            for ix in &indexes {
                inv.key(ix);
            }
            inv.arg(ms_of(ttl)).arg(&s.id).arg(score);
            for (name, value) in &fields {
                inv.arg(*name).arg(value);
            }
            inv.invoke(c)
        })?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::Duplicate(s.id.clone()))
        }
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let m: HashMap<String, String> =
            self.run(|c| redis::cmd("HGETALL").arg(self.keys.session(id)).query(c))?;
        if m.is_empty() {
            return Ok(None);
        }
        self.decode_session(m).map(Some)
    }

    fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        Ok(self.list_sessions_reporting(f)?.sessions)
    }

    fn list_sessions_reporting(&self, f: &SessionFilter) -> Result<SessionListing, StoreError> {
        let k = &self.keys;
        let mut indexes = Vec::new();
        match (&f.user, &f.host) {
            (Some(u), _) => {
                indexes.push(k.user_live(u));
                if f.include_ended {
                    indexes.push(k.user_ended(u));
                }
            }
            (None, Some(h)) => {
                indexes.push(k.host_live(h));
                if f.include_ended {
                    indexes.push(k.ended());
                }
            }
            (None, None) => {
                indexes.push(k.live());
                if f.include_ended {
                    indexes.push(k.ended());
                }
            }
        }
        let (ids, maps) = self.run(|c| {
            let mut p = redis::pipe();
            p.atomic();
            for ix in &indexes {
                p.cmd("ZRANGE").arg(ix).arg(0).arg(-1);
            }
            let lists: Vec<Vec<String>> = p.query(c)?;
            let mut seen = HashSet::new();
            let ids: Vec<String> = lists
                .into_iter()
                .flatten()
                .filter(|id| seen.insert(id.clone()))
                .collect();
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGETALL").arg(k.session(id));
            }
            let maps: Vec<HashMap<String, String>> = if ids.is_empty() {
                Vec::new()
            } else {
                p.query(c)?
            };
            Ok((ids, maps))
        })?;
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        let mut gone = Vec::new();
        for (id, m) in ids.into_iter().zip(maps) {
            if m.is_empty() {
                gone.push(id);
                continue;
            }
            match self.decode_session(m) {
                Ok(s) if f.accepts(&s) => out.push(s),
                Ok(_) => {}
                Err(e) => unreadable.push(UnreadableRecord {
                    id,
                    detail: match e {
                        StoreError::Corrupt { detail, .. } => detail,
                        other => other.to_string(),
                    },
                }),
            }
        }
        if !gone.is_empty() {
            // Records that expired leave their index entries behind.
            let _ = self.run(|c| {
                let mut p = redis::pipe();
                for ix in &indexes {
                    p.cmd("ZREM").arg(ix).arg(&gone).ignore();
                }
                p.query::<()>(c)
            });
        }
        out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(SessionListing {
            sessions: out,
            unreadable,
        })
    }

    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n: i64 = self.run(|c| {
            scripts()
                .touch_session
                .key(self.keys.session(id))
                .arg(ms(at))
                .invoke(c)
        })?;
        Ok(n == 1)
    }

    fn request_termination(
        &self,
        id: &str,
        at: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<bool, StoreError> {
        let event = self.event(&StoreEvent::TerminationRequested {
            session: id.to_owned(),
        });
        let n: i64 = self.run(|c| {
            scripts()
                .request_termination
                .key(self.keys.session(id))
                .arg(ms(at))
                .arg(self.keys.channel())
                .arg(&event)
                .arg(by.unwrap_or(""))
                .invoke(c)
        })?;
        Ok(n == 1)
    }

    fn end_session(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: EndReason,
    ) -> Result<bool, StoreError> {
        let k = &self.keys;
        let event = self.event(&StoreEvent::SessionEnded {
            session: id.to_owned(),
            reason,
        });
        let retention = ms_of(ENDED_SESSION_RETENTION);
        // The per-user and per-host index keys come from the record, read
        // first; the script checks they still match (they never change).
        for _ in 0..3 {
            let (user, host): (Option<String>, Option<String>) = self.run(|c| {
                redis::cmd("HMGET")
                    .arg(k.session(id))
                    .arg("user")
                    .arg("host")
                    .query(c)
            })?;
            let Some(user) = user else {
                return Ok(false);
            };
            let n: i64 = self.run(|c| {
                let mut inv = scripts().end_session.key(k.session(id));
                inv.key(k.live())
                    .key(k.ended())
                    .key(k.user_live(&user))
                    .key(k.user_ended(&user));
                if let Some(h) = &host {
                    inv.key(k.host_live(h));
                }
                inv.arg(id)
                    .arg(ms(at))
                    .arg(reason.as_str())
                    .arg(&user)
                    .arg(host.as_deref().unwrap_or(""))
                    .arg(retention)
                    .arg(ms(at) - retention)
                    .arg(k.channel())
                    .arg(&event)
                    .invoke(c)
            })?;
            if n >= 0 {
                return Ok(n == 1);
            }
        }
        Err(self
            .ctx
            .corrupt(format!("session {id:?} keeps changing its user or host")))
    }

    fn add_revocation(&self, r: &Revocation) -> Result<(), StoreError> {
        let record =
            serde_json::to_string(&RevocationRecord::new(r)).map_err(|e| self.ctx.corrupt(e))?;
        let purge_at = r.expires_at.map(|e| {
            let last = e.max(r.not_before);
            (ms(last) + ms_of(EXPIRED_REVOCATION_GRACE)).to_string()
        });
        let event = self.event(&StoreEvent::RevocationAdded {
            id: r.id.clone(),
            target: r.target.clone(),
        });
        let added: i64 = self.run(|c| {
            scripts()
                .add_revocation
                .key(self.keys.revocations())
                .key(self.keys.revoked(&r.target))
                .key(self.keys.purge())
                .arg(&r.id)
                .arg(&record)
                .arg(purge_at.as_deref().unwrap_or(""))
                .arg(self.keys.channel())
                .arg(&event)
                .invoke(c)
        })?;
        if added != 1 {
            return Err(StoreError::Duplicate(r.id.clone()));
        }
        // The revocation is in; tidying up old ones may fail without harm.
        let _ = self.purge_expired(r.created_at);
        Ok(())
    }

    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
        // Read, then remove what was read (the script checks it is unchanged).
        let record: Option<String> = self.run(|c| {
            redis::cmd("HGET")
                .arg(self.keys.revocations())
                .arg(id)
                .query(c)
        })?;
        let Some(record) = record else {
            return Ok(None);
        };
        let r = self.decode_revocation(&record)?;
        Ok(self.remove_record(&r, &record, true)?.then_some(r))
    }

    fn lift_revocation(&self, id: &str, at: DateTime<Utc>) -> Result<Option<Lift>, StoreError> {
        let event = self.event(&StoreEvent::RevocationRemoved { id: id.to_owned() });
        // Read, then replace what was read; retried if it changed between.
        for _ in 0..3 {
            let record: Option<String> = self.run(|c| {
                redis::cmd("HGET")
                    .arg(self.keys.revocations())
                    .arg(id)
                    .query(c)
            })?;
            let Some(record) = record else {
                return Ok(None);
            };
            let mut r = self.decode_revocation(&record)?;
            if !r.in_force(at) {
                return Ok(Some(Lift::AlreadyLifted(r)));
            }
            r.expires_at = Some(at);
            let lifted = serde_json::to_string(&RevocationRecord::new(&r))
                .map_err(|e| self.ctx.corrupt(e))?;
            // Kept, like an expired one, until no session it refuses can
            // still be within any policy's limits.
            let purge_at = ms(at.max(r.not_before)) + ms_of(EXPIRED_REVOCATION_GRACE);
            let n: i64 = self.run(|c| {
                scripts()
                    .lift_revocation
                    .key(self.keys.revocations())
                    .key(self.keys.purge())
                    .arg(id)
                    .arg(&record)
                    .arg(&lifted)
                    .arg(purge_at)
                    .arg(self.keys.channel())
                    .arg(&event)
                    .invoke(c)
            })?;
            if n == 1 {
                return Ok(Some(Lift::Lifted(r)));
            }
        }
        Err(self.ctx.corrupt(format!(
            "revocation {id:?} keeps changing while it is lifted"
        )))
    }

    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let all: HashMap<String, String> =
            self.run(|c| redis::cmd("HGETALL").arg(self.keys.revocations()).query(c))?;
        let mut v = all
            .values()
            .map(|rec| self.decode_revocation(rec))
            .collect::<Result<Vec<_>, _>>()?;
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    fn revocations_for(&self, keys: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
        let k = &self.keys;
        let targets = self.revocation_sets(keys);
        let records: Vec<String> = self.run(|c| {
            let mut inv = scripts().revocations_for.key(k.revocations());
            for t in &targets {
                inv.key(t);
            }
            inv.invoke(c)
        })?;
        records
            .iter()
            .map(|rec| self.decode_revocation(rec))
            .collect()
    }

    fn set_timeout_preference(
        &self,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        let key = self.keys.preferences();
        self.run(|c| match timeout {
            Some(t) => redis::cmd("HSET")
                .arg(&key)
                .arg(user)
                .arg(t.as_secs())
                .query::<i64>(c),
            None => redis::cmd("HDEL").arg(&key).arg(user).query::<i64>(c),
        })?;
        Ok(())
    }

    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError> {
        let v: Option<String> = self.run(|c| {
            redis::cmd("HGET")
                .arg(self.keys.preferences())
                .arg(user)
                .query(c)
        })?;
        self.decode_preference(user, v)
    }

    /// The three reads in one round trip: one script (`SESSION_READS`),
    /// which also makes them one state of the store.
    fn session_reads(
        &self,
        id: &str,
        keys: &RevocationKeys<'_>,
    ) -> Result<SessionReads, StoreError> {
        let k = &self.keys;
        let targets = self.revocation_sets(keys);
        type Reply = (HashMap<String, String>, Option<String>, Vec<String>);
        let (session, preference, records): Reply = self.run(|c| {
            let mut inv = scripts().session_reads.key(k.session(id));
            inv.key(k.preferences()).key(k.revocations());
            for t in &targets {
                inv.key(t);
            }
            inv.arg(keys.user).invoke(c)
        })?;
        Ok(SessionReads {
            session: if session.is_empty() {
                None
            } else {
                Some(self.decode_session(session)?)
            },
            preference: self.decode_preference(keys.user, preference)?,
            revocations: records
                .iter()
                .map(|rec| self.decode_revocation(rec))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Times are stored in whole milliseconds.
    fn time_precision(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn watch(&self) -> Result<Option<Box<dyn EventStream>>, StoreError> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let subscriber = Subscriber {
            client: self.client.clone(),
            channel: self.keys.channel(),
            ctx: self.ctx.clone(),
            tx,
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("curfew-redis-watch".into())
            .spawn(move || subscriber.run())
            .map_err(|e| {
                self.ctx
                    .unavailable(format!("cannot start the subscriber: {e}"))
            })?;
        Ok(Some(Box::new(RedisEvents {
            rx,
            stop,
            location: self.ctx.location.clone(),
        })))
    }
}

/// The receiving end of a subscription; the thread behind it stops when
/// this is dropped.
struct RedisEvents {
    rx: mpsc::Receiver<Result<StoreEvent, StoreError>>,
    stop: Arc<AtomicBool>,
    location: String,
}

impl EventStream for RedisEvents {
    fn next(&mut self, timeout: Duration) -> Result<Option<StoreEvent>, StoreError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(e)) => Ok(Some(e)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Unavailable {
                location: self.location.clone(),
                detail: "the subscriber thread has stopped".into(),
            }),
        }
    }
}

impl Drop for RedisEvents {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The thread that holds the subscription.
struct Subscriber {
    client: Client,
    channel: String,
    ctx: ErrorContext,
    tx: mpsc::Sender<Result<StoreEvent, StoreError>>,
    stop: Arc<AtomicBool>,
}

/// How one subscription ended.
enum Ended {
    /// The stream was dropped.
    Stopped,
    /// The connection failed; `subscribed` if it had been established.
    Lost { error: StoreError, subscribed: bool },
}

impl Subscriber {
    fn run(self) {
        let mut reported = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen() {
                Ended::Stopped => return,
                Ended::Lost { error, subscribed } => {
                    if subscribed {
                        reported = false;
                        backoff = Duration::from_millis(100);
                    }
                    if !reported {
                        if self.tx.send(Err(error)).is_err() {
                            return;
                        }
                        reported = true;
                    }
                }
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(WATCH_MAX_BACKOFF);
        }
    }

    fn listen(&self) -> Ended {
        let lost = |e: RedisError, subscribed: bool| Ended::Lost {
            error: self.ctx.unavailable(e),
            subscribed,
        };
        if self.stop.load(Ordering::Relaxed) {
            return Ended::Stopped;
        }
        let mut conn = match connect(&self.client, &self.ctx) {
            Ok(c) => c,
            Err(error) => {
                return Ended::Lost {
                    error,
                    subscribed: false,
                }
            }
        };
        let mut ps = conn.as_pubsub();
        if let Err(e) = ps.subscribe(&self.channel) {
            return lost(e, false);
        }
        if let Err(e) = ps.set_read_timeout(Some(WATCH_POLL)) {
            return lost(e, false);
        }
        // Subscribed: whatever happened before now is for a full re-read.
        if self.tx.send(Ok(StoreEvent::Resync)).is_err() {
            return Ended::Stopped;
        }
        let mut quiet = Duration::ZERO;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ended::Stopped;
            }
            match ps.get_message() {
                Ok(msg) => {
                    quiet = Duration::ZERO;
                    // A message we do not understand (a newer curfew, a
                    // stranger on the channel) still means "something changed".
                    let event = serde_json::from_slice(msg.get_payload_bytes())
                        .unwrap_or(StoreEvent::Resync);
                    if self.tx.send(Ok(event)).is_err() {
                        return Ended::Stopped;
                    }
                }
                Err(e) if e.is_timeout() => {
                    quiet += WATCH_POLL;
                    if quiet >= WATCH_PING_EVERY {
                        quiet = Duration::ZERO;
                        let ping = ps
                            .set_read_timeout(Some(COMMAND_TIMEOUT))
                            .and_then(|()| ps.ping::<redis::Value>())
                            .and_then(|_| ps.set_read_timeout(Some(WATCH_POLL)));
                        if let Err(e) = ping {
                            return lost(e, true);
                        }
                    }
                }
                Err(e) => return lost(e, true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_every_url_form() {
        let cases = [
            (
                "redis://127.0.0.1:6379/0",
                "redis://127.0.0.1:6379/0",
                vec![],
            ),
            ("redis://:pw0rd@h:1/2", "redis://:***@h:1/2", vec!["pw0rd"]),
            ("rediss://u:p%40ss@h", "rediss://u:***@h", vec!["p%40ss"]),
            ("redis://user@h/0", "redis://user@h/0", vec![]),
            (
                "redis://u:a:b@c@h?x=1",
                "redis://u:***@h?x=1",
                vec!["a:b@c"],
            ),
            (
                "redis+unix:///run/r.sock?db=1&pass=topsecret&user=u",
                "redis+unix:///run/r.sock?db=1&pass=***&user=u",
                vec!["topsecret"],
            ),
            (
                "unix:///run/r.sock?password=xyzzy#frag",
                "unix:///run/r.sock?password=***#frag",
                vec!["xyzzy"],
            ),
        ];
        for (url, shown, secrets) in cases {
            let (r, s) = redact(url);
            assert_eq!(r, shown, "{url}");
            assert_eq!(s, secrets, "{url}");
            for secret in &s {
                assert!(!r.contains(secret.as_str()), "{url}");
            }
        }
        assert!(!redacted_url("host-only-with:secret").contains("secret"));
    }

    #[test]
    fn error_details_are_scrubbed() {
        let ctx = ErrorContext {
            location: redacted_url("redis://:hunter22@h"),
            secrets: vec!["hunter22".into()],
        };
        match ctx.unavailable("AUTH hunter22 failed") {
            StoreError::Unavailable { location, detail } => {
                assert_eq!(location, "redis://:***@h");
                assert_eq!(detail, "AUTH *** failed");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn keys_of_different_kinds_never_collide() {
        let k = Keys {
            prefix: "p:".into(),
        };
        let tricky = ["", ":", "live", "user-live:x", "all:", "a:b"];
        let mut seen = HashSet::new();
        let mut all = vec![
            k.schema(),
            k.live(),
            k.ended(),
            k.revocations(),
            k.purge(),
            k.preferences(),
        ];
        for t in tricky {
            all.extend([
                k.session(t),
                k.user_live(t),
                k.user_ended(t),
                k.host_live(t),
                k.revoked(&Target::User(t.into())),
                k.revoked(&Target::Session(t.into())),
                k.revoked(&Target::Client(t.into())),
            ]);
        }
        all.push(k.revoked(&Target::All));
        for key in all {
            assert!(key.starts_with("p:"));
            assert!(seen.insert(key.clone()), "{key} made twice");
        }
    }

    #[test]
    fn events_have_a_stable_json_form() {
        let e = StoreEvent::RevocationAdded {
            id: "r1".into(),
            target: Target::User("alice".into()),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"revocation_added","id":"r1","target":{"kind":"user","value":"alice"}}"#
        );
        let e = StoreEvent::SessionEnded {
            session: "s".into(),
            reason: EndReason::Revoked,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"event":"session_ended","session":"s","reason":"revoked"}"#
        );
        assert_eq!(serde_json::from_str::<StoreEvent>(&json).unwrap(), e);
        assert_eq!(
            serde_json::to_string(&StoreEvent::Resync).unwrap(),
            r#"{"event":"resync"}"#
        );
    }
}
