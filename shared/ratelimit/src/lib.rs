//! A client-side rate governor: never send more than the configured number of requests in any
//! rolling window (and no more than the search limit per second), so an API's limits are kept
//! rather than discovered through 429s. Used by the HubSpot adapter (100 or 190 per 10 s, search
//! 5 per second) and the enrichment provider (PDL: 10 or 1,000 per minute).
//!
//! It counts requests in a sliding window (exact, unlike a token bucket that allows bursts
//! across window edges), each from its send until a window after its answer — so no delay on
//! the way can push a request into the server's window beside another — and pauses everyone when
//! the server says its window is spent (`X-HubSpot-RateLimit-Remaining: 0`). Shared by all
//! requests of a client, so concurrent callers are governed together.
//!
//! Searches go first. Their limit is per second, so a second they miss is lost, and everything
//! else waits on what they find. While searches run, other requests leave them their share of
//! every window, and a place that frees goes to a search waiting for it.
//!
//! Time is tokio's (`tokio::time::Instant`, `tokio::time::sleep`): under a paused test clock
//! the governor keeps the same limits in no wall time, and a test can prove it does.

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

/// Extra time each window is held for past a request's answer. A request is counted from
/// when it is sent until its answer's headers arrive, and its place in the window is held for
/// the window's length *from the answer* — the server counted it on arrival, which came
/// before — so however long a request is delayed on its way (a new connection, a busy host,
/// a task scheduled late), it cannot land in the server's window beside the one it made room
/// for. The margin only covers clock granularity.
const MARGIN: Duration = Duration::from_millis(10);
/// How long past its window an answered place is remembered: the server's `Remaining` in an
/// answer describes its window when the request *arrived*, and by the time the answer is read
/// the governor may have let places of that window go.
const HISTORY: Duration = Duration::from_secs(5);
/// Searches count as running while one was let go this recently (or one is waiting).
const SEARCHING: Duration = Duration::from_secs(1);
/// How often a caller looks again when every place in a window is held by a request still in
/// flight (its end is not known yet).
const IN_FLIGHT_POLL: Duration = Duration::from_millis(5);

/// One request's place in a window: in flight (`None`) or answered at that time.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: u64,
    answered: Option<Instant>,
    search: bool,
}

#[derive(Debug, Default)]
struct Sent {
    all: Vec<Slot>,
    search: Vec<Slot>,
    next_id: u64,
    paused_until: Option<Instant>,
    /// Searches waiting for a place ([`SearchWaiting`]).
    searches_waiting: u32,
    /// When the last search was let go.
    last_search: Option<Instant>,
}

impl Sent {
    /// Drop the places whose window (and [`HISTORY`]) has passed; `None` if fewer than `limit`
    /// are held, else how long until the first frees (a short poll if all are still in
    /// flight).
    fn full(slots: &mut Vec<Slot>, limit: u32, window: Duration, now: Instant) -> Option<Duration> {
        let (held, free_in) = Self::held(slots, window, now);
        (held >= limit.max(1)).then_some(free_in)
    }

    /// Drop the places whose window (and [`HISTORY`]) has passed; the places held now, and how
    /// long until the first of them frees (a short poll if all are still in flight).
    fn held(slots: &mut Vec<Slot>, window: Duration, now: Instant) -> (u32, Duration) {
        Self::held_where(slots, window, now, |_| true)
    }

    /// [`Sent::held`] counting only the places `keep` says.
    fn held_where(
        slots: &mut Vec<Slot>,
        window: Duration,
        now: Instant,
        keep: impl Fn(&Slot) -> bool,
    ) -> (u32, Duration) {
        Self::forget(slots, window, now);
        let held = slots
            .iter()
            .filter(|s| keep(s) && s.answered.is_none_or(|at| now.duration_since(at) < window));
        let free_in = held
            .clone()
            .filter_map(|s| s.answered)
            .map(|at| window.saturating_sub(now.duration_since(at)))
            .min()
            .unwrap_or(IN_FLIGHT_POLL)
            .max(Duration::from_millis(1));
        (held.count() as u32, free_in)
    }

    /// Drop the places answered longer than a window and [`HISTORY`] ago.
    fn forget(slots: &mut Vec<Slot>, window: Duration, now: Instant) {
        slots.retain(|s| {
            s.answered
                .is_none_or(|at| now.duration_since(at) < window + HISTORY)
        });
    }

