//! The request and response shape of Ory Hydra's token hook
//! (`oauth2.token_hook`), read leniently: unknown fields are ignored so that
//! servers speaking the same shape, and future Hydra versions, work too.
//!
//! Hydra POSTs, before it issues tokens for any grant type:
//!
//! ```json
//! {"session": {"id_token": {"id_token_claims": {"sub": "alice", "auth_time": "2026-03-01T09:00:00Z",
//!                                              "ext": {"sid": "…"}},
//!                           "subject": "alice"},
//!              "extra": {}, "client_id": "web"},
//!  "request": {"client_id": "web", "granted_scopes": ["openid", "offline"],
//!              "grant_types": ["authorization_code"]}}
//! ```
//!
//! and reads `204` (allow, nothing changed), `200` with
//! `{"session": {"access_token": {…}, "id_token": {…}}}` (allow, claims
//! replaced by these), `403` (`access_denied`), anything else
//! (`server_error`). The legacy refresh hook's top-level `subject`,
//! `client_id` and `granted_scopes` are read too.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body Hydra posts to the token hook.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TokenHookRequest {
    /// The session the tokens are for.
    #[serde(default)]
    pub session: HookSession,
    /// The token request.
    #[serde(default)]
    pub request: HookRequest,
    /// Legacy refresh hook: the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Legacy refresh hook: the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Legacy refresh hook: the granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_scopes: Option<Vec<String>>,
}

/// Hydra's `oauth2.Session`, the parts the hook reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HookSession {
    /// The OpenID session: ID token claims and the subject.
    #[serde(default)]
    pub id_token: Option<IdTokenSession>,
    /// The access token's extra claims (set by the consent app).
    #[serde(default)]
    pub extra: Option<Map<String, Value>>,
    /// The client.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// fosite's `openid.DefaultSession`, the parts the hook reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct IdTokenSession {
    /// The ID token's claims.
    #[serde(default)]
    pub id_token_claims: Option<IdTokenClaims>,
    /// The subject (the real one, where `sub` may be pairwise).
    #[serde(default)]
    pub subject: Option<String>,
}

/// fosite's `jwt.IDTokenClaims`, the parts the hook reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct IdTokenClaims {
    /// The subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// When the user authenticated: RFC 3339 (Hydra) or seconds since the
    /// epoch (servers that send a NumericDate).
    #[serde(default)]
    pub auth_time: Option<Value>,
    /// The ID token's extra claims; Hydra puts its login session id in `sid`.
    #[serde(default)]
    pub ext: Option<Map<String, Value>>,
}

/// Hydra's token request context.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HookRequest {
    /// The client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Scopes granted.
    #[serde(default)]
    pub granted_scopes: Option<Vec<String>>,
    /// The grant types of this token request, e.g. `["refresh_token"]`.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
}

/// The body of a `200` answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct TokenHookResponse {
    /// The new session claims.
    pub session: ResponseSession,
}

/// The claims Hydra sets on the tokens it issues.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ResponseSession {
    /// Claims of the access (and refresh) token; they replace
    /// `session.extra`.
    pub access_token: Map<String, Value>,
    /// Claims of the ID token; they replace `id_token_claims.ext`.
    pub id_token: Map<String, Value>,
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

impl TokenHookRequest {
    fn claims(&self) -> Option<&IdTokenClaims> {
        self.session.id_token.as_ref()?.id_token_claims.as_ref()
    }

    /// The user, if the tokens are for one (not for client credentials).
    pub fn subject(&self) -> Option<&str> {
        let id = self.session.id_token.as_ref();
        non_empty(id.and_then(|i| i.subject.as_ref()))
            .or_else(|| non_empty(self.claims().and_then(|c| c.sub.as_ref())))
            .or_else(|| non_empty(self.subject.as_ref()))
    }

    /// The client.
    pub fn client_id(&self) -> Option<&str> {
        non_empty(self.request.client_id.as_ref())
            .or_else(|| non_empty(self.session.client_id.as_ref()))
            .or_else(|| non_empty(self.client_id.as_ref()))
    }

    /// The scopes granted.
    pub fn granted_scopes(&self) -> &[String] {
        self.request
            .granted_scopes
            .as_deref()
            .or(self.granted_scopes.as_deref())
            .unwrap_or(&[])
    }

