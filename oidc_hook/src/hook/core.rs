//! The protocol-neutral core of the token hook: what a token request is
//! (whatever server sent it), how its curfew session is keyed, and the
//! outcome, with a reason a relying party can act on.
//!
//! Each server's wire shape is one adapter module ([`super::hydra`],
//! [`super::neutral`]) that turns its request into a [`TokenRequest`] and
//! an [`Outcome`] back into its answer. Nothing here reads HTTP or JSON.
//!
//! # Grants
//!
//! | [`GrantKind`] | sent for | decided |
//! |---|---|---|
//! | `Login` | `authorization_code`, device code: tokens after an interactive login | the login's session: started at `auth_time`, idle since its last token request, revocations of user, client and session |
//! | `Refresh` | `refresh_token` | the same session, which must exist and be live |
//! | `ClientCredentials` | `client_credentials`: tokens for a machine client | **only** a revocation of the client; never idle, never too old (there is no user session; Hydra puts the client id in `sub`) |
//! | `Assertion` | `urn:ietf:params:oauth:grant-type:jwt-bearer` | a revocation of the asserted subject (user) or the client; never idle, never too old (no login session) |
//!
//! # Times from the server
//!
//! A time the server reports (`auth_time`) is checked where it enters: one
//! later than `now + `[`MAX_SKEW`] is clamped to `now` (logged), one inside
//! the skew is taken as `now` too, so a session never starts in the future
//! and `revoke all` always catches it. A time that is no time (not RFC 3339
//! or a NumericDate, before 1970, after 9999) is a [`FieldError`], which the
//! adapters answer with `400` naming the field.

use chrono::{DateTime, Utc};
use curfew_policy::audit::Grant;
use curfew_policy::{EndReason, StoreError};
use sha2::{Digest, Sha256};

use crate::claims::SessionClaims;
use crate::gate::{Gate, Granted, Known, Principal, Refusal};

/// How far in the future a server's clock may be ahead of ours before a
/// time it reports is treated as wrong (and clamped to our `now`): 60 s.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// The kind of a token request, from its grant type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// Tokens after an interactive login (authorization code, device code).
    Login,
    /// A refresh of a login's tokens.
    Refresh,
    /// Tokens for a machine client itself (client credentials).
    ClientCredentials,
    /// Tokens for a subject asserted by a trusted issuer (JWT bearer, RFC 7523).
    Assertion,
}

impl GrantKind {
    /// The kind of an OAuth 2.0 `grant_type`; `None` for one curfew does
    /// not know (the adapters answer `400`).
    pub fn from_grant_type(grant_type: &str) -> Option<GrantKind> {
        Some(match grant_type {
            "authorization_code" | "urn:ietf:params:oauth:grant-type:device_code" => {
                GrantKind::Login
            }
            "refresh_token" => GrantKind::Refresh,
            "client_credentials" => GrantKind::ClientCredentials,
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => GrantKind::Assertion,
            _ => return None,
        })
    }

    /// A stable name (`login`, `refresh`, `client_credentials`, `assertion`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Login => "login",
            GrantKind::Refresh => "refresh",
            GrantKind::ClientCredentials => "client_credentials",
            GrantKind::Assertion => "assertion",
        }
    }
}

/// A request value that is present but wrong: the adapters answer `400`
/// with the field's path in the server's own shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field, e.g. `session.id_token.id_token_claims.auth_time`.
    pub field: String,
    /// What is wrong with it (never internal detail).
    pub problem: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Parses a request body of type `T`, turning every problem into a
