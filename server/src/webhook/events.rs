//! Event notifications: a bounded queue that session tasks push to without waiting, and one
//! background task that delivers batches to `POST {base}/events` in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::client::Caller;
use super::contract::{Envelope, Event, EventBatch};
use super::endpoint::Endpoint;
use super::metrics::DropReason;
use crate::clock::{Clock, SystemClock};
use crate::log_limit::LogLimit;

static UNDELIVERED: LogLimit = LogLimit::warn("webhook events could not be delivered");

/// Most events in one request.
const MAX_BATCH: usize = 256;

/// The sending side, held by the hooks.
pub(crate) struct EventQueue {
    tx: mpsc::Sender<Envelope>,
    next_id: AtomicU64,
    /// Events queued or being delivered; zero when everything is settled.
    pending: Arc<AtomicUsize>,
    caller: Arc<Caller>,
}

impl EventQueue {
    /// Starts the delivery task (on the current Tokio runtime). It ends once the queue is
    /// dropped and what it held is delivered or given up on.
    pub(crate) fn start(caller: Arc<Caller>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let instance = uuid::Uuid::new_v4().to_string();
        tokio::spawn(deliver(rx, caller.clone(), instance, pending.clone()));
        Self {
            tx,
            next_id: AtomicU64::new(1),
            pending,
            caller,
        }
    }

    /// Queues `event` without waiting; if the queue is full it is dropped and counted.
    pub(crate) fn push(&self, event: Event) {
        let envelope = Envelope {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: SystemClock.unix_millis(),
            event,
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(envelope).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.caller.metrics.dropped(DropReason::queue_full, 1);
            tracing::debug!("webhook event queue full; event dropped");
        }
    }

    /// Events queued or being delivered.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

async fn deliver(
    mut rx: mpsc::Receiver<Envelope>,
    caller: Arc<Caller>,
    instance: String,
    pending: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let body = EventBatch {
            instance: &instance,
            events: &batch,
        };
        match caller.post(Endpoint::events, &body).await {
            Ok(_) => caller.metrics.delivered(batch.len()),
            Err(error) => {
                if UNDELIVERED.allow() {
                    tracing::warn!(%error, dropped = batch.len(), "webhook events could not be delivered");
                }
                caller
                    .metrics
                    .dropped(DropReason::delivery_failed, batch.len());
            }
        }
        pending.fetch_sub(batch.len(), Ordering::AcqRel);
        batch.clear();
    }
}
