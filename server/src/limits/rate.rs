//! Rate limiters, all `governor`'s GCRA (a token bucket kept as one atomic "theoretical
//! arrival time"), reading the core's [`Clock`] so that tests move time instead of sleeping:
//!
//! - [`SessionRate`]: one session's messages, in the session's own state (boxed: 8 bytes in
//!   the session, the limiter allocated only once it logged in);
//! - [`SharedRate`]: one budget for the whole server (logins in total);
//! - [`AddressRate`]: one budget per address, in a `DashMap` that is **bounded**: it tracks
//!   at most [`TRACKED_ADDRESSES`] addresses, forgets those whose bucket is full again (at
//!   most once per [`SWEEP_EVERY`], on the checking path), and while it is full, an address it
//!   does not track is measured as a fresh one and not remembered (the server-wide limit still
//!   applies to it), so a flood of forged addresses costs a bounded table, not memory without
//!   end.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use hongyan_shared::Instant;

use super::address::AddressKey;
use crate::clock::Clock;

/// Most addresses one [`AddressRate`] tracks: about 40 bytes each, so under 3 MB.
pub(crate) const TRACKED_ADDRESSES: usize = 65_536;
/// How often, at most, a per-address table forgets addresses whose budget is full again.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A sustained rate and the burst allowed above it, as the settings give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Per second; 0: no limit.
    pub(crate) per_sec: u32,
    /// Taken at once, after a quiet spell; at least 1.
    pub(crate) burst: u32,
}

impl Rate {
    /// The governor quota, `None` for no limit.
    fn quota(self) -> Option<Quota> {
        let per_sec = NonZeroU32::new(self.per_sec)?;
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Some(Quota::per_second(per_sec).allow_burst(burst))
    }
}

/// The core's clock, for governor.
#[derive(Clone)]
pub(crate) struct CoreClock(pub(crate) Arc<dyn Clock>);

impl GovernorClock for CoreClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.now()
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, CoreClock, NoOpMiddleware<Instant>>;

/// One session's message budget, and its read pause.
pub(crate) struct SessionRate(Box<SessionBudget>);

struct SessionBudget {
    limiter: Direct,
    /// Set when a message went over the budget: until then the session's loop reads nothing
    /// more from it, so a client that floods waits in its own socket buffer (a UDP
    /// pseudo-session's datagrams are dropped) instead of costing the server a decode and a
    /// refusal per message.
    pause: Option<Instant>,
}

impl SessionRate {
    pub(crate) fn new(rate: Rate, clock: &CoreClock) -> Option<Self> {
        let quota = rate.quota()?;
        Some(Self(Box::new(SessionBudget {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            pause: None,
        })))
    }

    /// Takes one message from the budget; if it is spent, when the next one may come.
    pub(crate) fn check(&self) -> Result<(), Instant> {
        self.0
            .limiter
            .check()
            .map_err(|not_until| not_until.earliest_possible())
    }

    /// Until when the session's loop should not read: set by [`pause_until`](Self::pause_until).
    pub(crate) fn pause(&self) -> Option<Instant> {
        self.0.pause
    }

    /// Pauses reading until `until`; `None` ends the pause.
    pub(crate) fn pause_until(&mut self, until: Option<Instant>) {
        self.0.pause = until;
    }
}

impl std::fmt::Debug for SessionRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionRate")
    }
}

/// One budget for the whole server.
pub(crate) struct SharedRate(Direct);

impl SharedRate {
    pub(crate) fn new(rate: Rate, clock: &CoreClock) -> Option<Self> {
        Some(Self(RateLimiter::direct_with_clock(
            rate.quota()?,
            clock.clone(),
        )))
    }

    /// Takes one from the budget; false if it is spent.
    pub(crate) fn check(&self) -> bool {
        self.0.check().is_ok()
    }
}

/// A `DashMap` of budgets that holds at most `capacity` addresses (see the module
/// documentation).
struct BoundedStore {
    map: DashMapStateStore<AddressKey>,
    capacity: usize,
}

