//! Rate limits and fault injection: what makes the sandbox behave like HubSpot under load.
//!
//! Limits are enforced exactly as configured (rolling window, search per second, daily), with
//! HubSpot's headers and 429 bodies. Every request that arrives while its window is already
//! full is a *violation*, counted so tests can prove a client stayed under the limit. Faults
//! (random 429s and 5xx, latency, malformed bodies) are drawn from a seeded generator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The API limits of one private app (HubSpot Free/Starter: 100 per 10 s, 250k a day; search 5/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub per_window: u32,
    pub window_ms: u64,
    pub search_per_second: u32,
    pub daily: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_window: 100,
            window_ms: 10_000,
            search_per_second: 5,
            daily: 250_000,
        }
    }
}

/// Faults to inject, each a probability per request (0–1), plus fixed latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub latency_ms: u64,
    /// Share of requests answered 429 although under the limit (a "storm").
    pub rate_limit_rate: f64,
    /// Share of 429s that carry a `Retry-After` header.
    pub retry_after_rate: f64,
    /// Share of requests answered 500/502/503/504.
    pub server_error_rate: f64,
    /// Share of successful answers whose JSON body is cut short.
    pub malformed_rate: f64,
    /// Share of requests held [`Faults::hang_ms`] before they are answered: set it longer than
    /// the client's timeout and each is a timeout.
    #[serde(default)]
    pub timeout_rate: f64,
    #[serde(default)]
    pub hang_ms: u64,
    /// Records modified less than this long ago are not yet visible to search.
    pub index_lag_ms: u64,
}

/// What the limiter and the faults did, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitStats {
    pub requests: u64,
    /// Requests that arrived while the rolling window (or search second) was already full.
    pub violations: u64,
    /// The most requests seen in any rolling window.
    pub max_in_window: u32,
    pub injected_429: u64,
    pub injected_5xx: u64,
    pub injected_malformed: u64,
    #[serde(default)]
    pub injected_timeouts: u64,
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass {
        malformed: bool,
        /// Hold the answer [`Faults::hang_ms`] first.
        hang: bool,
        remaining: u32,
    },
    RateLimited {
        policy: &'static str,
        message: &'static str,
        retry_after: Option<u64>,
        remaining: u32,
    },
    ServerError(u16),
}

#[derive(Debug)]
pub struct Limiter {
    pub limits: Limits,
    pub faults: Faults,
    window: VecDeque<Instant>,
    search: VecDeque<Instant>,
    day: u64,
    rng: ChaCha8Rng,
    pub stats: LimitStats,
}

impl Limiter {
    pub fn new(limits: Limits, faults: Faults, seed: u64) -> Self {
        Self {
            limits,
            faults,
            window: VecDeque::new(),
            search: VecDeque::new(),
            day: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            stats: LimitStats::default(),
        }
    }

    /// Account for one request arriving now and decide its fate.
    pub fn admit(&mut self, is_search: bool, now: Instant) -> Verdict {
        let window = Duration::from_millis(self.limits.window_ms);
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.window.pop_front();
        }
        while self
            .search
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.search.pop_front();
        }
        self.stats.requests += 1;
        self.day += 1;
        let window_full = self.window.len() as u32 >= self.limits.per_window;
        let search_full = is_search && self.search.len() as u32 >= self.limits.search_per_second;
        self.window.push_back(now);
        if is_search {
            self.search.push_back(now);
        }
        self.stats.max_in_window = self.stats.max_in_window.max(self.window.len() as u32);
        let remaining = self
            .limits
            .per_window
            .saturating_sub(self.window.len() as u32);
        if window_full || search_full {
            self.stats.violations += 1;
            let retry_after = self.retry_after();
            return if search_full {
                Verdict::RateLimited {
                    policy: "SECONDLY",
                    message: "You have reached your secondly limit.",
                    retry_after,
                    remaining,
                }
            } else {
                Verdict::RateLimited {
                    policy: "TEN_SECONDLY_ROLLING",
                    message: "You have reached your ten_secondly_rolling limit.",
                    retry_after,
                    remaining,
                }
            };
        }
        if self.day > self.limits.daily {
            return Verdict::RateLimited {
                policy: "DAILY",
                message: "You have reached your daily limit.",
                retry_after: None,
                remaining,
            };
        }
        if self
            .rng
            .random_bool(self.faults.rate_limit_rate.clamp(0.0, 1.0))
        {
            self.stats.injected_429 += 1;
            let retry_after = self.retry_after();
            return Verdict::RateLimited {
                policy: "TEN_SECONDLY_ROLLING",
                message: "You have reached your ten_secondly_rolling limit.",
                retry_after,
                remaining,
            };
        }
        if self
            .rng
            .random_bool(self.faults.server_error_rate.clamp(0.0, 1.0))
        {
            self.stats.injected_5xx += 1;
            return Verdict::ServerError([500, 502, 503, 504][self.rng.random_range(0..4)]);
        }
        let malformed = self
            .rng
            .random_bool(self.faults.malformed_rate.clamp(0.0, 1.0));
        if malformed {
            self.stats.injected_malformed += 1;
        }
        let hang = self
            .rng
            .random_bool(self.faults.timeout_rate.clamp(0.0, 1.0));
        if hang {
            self.stats.injected_timeouts += 1;
        }
        Verdict::Pass {
            malformed,
            hang,
            remaining,
        }
    }

    fn retry_after(&mut self) -> Option<u64> {
        self.rng
            .random_bool(self.faults.retry_after_rate.clamp(0.0, 1.0))
            .then_some(1)
    }

    pub fn daily_remaining(&self) -> u64 {
        self.limits.daily.saturating_sub(self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_violations_only_when_the_window_is_full() {
        let limits = Limits {
            per_window: 3,
            window_ms: 1000,
            search_per_second: 2,
            daily: 1000,
        };
        let mut l = Limiter::new(limits, Faults::default(), 1);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                l.admit(false, t0 + Duration::from_millis(i)),
                Verdict::Pass { .. }
            ));
        }
        assert!(matches!(
            l.admit(false, t0 + Duration::from_millis(5)),
            Verdict::RateLimited {
                policy: "TEN_SECONDLY_ROLLING",
                ..
            }
        ));
        assert_eq!(l.stats.violations, 1);
        // A window later the old requests have rolled out.
        assert!(matches!(
            l.admit(false, t0 + Duration::from_millis(1010)),
            Verdict::Pass { .. }
        ));
        assert!(matches!(
            l.admit(true, t0 + Duration::from_millis(1011)),
            Verdict::Pass { .. }
        ));
        assert!(matches!(
            l.admit(true, t0 + Duration::from_millis(1012)),
            Verdict::Pass { .. }
        ));
        assert!(matches!(
            l.admit(true, t0 + Duration::from_millis(1013)),
            Verdict::RateLimited { .. }
        ));
    }

    #[test]
    fn storms_are_seeded_and_near_their_rate() {
        let faults = Faults {
            rate_limit_rate: 0.3,
            server_error_rate: 0.05,
            ..Faults::default()
        };
        let limits = Limits {
            per_window: u32::MAX,
            ..Limits::default()
        };
        let mut l = Limiter::new(limits, faults, 9);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            l.admit(false, t0);
        }
        assert!(
            (2700..3300).contains(&l.stats.injected_429),
            "{:?}",
            l.stats
        );
        assert!((250..450).contains(&l.stats.injected_5xx), "{:?}", l.stats);
    }
}