    /// Places this governor held in the server's window as it was when a request sent at
    /// `sent_at` arrived: in flight, or answered less than a window before that send.
    fn held_at(slots: &[Slot], window: Duration, sent_at: Instant) -> u32 {
        slots
            .iter()
            .filter(|s| s.answered.is_none_or(|at| at + window > sent_at))
            .count() as u32
    }

    fn answer(&mut self, id: u64, at: Instant) {
        for slots in [&mut self.all, &mut self.search] {
            if let Some(slot) = slots.iter_mut().find(|s| s.id == id) {
                slot.answered = Some(at);
            }
        }
    }
}

/// A search counted as waiting for a place while it lives: other requests leave it the places
/// it may take ([`RateGovernor::try_acquire`]). Dropped when the search gets its permit or its
/// caller gives up.
struct SearchWaiting<'a>(&'a RateGovernor);

impl<'a> SearchWaiting<'a> {
    fn new(governor: &'a RateGovernor) -> Self {
        governor.lock().searches_waiting += 1;
        Self(governor)
    }
}

impl Drop for SearchWaiting<'_> {
    fn drop(&mut self) {
        let mut sent = self.0.lock();
        sent.searches_waiting = sent.searches_waiting.saturating_sub(1);
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct RateGovernor {
    limits: RateLimits,
    sent: Mutex<Sent>,
}

/// A request's place in the governor's windows, held from its send until its answer arrives:
/// drop it (or call [`Permit::answered`]) when the answer's headers are in.
#[derive(Debug)]
#[must_use = "a permit counts its request until it is dropped"]
pub struct Permit<'a> {
    governor: &'a RateGovernor,
    id: u64,
    sent_at: Instant,
    answered: bool,
}

