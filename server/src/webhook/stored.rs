//! Notifications of stored messages: with a message store, a message for an offline receiver
//! is stored and its sender acknowledged first, and `POST {base}/offline` only tells the
//! backend (for a push notification, say). The sender's path queues the notification without
//! waiting; one task makes the calls, at most the webhook's `concurrency` at once, so a slow
//! backend delays notifications, never a sender's session.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc};

use super::client::Caller;
use super::contract::Message;
use super::endpoint::Endpoint;
use super::metrics::DropReason;
use crate::log_limit::LogLimit;
use crate::log_text::Untrusted;

static UNDELIVERED: LogLimit = LogLimit::warn("offline notification could not be delivered");

/// The sending side, held by the hooks.
pub(crate) struct StoredQueue {
    tx: mpsc::Sender<Message>,
    /// Notifications queued or being delivered; zero when everything is settled.
    pending: Arc<AtomicUsize>,
    caller: Arc<Caller>,
}

impl StoredQueue {
    /// Starts the delivery task (on the current Tokio runtime), for at most `capacity`
    /// waiting notifications and `concurrency` calls at once. It ends once the queue is
    /// dropped and what it held is delivered or given up on.
    pub(crate) fn start(caller: Arc<Caller>, capacity: usize, concurrency: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(deliver(
            rx,
            caller.clone(),
            Arc::new(Semaphore::new(concurrency.max(1))),
            pending.clone(),
        ));
        Self {
            tx,
            pending,
            caller,
        }
    }

    /// Queues `message` without waiting; if the queue is full it is dropped and counted (the
    /// message itself is stored: only its notification is lost).
    pub(crate) fn push(&self, message: Message) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(message).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.caller.metrics.dropped(DropReason::queue_full, 1);
            tracing::debug!("offline notification queue full; notification dropped");
        }
    }

    /// Notifications queued or being delivered.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

async fn deliver(
    mut rx: mpsc::Receiver<Message>,
    caller: Arc<Caller>,
    slots: Arc<Semaphore>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(message) = rx.recv().await {
        // Waiting here backs the queue up, so what waits is bounded by its capacity.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let caller = caller.clone();
        let pending = pending.clone();
        tokio::spawn(async move {
            if let Err(error) = caller.post(Endpoint::offline, &message).await {
                if UNDELIVERED.allow() {
                    tracing::warn!(from = %Untrusted(&message.from), to = %Untrusted(&message.to),
                        %error, "offline notification could not be delivered (the message is stored)");
                }
                caller.metrics.dropped(DropReason::delivery_failed, 1);
            }
            pending.fetch_sub(1, Ordering::AcqRel);
            drop(slot);
        });
    }
}
