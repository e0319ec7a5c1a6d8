//! Property test of the token hook's request parsing and decision, through
//! the real router (`tower::ServiceExt::oneshot`), on stable Rust (it runs
//! under `cargo test`, so `scripts/test` runs it). Issue 12: "no input to
//! the token hook makes it answer with a panic message".
//!
//! Hydra-shaped (`POST /token-hook`) and neutral-shaped (`POST
//! /v1/decide`) requests are generated with times at the extremes (i64
//! min/max, years 0, 1969, 9999, +275760, negative, fractional, numbers
//! beyond f64, text where numbers go), fields missing, of the wrong kind or
//! nested deeply. Every answer: no 5xx, no parser or panic text, a 400
//! names the field in the request's own shape; a well-formed request gets
//! the decision the policy gives (`max_duration` counted from the login
//! time, a future time taken as now, an out-of-range time refused as a
//! 400 naming the time field). `fuzz/fuzz_targets/token_hook.rs` (nightly,
//! `scripts/fuzz`) explores the parser further from the same entry point
//! as `oidc_hook/tests/fuzz_corpus.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use curfew_oidc::hook::{router, HookAuth, HookOptions, HookState};
use curfew_oidc::{Gate, ManualClock, PolicyCell};
use curfew_policy::store::MemoryStore;
use curfew_policy::Policy;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

/// `max_duration` 1 h and inactivity as long (it may not be longer), so a
/// login's age alone decides; an old login is refused as past
/// `max_duration` or idle, both at the same moment.
const POLICY: &str = "version: 1\nsession: { max_duration: 1h, inactivity: 1h }\n";

/// The reasons an old login may be refused with.
const TOO_OLD: &[&str] = &["max_duration", "idle"];

const HYDRA_TIME: &str = "session.id_token.id_token_claims.auth_time";

