//! Entry point shared by the cargo-fuzz target `token_hook` (fuzz/) and the
//! stable corpus-replay test, so the fuzzer and CI exercise the same code:
//! a token-hook request body, parsed and decided against a policy with a
//! rule per group and an in-memory store. Panics only when something breaks.

use std::sync::{Arc, OnceLock};

use chrono::{TimeZone, Utc};
use curfew_policy::store::MemoryStore;
use curfew_policy::Policy;

use crate::clock::ManualClock;
use crate::gate::Gate;
use crate::hook::hydra::TokenHookRequest;
use crate::hook::{HookAuth, HookOptions, HookState, Outcome};
use crate::policy_file::PolicyCell;

const POLICY: &str = "version: 1
session: { inactivity: 15m, max_duration: 8h, remember_me: { max_duration: 2d } }
banner: { text: \"fuzz\" }
rules:
  - name: admins
    match: { groups: [wheel] }
    session: { inactivity: 5m }
  - name: ci
    match: { clients: [ci] }
    session: { max_duration: 1h }
";

fn state() -> &'static HookState {
    static STATE: OnceLock<HookState> = OnceLock::new();
    STATE.get_or_init(|| {
        let policy = Policy::parse(POLICY, "fuzz.yaml").unwrap_or_else(|_| Policy::builtin());
        let t0 = Utc
            .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let gate = Gate::new(
            PolicyCell::new(policy),
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(t0)),
        );
        HookState::new(gate, HookOptions::default(), None, HookAuth::default())
    })
}

/// Parses `data` as a token-hook request body and, if it parses, decides it.
/// Returns how far it got: `"unparsed"`, `"allowed"` or `"answered"` (any
/// other answer), so a replay can check that its seeds reach the decision.
pub fn token_hook(data: &[u8]) -> &'static str {
    if data.len() > crate::hook::MAX_BODY {
        return "unparsed";
    }
    let Ok(req) = TokenHookRequest::parse(data) else {
        return "unparsed";
    };
    let st = state();
    let Ok(neutral) = req.to_neutral(&HookOptions::default().hydra) else {
        return "answered";
    };
    match st.decide(&neutral) {
        Outcome::Allow { claims, .. } => {
            // Whatever the hook allows must serialize for Hydra.
            assert!(serde_json::to_vec(&req.response(&claims)).is_ok());
            "allowed"
        }
        _ => "answered",
    }
}