impl Permit<'_> {
    /// When the request was let go.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }

    /// The answer arrived at `at`: the request's places are held a window's length from then.
    pub fn answered(mut self, at: Instant) {
        self.mark(at);
    }

    fn mark(&mut self, at: Instant) {
        if !self.answered {
            self.answered = true;
            self.governor.lock().answer(self.id, at);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.mark(Instant::now());
    }
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

    /// The places of a window left to searches while they run: what their per-second limit
    /// can use of it, at most half the window (none without a limit of their own).
    fn search_reserve(&self) -> u32 {
        let RateLimits {
            per_window,
            window,
            search_per_second,
        } = self.limits;
        if search_per_second >= per_window {
            return 0;
        }
        let share = (f64::from(search_per_second) * window.as_secs_f64()).floor() as u32;
        share.min(per_window / 2)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wait until a request may be sent, and count it as sent until the permit is dropped.
    pub async fn acquire(&self, is_search: bool) -> Permit<'_> {
        let mut waiting = None;
        loop {
            match self.try_acquire(is_search, Instant::now()) {
                Ok(permit) => return permit,
                Err(wait) => {
                    if is_search && waiting.is_none() {
                        waiting = Some(SearchWaiting::new(self));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// A permit when the request may go now; otherwise how long to wait.
    fn try_acquire(&self, is_search: bool, now: Instant) -> Result<Permit<'_>, Duration> {
        let mut sent = self.lock();
        if let Some(until) = sent.paused_until {
            if until > now {
                return Err(until - now);
            }
            sent.paused_until = None;
        }
        let window = self.limits.window + MARGIN;
        let second = Duration::from_secs(1) + MARGIN;
        let (held, free_in) = Sent::held(&mut sent.all, window, now);
        if held >= self.limits.per_window.max(1) {
            return Err(free_in);
        }
        if is_search {
            if let Some(wait) =
                Sent::full(&mut sent.search, self.limits.search_per_second, second, now)
            {
                return Err(wait);
            }
        } else if sent.searches_waiting > 0
            || sent
                .last_search
                .is_some_and(|at| now.duration_since(at) < SEARCHING)
        {
            // Searches go first: their own per-second limit makes a second they miss a
            // second lost, and everything else waits on what they find. While they run,
            // other requests leave them their share of every window…
            let reserve = self.search_reserve();
            let (others, others_free_in) =
                Sent::held_where(&mut sent.all, window, now, |s| !s.search);
            if others + reserve >= self.limits.per_window {
                return Err(others_free_in);
            }
            // …and a place a waiting search may take now.
            let (searching, _) = Sent::held(&mut sent.search, second, now);
            let room = self.limits.search_per_second.saturating_sub(searching);
            if self.limits.per_window - held <= sent.searches_waiting.min(room) {
                return Err(free_in.min(IN_FLIGHT_POLL));
            }
        }
        let id = sent.next_id;
        sent.next_id += 1;
        let slot = Slot {
            id,
            answered: None,
            search: is_search,
        };
        sent.all.push(slot);
        if is_search {
            sent.search.push(slot);
            sent.last_search = Some(now);
        }
        Ok(Permit {
            governor: self,
            id,
            sent_at: now,
            answered: false,
        })
    }

    /// Learn from HubSpot's headers: nothing remaining in its window while this governor
    /// holds fewer than the limit means someone else spends the same limit (another app of
    /// the account, another process) — pause everyone for the window's length. When this
    /// governor holds the whole window itself, it already waits for the first place to free.
    /// For an answer just read; [`RateGovernor::observe_answer`] for one whose request's send
    /// time is known.
    pub fn observe(&self, remaining: Option<u64>, interval: Option<Duration>) {
        self.observe_answer(Instant::now(), remaining, interval);
    }

    /// [`RateGovernor::observe`] for the answer to a request sent at `sent_at`
    /// ([`Permit::sent_at`]). What this governor held is counted as of that send, since the
    /// server counted as of that request's arrival: a slow answer can report a window full of
    /// this governor's own requests, some of which it has since let go.
    pub fn observe_answer(
        &self,
        sent_at: Instant,
        remaining: Option<u64>,
        interval: Option<Duration>,
    ) {
        self.observe_at(sent_at, Instant::now(), remaining, interval);
    }

    fn observe_at(
        &self,
        sent_at: Instant,
        now: Instant,
        remaining: Option<u64>,
        interval: Option<Duration>,
    ) {
        if remaining == Some(0) {
            let pause = interval
                .unwrap_or(self.limits.window)
                .min(Duration::from_secs(10));
            let mut sent = self.lock();
            let window = self.limits.window + MARGIN;
            Sent::forget(&mut sent.all, window, now);
            if Sent::held_at(&sent.all, window, sent_at) < self.limits.per_window {
                sent.paused_until = Some(now + pause);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn governor(per_window: u32, window: Duration, search_per_second: u32) -> RateGovernor {
        RateGovernor::new(RateLimits {
            per_window,
            window,
            search_per_second,
        })
    }

    #[test]
    fn never_more_than_the_limit_in_any_window() {
        let g = RateGovernor::new(RateLimits {
            per_window: 3,
            window: Duration::from_millis(100),
            search_per_second: 2,
        });
        let t0 = Instant::now();
        g.try_acquire(false, t0).unwrap().answered(t0);
        g.try_acquire(true, t0).unwrap().answered(t0);
        g.try_acquire(true, t0).unwrap().answered(t0);
        let wait = g.try_acquire(false, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100) + MARGIN);
        // Search has its own per-second limit.
        let later = t0 + Duration::from_secs(1) + MARGIN;
        g.try_acquire(true, later).unwrap().answered(later);
        g.try_acquire(true, later).unwrap().answered(later);
        assert!(
            g.try_acquire(true, later).is_err(),
            "third search within a second waits"
        );
        assert!(g.try_acquire(false, later).is_ok(), "other calls still go");
    }

    #[test]
    fn a_request_holds_its_place_until_a_window_after_its_answer() {
        let g = RateGovernor::new(RateLimits {
            per_window: 1,
            window: Duration::from_millis(100),
            search_per_second: 1,
        });
        let t0 = Instant::now();
        let slow = g.try_acquire(false, t0).unwrap();
        // Still in flight a whole window later: its place is still taken.
        let later = t0 + Duration::from_millis(500);
        assert_eq!(g.try_acquire(false, later).unwrap_err(), IN_FLIGHT_POLL);
        // Answered then: the place frees a window after the answer, not after the send.
        slow.answered(later);
        assert!(
            g.try_acquire(false, later + Duration::from_millis(50))
                .is_err()
        );
        assert!(
            g.try_acquire(false, later + Duration::from_millis(100) + MARGIN)
                .is_ok()
        );
    }

    #[test]
    fn a_waiting_search_gets_the_place_that_frees_before_other_requests() {
        let window = Duration::from_millis(100);
        let g = governor(2, window, 2);
        let t0 = Instant::now();
        g.try_acquire(false, t0).unwrap().answered(t0);
        g.try_acquire(false, t0).unwrap().answered(t0);
        let search = SearchWaiting::new(&g);
        let later = t0 + window + MARGIN;
        // Two places free, one left to the search.
        g.try_acquire(false, later).unwrap().answered(later);
        assert!(
            g.try_acquire(false, later).is_err(),
            "the last place is the waiting search's"
        );
        g.try_acquire(true, later).unwrap().answered(later);
        drop(search);
        // No search waiting: nothing is held back.
        let after = later + window + MARGIN;
        g.try_acquire(false, after).unwrap().answered(after);
        g.try_acquire(false, after).unwrap().answered(after);
        // A search that could not go now (its per-second limit spent) holds nothing back.
        let g = RateGovernor::new(RateLimits {
            per_window: 3,
            window,
            search_per_second: 1,
        });
        g.try_acquire(true, t0).unwrap().answered(t0);
        let _search = SearchWaiting::new(&g);
        assert!(g.try_acquire(true, t0).is_err());
        g.try_acquire(false, t0).unwrap().answered(t0);
        g.try_acquire(false, t0).unwrap().answered(t0);
    }

    #[test]
    fn while_searches_run_other_requests_leave_them_their_share_of_the_window() {
        let window = Duration::from_secs(1);
        let g = RateGovernor::new(RateLimits {
            per_window: 10,
            window,
            search_per_second: 2,
        });
        let t0 = Instant::now();
        // No search yet: other requests may take every place.
        for _ in 0..10 {
            g.try_acquire(false, t0).unwrap().answered(t0);
        }
        let t1 = t0 + window + MARGIN;
        g.try_acquire(true, t1).unwrap().answered(t1);
        // A search ran: the others stop at 10 - 2.
        for _ in 0..8 {
            g.try_acquire(false, t1).unwrap().answered(t1);
        }
        assert!(g.try_acquire(false, t1).is_err(), "the searches' share");
        g.try_acquire(true, t1).unwrap().answered(t1);
        // A second later no search has run: the window is everyone's again.
        let t2 = t1 + window + MARGIN + SEARCHING;
        for _ in 0..10 {
            g.try_acquire(false, t2).unwrap().answered(t2);
        }
        // Without a search limit of its own (an enrichment provider's), nothing is reserved.
        assert_eq!(
            RateGovernor::new(RateLimits::new(10, window)).search_reserve(),
            0
        );
        assert_eq!(RateGovernor::new(RateLimits::PRO).search_reserve(), 50);
        assert_eq!(RateGovernor::new(RateLimits::FREE).search_reserve(), 50);
    }

    #[test]
    fn pauses_when_the_server_says_nothing_remains() {
        let g = RateGovernor::new(RateLimits::FREE);
        g.observe(Some(0), Some(Duration::from_millis(500)));
        assert!(g.try_acquire(false, Instant::now()).is_err());
        g.observe(Some(5), None);
    }

    #[test]
    fn a_window_it_filled_itself_is_no_reason_to_pause() {
        let g = RateGovernor::new(RateLimits {
            per_window: 2,
            window: Duration::from_millis(100),
            search_per_second: 2,
        });
        let t0 = Instant::now();
        g.try_acquire(false, t0).unwrap().answered(t0);
        g.try_acquire(false, t0).unwrap().answered(t0);
        g.observe(Some(0), Some(Duration::from_secs(10)));
        // The first place frees a window after its answer, not ten seconds later.
        let later = t0 + Duration::from_millis(100) + MARGIN;
        assert!(g.try_acquire(false, later).is_ok());
    }

    #[test]
    fn a_slow_answer_about_a_window_of_its_own_requests_is_no_reason_to_pause() {
        let window = Duration::from_millis(100);
        let g = governor(2, window, 2);
        let t0 = Instant::now();
        g.try_acquire(false, t0).unwrap().answered(t0);
        // Sent 50 ms later, it arrives beside the first and fills the server's window; its
        // answer takes 200 ms, and by then the first one's place has freed here.
        let sent = t0 + Duration::from_millis(50);
        let slow = g.try_acquire(false, sent).unwrap();
        let answered = t0 + Duration::from_millis(250);
        slow.answered(answered);
        g.observe_at(sent, answered, Some(0), Some(Duration::from_secs(10)));
        assert!(
            g.try_acquire(false, answered).is_ok(),
            "both requests of that window were this governor's own"
        );
        // Someone else's: at that send this governor held one place of two.
        let g = governor(2, window, 2);
        let lone = g.try_acquire(false, sent).unwrap();
        lone.answered(answered);
        g.observe_at(sent, answered, Some(0), Some(Duration::from_secs(10)));
        assert!(g.try_acquire(false, answered).is_err(), "paused");
    }
}
