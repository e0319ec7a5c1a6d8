//! [`PolicyIssuer`]: an oxide-auth [`Issuer`] wrapper that any oxide-auth
//! server can drop in.
//!
//! oxide-auth's `Grant` has no issue time and a refresh sets `until` to one
//! hour, hard-coded; its `TokenMap` keeps one grant for the access and the
//! refresh token, so the refresh token would die with the access token. The
//! wrapper therefore keeps the session (id, start, last activity, token
//! expiry) in a grant extension, which survives refreshes, and decides every
//! step itself through the [`Gate`]:
//!
//! - **issue**: a session is registered (user = grant owner, client, start =
//!   now) and the access token lives for the effective timeout (the user's
//!   own choice within the bounds, else the default), never past the
//!   session's absolute deadline.
//! - **refresh**: allowed only while the session is neither idle
//!   (`inactivity` since the last issue or refresh) nor too old
//!   (`max_duration`, or `remember_me.max_duration` when the login was a
//!   persistent one: an explicit signal the server configures, see
//!   [`PolicyIssuer::with_remember_me_extension`]; never the
//!   `offline_access` scope, which only asks for a refresh token), and neither the user, the client nor the session is
//!   revoked. A refused refresh token is simply not recovered, which
//!   oxide-auth answers with `invalid_grant`.
//! - **recover** (resource access, introspection): the token of an expired,
//!   revoked, terminated or ended session is not valid.
//!
//! The wrapper calls the store synchronously: in an async server run the
//! oxide-auth flow on a blocking thread.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use curfew_policy::audit::{Grant as AuditGrant, Priority, RefusalReason};
use curfew_policy::journal;
use curfew_policy::{EndReason, StoreError};
use oxide_auth::primitives::grant::{Grant, Value};
use oxide_auth::primitives::issuer::{IssuedToken, Issuer, RefreshedToken};
use serde::{Deserialize, Serialize};

use crate::gate::{Activity, Gate, Granted, Known, Principal, Refusal};

/// The grant extension holding the session.
pub const EXTENSION: &str = "curfew_session";

/// The public grant extension by which a server's login says that it is
/// persistent ("remember me" ticked): see
/// [`PolicyIssuer::with_remember_me_extension`] and [`mark_remember_me`].
pub const REMEMBER_ME_EXTENSION: &str = "curfew_remember_me";

/// Marks `grant` as a persistent login in the public extension `name`
/// (value `true`), for an issuer configured with
/// [`PolicyIssuer::with_remember_me_extension`]`(name)`. The server calls
/// it from its own login's "remember me" choice, before the grant reaches
/// [`Issuer::issue`] (for example in its `Authorizer`, when the code is
/// extracted).
pub fn mark_remember_me(grant: &mut Grant, name: &str) {
    grant
        .extensions
        .set_raw(name.to_owned(), Value::public(Some("true".to_owned())));
}

/// What an access-token addon returns to carry its extension's value from
/// the code's grant over to the token's grant unchanged (oxide-auth keeps
/// only what an addon returns).
fn carry_over(code_data: Option<Value>) -> oxide_auth::frontends::simple::extensions::AddonResult {
    use oxide_auth::frontends::simple::extensions::AddonResult;
    match code_data {
        Some(v) => AddonResult::Data(v),
        None => AddonResult::Ok,
    }
}

/// An oxide-auth access-token addon that carries the
/// [`REMEMBER_ME_EXTENSION`] of a code's grant over to the token's grant:
/// oxide-auth's access-token flow keeps only the extensions an addon
/// returns. A server that marks codes with [`mark_remember_me`] pushes it
/// with `AddonList::push_access_token`.
pub struct RememberMeAddon;

impl oxide_auth::primitives::grant::GrantExtension for RememberMeAddon {
    fn identifier(&self) -> &'static str {
        REMEMBER_ME_EXTENSION
    }
}

impl oxide_auth::frontends::simple::extensions::AccessTokenAddon for RememberMeAddon {
    fn execute(
        &self,
        _request: &dyn oxide_auth::frontends::simple::extensions::AccessTokenRequest,
        code_data: Option<Value>,
    ) -> oxide_auth::frontends::simple::extensions::AddonResult {
        carry_over(code_data)
    }
}

/// The public grant extension by which a server says from which address the
/// user signed in (their browser's, at the authorization request): see
/// [`PolicyIssuer::with_remote_address_extension`] and
/// [`mark_remote_address`]. The token request comes from the relying
/// party's server, whose address is not the user's.
pub const REMOTE_ADDRESS_EXTENSION: &str = "curfew_remote_address";

/// Records in the public extension `name` of `grant` that the user signed
/// in from `addr`, for an issuer configured with
/// [`PolicyIssuer::with_remote_address_extension`]`(name)`; the session it
/// issues records it as its remote address (`rhost`). Like
/// [`mark_remember_me`], called before the grant reaches [`Issuer::issue`].
pub fn mark_remote_address(grant: &mut Grant, name: &str, addr: IpAddr) {
    grant.extensions.set_raw(
        name.to_owned(),
        Value::public(Some(addr.to_canonical().to_string())),
    );
}