/// What an answer may never contain.
const LEAKS: &[&str] = &[
    "invalid type",
    "expected struct",
    "panicked",
    "thread '",
    "TokenHookRequest",
    "DecideRequest",
    "HookSession",
    "IdTokenClaims",
    "serde",
    " at line ",
    "u64",
    "i64",
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn app() -> axum::Router {
    let clock = Arc::new(ManualClock::new(t0()));
    let policy = Policy::parse(POLICY, "policy.yaml").unwrap();
    let gate = Gate::new(PolicyCell::new(policy), Arc::new(MemoryStore::new()), clock);
    router(HookState::new(
        gate,
        HookOptions::default(),
        None,
        HookAuth::default(),
    ))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// POSTs `body` to `path` on a fresh hook; the status and the body's text.
fn post(path: &str, body: String) -> (StatusCode, String) {
    runtime().block_on(async {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// The checks every answer passes; the parsed body, if JSON.
fn check_answer(status: StatusCode, text: &str, body: &str) -> Option<Value> {
    assert!(
        !status.is_server_error(),
        "{status} for {body:.300}\nanswer: {text}"
    );
    for leak in LEAKS {
        assert!(
            !text.contains(leak),
            "answer holds {leak:?}: {text}\nfor {body:.300}"
        );
    }
    let v: Option<Value> = serde_json::from_str(text).ok();
    if status == StatusCode::BAD_REQUEST {
        let v = v.as_ref().expect("a 400 is JSON");
        let field = v["field"].as_str().expect("a 400 names the field");
        let description = v["error_description"].as_str().unwrap_or_default();
        assert!(
            !field.is_empty() && description.starts_with(&format!("{field}: ")),
            "{v}"
        );
    }
    v
}

/// A time value as raw JSON text (so numbers beyond f64 and odd spellings
/// are sent as written), and what it means: `Some(Some(secs))` a time,
/// `Some(None)` "not said", `None` not a usable time.
fn time_text() -> impl Strategy<Value = (String, Option<Option<i64>>)> {
    let num = |s: i64| (s.to_string(), usable(s));
    prop_oneof![
        // Around the test's now: inside and outside max_duration, future.
        (-3 * 3600i64..3 * 3600).prop_map(move |d| num(t0().timestamp() + d)),
        any::<i64>().prop_map(num),
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            -62_167_219_200,   // year 0
            253_402_300_799,   // 9999-12-31T23:59:59
            253_402_300_800,   // year 10000
            8_210_266_876_800, // +275760
            8_640_000_000_000,
        ])
        .prop_map(num),
        // Fractional: whole seconds count (RFC 7519 NumericDate).
        (-3 * 3600i64..3 * 3600, 1u32..1000).prop_map(|(d, ms)| {
            let s = t0().timestamp() + d;
            (format!("{s}.{ms:03}"), usable(s))
        }),
        // Text: RFC 3339 at and past the ends, and not times at all.
        (-3 * 3600i64..3 * 3600).prop_map(|d| {
            let t = t0() + Duration::seconds(d);
            (format!("\"{}\"", t.to_rfc3339()), usable(t.timestamp()))
        }),
        prop::sample::select(vec![
            ("\"0001-01-01T00:00:00Z\"", Some(None::<i64>)),
            ("\"\"", Some(None)),
            ("null", Some(None)),
            ("\"0000-01-01T00:00:00Z\"", None),
            ("\"1969-12-31T23:59:59Z\"", None),
            ("\"9999-12-31T23:59:59Z\"", Some(Some(253_402_300_799))),
            ("\"9999-12-31T23:59:59-01:00\"", None),
            ("\"+275760-09-13T00:00:00Z\"", None),
            ("\"-000001-01-01T00:00:00Z\"", None),
            ("\"1800000000\"", None),
            ("\"tomorrow\"", None),
            ("1e400", None),
            ("-1e400", None),
            ("1.7976931348623157e308", None),
            ("123456789012345678901234567890", None),
            ("-0", Some(Some(0))),
            ("-0.5", None),
            ("true", None),
            ("[1800000000]", None),
            ("{\"secs\": 1800000000}", None),
        ])
        .prop_map(|(t, m)| (t.to_owned(), m)),
    ]
}

/// Whether `secs` is a time the hook takes (1970 to 9999).
fn usable(secs: i64) -> Option<Option<i64>> {
    (0..=253_402_300_799).contains(&secs).then_some(Some(secs))
}

/// A string-typed value: usually a name, sometimes the wrong kind.
fn name_or_junk() -> impl Strategy<Value = (Value, bool)> {
    prop_oneof![
        12 => "[a-z]{1,12}".prop_map(|s| (Value::String(s), true)),
        1 => Just((Value::Null, false)),
        1 => any::<i64>().prop_map(|n| (json!(n), false)),
        1 => Just((json!(["alice"]), false)),
        1 => Just((json!({"name": "alice"}), false)),
        1 => Just((json!(true), false)),
    ]
}

/// `v` inside `depth` levels of lists.
fn nest(v: String, depth: usize) -> String {
    format!("{}{v}{}", "[".repeat(depth), "]".repeat(depth))
}

const GRANTS: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "password",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// Hydra's shape with every part varied.
    #[test]
    fn hydra_requests_get_a_clean_answer(
        (time, meaning) in time_text(),
        (subject, subject_ok) in name_or_junk(),
        (client, client_ok) in name_or_junk(),
        grant in prop_oneof![3 => Just("authorization_code"), 2 => prop::sample::select(GRANTS)],
        drop in prop_oneof![3 => Just(vec![]), 1 => prop::sample::subsequence(vec!["session", "request", "id_token", "grant_types", "subject", "client_id"], 1..=2)],
        depth in prop_oneof![4 => Just(0usize), 1 => 1usize..300],
    ) {
        // A number beyond f64 is refused before any field is read.
        let time_field = if time.contains("e400") { "body" } else { HYDRA_TIME };
        let time = if depth > 0 { nest(time, depth) } else { time };
        let mut claims = format!(r#""sub": {subject}, "auth_time": {time}, "ext": {{"sid": "hydra-1"}}"#);
        let mut id_token = format!(r#""id_token_claims": {{{claims}}}, "subject": {subject}"#);
        if drop.contains(&"subject") {
            claims = format!(r#""auth_time": {time}"#);
            id_token = format!(r#""id_token_claims": {{{claims}}}"#);
        }
        let mut session = format!(r#""id_token": {{{id_token}}}, "extra": {{}}, "client_id": {client}"#);
        if drop.contains(&"id_token") {
            session = format!(r#""client_id": {client}"#);
        }
        let grant_types = if drop.contains(&"grant_types") { String::new() } else {
            format!(r#", "grant_types": ["{grant}"]"#)
        };
        let client_field = if drop.contains(&"client_id") { String::new() } else {
            format!(r#""client_id": {client}, "#)
        };
        let request = format!(r#"{{{client_field}"granted_scopes": ["openid", "offline"]{grant_types}}}"#);
        let mut parts = Vec::new();
        if !drop.contains(&"session") { parts.push(format!(r#""session": {{{session}}}"#)); }
        if !drop.contains(&"request") { parts.push(format!(r#""request": {request}"#)); }
        let body = format!("{{{}}}", parts.join(", "));

        let (status, text) = post("/token-hook", body.clone());
        let v = check_answer(status, &text, &body);

        // A well-formed login: the decision follows the policy.
        let well_formed = drop.is_empty() && depth == 0 && subject_ok && client_ok
            && grant == "authorization_code";
        if well_formed {
            match meaning {
                None => {
                    prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}", text);
                    prop_assert_eq!(v.as_ref().and_then(|v| v["field"].as_str()), Some(time_field));
                }
                Some(at) => {
                    let start = at.map_or(t0(), |s| Utc.timestamp_opt(s, 0).unwrap().min(t0()));
                    let age = t0() - start;
                    if (age - Duration::hours(1)).num_seconds().abs() > 5 {
                        let want = if age < Duration::hours(1) { StatusCode::OK } else { StatusCode::FORBIDDEN };
                        prop_assert_eq!(status, want, "auth_time {:?}: {}", at, text);
                        if want == StatusCode::FORBIDDEN {
                            let reason = v.as_ref().and_then(|v| v["curfew_reason"].as_str()).unwrap_or_default();
                            prop_assert!(TOO_OLD.contains(&reason), "{}", text);
                        }
                    }
                }
            }
        }
        // Client credentials with a usable time: never refused for age.
        if drop.is_empty() && depth == 0 && client_ok && subject_ok && grant == "client_credentials" && meaning.is_some() {
            prop_assert_eq!(status, StatusCode::NO_CONTENT, "{}", text);
        }
    }

    /// The neutral route's shape with every part varied.
    #[test]
    fn neutral_requests_get_a_clean_answer(
        (time, meaning) in time_text(),
        (subject, subject_ok) in name_or_junk(),
        (client, client_ok) in name_or_junk(),
        grant in prop_oneof![3 => Just("authorization_code"), 2 => prop::sample::select(GRANTS)],
        remember in prop_oneof![4 => Just("false"), 1 => Just("true"), 1 => Just("\"yes\""), 1 => Just("1"), 1 => Just("null")],
        drop in prop_oneof![3 => Just(vec![]), 1 => prop::sample::subsequence(vec!["grant_type", "client_id", "subject", "auth_time"], 1..=2)],
        extra_field in prop::bool::weighted(0.2),
        depth in prop_oneof![4 => Just(0usize), 1 => 1usize..300],
    ) {
        let time_field = if time.contains("e400") { "body" } else { "auth_time" };
        let time = if depth > 0 { nest(time, depth) } else { time };
        let mut fields = Vec::new();
        if !drop.contains(&"grant_type") { fields.push(format!(r#""grant_type": "{grant}""#)); }
        if !drop.contains(&"client_id") { fields.push(format!(r#""client_id": {client}"#)); }
        if !drop.contains(&"subject") { fields.push(format!(r#""subject": {subject}"#)); }
        if !drop.contains(&"auth_time") { fields.push(format!(r#""auth_time": {time}"#)); }
        fields.push(format!(r#""remember_me": {remember}, "groups": ["staff"]"#));
        if extra_field { fields.push(r#""auth_tme": 5"#.to_owned()); }
        let body = format!("{{{}}}", fields.join(", "));

        let (status, text) = post("/v1/decide", body.clone());
        let v = check_answer(status, &text, &body);

        let well_formed = drop.is_empty() && depth == 0 && subject_ok && client_ok
            && !extra_field && remember == "false" && grant == "authorization_code";
        if well_formed {
            let v = v.expect("JSON");
            match meaning {
                None => {
                    prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}", text);
                    prop_assert_eq!(v["field"].as_str(), Some(time_field));
                }
                Some(at) => {
                    let start = at.map_or(t0(), |s| Utc.timestamp_opt(s, 0).unwrap().min(t0()));
                    let age = t0() - start;
                    let limit = Duration::hours(1);
                    if (age - limit).num_seconds().abs() > 5 {
                        let allowed = age < limit;
                        prop_assert_eq!(v["decision"].as_str(), Some(if allowed { "allow" } else { "deny" }), "auth_time {:?}: {}", at, text);
                        if !allowed {
                            let reason = v["reason"].as_str().unwrap_or_default();
                            prop_assert!(TOO_OLD.contains(&reason), "{}", text);
                        }
                    }
                }
            }
        }
        if extra_field && depth == 0 {
            prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}", text);
        }
    }

    /// Any bytes at all: never a 5xx or leaked text.
    #[test]
    fn any_body_gets_a_clean_answer(body in prop_oneof![
        ".{0,200}",
        prop::sample::select(vec!["null", "true", "0", "\"x\"", "[]", "{}", "[{}]", "{\"session\": null}",
            "{\"request\": []}", "{\"session\": {\"id_token\": 5}}", "{\"subject\": 5}",
            "{\"request\": {\"grant_types\": \"refresh_token\"}}",
            "{\"request\": {\"grant_types\": [5]}}"]).prop_map(str::to_owned),
        (1usize..400).prop_map(|d| nest("{}".into(), d)),
        (1usize..400).prop_map(|d| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d))),
    ], path in prop::sample::select(vec!["/token-hook", "/v1/decide"])) {
        let (status, text) = post(path, body.clone());
        check_answer(status, &text, &body);
        prop_assert!(status == StatusCode::BAD_REQUEST || status.is_success() || status == StatusCode::FORBIDDEN,
            "{} for {:?}: {}", status, body, text);
    }
}

/// The answers for the bodies the issue names, exactly.
#[test]
fn bodies_of_the_wrong_kind_are_named_in_our_words() {
    let cases = [
        ("/token-hook", "null", "body", "body: must be an object, not null"),
        ("/token-hook", "{\"session\": null}", "session", "session: must be an object, not null"),
        ("/token-hook", "{\"request\": {\"grant_types\": \"refresh_token\"}}", "request.grant_types", "request.grant_types: must be a list, not text"),
        ("/token-hook", "{\"request\": {\"grant_types\": [5]}}", "request.grant_types[0]", "request.grant_types[0]: must be text, not a number"),
        ("/v1/decide", "{\"client_id\": \"web\"}", "grant_type", "grant_type: missing"),
        ("/v1/decide", "{\"grant_type\": \"refresh_token\", \"client_id\": \"web\", \"remember_me\": \"yes\"}", "remember_me", "remember_me: must be true or false, not text"),
        ("/v1/decide", "{\"grant_type\": \"refresh_token\", \"client_id\": \"web\", \"x\": 1}", "x", "x: not a field of this request (the fields are grant_type, client_id, subject, login_session, auth_time, remember_me, groups, session_id)"),
        ("/v1/decide", "{\"grant_type\": \"authorization_code\", \"client_id\": \"web\", \"subject\": \"a\", \"auth_time\": 1e400}", "body", "body: the body holds a number too large to read"),
        ("/v1/decide", &nest("1".into(), 200), "body", "body: must be an object, not a list"),
        ("/v1/decide", &format!("{{\"groups\": {}}}", nest("\"a\"".into(), 200)), "groups[0]", "groups[0]: must be text, not a list"),
        ("/v1/decide", &format!("{{\"grant_type\": \"refresh_token\", \"client_id\": \"web\", \"auth_time\": {}}}", nest("1".into(), 200)), "body", "body: the body is nested too deeply (at most 128 levels)"),
        ("/token-hook", "[]", "body", "body: must be an object, not a list"),
        ("/v1/decide", "[\"refresh_token\", \"web\"]", "body", "body: must be an object, not a list"),
        ("/v1/decide", "\"x\"", "body", "body: must be an object, not text"),
        ("/v1/decide", "{not json", "body", "body: the body is not JSON"),
        ("/v1/decide", "{\"grant_type\": \"authorization_code\", \"client_id\": \"web\", \"subject\": \"a\", \"auth_time\": 9223372036854775807}", "auth_time", "auth_time: out of range (1970 to 9999)"),
    ];
    for (path, body, field, description) in cases {
        let (status, text) = post(path, body.to_owned());
        let v = check_answer(status, &text, body).expect("JSON");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert_eq!(v["field"], field, "{body}: {text}");
        assert_eq!(v["error_description"], description, "{body}: {text}");
    }
}

/// The ends feed's query in our words too.
#[test]
fn a_bad_ends_query_is_named() {
    let (status, text) = runtime().block_on(async {
        let resp = app()
            .oneshot(
                Request::get("/v1/ends?after=-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    });
    let v = check_answer(status, &text, "?after=-1").expect("JSON");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error_description"],
        "after: must be a whole number, 0 or more"
    );
}
