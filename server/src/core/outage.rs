//! Store failures in the log: one line when the store starts failing, one summary every
//! [`SUMMARY_EVERY`] while it keeps failing, one when it recovers — not one per message, which
//! under load would flood the log exactly when an operator needs to read it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hongyan_store::StoreError;

use crate::metrics::StoreOp;

/// How often a store that keeps failing is reported again.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Whether the store is failing, for the log. Timed with the system clock: log lines are
/// observations, not protocol rules.
#[derive(Default)]
pub(crate) struct Outage {
    /// Whether a run of failures is on: a success only takes the lock when it is.
    failing: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the current run of failures began; `None` while the store works.
    since: Option<Instant>,
    /// Failures since the last line.
    unreported: u64,
    /// Failures in this run.
    total: u64,
    /// When the last line was written.
    reported_at: Option<Instant>,
}

impl Outage {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("outage lock is never held across a panic-prone section")
    }

    /// Whether `error` says the store itself is failing, rather than refusing one message
    /// (its user's limit, its size).
    pub(crate) fn is_outage(error: &StoreError) -> bool {
        !matches!(
            error,
            StoreError::QuotaExceeded { .. }
                | StoreError::TooLarge { .. }
                | StoreError::InvalidMessage(_)
        )
    }

    /// A store call (`what`) failed with `error`.
    pub(crate) fn failed(&self, what: StoreOp, error: &StoreError) {
        if !Self::is_outage(error) {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        state.total += 1;
        match state.since {
            None => {
                self.failing.store(true, Ordering::Relaxed);
                state.since = Some(now);
                state.reported_at = Some(now);
                state.unreported = 0;
                drop(state);
                tracing::error!(%error, ?what,
                    "message store failing: messages for users who cannot take them now are \
                     not acknowledged (senders retransmit) until it recovers");
            }
            Some(since) => {
                state.unreported += 1;
                if state
                    .reported_at
                    .is_none_or(|at| now.duration_since(at) >= SUMMARY_EVERY)
                {
                    let failures = std::mem::take(&mut state.unreported);
                    state.reported_at = Some(now);
                    drop(state);
                    tracing::error!(%error, ?what, failures, failing_for = ?now.duration_since(since),
                        "message store still failing");
                }
            }
        }
    }

    /// A store call succeeded: if the store was failing, it recovered.
    pub(crate) fn succeeded(&self) {
        if !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.lock();
        self.failing.store(false, Ordering::Relaxed);
        if let Some(since) = state.since.take() {
            let failures = std::mem::take(&mut state.total);
            state.unreported = 0;
            drop(state);
            tracing::warn!(failures, outage = ?since.elapsed(), "message store recovered");
        }
    }
}
