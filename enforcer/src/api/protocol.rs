//! The wire format of the local API, version 1: JSON lines over a unix
//! stream socket. Each request is one JSON object on one line, answered by
//! one JSON object on one line; see `docs/api.md` for every call.
//!
//! ```text
//! → {"v":1,"call":"sessions.list","args":{"all":false}}
//! ← {"v":1,"ok":true,"result":{"sessions":[...],"current":"…"}}
//! ← {"v":1,"ok":false,"error":{"code":"forbidden","message":"…"}}
//! ```
//!
//! [`parse`] is the only way from bytes to a [`Request`]: it bounds the size,
//! checks the version, refuses unknown calls and unknown fields, and checks
//! every string (length, no control characters) before a handler sees it.
//! It is pure, so it is fuzzed and property-tested.

use chrono::{DateTime, Utc};
use curfew_policy::Target;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The largest request line, in bytes (the newline excluded).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The longest name, id or host in a request, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// The longest `reason`, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// The most ids in one list.
pub const MAX_LIST: usize = 64;

/// Why a request was not answered: a stable code and a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The request is not valid JSON, or a field is missing, unknown or
    /// out of bounds.
    BadRequest,
    /// The request line is longer than [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// `v` is not a version this daemon speaks.
    UnsupportedVersion,
    /// `call` names no call of this version.
    UnknownCall,
    /// The caller may not do this (another user's sessions, an
    /// administrator's call).
    Forbidden,
    /// No such revocation (sessions of others are `forbidden`, so that the
    /// answer does not say whether they exist).
    NotFound,
    /// The session has already ended.
    Ended,
    /// The call would end the session the caller is using; it needs
    /// `include_current`.
    CurrentSession,
    /// A token lifetime outside the policy's bounds, or an expiry in the past.
    OutOfBounds,
    /// Too many requests from this user; try again in a second.
    RateLimited,
    /// Too many connections at once.
    Busy,
    /// The policy or the store cannot be used right now.
    Unavailable,
}

impl Code {
    /// The stable name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::TooLarge => "too_large",
            Code::UnsupportedVersion => "unsupported_version",
            Code::UnknownCall => "unknown_call",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::Ended => "ended",
            Code::CurrentSession => "current_session",
            Code::OutOfBounds => "out_of_bounds",
            Code::RateLimited => "rate_limited",
            Code::Busy => "busy",
            Code::Unavailable => "unavailable",
        }
    }
}

/// A refusal: what the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable, for programs.
    pub code: Code,
    /// One sentence, for people: what was refused and why.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The protocol version ([`VERSION`]).
    pub v: u32,
    /// Whether the call was done.
    pub ok: bool,
    /// The call's answer when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The refusal when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Response {
    /// The response for a handler's outcome.
    pub fn of(outcome: Result<Value, ApiError>) -> Response {
        match outcome {
            Ok(result) => Response {
                v: VERSION,
                ok: true,
                result: Some(result),
                error: None,
            },
            Err(e) => Response {
                v: VERSION,
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }

    /// One line of JSON, newline included.
    pub fn to_line(&self) -> String {
        // Serializing our own types cannot fail; stay total anyway.
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"v":1,"ok":false,"error":{"code":"bad_request","message":"unencodable answer"}}"#
                .to_owned()
        });
        line.push('\n');
        line
    }

    /// Back to a result, for clients.
    pub fn into_result(self) -> Result<Value, ApiError> {
        match (self.ok, self.result, self.error) {
            (true, r, _) => Ok(r.unwrap_or(Value::Null)),
            (false, _, Some(e)) => Err(e),
            (false, _, None) => Err(ApiError::new(
                Code::BadRequest,
                "the daemon refused the request without saying why",
            )),
        }
    }
}

/// A user argument: a name, or `me` for the caller.
pub const ME: &str = "me";

/// `sessions.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Whose sessions (`me`, a name; none: the caller's, or everyone's for
    /// an administrator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ended sessions too.
    #[serde(default)]
    pub all: bool,
}

/// `sessions.terminate`: by ids, or every live session of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateArgs {
    /// Session ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Every live session of this user (`me` for the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// With `user`: keep these sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// End the session the caller is using too.
    #[serde(default)]
    pub include_current: bool,
    /// Only say which sessions would be ended (for a confirmation prompt).
    #[serde(default)]
    pub dry_run: bool,
}

/// `revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeArgs {
    /// `{"kind":"user","value":"me"}`, `{"kind":"session","value":ID}`,
    /// `{"kind":"client","value":C}`, `{"kind":"all"}`.
    pub target: Target,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the lock lifts by itself (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// A session target may be the session the caller is using.
    #[serde(default)]
    pub include_current: bool,
}

