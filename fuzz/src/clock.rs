//! A clock that only moves forward, by amounts the input chooses.
//!
//! The protocol core never reads the clock: time is the `now` argument of each input. A target
//! starts every run at the same [`Instant`] and moves it by the input's steps, so a crashing
//! input replays exactly (only differences between instants matter to the core).

use std::sync::OnceLock;
use std::time::Duration;

use hongyan_shared::Instant;

/// The instant every run starts from: read once per process, so a run depends only on its
/// input.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The time of one run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    now: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock at the start of a run.
    pub fn new() -> Self {
        Self { now: epoch() }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves forward by `step`.
    pub fn advance(&mut self, step: Duration) -> Instant {
        self.now += step;
        self.now
    }

    /// Moves forward to `deadline`, or stays where it is if the deadline has passed.
    pub fn advance_to(&mut self, deadline: Instant) -> Instant {
        self.now = self.now.max(deadline);
        self.now
    }
}
