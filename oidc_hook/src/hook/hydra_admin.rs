//! Telling Ory Hydra that a session ended, through its admin API.
//!
//! For every [`EndEvent`] (see [`super::ends`]) the hook makes these calls
//! (paths and methods as Hydra's published API defines them, the
//! `@ory/hydra-client` package's `OAuth2Api`):
//!
//! | when | operation | request |
//! |---|---|---|
//! | Hydra sent its login session id (`sid`) | `revokeOAuth2LoginSessions` | `DELETE /admin/oauth2/auth/sessions/login?sid=SID`: that login session ends and Hydra sends its back-channel logouts |
//! | a user revocation, or no `sid` known | `revokeOAuth2LoginSessions` | `DELETE /admin/oauth2/auth/sessions/login?subject=SUB`: every login session of the subject |
//! | always | `revokeOAuth2ConsentSessions` | `DELETE /admin/oauth2/auth/sessions/consent?subject=SUB&client=CLIENT` (a user revocation: `&all=true` instead of the client): the consent and every access and refresh token of it |
//! | a client revocation | `deleteOAuth2Token` | `DELETE /admin/oauth2/tokens?client_id=CLIENT` |
//!
//! So the next authorization request needs a fresh login (a new
//! `auth_time`, hence a new curfew session) instead of silently re-using
//! the ended one and being refused in a loop; and access tokens die now,
//! not when they expire.
//!
//! Each call is tried up to `attempts` times (transport errors, `429` and
//! `5xx` are retried after `backoff`, doubled each time); `2xx` and `404`
//! (nothing left to revoke) are success. Each call, after its retries, is
//! one audit event (`oidc_server_call`), failed or not.

use std::time::Duration;

use curfew_policy::audit::AuditEvent;

use super::ends::EndEvent;
use crate::gate::Gate;

/// Where and how to reach Hydra's admin API.
#[derive(Debug, Clone)]
pub struct HydraAdminConfig {
    /// The admin API's base URL, e.g. `http://127.0.0.1:4445`.
    pub url: String,
    /// A bearer token sent as `Authorization: Bearer …` (Ory Network API
    /// keys, or a proxy in front of a self-hosted admin API); read from a
    /// file of mode 0600.
    pub token: Option<String>,
    /// Attempts per call (at least 1).
    pub attempts: u32,
    /// Pause before the first retry, doubled before each further one.
    pub backoff: Duration,
    /// Time limit of one attempt.
    pub timeout: Duration,
}

