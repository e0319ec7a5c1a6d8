//! Login throttling: failed sign-ins (a wrong password, or an unknown
//! user) are counted per account name and per client address over a
//! sliding window; past the limit, that account (from anywhere) or that
//! address (for any account) gets `429 Too Many Requests` with
//! `Retry-After` and no password check, until the oldest failure leaves
//! the window. Each refusal is a `login_refused` audit event with reason
//! `throttled`. A successful sign-in clears its account's count (not its
//! address's).
//!
//! | limit | value |
//! |---|---|
//! | failures per account name | [`PER_ACCOUNT`] (5) in [`WINDOW`] (15 min) |
//! | failures per client address | [`PER_ADDRESS`] (20) in [`WINDOW`] |
//! | names and addresses remembered | [`MAX_KEYS`] (10,000; past it, the stalest is forgotten) |
//!
//! Unknown names are counted like known ones, so the answer does not tell
//! which accounts exist. The counts live in memory: a restart clears them.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;

/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins per account name within [`WINDOW`].
pub const PER_ACCOUNT: usize = 5;
/// Failed sign-ins per client address within [`WINDOW`].
pub const PER_ADDRESS: usize = 20;
/// How many names and addresses are remembered at most.
pub const MAX_KEYS: usize = 10_000;

/// Why a sign-in is refused without a password check.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// What reached its limit: `"account"` or `"address"`.
    pub what: &'static str,
    /// The limit.
    pub limit: usize,
    /// When a new attempt may succeed.
    pub retry_after: Duration,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed sign-ins for this {} within {} min; retry in {} s",
            self.limit,
            self.what,
            WINDOW.as_secs() / 60,
            self.retry_after.as_secs().max(1)
        )
    }
}

/// The failure counts.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

fn account_key(user: &str) -> String {
    format!("u:{user}")
}

fn address_key(addr: IpAddr) -> String {
    format!("a:{addr}")
}

impl Throttle {
    /// `Err` if `user` or `addr` is at its limit now.
    pub fn check(&self, user: &str, addr: IpAddr) -> Result<(), Blocked> {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        for (key, what, limit) in [
            (account_key(user), "account", PER_ACCOUNT),
            (address_key(addr), "address", PER_ADDRESS),
        ] {
            let Some(q) = map.get_mut(&key) else {
                continue;
            };
            while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                q.pop_front();
            }
            if q.len() >= limit {
                let oldest = q.front().copied().unwrap_or(now);
                return Err(Blocked {
                    what,
                    limit,
                    retry_after: WINDOW.saturating_sub(now.duration_since(oldest)),
                });
            }
        }
        Ok(())
    }

    /// Counts a failed sign-in of `user` from `addr`.
    pub fn failed(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        for key in [account_key(user), address_key(addr)] {
            if !map.contains_key(&key) && map.len() >= MAX_KEYS {
                map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
                if map.len() >= MAX_KEYS {
                    let stalest = map
                        .iter()
                        .min_by_key(|(_, q)| q.back().copied())
                        .map(|(k, _)| k.clone());
                    if let Some(k) = stalest {
                        map.remove(&k);
                    }
                }
            }
            let q = map.entry(key).or_default();
            q.push_back(now);
            // The limits are small: older entries are never needed.
            while q.len() > PER_ADDRESS {
                q.pop_front();
            }
        }
    }

    /// A successful sign-in of `user`: its account count is cleared.
    pub fn succeeded(&self, user: &str) {
        lock(&self.failures).remove(&account_key(user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_per_address() {
        let t = Throttle::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..PER_ACCOUNT {
            assert!(t.check("alice", a).is_ok());
            t.failed("alice", a);
        }
        let e = t.check("alice", b).unwrap_err();
        assert_eq!(e.what, "account");
        assert!(e.retry_after <= WINDOW && e.retry_after > Duration::ZERO);
        assert!(
            t.check("bob", a).is_ok(),
            "another account from the address"
        );
        t.succeeded("alice");
        assert!(t.check("alice", a).is_ok());
        for i in 0..PER_ADDRESS {
            t.failed(&format!("user{i}"), b);
        }
        assert_eq!(t.check("carol", b).unwrap_err().what, "address");
        assert!(t.check("carol", a).is_ok());
    }
}
