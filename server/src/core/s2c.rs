//! The server's retransmission queue for QoS packets it sends (§6.2): C2C messages it
//! forwarded and S2C messages pushed by the application, keyed by (user, fingerprint).

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use hongyan_shared::{Fingerprint, Instant, Retransmit, RetransmitSchedule, SendQueue, UserId};
use hongyan_store::MessageId;
use tokio::sync::oneshot;

/// The outcome of a server → client QoS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The client acknowledged it.
    Delivered,
    /// The client could not take it now (offline, or it did not acknowledge it after the last
    /// retransmission), so the server's message store keeps it: it is replayed when the
    /// user next logs in, until acknowledged. Only with a store.
    Stored,
    /// The client did not acknowledge it after the last retransmission, and it was not
    /// stored (no store, or the store refused it).
    Lost,
}

/// Where a packet in flight came from, which decides what its acknowledgement or its loss
/// means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Sent live: a forwarded C2C message or a push. Lost, it is stored (with a store).
    Live,
    /// Replayed from the message store, where it stays until acknowledged: acknowledged, it
    /// is removed; lost, it is sent again, never stored twice.
    Stored(MessageId),
}

/// A QoS packet in flight, and whoever waits for its outcome.
pub(crate) struct Pending {
    pub(super) body: Bytes,
    pub(super) waiter: Option<oneshot::Sender<Delivery>>,
    pub(super) origin: Origin,
}

type Key = (UserId, Fingerprint);

/// QoS packets the server sent and awaits acknowledgements of.
pub(crate) struct S2cQueue {
    queue: Mutex<SendQueue<Key, Pending>>,
}

impl S2cQueue {
    pub(crate) fn new(schedule: RetransmitSchedule) -> Self {
        Self {
            queue: Mutex::new(SendQueue::new(schedule)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SendQueue<Key, Pending>> {
        self.queue
            .lock()
            .expect("s2c queue lock is never held across a panic-prone section")
    }

    /// Remembers a QoS packet about to be handed to `user`'s session at `now`. Returns false
    /// if the fingerprint was already in flight to that user (a retransmission from the
    /// sender, or a stored message replayed while its live copy is in flight), which keeps
    /// its first entry; a stored message's id is then carried by that entry, so its
    /// acknowledgement removes the message from the store.
    pub(super) fn track(
        &self,
        user: UserId,
        fp: Fingerprint,
        pending: Pending,
        now: Instant,
    ) -> bool {
        let mut queue = self.lock();
        let key = (user, fp);
        if let Some(first) = queue.get_mut(&key) {
            if let Origin::Stored(_) = pending.origin {
                first.origin = pending.origin;
            }
            return false;
        }
        queue.insert(key, pending, now)
    }

    /// Forgets a packet [`track`](Self::track) just added whose push then failed.
    pub(super) fn untrack(&self, user: &UserId, fp: &Fingerprint) {
        drop(self.lock().acknowledge(&(user.clone(), fp.clone())));
    }

    /// Settles `(user, fp)`; where it came from if it was in flight.
    pub(crate) fn acknowledge(&self, user: &UserId, fp: &Fingerprint) -> Option<Origin> {
        let pending = self.lock().acknowledge(&(user.clone(), fp.clone()))?;
        if let Some(waiter) = pending.waiter {
            let _ = waiter.send(Delivery::Delivered);
        }
        Some(pending.origin)
    }

    /// Whether `fp` sent to `user` awaits acknowledgement.
    pub(crate) fn contains(&self, user: &UserId, fp: &Fingerprint) -> bool {
        self.lock().contains(&(user.clone(), fp.clone()))
    }

    /// Packets awaiting acknowledgement.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// When the next retransmission tick is due; `None` while nothing awaits acknowledgement.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    /// Runs the tick if it is due at `now`: returns what to send again, to whom, and what
    /// was given up on.
    pub(super) fn tick(&self, now: Instant) -> (Vec<(UserId, Bytes)>, Vec<Pending>) {
        let mut resend = Vec::new();
        let mut lost = Vec::new();
        self.lock().handle_timeout(now, |r| match r {
            Retransmit::Resend((user, _), pending) => {
                resend.push((user.clone(), pending.body.clone()));
            }
            Retransmit::Lost(_, pending) => lost.push(pending),
        });
        (resend, lost)
    }
}
