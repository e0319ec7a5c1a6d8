//! The neutral JSON route, `POST /v1/decide`, for OIDC servers that can
//! call any URL before they issue tokens (the panva `oidc-provider` adapter
//! in `oidc_hook/adapters/oidc-provider` uses it).
//!
//! Request (unknown fields are refused, so a typo is not silently ignored):
//!
//! ```json
//! {"grant_type": "refresh_token", "client_id": "web", "subject": "alice",
//!  "login_session": "server-session-id", "auth_time": "2026-03-01T09:00:00Z",
//!  "remember_me": false, "groups": ["staff"], "session_id": null}
//! ```
//!
//! - `grant_type`: an OAuth 2.0 grant type (see [`super::core`]).
//! - `auth_time`: RFC 3339 text or a NumericDate; checked as every server
//!   time is (the skew rule in [`super::core`]).
//! - `remember_me`: the server's own "remember me" signal (oidc-provider: a
//!   session that is not `transient`), never the refresh scope.
//! - `session_id`: the curfew session id of an earlier answer, if the
//!   server kept it (used by refreshes).
//!
//! Answers:
//!
//! | status | body |
//! |---|---|
//! | `200` | `{"decision": "allow", "session_id": "…" or null, "claims": {…}, "expires_in": 300 or null}` (`claims` empty and `expires_in` null for machine grants) |
//! | `403` | `{"decision": "deny", "reason": "idle", "rp_action": "login_required", "session_id": "…", "message": "…"}` |
//! | `400` | `{"error": "invalid_request", "field": "auth_time", "error_description": "…"}` |
//! | `503` | `{"error": "temporarily_unavailable"}` (store down, `on_unavailable: deny`) |
//!
//! `expires_in` is the lifetime in seconds of an access token issued now
//! (the user's token lifetime within `timeout.min..max`, never past the
//! session's absolute deadline), relative to the decision, so a server
//! whose clock differs from the hook's can still apply it.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::core::{parse_body, parse_time, FieldError, GrantKind, Outcome, TokenRequest};

/// The body of `POST /v1/decide`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// OAuth 2.0 grant type.
    pub grant_type: String,
    /// The client.
    pub client_id: String,
    /// The user; absent for client credentials.
    #[serde(default)]
    pub subject: Option<String>,
    /// The server's login (SSO) session id.
    #[serde(default)]
    pub login_session: Option<String>,
    /// When the user authenticated.
    #[serde(default)]
    pub auth_time: Value,
    /// A persistent login.
    #[serde(default)]
    pub remember_me: bool,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The curfew session id of an earlier answer.
    #[serde(default)]
    pub session_id: Option<String>,
}

impl DecideRequest {
    /// Parses a body, naming the field of an error.
    pub fn parse(body: &[u8]) -> Result<DecideRequest, FieldError> {
        parse_body(body)
    }

    /// The neutral request (the core checks its times against its clock).
    pub fn to_neutral(&self) -> Result<TokenRequest, FieldError> {
        let grant = GrantKind::from_grant_type(&self.grant_type)
            .ok_or_else(|| FieldError::new("grant_type", "not a grant type curfew knows"))?;
        if self.client_id.is_empty() {
            return Err(FieldError::new("client_id", "empty"));
        }
        let subject = self.subject.clone().filter(|s| !s.is_empty());
        let subject = match grant {
            GrantKind::ClientCredentials => None,
            _ => Some(subject.ok_or_else(|| FieldError::new("subject", "missing"))?),
        };
        let auth_time = parse_time(&self.auth_time, "auth_time")?;
        Ok(TokenRequest {
            grant,
            client_id: self.client_id.clone(),
            subject,
            login_session: self.login_session.clone().filter(|s| !s.is_empty()),
            auth_time,
            remember_me: self.remember_me,
            groups: self.groups.clone(),
            carried_session: self.session_id.clone(),
        })
    }
}

/// The status and body answering `outcome`.
pub fn answer(outcome: &Outcome) -> (u16, Value) {
    match outcome {
        Outcome::Allow { granted, claims } => (
            200,
            json!({"decision": "allow", "session_id": granted.session_id, "claims": claims,
                   "expires_in": (granted.allow.token_expires_at - granted.at).num_seconds().max(0)}),
        ),
        Outcome::AllowUnchanged => (
            200,
            json!({"decision": "allow", "session_id": null, "claims": Map::new(),
                   "expires_in": null}),
        ),
        Outcome::Deny {
            reason,
            session_id,
            message,
            ..
        } => (
            403,
            json!({"decision": "deny", "reason": reason.as_str(), "rp_action": reason.rp_action(),
                   "session_id": session_id, "message": message}),
        ),
        Outcome::Unavailable => (503, json!({"error": "temporarily_unavailable"})),
    }
}