/// [`FieldError`] in curfew's own words: the field's path in the request's
/// shape (`body` for the whole body) and what is wrong with it. Nothing of
/// the parser's own text (Rust type names, `invalid type`) reaches the
/// answer.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FieldError> {
    // A request is an object. (serde would also read a struct from a JSON
    // list, by position, and name the fields `[0]`, `[1]`.)
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return Err(not_json(&e));
        }
        let found = match first {
            Some(b'[') => "a list",
            Some(b'"') => "text",
            Some(b't' | b'f') => "true or false",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Err(FieldError::new(
            "body",
            format!("must be an object, not {found}"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if !inner.is_data() {
            return not_json(inner);
        }
        let text = inner.to_string();
        data_error(
            &e.path().to_string(),
            text.split(" at line ").next().unwrap_or_default(),
        )
    })
}

/// A body that is not JSON the hook can read, said in our words.
fn not_json(e: &serde_json::Error) -> FieldError {
    let text = e.to_string();
    let problem = if text.contains("recursion limit") {
        "the body is nested too deeply (at most 128 levels)"
    } else if text.contains("number out of range") {
        "the body holds a number too large to read"
    } else {
        "the body is not JSON"
    };
    FieldError::new("body", problem)
}

/// `parent.name`, or `name` at the top level (or `parent` when it already
/// ends in `name`: the parser's path sometimes includes the field).
fn join_field(parent: &str, name: &str) -> String {
    if parent.is_empty() || parent == "." {
        name.to_owned()
    } else if parent == name || parent.ends_with(&format!(".{name}")) {
        parent.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// The first `backquoted` word of `text`.
fn quoted(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len])
}

/// What serde's wording of a value kind is in ours ("a string", "a number").
fn kind_in_our_words(serde_kind: &str) -> Option<&'static str> {
    let k = serde_kind
        .trim()
        .trim_start_matches("a ")
        .trim_start_matches("an ");
    let first = k.split([' ', '`']).next().unwrap_or_default();
    Some(match first {
        "struct" | "map" => "an object",
        "sequence" | "tuple" => "a list",
        "string" | "character" | "borrowed" => "text",
        "boolean" => "true or false",
        "integer" | "floating" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16"
        | "i32" | "i64" | "i128" | "isize" | "f32" | "f64" => "a number",
        "null" | "unit" => "null",
        _ => return None,
    })
}

fn data_error(path: &str, text: &str) -> FieldError {
    let here = if path.is_empty() || path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found = kind_in_our_words(found).unwrap_or("a value of another kind");
        return FieldError::new(
            here,
            match kind_in_our_words(expected) {
                Some(want) => format!("must be {want}, not {found}"),
                None => format!("cannot be {found}"),
            },
        );
    }
    if text.starts_with("missing field") {
        let name = quoted(text).unwrap_or("?");
        return FieldError::new(join_field(path, name), "missing");
    }
    if text.starts_with("unknown field") {
        let name = quoted(text).unwrap_or("?");
        let known: Vec<&str> = text
            .split_once("expected one of ")
            .map(|(_, list)| list.split(", ").map(|w| w.trim_matches('`')).collect())
            .unwrap_or_default();
        let problem = if known.is_empty() {
            "not a field of this request".to_owned()
        } else {
            format!(
                "not a field of this request (the fields are {})",
                known.join(", ")
            )
        };
        return FieldError::new(join_field(path, name), problem);
    }
    if text.starts_with("duplicate field") {
        let name = quoted(text).unwrap_or("?");
        return FieldError::new(join_field(path, name), "given more than once");
    }
    if text.starts_with("invalid length") {
        return FieldError::new(here, "has the wrong number of items");
    }
    FieldError::new(here, "has a value curfew cannot use")
}

/// A token request, whatever server sent it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The kind of grant.
    pub grant: GrantKind,
    /// The OAuth 2.0 client.
    pub client_id: String,
    /// The user (the server's canonical subject); `None` for client credentials.
    pub subject: Option<String>,
    /// The server's own login (SSO) session id, if it has one.
    pub login_session: Option<String>,
    /// When the user authenticated, as the server reported it (parsed by
    /// [`parse_time`]). It keys the session as reported; the session starts
    /// at it as checked by [`server_time`] (never in the future).
    pub auth_time: Option<DateTime<Utc>>,
    /// A persistent login, as the server's configured signal says (a claim
    /// or a login-session flag); never inferred from the refresh scope.
    pub remember_me: bool,
    /// The user's groups, from the claims.
    pub groups: Vec<String>,
    /// The curfew session id the server carried from an earlier answer
    /// (Hydra: in `session.extra` across refreshes).
    pub carried_session: Option<String>,
}

/// Why a request was refused, in terms a relying party can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The user, the client or the session is revoked.
    Revoked,
    /// An administrator terminated the session.
    Terminated,
    /// The session is older than `max_duration`.
    MaxDuration,
    /// The session sat idle past `inactivity`.
    Idle,
    /// The session had ended already (or is unknown to a refresh).
    Ended,
    /// The session belongs to another user or client.
    Mismatch,
}