/// `unrevoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnrevokeArgs {
    /// The revocation id.
    pub id: String,
}

/// `timeout.show`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserArgs {
    /// The user (`me` or none: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A token lifetime to choose: seconds, or back to the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This many seconds.
    Seconds(u64),
    /// The policy's default.
    Default,
}

impl Serialize for Choice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Choice::Seconds(n) => s.serialize_u64(*n),
            Choice::Default => s.serialize_str("default"),
        }
    }
}

impl<'de> Deserialize<'de> for Choice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .map(Choice::Seconds)
                .ok_or_else(|| serde::de::Error::custom("timeout: a whole number of seconds")),
            Value::String(s) if s == "default" => Ok(Choice::Default),
            _ => Err(serde::de::Error::custom(
                "timeout: a whole number of seconds or \"default\"",
            )),
        }
    }
}

/// `timeout.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSetArgs {
    /// The user (`me` or none: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Seconds, or `"default"`.
    pub timeout: Choice,
}

/// `policy.explain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainArgs {
    /// The user (`me` or none: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A PAM service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// An OIDC client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The host (default: this host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One call, with its arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `whoami`: who the daemon thinks the caller is.
    Whoami,
    /// `sessions.list`.
    SessionsList(ListArgs),
    /// `sessions.terminate`.
    SessionsTerminate(TerminateArgs),
    /// `revoke`.
    Revoke(RevokeArgs),
    /// `revocations.list` (administrators).
    RevocationsList,
    /// `unrevoke` (administrators).
    Unrevoke(UnrevokeArgs),
    /// `timeout.show`.
    TimeoutShow(UserArgs),
    /// `timeout.set`.
    TimeoutSet(TimeoutSetArgs),
    /// `policy.explain`.
    PolicyExplain(ExplainArgs),
    /// `wake` (administrators): run an enforcement pass now.
    Wake,
}

impl Request {
    /// The call's name, as on the wire.
    pub fn call(&self) -> &'static str {
        match self {
            Request::Whoami => "whoami",
            Request::SessionsList(_) => "sessions.list",
            Request::SessionsTerminate(_) => "sessions.terminate",
            Request::Revoke(_) => "revoke",
            Request::RevocationsList => "revocations.list",
            Request::Unrevoke(_) => "unrevoke",
            Request::TimeoutShow(_) => "timeout.show",
            Request::TimeoutSet(_) => "timeout.set",
            Request::PolicyExplain(_) => "policy.explain",
            Request::Wake => "wake",
        }
    }

    /// The request as one line, newline included (what a client sends).
    pub fn to_line(&self) -> String {
        let args = match self {
            Request::Whoami | Request::RevocationsList | Request::Wake => None,
            Request::SessionsList(a) => serde_json::to_value(a).ok(),
            Request::SessionsTerminate(a) => serde_json::to_value(a).ok(),
            Request::Revoke(a) => serde_json::to_value(a).ok(),
            Request::Unrevoke(a) => serde_json::to_value(a).ok(),
            Request::TimeoutShow(a) => serde_json::to_value(a).ok(),
            Request::TimeoutSet(a) => serde_json::to_value(a).ok(),
            Request::PolicyExplain(a) => serde_json::to_value(a).ok(),
        };
        let mut envelope = serde_json::json!({ "v": VERSION, "call": self.call() });
        if let Some(a) = args {
            envelope["args"] = a;
        }
        let mut line = envelope.to_string();
        line.push('\n');
        line
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    v: Value,
    call: String,
    #[serde(default)]
    args: Option<Value>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::BadRequest, message)
}

