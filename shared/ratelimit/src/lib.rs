//! A client-side rate governor: never send more than the configured number of requests in any
//! rolling window (and no more than the search limit per second), so an API's limits are kept
//! rather than discovered through 429s. Used by the HubSpot adapter (100 or 190 per 10 s, search
//! 5 per second) and the enrichment provider (PDL: 10 or 1,000 per minute).
//!
//! It counts send times in a sliding window (exact, unlike a token bucket that allows bursts
//! across window edges) with a small safety margin for network jitter, and pauses everyone when
//! the server says its window is spent (`X-HubSpot-RateLimit-Remaining: 0`). Shared by all
//! requests of a client, so concurrent callers are governed together.
//!
//! Time is tokio's (`tokio::time::Instant`, `tokio::time::sleep`): under a paused test clock
//! the governor keeps the same limits in no wall time, and a test can prove it does.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A private app's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_window: u32,
    pub window: Duration,
    pub search_per_second: u32,
}

impl RateLimits {
    /// `per_window` requests in any rolling `window`, with no separate search limit.
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            search_per_second: per_window,
        }
    }

    /// HubSpot Free/Starter: 100 per 10 s, search 5 per second. Safe on every tier.
    pub const FREE: RateLimits = RateLimits {
        per_window: 100,
        window: Duration::from_secs(10),
        search_per_second: 5,
    };
    /// HubSpot Professional/Enterprise: 190 per 10 s, search 5 per second.
    pub const PRO: RateLimits = RateLimits {
        per_window: 190,
        window: Duration::from_secs(10),
        search_per_second: 5,
    };
}

/// Extra time each window is held for, so jitter between our send and HubSpot's receive
/// cannot squeeze one more request into the server's window.
const MARGIN: Duration = Duration::from_millis(60);
/// The same for the one-second search window, wider: a walk's lanes keep searches at the
/// limit, so a search delayed on its way (a new connection, a busy host) would otherwise land
/// in the same server second as the next one. ≈ 4.3 searches per second at most.
const SEARCH_MARGIN: Duration = Duration::from_millis(150);

#[derive(Debug, Default)]
struct Sent {
    all: VecDeque<Instant>,
    search: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// See the module docs.
#[derive(Debug)]
pub struct RateGovernor {
    limits: RateLimits,
    sent: Mutex<Sent>,
}

impl RateGovernor {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            sent: Mutex::new(Sent::default()),
        }
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Wait until a request may be sent, and count it as sent.
    pub async fn acquire(&self, is_search: bool) {
        loop {
            match self.try_acquire(is_search, Instant::now()) {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// `None` when the request may go now (it is counted); otherwise how long to wait.
    fn try_acquire(&self, is_search: bool, now: Instant) -> Option<Duration> {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = sent.paused_until {
            if until > now {
                return Some(until - now);
            }
            sent.paused_until = None;
        }
        let window = self.limits.window + MARGIN;
        let second = Duration::from_secs(1) + SEARCH_MARGIN;
        while sent
            .all
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            sent.all.pop_front();
        }
        while sent
            .search
            .front()
            .is_some_and(|t| now.duration_since(*t) >= second)
        {
            sent.search.pop_front();
        }
        if sent.all.len() as u32 >= self.limits.per_window.max(1) {
            return sent.all.front().map(|t| {
                window
                    .saturating_sub(now.duration_since(*t))
                    .max(Duration::from_millis(1))
            });
        }
        if is_search && sent.search.len() as u32 >= self.limits.search_per_second.max(1) {
            return sent.search.front().map(|t| {
                second
                    .saturating_sub(now.duration_since(*t))
                    .max(Duration::from_millis(1))
            });
        }
        sent.all.push_back(now);
        if is_search {
            sent.search.push_back(now);
        }
        None
    }

    /// Learn from HubSpot's headers: with nothing remaining in its window, pause everyone for
    /// the window's length.
    pub fn observe(&self, remaining: Option<u64>, interval: Option<Duration>) {
        if remaining == Some(0) {
            let pause = interval
                .unwrap_or(self.limits.window)
                .min(Duration::from_secs(10));
            let mut sent = self
                .sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sent.paused_until = Some(Instant::now() + pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_limit_in_any_window() {
        let g = RateGovernor::new(RateLimits {
            per_window: 3,
            window: Duration::from_millis(100),
            search_per_second: 2,
        });
        let t0 = Instant::now();
        assert!(g.try_acquire(false, t0).is_none());
        assert!(g.try_acquire(true, t0).is_none());
        assert!(g.try_acquire(true, t0).is_none());
        let wait = g.try_acquire(false, t0).unwrap();
        assert_eq!(wait, Duration::from_millis(100) + MARGIN);
        // Search has its own per-second limit.
        let later = t0 + Duration::from_secs(1) + SEARCH_MARGIN;
        assert!(g.try_acquire(true, later).is_none());
        assert!(g.try_acquire(true, later).is_none());
        assert!(
            g.try_acquire(true, later).is_some(),
            "third search within a second waits"
        );
        assert!(
            g.try_acquire(false, later).is_none(),
            "other calls still go"
        );
    }

    #[test]
    fn pauses_when_the_server_says_nothing_remains() {
        let g = RateGovernor::new(RateLimits::FREE);
        g.observe(Some(0), Some(Duration::from_millis(500)));
        assert!(g.try_acquire(false, Instant::now()).is_some());
        g.observe(Some(5), None);
    }
}