impl Reason {
    /// The stable name (`revoked`, `terminated`, `max_duration`, `idle`,
    /// `ended`, `mismatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Revoked => "revoked",
            Reason::Terminated => "terminated",
            Reason::MaxDuration => "max_duration",
            Reason::Idle => "idle",
            Reason::Ended => "ended",
            Reason::Mismatch => "mismatch",
        }
    }

    /// What the relying party should do: `login_required` (send the user
    /// through a fresh login, OIDC `prompt=login`: the session is over but
    /// a new one may start) or `access_denied` (a new login is refused too
    /// while the revocation is in force: show an error, do not loop).
    pub fn rp_action(self) -> &'static str {
        match self {
            Reason::Revoked => "access_denied",
            _ => "login_required",
        }
    }

    /// How a session ended for this reason is recorded, where it is one.
    pub fn end_reason(self) -> Option<EndReason> {
        match self {
            Reason::Revoked => Some(EndReason::Revoked),
            Reason::Terminated => Some(EndReason::Terminated),
            Reason::MaxDuration => Some(EndReason::MaxDuration),
            Reason::Idle => Some(EndReason::Idle),
            Reason::Ended | Reason::Mismatch => None,
        }
    }

    fn of(r: &Refusal) -> Reason {
        match r {
            Refusal::Denied(d) => match d.end_reason() {
                EndReason::Revoked => Reason::Revoked,
                EndReason::Terminated => Reason::Terminated,
                EndReason::MaxDuration => Reason::MaxDuration,
                EndReason::Idle => Reason::Idle,
                EndReason::Logout => Reason::Ended,
            },
            Refusal::Ended { .. } | Refusal::UnknownSession(_) => Reason::Ended,
            Refusal::Mismatch(_) => Reason::Mismatch,
            // Not reached: store failures are Outcome::Unavailable.
            Refusal::Store(_) => Reason::Ended,
        }
    }
}

/// The answer to one token request.
#[derive(Debug)]
pub enum Outcome {
    /// Allowed, for a user session: the tokens carry these claims.
    Allow {
        /// The session and its deadlines.
        granted: Box<Granted>,
        /// The claims to add.
        claims: SessionClaims,
    },
    /// Allowed, nothing to add (client credentials, JWT bearer: no session).
    AllowUnchanged,
    /// Refused by the policy.
    Deny {
        /// Why, for the relying party.
        reason: Reason,
        /// The curfew session concerned, if any.
        session_id: Option<String>,
        /// How the session is recorded as ended now, if it is.
        ended: Option<EndReason>,
        /// The revocation's target, for a revocation (`user alice`).
        revoked: Option<String>,
        /// For the log and the answer (never internal detail).
        message: String,
    },
    /// The store failed and the policy does not go on without it. The
    /// detail is logged, never answered.
    Unavailable,
}

