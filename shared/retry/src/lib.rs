//! One retry policy for every call leadsync makes outside itself — HubSpot, Salesforce, the
//! enrichment provider, DynamoDB, S3, SQS, EventBridge.
//!
//! Each adapter says of its own errors only one thing, through [`Classify`]: try again
//! ([`Verdict::Retry`]), try again no sooner than the server asked ([`Verdict::RetryAfter`],
//! e.g. `Retry-After`), try again after exactly a throttle's wait ([`Verdict::Throttled`]), try
//! again soon after a burst guard's refusal ([`Verdict::Burst`]), or give up
//! ([`Verdict::GiveUp`]). How long to wait and how often to try is the [`Policy`]'s alone: exponential backoff with jitter (backon), capped, on tokio's clock
//! (so a test with a paused clock runs a storm's waits in no wall time). Jitter matters here:
//! a walk's lanes and a run's slices fail together when the CRM throttles, and without it they
//! would come back together too.
//!
//! One attempt is one unit: an adapter whose answer can arrive cut short retries the send *and*
//! the decode inside one [`Policy::retry`], so a call never makes more than
//! `1 + Policy::retries` requests.

use backon::{ExponentialBuilder, Retryable};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worth another attempt after the policy's backoff (5xx, timeouts, connection resets,
    /// throttling without a stated wait, a body cut short).
    Retry,
    /// Worth another attempt, but not before this long (the server's `Retry-After`); the
    /// policy waits the longer of this and its own backoff, at most [`Policy::max_after`].
    RetryAfter(Duration),
    /// Refused by a rate limit whose wait is known (the server's `Retry-After`, or a caller
    /// whose own rate governor holds the limit): try again after this long (at most
    /// [`Policy::max_after`]), not after the growing backoff — being throttled says nothing
    /// about the server's health, and the governor, not the backoff, keeps the rate. The
    /// attempt still counts against [`Policy::retries`].
    Throttled(Duration),
    /// Refused by a rate limit that the server says is not spent (it counts requests left in
    /// its window: a burst guard, not the window itself). Try again after the policy's backoff,
    /// but never longer than [`BURST_CAP`]. The caller's governor keeps the rate, so a growing
    /// wait would only idle whatever waits on this call. The attempt still counts against
    /// [`Policy::retries`].
    Burst,
    /// Another attempt would fail the same way (refused, unauthorised, not found, a quota spent
    /// for the day).
    GiveUp,
}

/// The longest wait after a [`Verdict::Burst`], jitter included.
pub const BURST_CAP: Duration = Duration::from_secs(1);

/// An error that knows whether it is worth another attempt.
pub trait Classify {
    fn verdict(&self) -> Verdict;
}

/// How often and how long to wait. Delays grow by 2× from `first` to `cap`, each with up to
/// its own length again added at random (so the n-th wait is in `[d, 2d)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first wait.
    pub first: Duration,
    /// No backoff wait is longer (before jitter).
    pub cap: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// The longest a server-stated wait is honoured: a night's run must not stall on one call
    /// whatever `Retry-After` says.
    pub max_after: Duration,
}

impl Policy {
    /// For HTTP APIs (CRMs, the provider): 200 ms, 400 ms, … up to 10 s; 8 retries (≈ 30 s in
    /// all before jitter, more with server-stated waits).
    pub const HTTP: Policy = Policy {
        first: Duration::from_millis(200),
        cap: Duration::from_secs(10),
        retries: 8,
        max_after: Duration::from_secs(30),
    };
    /// For AWS calls (DynamoDB, S3, SQS) on top of the SDK's own retries, and for unprocessed
    /// batch items: 50 ms, 100 ms, … up to 5 s; 8 retries.
    pub const AWS: Policy = Policy {
        first: Duration::from_millis(50),
        cap: Duration::from_secs(5),
        retries: 8,
        max_after: Duration::from_secs(5),
    };

    /// The same policy with every wait `factor` times shorter (tests, scaled clocks).
    #[must_use]
    pub fn faster(self, factor: u32) -> Self {
        let factor = factor.max(1);
        Self {
            first: self.first / factor,
            cap: self.cap / factor,
            retries: self.retries,
            max_after: self.max_after / factor,
        }
    }

    /// The backoff sequence, for callers that drive their own loop (e.g. batch items left
    /// unprocessed): each `next()` is the wait before the next attempt, `None` once spent.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        use backon::BackoffBuilder;
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.cap)
            .with_max_times(self.retries as usize)
            .with_jitter()
            .build()
    }

    /// Run `attempt` until it succeeds, its error says [`Verdict::GiveUp`], or the policy is
    /// spent; the last error is returned. `what` names the call in the warning each retry logs
    /// (never a URL with a secret in it: callers pass a path or an operation name).
    ///
    /// # Errors
    /// The attempt's last error.
    pub async fn retry<T, E, Fut, F>(&self, what: &str, attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify + Display,
    {
        let max_after = self.max_after;
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(self.first)
                    .with_max_delay(self.cap)
                    .with_max_times(self.retries as usize)
                    .with_jitter(),
            )
            .when(|e: &E| e.verdict() != Verdict::GiveUp)
            .adjust(move |e: &E, wait: Option<Duration>| match (e.verdict(), wait) {
                (_, None) => None,
                (Verdict::RetryAfter(after), Some(wait)) => Some(wait.max(after.min(max_after))),
                (Verdict::Throttled(after), Some(_)) => Some(after.min(max_after)),
                (Verdict::Burst, Some(wait)) => Some(wait.min(BURST_CAP)),
                (_, wait) => wait,
            })
            .notify(|e: &E, wait: Duration| {
                tracing::warn!(call = what, wait_ms = wait.as_millis() as u64, error = %e, "Call failed; retrying.");
            })
            .await
    }
}