/// Parses one request line (without its newline).
///
/// # Errors
///
/// [`Code::TooLarge`] over [`MAX_REQUEST_BYTES`]; [`Code::BadRequest`] for
/// anything that is not one JSON object of the documented shape, with a
/// field out of bounds, or with a control character in a string;
/// [`Code::UnsupportedVersion`]; [`Code::UnknownCall`].
pub fn parse(line: &[u8]) -> Result<Request, ApiError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            Code::TooLarge,
            format!(
                "the request is {} bytes; the limit is {MAX_REQUEST_BYTES}",
                line.len()
            ),
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| bad("the request is not UTF-8"))?;
    let envelope: Envelope = serde_json::from_str(text.trim_end_matches(['\r', '\n']))
        .map_err(|e| bad(format!("the request is not a valid envelope: {e}")))?;
    match envelope.v.as_u64() {
        Some(v) if v == u64::from(VERSION) => {}
        _ => {
            return Err(ApiError::new(
                Code::UnsupportedVersion,
                format!(
                    "version {} is not spoken here (this daemon speaks version {VERSION})",
                    envelope.v
                ),
            ))
        }
    }
    let args = envelope.args.unwrap_or(Value::Object(Default::default()));
    if !args.is_object() {
        return Err(bad("args must be an object"));
    }
    fn of<T: serde::de::DeserializeOwned>(call: &str, args: Value) -> Result<T, ApiError> {
        serde_json::from_value(args).map_err(|e| bad(format!("{call}: args: {e}")))
    }
    let none = |call: &str, args: &Value| -> Result<(), ApiError> {
        match args.as_object() {
            Some(o) if o.is_empty() => Ok(()),
            _ => Err(bad(format!("{call} takes no args"))),
        }
    };
    let request = match envelope.call.as_str() {
        "whoami" => none("whoami", &args).map(|_| Request::Whoami)?,
        "sessions.list" => Request::SessionsList(of("sessions.list", args)?),
        "sessions.terminate" => Request::SessionsTerminate(of("sessions.terminate", args)?),
        "revoke" => Request::Revoke(of("revoke", args)?),
        "revocations.list" => none("revocations.list", &args).map(|_| Request::RevocationsList)?,
        "unrevoke" => Request::Unrevoke(of("unrevoke", args)?),
        "timeout.show" => Request::TimeoutShow(of("timeout.show", args)?),
        "timeout.set" => Request::TimeoutSet(of("timeout.set", args)?),
        "policy.explain" => Request::PolicyExplain(of("policy.explain", args)?),
        "wake" => none("wake", &args).map(|_| Request::Wake)?,
        other => {
            return Err(ApiError::new(
                Code::UnknownCall,
                format!(
                    "there is no call {:?} in version {VERSION}",
                    other.chars().take(64).collect::<String>()
                ),
            ))
        }
    };
    check(&request)?;
    Ok(request)
}