/// The curfew session id of a login: the same for every token request of
/// one login of one user at one client, 32 hex digits like every session id.
pub fn session_id_for(
    client_id: &str,
    subject: &str,
    login_session: Option<&str>,
    auth_time: Option<DateTime<Utc>>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        "curfew-token-hook-v1",
        client_id,
        subject,
        login_session.unwrap_or(""),
        &auth_time.map_or(String::new(), |t| t.timestamp().to_string()),
    ] {
        // Length-prefixed, so that no two tuples hash the same input.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` looks like a curfew session id (32 lowercase hex digits).
pub fn is_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a time a server reports, at `now`: a time after
/// `now + `[`MAX_SKEW`] is clamped to `now` (and logged, naming `field`);
/// one in the future inside the skew is `now` as well; a past time is kept.
pub fn server_time(t: DateTime<Utc>, now: DateTime<Utc>, field: &str) -> DateTime<Utc> {
    if t > now + MAX_SKEW {
        eprintln!(
            "curfew hook: warning: {field} {} is more than {} s ahead of this host's clock; \
             taken as now ({})",
            t.to_rfc3339(),
            MAX_SKEW.num_seconds(),
            now.to_rfc3339()
        );
    }
    t.min(now)
}

/// Parses a time a server sent in `field`: RFC 3339 text or a NumericDate
/// (integer seconds since the epoch). `Ok(None)` for "not said": absent,
/// or Go's zero time `0001-01-01T00:00:00Z` (what Hydra sends for unknown).
/// Anything else that is not a time between 1970 and 9999 is an error.
pub fn parse_time(v: &serde_json::Value, field: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    use chrono::TimeZone;
    let bad = |p: &str| FieldError::new(field, p);
    let t = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => {
            if s.is_empty() || s.starts_with("0001-01-01T00:00:00") {
                return Ok(None);
            }
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| bad("not an RFC 3339 time"))?
                .with_timezone(&Utc)
        }
        serde_json::Value::Number(n) => {
            // RFC 7519 allows a fractional NumericDate: whole seconds count.
            let secs = match n.as_i64() {
                Some(s) => s,
                None => match n.as_f64() {
                    Some(f) if f.is_finite() && (-1e15..1e15).contains(&f) => f.floor() as i64,
                    _ => return Err(bad("out of range (1970 to 9999)")),
                },
            };
            Utc.timestamp_opt(secs, 0)
                .single()
                .ok_or_else(|| bad("out of range (1970 to 9999)"))?
        }
        _ => return Err(bad("not a time (RFC 3339 text or a NumericDate)")),
    };
    if t.timestamp() < 0 || t.timestamp() > 253_402_300_799 {
        return Err(bad("out of range (1970 to 9999)"));
    }
    Ok(Some(t))
}

fn refusal(e: Refusal, session_id: Option<String>) -> Outcome {
    match e {
        Refusal::Store(e) => {
            eprintln!("curfew hook: error: {e}");
            Outcome::Unavailable
        }
        e => {
            let (ended, revoked) = match &e {
                Refusal::Denied(d) => (
                    Some(d.end_reason()),
                    match d {
                        curfew_policy::Deny::Revoked { target, .. } => Some(target.clone()),
                        _ => None,
                    },
                ),
                Refusal::Ended { reason, .. } => (Some(reason.unwrap_or(EndReason::Logout)), None),
                _ => (None, None),
            };
            Outcome::Deny {
                reason: Reason::of(&e),
                session_id,
                ended,
                revoked,
                message: e.to_string(),
            }
        }
    }
}

