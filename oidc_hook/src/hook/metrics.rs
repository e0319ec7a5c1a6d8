//! The token hook's Prometheus metrics, in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::policy_file::PolicyStatus;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How a token-hook request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Allowed, claims set (200) or unchanged (204).
    Allow,
    /// Refused by the policy (403).
    Deny,
    /// The request could not be read (4xx).
    BadRequest,
    /// The store failed (503).
    Unavailable,
    /// Unauthenticated (401).
    Unauthorized,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::BadRequest => "bad_request",
            Outcome::Unavailable => "unavailable",
            Outcome::Unauthorized => "unauthorized",
        }
    }
}

/// Counters and the latency histogram, shared by every request.
#[derive(Default)]
pub struct Metrics {
    outcomes: Mutex<BTreeMap<Outcome, u64>>,
    denials: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Metrics {
    /// Counts one request and its latency; `denial` names the reason of a
    /// denial.
    pub fn record(&self, outcome: Outcome, denial: Option<&'static str>, took: Duration) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(outcome)
            .or_default() += 1;
        if let Some(reason) = denial {
            *self
                .denials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(reason)
                .or_default() += 1;
        }
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts a policy reload.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self, policy: &PolicyStatus) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP curfew_hook_requests_total Token-hook requests by outcome.\n\
             # TYPE curfew_hook_requests_total counter"
        );
        let outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for o in [
            Outcome::Allow,
            Outcome::Deny,
            Outcome::BadRequest,
            Outcome::Unavailable,
            Outcome::Unauthorized,
        ] {
            let n = outcomes.get(&o).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "curfew_hook_requests_total{{outcome=\"{}\"}} {n}",
                o.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP curfew_hook_denials_total Token-hook denials by reason.\n\
             # TYPE curfew_hook_denials_total counter"
        );
        for (reason, n) in self
            .denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "curfew_hook_denials_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP curfew_hook_request_duration_seconds Time to decide a token-hook request.\n\
             # TYPE curfew_hook_request_duration_seconds histogram"
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "curfew_hook_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "curfew_hook_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             curfew_hook_request_duration_seconds_sum {}\n\
             curfew_hook_request_duration_seconds_count {count}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP curfew_policy_reloads_total Policy reloads by result.\n\
             # TYPE curfew_policy_reloads_total counter\n\
             curfew_policy_reloads_total{{result=\"ok\"}} {}\n\
             curfew_policy_reloads_total{{result=\"rejected\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP curfew_policy_generation The policy in force: 1, plus one per successful reload.\n\
             # TYPE curfew_policy_generation gauge\n\
             curfew_policy_generation {}\n\
             # HELP curfew_policy_reload_failing 1 while the policy file on disk is invalid and the last good policy is in force.\n\
             # TYPE curfew_policy_reload_failing gauge\n\
             curfew_policy_reload_failing {}",
            policy.generation,
            u8::from(policy.last_error.is_some())
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.record(Outcome::Allow, None, Duration::from_micros(300));
        m.record(Outcome::Deny, Some("idle"), Duration::from_millis(3));
        m.reloaded(false);
        let text = m.render(&PolicyStatus {
            origin: "p.yaml".into(),
            generation: 1,
            last_error: Some("bad".into()),
        });
        assert!(text.contains("curfew_hook_requests_total{outcome=\"allow\"} 1"));
        assert!(text.contains("curfew_hook_requests_total{outcome=\"deny\"} 1"));
        assert!(text.contains("curfew_hook_denials_total{reason=\"idle\"} 1"));
        assert!(text.contains("curfew_hook_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("curfew_hook_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("curfew_hook_request_duration_seconds_count 2"));
        assert!(text.contains("curfew_policy_reloads_total{result=\"rejected\"} 1"));
        assert!(text.contains("curfew_policy_reload_failing 1"));
    }
}
