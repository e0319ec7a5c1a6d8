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
//!
//! How each grant type is decided is the neutral core's table
//! ([`super::core`]). Hydra specifics:
//!
//! - `client_credentials`: Hydra puts the client id in `sub`; it is ignored
//!   (no user session), only a revocation of the client refuses (`403`).
//!   Allowed: `204`.
//! - `urn:ietf:params:oauth:grant-type:jwt-bearer`: the asserted subject and
//!   the client may be revoked; no login session ages. Allowed: `204`.
//! - `authorization_code`, `refresh_token` (and the device code): `200` with
//!   the curfew claims merged into the claims the tokens already carry.
//!   The access token's claims become Hydra's `session.extra`, which Hydra
//!   sends back on every refresh: the curfew session id (`curfew_sid`) is
//!   read from there, so a refresh finds its session even where Hydra's
//!   `auth_time` or `sid` are not sent.
//! - `offline` / `offline_access` only ask for a refresh token: they are not
//!   remember-me. A persistent login is a boolean claim whose name the
//!   hook is configured with ([`RememberMe::Claim`]), set by the consent
//!   app from the login's `remember` flag.
//! - Times are RFC 3339 (Go's zero time means "not said"); see
//!   [`super::core`] for the skew rule.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::core::{is_session_id, parse_body, parse_time, FieldError, GrantKind, TokenRequest};
use crate::claims::SessionClaims;

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

/// Where Hydra's requests say that a login is persistent ("remember me").
///
/// Hydra's token-hook request does not carry the login session's
/// `remember` flag, so the consent app puts it into the session's claims
/// (`session.id_token.id_token_claims.ext` or `session.extra`) as a boolean
/// claim, and the hook is told its name. The refresh-token scope
/// (`offline` / `offline_access`) is **never** read as remember-me: it
/// only asks for a refresh token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RememberMe {
    /// No login is persistent: `max_duration` always applies.
    #[default]
    Never,
    /// A login is persistent when this claim is `true`.
    Claim(String),
}

/// How the Hydra adapter reads requests.
#[derive(Debug, Clone)]
pub struct HydraOptions {
    /// The remember-me signal.
    pub remember_me: RememberMe,
    /// The claim holding the user's groups (ID token's extra claims, else
    /// the access token's): a list of strings or one string.
    pub groups_claim: String,
}

impl Default for HydraOptions {
    fn default() -> Self {
        HydraOptions {
            remember_me: RememberMe::Never,
            groups_claim: "groups".to_owned(),
        }
    }
}

/// Where the auth time sits in Hydra's request, for error messages.
pub const AUTH_TIME_FIELD: &str = "session.id_token.id_token_claims.auth_time";

impl TokenHookRequest {
    /// Parses a request body, naming the field of a type error.
    pub fn parse(body: &[u8]) -> Result<TokenHookRequest, FieldError> {
        parse_body(body)
    }

    fn claims(&self) -> Option<&IdTokenClaims> {
        self.session.id_token.as_ref()?.id_token_claims.as_ref()
    }

    /// The subject, as Hydra sends it (for client credentials: the client id).
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

    /// The kind of grant: from `request.grant_types`; the legacy refresh
    /// hook (top-level `subject`, no `request`) is a refresh.
    pub fn grant(&self) -> Result<GrantKind, FieldError> {
        let field = "request.grant_types";
        match self.request.grant_types.as_deref() {
            Some([first, ..]) => GrantKind::from_grant_type(first).ok_or_else(|| {
                FieldError::new(field, "not a grant type curfew knows (authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer, urn:ietf:params:oauth:grant-type:device_code)")
            }),
            _ if self.subject.is_some() => Ok(GrantKind::Refresh),
            _ => Err(FieldError::new(field, "missing")),
        }
    }

    /// When the user authenticated; `None` if not said (or Go's zero time).
    pub fn auth_time(&self) -> Result<Option<DateTime<Utc>>, FieldError> {
        match self.claims().and_then(|c| c.auth_time.as_ref()) {
            Some(v) => parse_time(v, AUTH_TIME_FIELD),
            None => Ok(None),
        }
    }

    /// The OIDC server's own login session id (`ext.sid`), if any.
    pub fn login_session_id(&self) -> Option<&str> {
        match self.claims()?.ext.as_ref()?.get("sid")? {
            Value::String(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The curfew session id an earlier answer left in `session.extra`
    /// (Hydra carries it across refreshes).
    pub fn carried_session(&self) -> Option<&str> {
        let extra = self.session.extra.as_ref()?;
        ["curfew_sid", "sid"]
            .iter()
            .filter_map(|k| extra.get(*k)?.as_str())
            .find(|s| is_session_id(s))
    }

    fn claim(&self, name: &str) -> Option<&Value> {
        self.claims()
            .and_then(|c| c.ext.as_ref())
            .and_then(|m| m.get(name))
            .or_else(|| self.session.extra.as_ref()?.get(name))
    }

    /// Whether the remember-me signal is set.
    pub fn remember_me(&self, signal: &RememberMe) -> bool {
        match signal {
            RememberMe::Never => false,
            RememberMe::Claim(name) => self.claim(name) == Some(&Value::Bool(true)),
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

    /// The neutral request (the core checks its times against its clock).
    pub fn to_neutral(&self, opts: &HydraOptions) -> Result<TokenRequest, FieldError> {
        let grant = self.grant()?;
        let client_id = self
            .client_id()
            .ok_or_else(|| FieldError::new("request.client_id", "missing"))?
            .to_owned();
        let subject = match grant {
            // Hydra puts the client id in the subject: it is no user.
            GrantKind::ClientCredentials => None,
            _ => Some(
                self.subject()
                    .ok_or_else(|| FieldError::new("session.id_token.subject", "missing"))?
                    .to_owned(),
            ),
        };
        let auth_time = self.auth_time()?;
        Ok(TokenRequest {
            grant,
            client_id,
            subject,
            login_session: self.login_session_id().map(str::to_owned),
            auth_time,
            remember_me: self.remember_me(&opts.remember_me),
            groups: self.groups(&opts.groups_claim),
            carried_session: self.carried_session().map(str::to_owned),
        })
    }

    /// The `200` body for an allowed login: the curfew claims merged into
    /// the claims the tokens already carry, so Hydra keeps them (and
    /// carries the access token's in `session.extra` to the next refresh).
    pub fn response(&self, claims: &SessionClaims) -> TokenHookResponse {
        let mut access = claims.merge_into(self.access_token_claims());
        access.insert("curfew_sid".into(), Value::String(claims.sid.clone()));
        TokenHookResponse {
            session: ResponseSession {
                access_token: access,
                id_token: claims.merge_into(self.id_token_claims()),
            },
        }
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
            r.auth_time().unwrap().unwrap().to_rfc3339(),
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
        assert_eq!(r.auth_time(), Ok(None));
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
        assert_eq!(r.auth_time().unwrap().unwrap().timestamp(), 1_800_000_000);
    }
}