/// Decides one token request through `gate`. Blocks on the store.
pub fn decide(gate: &Gate, req: &TokenRequest) -> Outcome {
    let client_id = req.client_id.as_str();
    match req.grant {
        GrantKind::ClientCredentials => {
            // The subject (Hydra: the client id) is no user: only a
            // revocation of the client applies.
            let p = Principal {
                user: "",
                groups: &[],
                client_id,
                remember_me: false,
            };
            return match gate.admit(&p) {
                Ok(_) => Outcome::AllowUnchanged,
                Err(e) => refusal(e, None),
            };
        }
        GrantKind::Assertion => {
            let p = Principal {
                user: req.subject.as_deref().unwrap_or(""),
                groups: &req.groups,
                client_id,
                remember_me: false,
            };
            return match gate.admit(&p) {
                Ok(_) => Outcome::AllowUnchanged,
                Err(e) => refusal(e, None),
            };
        }
        GrantKind::Login | GrantKind::Refresh => {}
    }
    let Some(subject) = req.subject.as_deref() else {
        // The adapters refuse this before; a neutral caller may not.
        return Outcome::Deny {
            reason: Reason::Mismatch,
            session_id: None,
            ended: None,
            revoked: None,
            message: "a login's tokens need a subject".into(),
        };
    };
    let derived = session_id_for(
        client_id,
        subject,
        req.login_session.as_deref(),
        req.auth_time,
    );
    let sid = match (&req.carried_session, req.grant) {
        (Some(c), GrantKind::Refresh) if is_session_id(c) => c.clone(),
        _ => derived,
    };
    let p = Principal {
        user: subject,
        groups: &req.groups,
        client_id,
        remember_me: req.remember_me,
    };
    let now = gate.now();
    let started_at = req.auth_time.map(|t| server_time(t, now, "auth_time"));
    // Used only when the store is down and the policy allows going on.
    let known = Known {
        started_at: started_at.unwrap_or(now),
        last_activity: now,
    };
    // The first request of a login is its token issue; later ones
    // (refreshes, or a second code exchange of the same login) renew it.
    // A refresh needs the session it refreshes: one the store does not
    // know (a forged or stale `curfew_sid`, a record already removed) is
    // refused, never started anew with a caller-chosen id.
    let start = (req.grant != GrantKind::Refresh).then_some(started_at);
    let (granted, grant) = match gate.resume_or_start(&sid, &p, &known, start) {
        // Another request of the same login recorded it first.
        (Err(Refusal::Store(StoreError::Duplicate(_))), Grant::Issue) => {
            gate.resume_or_start(&sid, &p, &known, None)
        }
        r => r,
    };
    match granted {
        Ok(g) => {
            gate.audit(&g.audit_event(&p, grant));
            Outcome::Allow {
                claims: g.claims(),
                granted: Box::new(g),
            }
        }
        Err(e) => {
            gate.audit(&e.audit_event(&p, Some(&sid), grant));
            refusal(e, Some(sid))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn session_ids_are_stable_and_distinct() {
        let t = Utc.timestamp_opt(1_800_000_000, 0).single();
        let a = session_id_for("web", "alice", Some("s1"), t);
        assert!(is_session_id(&a));
        assert_eq!(a, session_id_for("web", "alice", Some("s1"), t));
        assert_ne!(a, session_id_for("web", "alice", Some("s2"), t));
        assert_ne!(a, session_id_for("ci", "alice", Some("s1"), t));
        assert_ne!(a, session_id_for("web", "alice", Some("s1"), None));
        // No ambiguity from concatenation.
        assert_ne!(
            session_id_for("ab", "c", None, None),
            session_id_for("a", "bc", None, None)
        );
    }

    #[test]
    fn grant_types() {
        use GrantKind::*;
        for (g, k) in [
            ("authorization_code", Login),
            ("refresh_token", Refresh),
            ("client_credentials", ClientCredentials),
            ("urn:ietf:params:oauth:grant-type:jwt-bearer", Assertion),
            ("urn:ietf:params:oauth:grant-type:device_code", Login),
        ] {
            assert_eq!(GrantKind::from_grant_type(g), Some(k), "{g}");
        }
        assert_eq!(GrantKind::from_grant_type("password"), None);
    }

    #[test]
    fn times_are_checked_where_they_enter() {
        let f = "auth_time";
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        assert_eq!(parse_time(&json!("0001-01-01T00:00:00Z"), f), Ok(None));
        assert_eq!(parse_time(&json!(null), f), Ok(None));
        assert_eq!(
            parse_time(&json!("2026-03-01T10:00:00+01:00"), f),
            Ok(Some(now))
        );
        assert_eq!(parse_time(&json!(now.timestamp()), f), Ok(Some(now)));
        // A fractional NumericDate (RFC 7519 allows one): whole seconds.
        assert_eq!(
            parse_time(&json!(now.timestamp() as f64 + 0.75), f),
            Ok(Some(now))
        );
        for bad in [
            json!("yesterday"),
            json!(-5),
            json!(-0.5),
            json!(1e300),
            json!(999_999_999_999_i64),
            json!("1900-01-01T00:00:00Z"),
            json!(true),
        ] {
            let e = parse_time(&bad, f).unwrap_err();
            assert_eq!(e.field, f, "{bad}");
        }
        // The future is clamped to now, the past kept.
        let later = now + chrono::Duration::hours(3);
        assert_eq!(server_time(later, now, f), now);
        assert_eq!(
            server_time(now + chrono::Duration::seconds(30), now, f),
            now
        );
        let earlier = now - chrono::Duration::hours(3);
        assert_eq!(server_time(earlier, now, f), earlier);
    }

    #[test]
    fn reasons_tell_the_relying_party_what_to_do() {
        assert_eq!(Reason::Revoked.rp_action(), "access_denied");
        for r in [
            Reason::Idle,
            Reason::MaxDuration,
            Reason::Terminated,
            Reason::Ended,
        ] {
            assert_eq!(r.rp_action(), "login_required", "{}", r.as_str());
        }
    }
}