impl StateStore for BoundedStore {
    type Key = AddressKey;

    fn measure_and_replace<T, F, E>(&self, key: &AddressKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if self.map.len() >= self.capacity && !self.map.contains_key(key) {
            // Full: measured as a fresh address, not remembered.
            return f(None).map(|(decision, _)| decision);
        }
        self.map.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<AddressKey> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.map);
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A budget per address, bounded in memory (see the module documentation).
pub(crate) struct AddressRate {
    limiter: RateLimiter<AddressKey, BoundedStore, CoreClock, NoOpMiddleware<Instant>>,
    clock: CoreClock,
    created: Instant,
    /// Milliseconds from `created` to the last sweep.
    swept: AtomicU64,
}

impl AddressRate {
    pub(crate) fn new(rate: Rate, clock: &CoreClock) -> Option<Self> {
        Self::with_capacity(rate, clock, TRACKED_ADDRESSES)
    }

    fn with_capacity(rate: Rate, clock: &CoreClock, capacity: usize) -> Option<Self> {
        let store = BoundedStore {
            map: DashMapStateStore::default(),
            capacity,
        };
        Some(Self {
            limiter: RateLimiter::new(rate.quota()?, store, clock.clone()),
            clock: clock.clone(),
            created: clock.0.now(),
            swept: AtomicU64::new(0),
        })
    }

    /// Takes one from `key`'s budget; false if it is spent.
    pub(crate) fn check(&self, key: AddressKey) -> bool {
        self.sweep();
        self.limiter.check_key(&key).is_ok()
    }

    /// Forgets the addresses whose budget is full again, once per [`SWEEP_EVERY`] at most.
    fn sweep(&self) {
        let elapsed = self.clock.0.now().saturating_duration_since(self.created);
        let now = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let last = self.swept.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= SWEEP_EVERY.as_millis() as u64;
        if due
            && self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && !self.limiter.is_empty()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    /// Addresses tracked now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn clock() -> (Arc<ManualClock>, CoreClock) {
        let manual = Arc::new(ManualClock::new(0));
        (manual.clone(), CoreClock(manual))
    }

    #[test]
    fn a_budget_allows_its_burst_then_its_rate() {
        let (manual, clock) = clock();
        let rate = SessionRate::new(
            Rate {
                per_sec: 10,
                burst: 3,
            },
            &clock,
        )
        .unwrap();
        assert!((0..3).all(|_| rate.check().is_ok()));
        let t0 = manual.now();
        assert_eq!(rate.check(), Err(t0 + Duration::from_millis(100)));
        manual.advance(Duration::from_millis(100));
        assert!(rate.check().is_ok());
        assert!(rate.check().is_err());
        manual.advance(Duration::from_secs(1));
        assert!((0..3).all(|_| rate.check().is_ok()));
        assert!(rate.check().is_err());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let (_, clock) = clock();
        let off = Rate {
            per_sec: 0,
            burst: 10,
        };
        assert!(SessionRate::new(off, &clock).is_none());
        assert!(AddressRate::new(off, &clock).is_none());
    }

    #[test]
    fn addresses_have_budgets_of_their_own_in_a_bounded_table() {
        let (manual, clock) = clock();
        let rate = Rate {
            per_sec: 1,
            burst: 1,
        };
        let table = AddressRate::with_capacity(rate, &clock, 2).unwrap();
        let (a, b, c) = (AddressKey::V4(1), AddressKey::V4(2), AddressKey::V4(3));
        assert!(table.check(a));
        assert!(!table.check(a));
        assert!(table.check(b));
        // Full: a third address is measured as a fresh one, again and again, and not kept.
        assert!(table.check(c));
        assert!(table.check(c));
        assert_eq!(table.tracked(), 2);
        assert!(!table.check(a), "tracked addresses keep their budgets");
        // Once their budgets are full again, the next sweep forgets them.
        manual.advance(Duration::from_secs(2));
        assert!(table.check(c));
        assert_eq!(table.tracked(), 1);
        assert!(!table.check(c), "now tracked");
    }
}