/// An oxide-auth access-token addon that carries the
/// [`REMOTE_ADDRESS_EXTENSION`] of a code's grant over to the token's
/// grant, as [`RememberMeAddon`] does for its flag.
pub struct RemoteAddressAddon;

impl oxide_auth::primitives::grant::GrantExtension for RemoteAddressAddon {
    fn identifier(&self) -> &'static str {
        REMOTE_ADDRESS_EXTENSION
    }
}

impl oxide_auth::frontends::simple::extensions::AccessTokenAddon for RemoteAddressAddon {
    fn execute(
        &self,
        _request: &dyn oxide_auth::frontends::simple::extensions::AccessTokenRequest,
        code_data: Option<Value>,
    ) -> oxide_auth::frontends::simple::extensions::AddonResult {
        carry_over(code_data)
    }
}

/// The address in the public extension `name` of `grant`: validated where
/// it enters, an IP address and nothing else (a value that is not one is
/// not recorded, and said so).
fn extension_address(grant: &Grant, name: &str) -> Option<IpAddr> {
    let (_, value) = grant.extensions.public().find(|(k, _)| *k == name)?;
    let value = value?;
    match value.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            eprintln!(
                "{}curfew-oidc: grant extension {name}: {:?} is not an IP address; no remote address recorded",
                journal::prefix(Priority::Warning),
                value.chars().take(64).collect::<String>()
            );
            None
        }
    }
}

fn extension_is_true(grant: &Grant, name: &str) -> bool {
    grant
        .extensions
        .public()
        .any(|(k, v)| k == name && v == Some("true"))
}

/// What a grant carries about its session (a public grant extension, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSession {
    /// The curfew session id.
    pub sid: String,
    /// When the session started.
    pub started_at: DateTime<Utc>,
    /// The last issue or refresh.
    pub last_activity: DateTime<Utc>,
    /// When the current access token expires.
    pub expires_at: DateTime<Utc>,
    /// The grant asked for a persistent login.
    pub remember_me: bool,
}

impl GrantSession {
    /// The session of `grant`, if it has one.
    pub fn of(grant: &Grant) -> Option<GrantSession> {
        let (_, value) = grant.extensions.public().find(|(k, _)| *k == EXTENSION)?;
        serde_json::from_str(value?).ok()
    }

    fn store_in(&self, grant: &mut Grant) {
        // Serializing a struct of strings, dates and a bool cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        grant
            .extensions
            .set_raw(EXTENSION.to_owned(), Value::public(Some(json)));
    }

    fn known(&self) -> Known {
        Known {
            started_at: self.started_at,
            last_activity: self.last_activity,
        }
    }
}

/// A valid token and its session, as introspection reports it.
#[derive(Debug, Clone)]
pub struct TokenSession {
    /// The grant behind the token.
    pub grant: Grant,
    /// The session's decision now.
    pub granted: Granted,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

type GroupsFn = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;
type RememberMeFn = Arc<dyn Fn(&Grant) -> bool + Send + Sync>;
type RemoteAddressFn = Arc<dyn Fn(&Grant) -> Option<IpAddr> + Send + Sync>;

/// An oxide-auth [`Issuer`] that applies curfew's policy to the issuer `I`
/// it wraps. See the [module documentation](self).
pub struct PolicyIssuer<I> {
    inner: I,
    gate: Gate,
    groups: GroupsFn,
    remember_me: RememberMeFn,
    remote_address: RemoteAddressFn,
    last_refusal: Option<RefusalReason>,
}

impl<I: Issuer> PolicyIssuer<I> {
    /// Wraps `inner`, deciding through `gate`. Users have no groups and no
    /// login is persistent (`max_duration` and `inactivity` always apply)
    /// unless configured otherwise: remember-me is an explicit signal of
    /// the server ([`with_remember_me_extension`](Self::with_remember_me_extension)
    /// or [`with_remember_me`](Self::with_remember_me)), never inferred
    /// from the `offline_access` scope, which only asks for a refresh token.
    pub fn new(inner: I, gate: Gate) -> Self {
        PolicyIssuer {
            inner,
            gate,
            groups: Arc::new(|_| Vec::new()),
            remember_me: Arc::new(|_: &Grant| false),
            remote_address: Arc::new(|_: &Grant| None),
            last_refusal: None,
        }
    }

    /// Why the policy refused the last [`Issuer::issue`] or
    /// [`Issuer::refresh`] call, taken (the next call returns `None`).
    ///
    /// oxide-auth can only turn an issuer's `Err(())` into a server error;
    /// a token endpoint asks this first, and answers a refusal that is the
    /// policy's (not [`RefusalReason::is_failure`]) with `invalid_grant`
    /// (RFC 6749 5.2) and curfew's reason instead of a 500.
    pub fn take_refusal(&mut self) -> Option<RefusalReason> {
        self.last_refusal.take()
    }