/// Checks every string of a request: present names not empty, within
/// bounds, no control characters.
fn check(request: &Request) -> Result<(), ApiError> {
    fn name(field: &str, v: &str) -> Result<(), ApiError> {
        if v.is_empty() {
            return Err(bad(format!("{field} may not be empty")));
        }
        if v.len() > MAX_NAME_BYTES {
            return Err(bad(format!(
                "{field} is {} bytes; the limit is {MAX_NAME_BYTES}",
                v.len()
            )));
        }
        if v.chars().any(char::is_control) {
            return Err(bad(format!("{field} contains a control character")));
        }
        Ok(())
    }
    fn opt(field: &str, v: &Option<String>) -> Result<(), ApiError> {
        v.as_deref().map_or(Ok(()), |v| name(field, v))
    }
    fn list(field: &str, v: &[String]) -> Result<(), ApiError> {
        if v.len() > MAX_LIST {
            return Err(bad(format!(
                "{field} has {} entries; the limit is {MAX_LIST}",
                v.len()
            )));
        }
        v.iter()
            .enumerate()
            .try_for_each(|(i, s)| name(&format!("{field}[{i}]"), s))
    }
    match request {
        Request::Whoami | Request::RevocationsList | Request::Wake => Ok(()),
        Request::SessionsList(a) => opt("user", &a.user),
        Request::SessionsTerminate(a) => {
            list("ids", &a.ids)?;
            list("except", &a.except)?;
            opt("user", &a.user)?;
            match (a.ids.is_empty(), &a.user) {
                (true, None) => Err(bad("sessions.terminate needs ids or user")),
                (false, Some(_)) => Err(bad("sessions.terminate takes ids or user, not both")),
                (false, None) if !a.except.is_empty() => Err(bad("except goes with user")),
                _ => Ok(()),
            }
        }
        Request::Revoke(a) => {
            match &a.target {
                Target::All => {}
                t => name("target.value", t.value())?,
            }
            if let Some(r) = &a.reason {
                if r.len() > MAX_REASON_BYTES {
                    return Err(bad(format!(
                        "reason is {} bytes; the limit is {MAX_REASON_BYTES}",
                        r.len()
                    )));
                }
                if r.chars().any(char::is_control) {
                    return Err(bad("reason contains a control character"));
                }
            }
            Ok(())
        }
        Request::Unrevoke(a) => name("id", &a.id),
        Request::TimeoutShow(a) => opt("user", &a.user),
        Request::TimeoutSet(a) => opt("user", &a.user),
        Request::PolicyExplain(a) => {
            opt("user", &a.user)?;
            opt("service", &a.service)?;
            opt("client", &a.client)?;
            opt("host", &a.host)?;
            if a.service.is_some() && a.client.is_some() {
                return Err(bad("policy.explain takes service or client, not both"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(line: &str) -> Code {
        parse(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn every_request_round_trips_through_its_line() {
        let requests = [
            Request::Whoami,
            Request::SessionsList(ListArgs {
                user: Some("me".into()),
                all: true,
            }),
            Request::SessionsTerminate(TerminateArgs {
                user: Some("alice".into()),
                except: vec!["abc".into()],
                include_current: true,
                ..Default::default()
            }),
            Request::SessionsTerminate(TerminateArgs {
                ids: vec!["abc".into(), "def".into()],
                dry_run: true,
                ..Default::default()
            }),
            Request::Revoke(RevokeArgs {
                target: Target::User("me".into()),
                reason: Some("lost laptop".into()),
                expires_at: None,
                include_current: false,
            }),
            Request::Revoke(RevokeArgs {
                target: Target::All,
                reason: None,
                expires_at: None,
                include_current: false,
            }),
            Request::RevocationsList,
            Request::Unrevoke(UnrevokeArgs { id: "r1".into() }),
            Request::TimeoutShow(UserArgs::default()),
            Request::TimeoutSet(TimeoutSetArgs {
                user: None,
                timeout: Choice::Seconds(900),
            }),
            Request::TimeoutSet(TimeoutSetArgs {
                user: Some("bob".into()),
                timeout: Choice::Default,
            }),
            Request::PolicyExplain(ExplainArgs {
                service: Some("sshd".into()),
                ..Default::default()
            }),
            Request::Wake,
        ];
        for r in requests {
            let line = r.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(parse(line.trim_end().as_bytes()), Ok(r), "{line}");
        }
    }

    #[test]
    fn hostile_requests_are_refused_with_their_code() {
        assert_eq!(code("not json"), Code::BadRequest);
        assert_eq!(code("[]"), Code::BadRequest);
        assert_eq!(code(r#"{"v":1}"#), Code::BadRequest);
        assert_eq!(code(r#"{"v":2,"call":"whoami"}"#), Code::UnsupportedVersion);
        assert_eq!(
            code(r#"{"v":"1","call":"whoami"}"#),
            Code::UnsupportedVersion
        );
        assert_eq!(code(r#"{"v":1,"call":"rm -rf"}"#), Code::UnknownCall);
        assert_eq!(code(r#"{"v":1,"call":"whoami","x":1}"#), Code::BadRequest);
        assert_eq!(
            code(r#"{"v":1,"call":"whoami","args":{"x":1}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"sessions.list","args":{"user":"a","evil":1}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"sessions.list","args":{"user":"a\u001b[2J"}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"sessions.list","args":{"user":""}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"sessions.terminate","args":{}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"sessions.terminate","args":{"ids":["a"],"user":"b"}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"timeout.set","args":{"timeout":-5}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"timeout.set","args":{}}"#),
            Code::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"call":"revoke","args":{"target":{"kind":"root"}}}"#),
            Code::BadRequest
        );
        let big = format!(
            r#"{{"v":1,"call":"whoami","pad":"{}"}}"#,
            "x".repeat(MAX_REQUEST_BYTES)
        );
        assert_eq!(code(&big), Code::TooLarge);
        let many: Vec<String> = (0..=MAX_LIST).map(|i| format!("\"s{i}\"")).collect();
        assert_eq!(
            code(&format!(
                r#"{{"v":1,"call":"sessions.terminate","args":{{"ids":[{}]}}}}"#,
                many.join(",")
            )),
            Code::BadRequest
        );
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err().code, Code::BadRequest);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes: a request or a refusal, never a panic; what is
        /// accepted is within every bound.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = parse(&bytes) {
                prop_assert!(check(&r).is_ok());
            }
        }

        /// JSON-shaped input with the right envelope and arbitrary args.
        #[test]
        fn arbitrary_args_never_panic(
            call in prop::sample::select(vec![
                "whoami", "sessions.list", "sessions.terminate", "revoke",
                "revocations.list", "unrevoke", "timeout.show", "timeout.set",
                "policy.explain", "wake", "nope",
            ]),
            key in "[a-z_]{1,16}",
            text in ".{0,40}",
            n in any::<i64>(),
        ) {
            for args in [
                serde_json::json!({ key.clone(): text.clone() }),
                serde_json::json!({ key.clone(): n }),
                serde_json::json!({ key.clone(): [text.clone()] }),
                serde_json::json!({ "user": text.clone(), "ids": [text.clone()] }),
                serde_json::json!({ "target": { "kind": text.clone(), "value": text.clone() } }),
                serde_json::json!({ "timeout": n }),
            ] {
                let line = serde_json::json!({"v": 1, "call": call, "args": args}).to_string();
                if let Ok(r) = parse(line.as_bytes()) {
                    prop_assert!(check(&r).is_ok());
                    // What is accepted survives its own encoding.
                    prop_assert_eq!(parse(r.to_line().trim_end().as_bytes()), Ok(r));
                }
            }
        }
    }
}