impl Policy {
    /// [`Policy::retry`] for attempts that fail with a [`Failure`]: the caller gets the bare
    /// error back.
    ///
    /// # Errors
    /// The attempt's last error.
    pub async fn run<T, E, Fut, F>(&self, what: &str, attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
        E: Display,
    {
        self.retry(what, attempt).await.map_err(|f| f.error)
    }
}

/// An adapter's error with the verdict its adapter gave it (the port's error types live in the
/// domain crate, which knows nothing of retries).
#[derive(Debug)]
pub struct Failure<E> {
    pub error: E,
    pub verdict: Verdict,
}

impl<E> Failure<E> {
    pub fn retry(error: E) -> Self {
        Self {
            error,
            verdict: Verdict::Retry,
        }
    }

    pub fn give_up(error: E) -> Self {
        Self {
            error,
            verdict: Verdict::GiveUp,
        }
    }

    /// Retry no sooner than `after` when the server said so, else after the backoff.
    pub fn retry_after(error: E, after: Option<Duration>) -> Self {
        Self {
            error,
            verdict: after.map_or(Verdict::Retry, Verdict::RetryAfter),
        }
    }
}

impl<E: Display> Display for Failure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<E> Classify for Failure<E> {
    fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::HTTP
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Failure(Verdict);
    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl Classify for Failure {
        fn verdict(&self) -> Verdict {
            self.0
        }
    }

    /// Fails with `verdict` `failures` times, then answers the attempt number.
    async fn run(policy: Policy, verdict: Verdict, failures: u32) -> (Result<u32, Failure>, u32) {
        let calls = AtomicU32::new(0);
        let result = policy
            .retry("test", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= failures {
                    Err(Failure(verdict))
                } else {
                    Ok(n)
                }
            })
            .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_within_the_budget() {
        let (result, calls) = run(Policy::HTTP, Verdict::Retry, 8).await;
        assert_eq!(result.unwrap(), 9);
        assert_eq!(calls, 9, "one first attempt and eight retries");
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_one_plus_retries_attempts() {
        let (result, calls) = run(Policy::HTTP, Verdict::Retry, 100).await;
        assert!(result.is_err());
        assert_eq!(calls, 1 + Policy::HTTP.retries);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_once_when_told() {
        let (result, calls) = run(Policy::HTTP, Verdict::GiveUp, 100).await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_grow_and_are_capped_with_jitter() {
        let start = tokio::time::Instant::now();
        let (_, calls) = run(Policy::HTTP, Verdict::Retry, 100).await;
        assert_eq!(calls, 9);
        let waited = start.elapsed();
        // 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 6.4 + 10 + 10 = 32.6 s before jitter; jitter adds up to
        // as much again.
        assert!(
            waited >= Duration::from_millis(32_600) && waited < Duration::from_millis(65_200),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stated_wait_is_honoured_up_to_the_limit() {
        let start = tokio::time::Instant::now();
        let (result, _) = run(Policy::HTTP, Verdict::RetryAfter(Duration::from_secs(7)), 1).await;
        assert_eq!(result.unwrap(), 2);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
            "{waited:?}"
        );

        let start = tokio::time::Instant::now();
        let (_, _) = run(
            Policy::HTTP,
            Verdict::RetryAfter(Duration::from_secs(3_600)),
            1,
        )
        .await;
        assert!(
            start.elapsed() <= Duration::from_secs(31),
            "an hour's Retry-After is capped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_waits_its_own_length_each_time_not_a_growing_backoff() {
        let start = tokio::time::Instant::now();
        let (result, calls) = run(
            Policy::HTTP,
            Verdict::Throttled(Duration::from_millis(300)),
            6,
        )
        .await;
        assert_eq!((result.unwrap(), calls), (7, 7));
        // Six waits of 300 ms, where the backoff would have waited 200 ms … 6.4 s (12.6 s).
        assert_eq!(start.elapsed(), Duration::from_millis(1_800));
        let (result, _) = run(
            Policy::HTTP,
            Verdict::Throttled(Duration::from_secs(1)),
            100,
        )
        .await;
        assert!(result.is_err(), "still at most `retries` attempts");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_backs_off_but_never_past_its_cap() {
        let start = tokio::time::Instant::now();
        let (result, calls) = run(Policy::HTTP, Verdict::Burst, 8).await;
        assert_eq!((result.unwrap(), calls), (9, 9));
        // 0.2 + 0.4 + 0.8 s before jitter, then the cap: the backoff alone would have waited
        // 32.6 s or more.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(200 + 400 + 800) + BURST_CAP * 5
                && waited <= BURST_CAP * 8,
            "{waited:?}"
        );
        let (result, calls) = run(Policy::HTTP, Verdict::Burst, 100).await;
        assert!(result.is_err(), "still at most `retries` attempts");
        assert_eq!(calls, 1 + Policy::HTTP.retries);
    }

    #[test]
    fn jitter_spreads_callers_apart() {
        // Two callers failing at the same instant do not come back at the same instant.
        let a: Vec<Duration> = Policy::HTTP.backoff().collect();
        let b: Vec<Duration> = Policy::HTTP.backoff().collect();
        assert_eq!(a.len(), 8);
        assert_ne!(a, b, "jittered sequences differ");
        for (i, wait) in a.iter().enumerate() {
            let base =
                (Duration::from_millis(200) * 2u32.pow(i as u32)).min(Duration::from_secs(10));
            assert!(
                *wait >= base && *wait < base * 2,
                "wait {i}: {wait:?} for {base:?}"
            );
        }
    }
}