    /// Looks up a user's groups (for rules that `match: { groups: [...] }`).
    pub fn with_groups(
        mut self,
        groups: impl Fn(&str) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.groups = Arc::new(groups);
        self
    }

    /// A grant is a persistent login when its public extension `name` is
    /// `true`, which the server's login sets with [`mark_remember_me`] (the
    /// login-session flag of its "remember me" box). The usual name is
    /// [`REMEMBER_ME_EXTENSION`].
    pub fn with_remember_me_extension(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with_remember_me(move |g| extension_is_true(g, &name))
    }

    /// Decides which grants are a persistent login, by any rule of the
    /// server's (called once, when the grant is first issued; refreshes
    /// keep the answer).
    pub fn with_remember_me(
        mut self,
        remember_me: impl Fn(&Grant) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.remember_me = Arc::new(remember_me);
        self
    }

    /// A grant's session records as its remote address (`rhost`) the IP
    /// address in its public extension `name`, which the server sets with
    /// [`mark_remote_address`] from the user's connection at the
    /// authorization request. The usual name is [`REMOTE_ADDRESS_EXTENSION`].
    /// Without this (or [`with_remote_address`](Self::with_remote_address))
    /// no address is recorded.
    pub fn with_remote_address_extension(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with_remote_address(move |g| extension_address(g, &name))
    }

    /// Decides, by any rule of the server's, the address a grant's user
    /// signed in from (called once, when the grant is first issued).
    pub fn with_remote_address(
        mut self,
        remote_address: impl Fn(&Grant) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.remote_address = Arc::new(remote_address);
        self
    }

    /// The wrapped issuer.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// The wrapped issuer, e.g. for `TokenMap::revoke`.
    pub fn inner_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    /// The gate deciding for this issuer.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    fn resume(
        &self,
        grant: &Grant,
        session: &GrantSession,
        activity: Activity,
    ) -> Result<Granted, Refusal> {
        let groups = (self.groups)(&grant.owner_id);
        let p = Principal {
            user: &grant.owner_id,
            groups: &groups,
            client_id: &grant.client_id,
            remember_me: session.remember_me,
        };
        self.gate
            .resume(&session.sid, &p, &session.known(), activity)
    }

    fn inspect(&self, grant: Grant) -> Option<TokenSession> {
        self.inspect_as(grant, "token", false)
    }

    /// Decides whether `grant`'s session may go on; a refusal is logged, and
    /// with `audit` (a refresh token presented for a refresh) it is also a
    /// `refresh_refused` event of the audit trail.
    fn inspect_as(&self, grant: Grant, what: &str, audit: bool) -> Option<TokenSession> {
        let Some(session) = GrantSession::of(&grant) else {
            // Not issued through curfew: nothing vouches for it.
            return None;
        };
        match self.resume(&grant, &session, Activity::Inspect) {
            Ok(granted) => Some(TokenSession {
                expires_at: session.expires_at,
                granted,
                grant,
            }),
            Err(e) => {
                log_refusal(what, &grant, &e);
                if audit {
                    let p = Principal {
                        user: &grant.owner_id,
                        groups: &[],
                        client_id: &grant.client_id,
                        remember_me: session.remember_me,
                    };
                    self.gate
                        .audit(&e.audit_event(&p, Some(&session.sid), AuditGrant::Refresh));
                }
                None
            }
        }
    }

    /// The session behind a valid access token; `None` if the token is
    /// unknown, expired, or its session may not go on.
    pub fn inspect_access(&self, token: &str) -> Option<TokenSession> {
        let grant = self.inner.recover_token(token).ok()??;
        let t = self.inspect(grant)?;
        (self.gate.now() < t.expires_at).then_some(t)
    }

    /// The session behind a refresh token that may still be used.
    pub fn inspect_refresh(&self, token: &str) -> Option<TokenSession> {
        let grant = self.inner.recover_refresh(token).ok()??;
        self.inspect(grant)
    }

    /// Ends the session of `grant` (a logout, or an RFC 7009 revocation):
    /// every token of the grant stops working, access and refresh alike.
    pub fn end_session(&self, grant: &Grant, reason: EndReason) -> Result<bool, StoreError> {
        match GrantSession::of(grant) {
            Some(s) => self.gate.end(&s.sid, reason),
            None => Ok(false),
        }
    }
}

fn log_refusal(what: &str, grant: &Grant, e: &Refusal) {
    let priority = if e.reason().is_failure() {
        Priority::Err
    } else {
        Priority::Notice
    };
    eprintln!(
        "{}curfew-oidc: refused a {what} of user {:?}, client {:?}: {e}",
        journal::prefix(priority),
        grant.owner_id,
        grant.client_id
    );
}

