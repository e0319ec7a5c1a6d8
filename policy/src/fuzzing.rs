//! Entry points shared by the cargo-fuzz targets (fuzz/) and the stable
//! corpus-replay tests, so the fuzzer and CI exercise the same code.
//!
//! Each function panics only when an invariant breaks: that is the signal a
//! fuzzer looks for.

use chrono::{TimeZone, Utc};

use crate::policy::{
    INACTIVITY_CEILING, MAX_DURATION_CEILING, REMEMBER_ME_CEILING, TIMEOUT_CEILING, TIMEOUT_FLOOR,
};
use crate::{decide, Decision, Policy, RevocationSet, SessionState, Subject};

/// Parses `data` as a policy; if it is accepted, resolves it for a few
/// subjects and checks that nothing escapes the hard bounds.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() as u64 > crate::policy::MAX_POLICY_BYTES {
        return;
    }
    let Ok(policy) = Policy::parse(text, "fuzz.yaml") else {
        return;
    };
    let groups = ["wheel".to_string(), "g".to_string()];
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    for (user, service, client) in [
        ("x", Some("sshd"), None),
        ("deploy", None, Some("ci")),
        ("alice", Some("login"), None),
    ] {
        let eff = policy.effective(&Subject {
            user,
            groups: &groups,
            service,
            client,
            host: Some("h"),
        });
        assert!(TIMEOUT_FLOOR <= eff.timeout_min.value);
        assert!(eff.timeout_min.value <= eff.timeout_default.value);
        assert!(eff.timeout_default.value <= eff.timeout_max.value);
        assert!(eff.timeout_max.value <= TIMEOUT_CEILING);
        assert!(eff.max_duration.value <= MAX_DURATION_CEILING);
        assert!(eff.inactivity.value <= INACTIVITY_CEILING.min(eff.max_duration.value));
        assert!(eff.warn_before.value < eff.inactivity.value);
        assert!(eff.remember_me_max_duration.value <= REMEMBER_ME_CEILING);
        let lifetime = eff.token_lifetime(None).value;
        let now = start + chrono::Duration::seconds(60);
        let state = SessionState::login(user, client, start);
        if let Decision::Allow(a) = decide(&eff, &state, &RevocationSet::new(), lifetime, now) {
            assert!(a.token_expires_at <= a.absolute_deadline);
            assert!(a.idle_deadline > now && a.absolute_deadline > now);
        }
    }
}
