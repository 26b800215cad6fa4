//! The one clock the server's protocol rules read: passed into [`Core::new`](crate::engine::Core::new),
//! so a test moves time instead of sleeping through it.
//!
//! Two readings, because the protocol needs both: a monotonic [`Instant`] for every deadline
//! (retransmission, idle expiry, the de-duplication window, a stalled outbox) and wall time for
//! what a client sees (`firstLoginTime`, `sm`) and what an operator sees (the login time of an
//! online user).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hongyan_shared::Instant;

/// Where the server's protocol rules get the time from.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for deadlines.
    fn now(&self) -> Instant;

    /// Wall time in milliseconds since the Unix epoch, for `firstLoginTime` and `sm`.
    fn unix_millis(&self) -> i64;
}

/// The operating system's clocks: what a server runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to, for tests and simulations: both readings advance
/// together, from the wall time it was created with.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    unix_start: i64,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock whose wall time starts at `unix_millis`.
    pub fn new(unix_millis: i64) -> Self {
        Self {
            start: Instant::now(),
            unix_start: unix_millis,
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    fn elapsed(&self) -> std::sync::MutexGuard<'_, Duration> {
        self.elapsed
            .lock()
            .expect("the clock's lock is never held across a panic-prone section")
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed() += by;
    }

    /// Moves the clock forward to `to`; an instant in its past leaves it where it is, since
    /// monotonic time never goes back.
    pub fn advance_to(&self, to: Instant) {
        let mut elapsed = self.elapsed();
        *elapsed = (*elapsed).max(to.saturating_duration_since(self.start));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed()
    }

    fn unix_millis(&self) -> i64 {
        let elapsed = i64::try_from(self.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.unix_start.saturating_add(elapsed)
    }
}

/// `unix_millis` as the [`SystemTime`] it names.
pub(crate) fn system_time(unix_millis: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_millis).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_both_readings_together_and_never_back() {
        let clock = ManualClock::new(1_700_000_000_000);
        let t0 = clock.now();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - t0, Duration::from_millis(1500));
        assert_eq!(clock.unix_millis(), 1_700_000_001_500);
        clock.advance_to(t0);
        assert_eq!(clock.now() - t0, Duration::from_millis(1500));
        clock.advance_to(t0 + Duration::from_secs(10));
        assert_eq!(clock.unix_millis(), 1_700_000_010_000);
    }
}