impl<I: Issuer> Issuer for PolicyIssuer<I> {
    fn issue(&mut self, mut grant: Grant) -> Result<IssuedToken, ()> {
        let groups = (self.groups)(&grant.owner_id);
        let remember_me = (self.remember_me)(&grant);
        let p = Principal {
            user: &grant.owner_id,
            groups: &groups,
            client_id: &grant.client_id,
            remember_me,
        };
        // oxide-auth can only answer a failed issue with a server error; a
        // revoked user should be stopped at the login (`Gate::admit`).
        let remote = (self.remote_address)(&grant);
        let granted = match self.gate.start(&p, None, None, remote) {
            Ok(g) => g,
            Err(e) => {
                log_refusal("token issue", &grant, &e);
                self.gate.audit(&e.audit_event(&p, None, AuditGrant::Issue));
                self.last_refusal = Some(e.reason());
                return Err(());
            }
        };
        self.gate.audit(&granted.audit_event(&p, AuditGrant::Issue));
        let session = GrantSession {
            sid: granted.session_id.clone(),
            started_at: granted.started_at,
            last_activity: granted.at,
            expires_at: granted.allow.token_expires_at,
            remember_me,
        };
        session.store_in(&mut grant);
        grant.until = session.expires_at;
        let mut issued = self.inner.issue(grant)?;
        issued.until = session.expires_at;
        Ok(issued)
    }

    fn refresh(&mut self, refresh: &str, mut grant: Grant) -> Result<RefreshedToken, ()> {
        // `recover_refresh` already refused what the policy refuses; this
        // decides again because time passed and this one records activity.
        let session = GrantSession::of(&grant).ok_or(())?;
        let groups = (self.groups)(&grant.owner_id);
        let p = Principal {
            user: &grant.owner_id,
            groups: &groups,
            client_id: &grant.client_id,
            remember_me: session.remember_me,
        };
        let granted = match self.resume(&grant, &session, Activity::Record) {
            Ok(g) => g,
            Err(e) => {
                log_refusal("refresh", &grant, &e);
                self.gate
                    .audit(&e.audit_event(&p, Some(&session.sid), AuditGrant::Refresh));
                self.last_refusal = Some(e.reason());
                return Err(());
            }
        };
        self.gate
            .audit(&granted.audit_event(&p, AuditGrant::Refresh));
        let session = GrantSession {
            last_activity: granted.at,
            expires_at: granted.allow.token_expires_at,
            ..session
        };
        session.store_in(&mut grant);
        // oxide-auth set `until` to one hour; the policy decides instead.
        grant.until = session.expires_at;
        let mut refreshed = self.inner.refresh(refresh, grant)?;
        refreshed.until = session.expires_at;
        Ok(refreshed)
    }

    fn recover_token<'a>(&'a self, token: &'a str) -> Result<Option<Grant>, ()> {
        Ok(self.inspect_access(token).map(|t| t.grant))
    }

    fn recover_refresh<'a>(&'a self, token: &'a str) -> Result<Option<Grant>, ()> {
        // oxide-auth recovers the refresh token before it calls `refresh`:
        // this is where the policy refuses most refreshes, so the refusal
        // is audited here.
        let Some(grant) = self.inner.recover_refresh(token)? else {
            return Ok(None);
        };
        Ok(self.inspect_as(grant, "refresh", true).map(|t| {
            let mut grant = t.grant;
            // The shared grant's `until` is the access token's; the refresh
            // token lives as long as the session may, so that oxide-auth's
            // own expiry check lets an allowed refresh through.
            grant.until = t
                .granted
                .allow
                .idle_deadline
                .min(t.granted.allow.absolute_deadline);
            grant
        }))
    }
}

/// Invariants every [`Issuer`] upholds, after oxide-auth's own
/// `issuer::tests::simple_test_suite` (which is not public): any issuer,
/// wrapped or not, runs them.
pub mod conformance {
    use chrono::{DateTime, Duration, Utc};
    use oxide_auth::primitives::grant::{Extensions, Grant};
    use oxide_auth::primitives::issuer::Issuer;

    /// The grant the suite issues: client `Client`, owner `Owner`,
    /// `https://example.com`, scope `default`, one hour from `now`.
    pub fn grant_template(now: DateTime<Utc>) -> Grant {
        Grant {
            client_id: "Client".to_string(),
            owner_id: "Owner".to_string(),
            redirect_uri: "https://example.com".parse().expect("a valid URL"),
            scope: "default".parse().expect("a valid scope"),
            until: now + Duration::hours(1),
            extensions: Extensions::new(),
        }
    }