impl HydraAdminConfig {
    /// A configuration for `url` with the defaults: 3 attempts, 200 ms
    /// backoff, 5 s per attempt.
    pub fn new(url: impl Into<String>) -> Self {
        HydraAdminConfig {
            url: url.into(),
            token: None,
            attempts: 3,
            backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One admin API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Hydra's name of the operation.
    pub operation: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// The query parameters.
    pub query: Vec<(&'static str, String)>,
}

impl Call {
    /// `METHOD /path?query` (percent-encoded), for logs and audit.
    pub fn describe(&self) -> String {
        let q: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        format!("{} {}?{}", self.method, self.path, q.join("&"))
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const LOGIN: &str = "/admin/oauth2/auth/sessions/login";
const CONSENT: &str = "/admin/oauth2/auth/sessions/consent";
const TOKENS: &str = "/admin/oauth2/tokens";

/// The calls that tell Hydra of `e`.
pub fn calls(e: &EndEvent) -> Vec<Call> {
    let mut v = Vec::new();
    let login = |query| Call {
        operation: "revokeOAuth2LoginSessions",
        method: "DELETE",
        path: LOGIN,
        query,
    };
    if let Some(sid) = &e.login_session {
        v.push(login(vec![("sid", sid.clone())]));
    }
    if e.whole_user() || e.login_session.is_none() {
        v.push(login(vec![("subject", e.subject.clone())]));
    }
    let mut query = vec![("subject", e.subject.clone())];
    if e.whole_user() {
        query.push(("all", "true".into()));
    } else {
        query.push(("client", e.client_id.clone()));
    }
    v.push(Call {
        operation: "revokeOAuth2ConsentSessions",
        method: "DELETE",
        path: CONSENT,
        query,
    });
    if e.whole_client() {
        v.push(Call {
            operation: "deleteOAuth2Token",
            method: "DELETE",
            path: TOKENS,
            query: vec![("client_id", e.client_id.clone())],
        });
    }
    v
}

/// How one call went, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    /// The last HTTP status, if an answer came.
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// Success (`2xx`, or `404`: nothing left to revoke).
    pub ok: bool,
    /// The last failure.
    pub error: Option<String>,
}

/// Hydra's admin API client.
pub struct HydraAdmin {
    config: HydraAdminConfig,
    http: reqwest::Client,
}

impl HydraAdmin {
    /// A client for `config`.
    pub fn new(config: HydraAdminConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HydraAdmin { config, http })
    }

    /// Makes `call`, with retries.
    pub async fn call(&self, call: &Call) -> CallResult {
        let url = format!("{}{}", self.config.url.trim_end_matches('/'), call.path);
        let attempts = self.config.attempts.max(1);
        let mut backoff = self.config.backoff;
        let mut last = CallResult {
            status: None,
            attempts: 0,
            ok: false,
            error: None,
        };
        for attempt in 1..=attempts {
            last.attempts = attempt;
            let mut req = self.http.delete(&url).query(&call.query);
            if let Some(t) = &self.config.token {
                req = req.bearer_auth(t);
            }
            let retry = match req.send().await {
                Ok(r) => {
                    let s = r.status();
                    last.status = Some(s.as_u16());
                    if s.is_success() || s == reqwest::StatusCode::NOT_FOUND {
                        last.ok = true;
                        last.error = None;
                        return last;
                    }
                    last.error = Some(format!("HTTP {}", s.as_u16()));
                    s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS
                }
                Err(e) => {
                    last.status = None;
                    last.error = Some(if e.is_timeout() {
                        "timed out".to_owned()
                    } else if e.is_connect() {
                        "cannot connect".to_owned()
                    } else {
                        "the request failed".to_owned()
                    });
                    true
                }
            };
            if !retry || attempt == attempts {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        last
    }

    /// Tells Hydra of `e`: every call of [`calls`], each audited.
    pub async fn tell(&self, e: &EndEvent, gate: &Gate) -> Vec<CallResult> {
        let mut results = Vec::new();
        for c in calls(e) {
            let r = self.call(&c).await;
            let event = AuditEvent::OidcServerCall {
                server: "hydra".into(),
                operation: c.operation.into(),
                request: c.describe(),
                user: e.subject.clone(),
                session: Some(e.session_id.clone()),
                reason: e.reason.as_str().into(),
                status: r.status,
                attempts: r.attempts,
                ok: r.ok,
                error: r.error.clone(),
            };
            if !r.ok {
                eprintln!(
                    "curfew hook: error: Hydra admin {} failed after {} attempt(s): {}",
                    c.describe(),
                    r.attempts,
                    r.error.as_deref().unwrap_or("unknown")
                );
            }
            let g = gate.clone();
            let _ = tokio::task::spawn_blocking(move || g.audit(&event)).await;
            results.push(r);
        }
        results
    }

    /// Tells Hydra of every end `rx` yields, in order, until it closes.
    pub async fn run(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<EndEvent>, gate: Gate) {
        while let Some(e) = rx.recv().await {
            self.tell(&e, &gate).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use curfew_policy::EndReason;

    fn end(sid: Option<&str>, revoked: Option<&str>) -> EndEvent {
        EndEvent {
            seq: 1,
            session_id: "s".into(),
            subject: "alice@example.org".into(),
            client_id: "web".into(),
            login_session: sid.map(Into::into),
            reason: EndReason::Idle,
            revoked: revoked.map(Into::into),
            at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn the_calls_for_each_kind_of_end() {
        let d = |e: &EndEvent| calls(e).iter().map(Call::describe).collect::<Vec<_>>();
        assert_eq!(
            d(&end(Some("op-1"), None)),
            [
                "DELETE /admin/oauth2/auth/sessions/login?sid=op-1",
                "DELETE /admin/oauth2/auth/sessions/consent?subject=alice%40example.org&client=web",
            ]
        );
        assert_eq!(
            d(&end(None, None)),
            [
                "DELETE /admin/oauth2/auth/sessions/login?subject=alice%40example.org",
                "DELETE /admin/oauth2/auth/sessions/consent?subject=alice%40example.org&client=web",
            ]
        );
        assert_eq!(
            d(&end(Some("op-1"), Some("user alice@example.org"))),
            [
                "DELETE /admin/oauth2/auth/sessions/login?sid=op-1",
                "DELETE /admin/oauth2/auth/sessions/login?subject=alice%40example.org",
                "DELETE /admin/oauth2/auth/sessions/consent?subject=alice%40example.org&all=true",
            ]
        );
        assert_eq!(
            d(&end(Some("op-1"), Some("client web"))).last().unwrap(),
            "DELETE /admin/oauth2/tokens?client_id=web"
        );
    }
}