    /// When the user authenticated; `None` if not said (or Go's zero time).
    pub fn auth_time(&self) -> Option<DateTime<Utc>> {
        let t = match self.claims()?.auth_time.as_ref()? {
            Value::String(s) => DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc),
            Value::Number(n) => Utc.timestamp_opt(n.as_i64()?, 0).single()?,
            _ => return None,
        };
        // Hydra sends 0001-01-01T00:00:00Z for "unknown".
        (t.timestamp() > 0).then_some(t)
    }

    /// The OIDC server's own login session id (`ext.sid`), if any.
    pub fn login_session_id(&self) -> Option<&str> {
        match self.claims()?.ext.as_ref()?.get("sid")? {
            Value::String(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The user's groups from the claim `name` of the ID token's extra
    /// claims, else of the access token's: a list of strings or one string.
    pub fn groups(&self, name: &str) -> Vec<String> {
        let from = |m: Option<&Map<String, Value>>| -> Option<Vec<String>> {
            match m?.get(name)? {
                Value::Array(a) => Some(
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                ),
                Value::String(s) => Some(vec![s.clone()]),
                _ => None,
            }
        };
        from(self.claims().and_then(|c| c.ext.as_ref()))
            .or_else(|| from(self.session.extra.as_ref()))
            .unwrap_or_default()
    }

    /// The access token's current extra claims.
    pub fn access_token_claims(&self) -> Map<String, Value> {
        self.session.extra.clone().unwrap_or_default()
    }

    /// The ID token's current extra claims.
    pub fn id_token_claims(&self) -> Map<String, Value> {
        self.claims()
            .and_then(|c| c.ext.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a request in Hydra's own test snapshots, with times.
    const HYDRA: &str = r#"{
      "session": {
        "id_token": {
          "id_token_claims": {
            "jti": "", "iss": "http://localhost:4444/", "sub": "foo", "aud": ["app-client"],
            "nonce": "", "at_hash": "", "acr": "1", "amr": null, "c_hash": "",
            "exp": "0001-01-01T00:00:00Z", "iat": "2026-03-01T09:00:05Z",
            "rat": "2026-03-01T08:59:58Z", "auth_time": "2026-03-01T09:00:00Z",
            "ext": {"sid": "6f3c", "groups": ["wheel", "staff"]}
          },
          "headers": {"extra": {}},
          "expires_at": {"access_token": "2026-03-01T10:00:05Z"},
          "subject": "foo"
        },
        "extra": {"hooked": "legacy"},
        "kid": "", "client_id": "app-client", "consent_challenge": "",
        "exclude_not_before_claim": false, "allowed_top_level_claims": [],
        "mirror_top_level_claims": true, "preserve_ext_claims": false
      },
      "request": {
        "client_id": "app-client",
        "requested_scopes": ["offline", "openid", "hydra.*"],
        "granted_scopes": ["offline", "openid", "hydra.*"],
        "granted_audience": [],
        "grant_types": ["refresh_token"],
        "payload": {"grant_type": ["refresh_token"]}
      }
    }"#;

    #[test]
    fn reads_hydras_shape() {
        let r: TokenHookRequest = serde_json::from_str(HYDRA).unwrap();
        assert_eq!(r.subject(), Some("foo"));
        assert_eq!(r.client_id(), Some("app-client"));
        assert_eq!(
            r.auth_time().unwrap().to_rfc3339(),
            "2026-03-01T09:00:00+00:00"
        );
        assert_eq!(r.login_session_id(), Some("6f3c"));
        assert_eq!(r.groups("groups"), ["wheel", "staff"]);
        assert_eq!(r.granted_scopes().len(), 3);
        assert_eq!(r.access_token_claims()["hooked"], "legacy");
    }

    #[test]
    fn zero_time_empty_sid_and_client_credentials() {
        let r: TokenHookRequest = serde_json::from_str(
            r#"{"session": {"id_token": {"id_token_claims": {"auth_time": "0001-01-01T00:00:00Z",
                "ext": {"sid": ""}}, "subject": ""}, "client_id": "ci"},
                "request": {"client_id": "", "grant_types": ["client_credentials"]}}"#,
        )
        .unwrap();
        assert_eq!(r.auth_time(), None);
        assert_eq!(r.login_session_id(), None);
        assert_eq!(r.subject(), None);
        assert_eq!(r.client_id(), Some("ci"));
        let r: TokenHookRequest = serde_json::from_str(
            r#"{"subject": "bob", "client_id": "c", "granted_scopes": ["a"]}"#,
        )
        .unwrap();
        assert_eq!(r.subject(), Some("bob"));
        assert_eq!(r.client_id(), Some("c"));
        assert_eq!(r.granted_scopes(), ["a"]);
    }

    #[test]
    fn numeric_auth_time() {
        let r: TokenHookRequest = serde_json::from_str(
            r#"{"session": {"id_token": {"id_token_claims": {"auth_time": 1800000000}}}}"#,
        )
        .unwrap();
        assert_eq!(r.auth_time().unwrap().timestamp(), 1_800_000_000);
    }
}