    /// Issues two tokens for the same grant at `now` (the issuer's time) and
    /// checks that each recovers to its grant, is valid after `now`, and
    /// that no token or refresh token repeats.
    pub fn simple_test_suite(issuer: &mut dyn Issuer, now: DateTime<Utc>) {
        let request = grant_template(now);

        let issued = issuer.issue(request.clone()).expect("issuing failed");
        let from_token = issuer
            .recover_token(&issued.token)
            .expect("the issuer failed during recover")
            .expect("the issued token appears to be invalid");

        assert_ne!(Some(&issued.token), issued.refresh.as_ref());
        assert_eq!(from_token.client_id, "Client");
        assert_eq!(from_token.owner_id, "Owner");
        assert!(now < from_token.until);

        let issued_2 = issuer.issue(request).expect("issuing failed");
        assert_ne!(issued.token, issued_2.token);
        assert_ne!(Some(&issued.token), issued_2.refresh.as_ref());
        assert_ne!(issued.refresh, issued_2.refresh);
        assert_ne!(issued.refresh.as_ref(), Some(&issued_2.token));
    }

    /// For issuers with refresh tokens: a refresh rotates both tokens, the
    /// new access token recovers to the grant and the old refresh token is
    /// spent.
    pub fn refresh_test_suite(issuer: &mut dyn Issuer, now: DateTime<Utc>) {
        let issued = issuer.issue(grant_template(now)).expect("issuing failed");
        let refresh = issued.refresh.expect("no refresh token was issued");
        let grant = issuer
            .recover_refresh(&refresh)
            .expect("the issuer failed during recover")
            .expect("the refresh token appears to be invalid");
        let refreshed = issuer.refresh(&refresh, grant).expect("refresh failed");
        let new_refresh = refreshed.refresh.expect("no new refresh token");
        assert_ne!(refresh, new_refresh);
        assert_ne!(issued.token, refreshed.token);
        let g = issuer
            .recover_token(&refreshed.token)
            .expect("the issuer failed during recover")
            .expect("the refreshed token appears to be invalid");
        assert_eq!(g.owner_id, "Owner");
        assert!(now < g.until);
        assert!(issuer
            .recover_refresh(&refresh)
            .expect("the issuer failed during recover")
            .is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::conformance::{grant_template, refresh_test_suite, simple_test_suite};
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::policy_file::PolicyCell;
    use chrono::{Duration as CDuration, TimeZone};
    use curfew_policy::store::MemoryStore;
    use curfew_policy::{Policy, Revocation, Store, Target};
    use oxide_auth::primitives::generator::RandomGenerator;
    use oxide_auth::primitives::issuer::TokenMap;

    const POLICY: &str = r#"
version: 1
session:
  timeout: { default: 5m }
  max_duration: 1h
  inactivity: 10m
  remember_me: { max_duration: 1d }
banner: { text: "Authorized use only." }
rules:
  - name: admins
    match: { groups: [wheel] }
    session: { inactivity: 5m }
"#;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    type Fixture = (
        PolicyIssuer<TokenMap<RandomGenerator>>,
        Arc<ManualClock>,
        Arc<MemoryStore>,
    );

    fn issuer() -> Fixture {
        issuer_with(POLICY)
    }

    fn issuer_with(policy: &str) -> Fixture {
        let clock = Arc::new(ManualClock::new(t0()));
        let store = Arc::new(MemoryStore::new());
        let policy = Policy::parse(policy, "policy.yaml").unwrap();
        let gate = Gate::new(PolicyCell::new(policy), store.clone(), clock.clone());
        let issuer = PolicyIssuer::new(TokenMap::new(RandomGenerator::new(16)), gate)
            .with_groups(|u| {
                if u == "root" {
                    vec!["wheel".into()]
                } else {
                    vec![]
                }
            })
            .with_remember_me_extension(REMEMBER_ME_EXTENSION);
        (issuer, clock, store)
    }

    /// Issue 14: `offline_access` only asks for a refresh token. Neither
    /// the default issuer nor one configured with the extension reads it
    /// as remember-me: such a login ends at `max_duration`.
    #[test]
    fn offline_access_is_not_remember_me() {
        let (configured, configured_clock, _) = issuer();
        let clock = Arc::new(ManualClock::new(t0()));
        let default = PolicyIssuer::new(
            TokenMap::new(RandomGenerator::new(16)),
            Gate::new(
                PolicyCell::new(Policy::parse(POLICY, "policy.yaml").unwrap()),
                Arc::new(MemoryStore::new()),
                clock.clone(),
            ),
        );
        for (what, mut issuer, clock) in [
            ("default", default, clock),
            ("configured", configured, configured_clock),
        ] {
            let mut g = grant_template(t0());
            g.scope = "default offline_access".parse().unwrap();
            let mut r = issuer.issue(g).unwrap().refresh.unwrap();
            for _ in 0..6 {
                clock.advance(CDuration::minutes(9));
                r = refresh(&mut issuer, &r).unwrap().refresh.unwrap();
            }
            clock.advance(CDuration::minutes(7)); // 61 minutes in
            assert!(refresh(&mut issuer, &r).is_none(), "{what}");
        }
    }

    fn refresh(
        issuer: &mut PolicyIssuer<TokenMap<RandomGenerator>>,
        token: &str,
    ) -> Option<RefreshedToken> {
        let grant = issuer.recover_refresh(token).unwrap()?;
        // What oxide-auth's refresh flow does between recover and refresh.
        assert!(grant.until > issuer.gate().now());
        let mut grant = grant;
        grant.until = issuer.gate().now() + CDuration::hours(1);
        Some(issuer.refresh(token, grant).unwrap())
    }

    /// Issue 15: the address the server marks on a grant (the user's, at
    /// the authorization request) is the session's remote address; a
    /// value that is not an IP address is not recorded; a server that
    /// did not configure the extension records none.
    #[test]
    fn the_marked_remote_address_is_the_sessions_rhost() {
        let (issuer, _, store) = issuer();
        let mut issuer = issuer.with_remote_address_extension(REMOTE_ADDRESS_EXTENSION);
        let mut g = grant_template(t0());
        mark_remote_address(
            &mut g,
            REMOTE_ADDRESS_EXTENSION,
            "::ffff:192.0.2.9".parse().unwrap(),
        );
        let issued = issuer.issue(g).unwrap();
        let sid = issuer
            .inspect_access(&issued.token)
            .unwrap()
            .granted
            .session_id;
        let s = store.session(&sid).unwrap().unwrap();
        assert_eq!(s.rhost.as_deref(), Some("192.0.2.9"));

        let mut g = grant_template(t0());
        g.extensions.set_raw(
            REMOTE_ADDRESS_EXTENSION.to_owned(),
            Value::public(Some("192.0.2.9; rm -rf /".to_owned())),
        );
        let issued = issuer.issue(g).unwrap();
        let sid = issuer
            .inspect_access(&issued.token)
            .unwrap()
            .granted
            .session_id;
        assert_eq!(store.session(&sid).unwrap().unwrap().rhost, None);

        let (mut plain, _, store) = super::tests::issuer();
        let mut g = grant_template(t0());
        mark_remote_address(
            &mut g,
            REMOTE_ADDRESS_EXTENSION,
            "192.0.2.9".parse().unwrap(),
        );
        let issued = plain.issue(g).unwrap();
        let sid = plain
            .inspect_access(&issued.token)
            .unwrap()
            .granted
            .session_id;
        assert_eq!(store.session(&sid).unwrap().unwrap().rhost, None);
    }

    #[test]
    fn oxide_auth_suite_bare_token_map() {
        // The port is faithful: the bare issuer passes it with the real clock.
        let mut map = TokenMap::new(RandomGenerator::new(16));
        #[allow(clippy::disallowed_methods)] // oxide-auth's TokenMap reads the real clock itself
        let now = Utc::now();
        simple_test_suite(&mut map, now);
        refresh_test_suite(&mut map, now);
    }

    #[test]
    fn oxide_auth_suite_policy_issuer() {
        let (mut issuer, _, _) = issuer();
        simple_test_suite(&mut issuer, t0());
        refresh_test_suite(&mut issuer, t0());
    }

    #[test]
    fn issue_registers_a_session_and_sets_the_lifetime() {
        let (mut issuer, _, store) = issuer();
        let issued = issuer.issue(grant_template(t0())).unwrap();
        assert_eq!(issued.until, t0() + CDuration::minutes(5));
        let t = issuer.inspect_access(&issued.token).unwrap();
        let s = store.session(&t.granted.session_id).unwrap().unwrap();
        assert_eq!(s.user, "Owner");
        assert_eq!(s.client_id.as_deref(), Some("Client"));
        assert_eq!(s.started_at, t0());
        assert_eq!(t.granted.banner, "Authorized use only.");
        let claims = t.granted.claims();
        assert_eq!(claims.sid, s.id);
        assert_eq!(
            claims.curfew_absolute_deadline,
            (t0() + CDuration::hours(1)).timestamp()
        );
    }

    #[test]
    fn the_users_own_lifetime_is_honoured() {
        let (mut issuer, _, store) = issuer();
        store
            .set_timeout_preference("Owner", Some(std::time::Duration::from_secs(120)))
            .unwrap();
        let issued = issuer.issue(grant_template(t0())).unwrap();
        assert_eq!(issued.until, t0() + CDuration::minutes(2));
    }

    #[test]
    fn access_tokens_expire_on_the_issuers_clock() {
        let (mut issuer, clock, _) = issuer();
        let issued = issuer.issue(grant_template(t0())).unwrap();
        clock.advance(CDuration::minutes(4));
        assert!(issuer.recover_token(&issued.token).unwrap().is_some());
        clock.advance(CDuration::minutes(1));
        assert!(issuer.recover_token(&issued.token).unwrap().is_none());
        // The refresh token outlives it: within the inactivity window.
        let r = refresh(&mut issuer, issued.refresh.as_ref().unwrap()).unwrap();
        assert_eq!(r.until, clock.now() + CDuration::minutes(5));
        assert!(issuer.recover_token(&r.token).unwrap().is_some());
    }

    #[test]
    fn refresh_after_the_inactivity_window_is_refused() {
        let (mut issuer, clock, store) = issuer();
        let issued = issuer.issue(grant_template(t0())).unwrap();
        clock.advance(CDuration::minutes(9));
        let r = refresh(&mut issuer, issued.refresh.as_ref().unwrap()).unwrap();
        clock.advance(CDuration::minutes(10));
        let sid = GrantSession::of(
            &issuer
                .inner()
                .recover_refresh(r.refresh.as_ref().unwrap())
                .unwrap()
                .unwrap(),
        )
        .unwrap()
        .sid;
        assert!(refresh(&mut issuer, r.refresh.as_ref().unwrap()).is_none());
        let s = store.session(&sid).unwrap().unwrap();
        assert_eq!(s.end_reason, Some(EndReason::Idle));
    }

    #[test]
    fn group_rules_apply() {
        let (mut issuer, clock, _) = issuer();
        let mut g = grant_template(t0());
        g.owner_id = "root".into();
        let issued = issuer.issue(g).unwrap();
        clock.advance(CDuration::minutes(6));
        assert!(refresh(&mut issuer, issued.refresh.as_ref().unwrap()).is_none());
    }

    #[test]
    fn refresh_past_max_duration_is_refused_unless_remember_me() {
        let (mut issuer, clock, _) = issuer();
        let plain = issuer.issue(grant_template(t0())).unwrap();
        let mut g = grant_template(t0());
        mark_remember_me(&mut g, REMEMBER_ME_EXTENSION);
        let persistent = issuer.issue(g).unwrap();
        let mut plain_r = plain.refresh.unwrap();
        let mut persistent_r = persistent.refresh.unwrap();
        for _ in 0..6 {
            clock.advance(CDuration::minutes(9));
            plain_r = refresh(&mut issuer, &plain_r).unwrap().refresh.unwrap();
            persistent_r = refresh(&mut issuer, &persistent_r)
                .unwrap()
                .refresh
                .unwrap();
        }
        clock.advance(CDuration::minutes(7)); // 61 minutes in
        assert!(refresh(&mut issuer, &plain_r).is_none());
        let r = refresh(&mut issuer, &persistent_r).unwrap();
        assert!(issuer.recover_token(&r.token).unwrap().is_some());
    }

    /// Done-when of issue 13: a remembered login survives a refresh gap
    /// longer than `inactivity` but shorter than `remember_me.inactivity`,
    /// and not one longer; an ordinary login does not survive the first.
    #[test]
    fn a_remembered_login_has_its_own_inactivity() {
        let (mut issuer, clock, store) = issuer_with(
            "version: 1\nsession:\n  inactivity: 10m\n  max_duration: 12h\n  \
             remember_me: { max_duration: 20d, inactivity: 12h }\n",
        );
        let plain = issuer.issue(grant_template(t0())).unwrap();
        let mut g = grant_template(t0());
        mark_remember_me(&mut g, REMEMBER_ME_EXTENSION);
        let remembered = issuer.issue(g).unwrap();
        let sid = |issuer: &PolicyIssuer<TokenMap<RandomGenerator>>, token: &str| {
            GrantSession::of(&issuer.inner().recover_refresh(token).unwrap().unwrap())
                .unwrap()
                .sid
        };
        let plain_sid = sid(&issuer, plain.refresh.as_ref().unwrap());
        let remembered_sid = sid(&issuer, remembered.refresh.as_ref().unwrap());

        // A night: 11 hours without a refresh.
        clock.advance(CDuration::hours(11));
        assert!(refresh(&mut issuer, plain.refresh.as_ref().unwrap()).is_none());
        assert_eq!(
            store.session(&plain_sid).unwrap().unwrap().end_reason,
            Some(EndReason::Idle)
        );
        let r = refresh(&mut issuer, remembered.refresh.as_ref().unwrap())
            .expect("a remembered login survives a gap shorter than remember_me.inactivity");
        assert!(issuer.recover_token(&r.token).unwrap().is_some());

        // Then a gap one minute longer than remember_me.inactivity.
        clock.advance(CDuration::hours(12) + CDuration::minutes(1));
        assert!(refresh(&mut issuer, r.refresh.as_ref().unwrap()).is_none());
        assert_eq!(
            store.session(&remembered_sid).unwrap().unwrap().end_reason,
            Some(EndReason::Idle)
        );
    }

    #[test]
    fn revoked_user_client_or_session_is_refused_everywhere() {
        for target in [
            Target::User("Owner".into()),
            Target::Client("Client".into()),
            Target::Session(String::new()),
        ] {
            let (mut issuer, clock, store) = issuer();
            let issued = issuer.issue(grant_template(t0())).unwrap();
            let sid = issuer
                .inspect_access(&issued.token)
                .unwrap()
                .granted
                .session_id;
            let target = match target {
                Target::Session(_) => Target::Session(sid.clone()),
                t => t,
            };
            clock.advance(CDuration::minutes(1));
            store
                .add_revocation(&Revocation {
                    id: "r1".into(),
                    target: target.clone(),
                    not_before: clock.now(),
                    expires_at: None,
                    reason: None,
                    actor: "root".into(),
                    created_at: clock.now(),
                })
                .unwrap();
            assert!(
                issuer.recover_token(&issued.token).unwrap().is_none(),
                "{target}"
            );
            assert!(issuer
                .recover_refresh(issued.refresh.as_ref().unwrap())
                .unwrap()
                .is_none());
            assert_eq!(
                store.session(&sid).unwrap().unwrap().end_reason,
                Some(EndReason::Revoked)
            );
            if !matches!(target, Target::Session(_)) {
                assert!(
                    issuer.issue(grant_template(clock.now())).is_err(),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn issues_refreshes_and_refusals_are_audited_with_user_client_and_session() {
        use curfew_policy::audit::{AuditEvent, AuditLine, Grant as G, RefusalReason};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let text = format!(
            "{POLICY}audit: {{ syslog: false, file: {} }}\n",
            file.display()
        );
        let clock = Arc::new(ManualClock::new(t0()));
        let store = Arc::new(MemoryStore::new());
        let gate = Gate::new(
            PolicyCell::new(Policy::parse(&text, "policy.yaml").unwrap()),
            store.clone(),
            clock.clone(),
        )
        .with_host(Some("idp1".into()));
        let mut issuer = PolicyIssuer::new(TokenMap::new(RandomGenerator::new(16)), gate);
        let issued = issuer.issue(grant_template(t0())).unwrap();
        clock.advance(CDuration::minutes(1));
        let r = refresh(&mut issuer, issued.refresh.as_ref().unwrap()).unwrap();
        store
            .add_revocation(&Revocation {
                id: "r1".into(),
                target: Target::User("Owner".into()),
                not_before: clock.now(),
                expires_at: None,
                reason: Some("offboarding".into()),
                actor: "root".into(),
                created_at: clock.now(),
            })
            .unwrap();
        clock.advance(CDuration::minutes(1));
        assert!(refresh(&mut issuer, r.refresh.as_ref().unwrap()).is_none());
        assert!(issuer.issue(grant_template(clock.now())).is_err());

        let lines: Vec<AuditLine> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines
            .iter()
            .all(|l| l.source == "curfew-oidc" && l.host.as_deref() == Some("idp1")));
        let sid = match &lines[0].event {
            AuditEvent::TokenIssued {
                user,
                client,
                session,
                grant: G::Issue,
                expires_at,
                recorded: true,
            } => {
                assert_eq!((user.as_str(), client.as_str()), ("Owner", "Client"));
                assert_eq!(*expires_at, t0() + CDuration::minutes(5));
                session.clone()
            }
            e => panic!("{e:?}"),
        };
        assert_eq!(lines[0].at, t0());
        assert!(matches!(&lines[1].event,
            AuditEvent::TokenIssued { session, grant: G::Refresh, .. } if *session == sid));
        match &lines[2].event {
            AuditEvent::RefreshRefused {
                user,
                client,
                session,
                reason,
                revocation,
                detail,
            } => {
                assert_eq!((user.as_str(), client.as_str()), ("Owner", "Client"));
                assert_eq!(session.as_deref(), Some(sid.as_str()));
                assert_eq!(*reason, RefusalReason::Revoked);
                assert_eq!(revocation.as_deref(), Some("r1"));
                assert!(detail.contains("offboarding"), "{detail}");
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(&lines[3].event,
            AuditEvent::LoginRefused { user, client: Some(c), reason: RefusalReason::Revoked, .. }
                if user == "Owner" && c == "Client"));
    }

    #[test]
    fn ending_the_session_kills_every_token_of_the_grant() {
        let (mut issuer, _, _) = issuer();
        let issued = issuer.issue(grant_template(t0())).unwrap();
        let grant = issuer
            .inner()
            .recover_token(&issued.token)
            .unwrap()
            .unwrap();
        assert!(issuer.end_session(&grant, EndReason::Logout).unwrap());
        assert!(issuer.recover_token(&issued.token).unwrap().is_none());
        assert!(issuer
            .recover_refresh(issued.refresh.as_ref().unwrap())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_token_without_a_curfew_session_is_not_valid() {
        let (mut issuer, _, _) = issuer();
        issuer
            .inner_mut()
            .import_grant("imported".into(), grant_template(t0()));
        assert!(issuer.inner().recover_token("imported").unwrap().is_some());
        assert!(issuer.recover_token("imported").unwrap().is_none());
    }
}
