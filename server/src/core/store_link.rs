//! [`StoreLink`]: the core's message store and the bookkeeping around it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hongyan_shared::Instant;
use hongyan_store::{MessageStore, StoreError};

use super::acked::Acked;
use super::backlog::Backlogs;
use super::outage::Outage;
use crate::metrics::{Metrics, StoreOp};

/// How many expired messages one call of the sweep removes.
pub(crate) const SWEEP_BATCH: usize = 1000;

/// A core's message store, present unless the `store` setting is `off`.
pub(crate) struct StoreLink {
    pub(crate) store: Arc<dyn MessageStore>,
    /// How long a stored message is kept; `None`: until delivered or erased.
    pub(crate) expiry: Option<Duration>,
    /// Stored messages replayed to a session at once, unacknowledged.
    pub(crate) window: usize,
    /// Per-user puts in flight and replays.
    pub(crate) backlogs: Backlogs,
    /// Acknowledged messages awaiting removal.
    pub(crate) acked: Acked,
    /// Failures, for the log.
    pub(crate) outage: Outage,
    /// When the store chores next have work of their own: the next expiry sweep, a retry of
    /// removals that failed.
    pub(crate) next_sweep: Mutex<Option<Instant>>,
    pub(crate) removal_retry: Mutex<Option<Instant>>,
}

impl StoreLink {
    /// A link to `store`, first swept one interval after `now`.
    pub(crate) fn new(
        store: Arc<dyn MessageStore>,
        expiry: Option<Duration>,
        window: usize,
        now: Instant,
    ) -> Self {
        let link = Self {
            store,
            expiry,
            window: window.max(1),
            backlogs: Backlogs::default(),
            acked: Acked::default(),
            outage: Outage::default(),
            next_sweep: Mutex::new(None),
            removal_retry: Mutex::new(None),
        };
        *link.lock_sweep() = link.sweep_interval().map(|every| now + every);
        link
    }

    /// Awaits the store call `call` of kind `op`: timed in `metrics`, its failure (or a
    /// recovery) noted for the log.
    pub(crate) async fn call<T>(
        &self,
        metrics: &Metrics,
        op: StoreOp,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let result = call.await;
        if let Some(metrics) = &metrics.store {
            metrics.timed(op, started.elapsed());
        }
        match &result {
            Ok(_) => self.outage.succeeded(),
            Err(error) => self.outage.failed(op, error),
        }
        result
    }

    /// How often expired messages are swept: a quarter of their lifetime, between a second and
    /// a minute, so a message outlives its expiry by at most that.
    pub(crate) fn sweep_interval(&self) -> Option<Duration> {
        self.expiry
            .map(|expiry| (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)))
    }

    pub(crate) fn lock_sweep(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.next_sweep
            .lock()
            .expect("sweep lock is never held across a panic-prone section")
    }

    pub(crate) fn lock_retry(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.removal_retry
            .lock()
            .expect("retry lock is never held across a panic-prone section")
    }
}
