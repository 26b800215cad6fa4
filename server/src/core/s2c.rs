//! The server's retransmission queue for QoS packets it sends (§6.2): C2C messages it
//! forwarded and S2C messages pushed by the application, keyed by (user, fingerprint), and
//! bounded per receiving user and server-wide (§8.1, item 8).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use hongyan_shared::{Fingerprint, Instant, Retransmit, RetransmitSchedule, SendQueue, UserId};
use hongyan_store::MessageId;
use tokio::sync::oneshot;

use crate::metrics::Refusal;

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

/// How many QoS packets may await acknowledgement (`max_in_flight`,
/// `max_in_flight_per_user`, `max_in_flight_bytes_per_user`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlightLimits {
    pub(crate) total: usize,
    pub(crate) per_user: usize,
    pub(crate) bytes_per_user: usize,
}

type Key = (UserId, Fingerprint);

/// What one user's packets in flight cost.
#[derive(Debug)]
struct Usage {
    packets: usize,
    bytes: usize,
}

struct Inner {
    queue: SendQueue<Key, Pending>,
    users: HashMap<UserId, Usage>,
}

impl Inner {
    fn remove(&mut self, key: &Key) -> Option<Pending> {
        let pending = self.queue.acknowledge(key)?;
        release(&mut self.users, &key.0, &pending);
        Some(pending)
    }
}

/// Gives back what `pending`, a packet for `user`, took.
fn release(users: &mut HashMap<UserId, Usage>, user: &UserId, pending: &Pending) {
    if let Some(usage) = users.get_mut(user) {
        usage.packets -= 1;
        usage.bytes -= pending.body.len();
        if usage.packets == 0 {
            users.remove(user);
        }
    }
}

/// QoS packets the server sent and awaits acknowledgements of.
pub(crate) struct S2cQueue {
    inner: Mutex<Inner>,
    limits: InFlightLimits,
}

impl S2cQueue {
    pub(crate) fn new(schedule: RetransmitSchedule, limits: InFlightLimits) -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: SendQueue::new(schedule),
                users: HashMap::new(),
            }),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("s2c queue lock is never held across a panic-prone section")
    }

    /// Remembers a QoS packet about to be handed to `user`'s session at `now`. Returns
    /// `Ok(false)` if the fingerprint was already in flight to that user (a retransmission
    /// from the sender, or a stored message replayed while its copy to an older session is in
    /// flight), which keeps its first entry (a stored message's id then goes with it, so its
    /// acknowledgement removes the message from the store), and the bound it would exceed if
    /// it does not fit: then nothing was remembered.
    pub(super) fn track(
        &self,
        user: UserId,
        fp: Fingerprint,
        pending: Pending,
        now: Instant,
    ) -> Result<bool, Refusal> {
        let mut inner = self.lock();
        let key = (user, fp);
        if let Some(first) = inner.queue.get_mut(&key) {
            if let Origin::Stored(_) = pending.origin {
                first.origin = pending.origin;
            }
            return Ok(false);
        }
        if inner.queue.len() >= self.limits.total {
            return Err(Refusal::in_flight);
        }
        let bytes = pending.body.len();
        match inner.users.get_mut(&key.0) {
            Some(usage) => {
                if usage.packets >= self.limits.per_user
                    || usage.bytes + bytes > self.limits.bytes_per_user
                {
                    return Err(Refusal::user_in_flight);
                }
                usage.packets += 1;
                usage.bytes += bytes;
            }
            None if bytes > self.limits.bytes_per_user => return Err(Refusal::user_in_flight),
            None => {
                let usage = Usage { packets: 1, bytes };
                inner.users.insert(key.0.clone(), usage);
            }
        }
        Ok(inner.queue.insert(key, pending, now))
    }

    /// Forgets a packet [`track`](Self::track) just added whose push then failed.
    pub(super) fn untrack(&self, user: &UserId, fp: &Fingerprint) {
        drop(self.lock().remove(&(user.clone(), fp.clone())));
    }

    /// Settles `(user, fp)`; where it came from if it was in flight.
    pub(crate) fn acknowledge(&self, user: &UserId, fp: &Fingerprint) -> Option<Origin> {
        let pending = self.lock().remove(&(user.clone(), fp.clone()))?;
        if let Some(waiter) = pending.waiter {
            let _ = waiter.send(Delivery::Delivered);
        }
        Some(pending.origin)
    }

    /// Whether `fp` sent to `user` awaits acknowledgement.
    pub(crate) fn contains(&self, user: &UserId, fp: &Fingerprint) -> bool {
        self.lock().queue.contains(&(user.clone(), fp.clone()))
    }

    /// Packets awaiting acknowledgement.
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Packets and bytes awaiting `user`'s acknowledgement.
    #[cfg(test)]
    pub(crate) fn usage_of(&self, user: &UserId) -> (usize, usize) {
        self.lock()
            .users
            .get(user)
            .map_or((0, 0), |usage| (usage.packets, usage.bytes))
    }

    /// When the next retransmission tick is due; `None` while nothing awaits acknowledgement.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.lock().queue.poll_timeout()
    }

    /// Runs the tick if it is due at `now`: returns what to send again, to whom, and what
    /// was given up on.
    pub(super) fn tick(&self, now: Instant) -> (Vec<(UserId, Bytes)>, Vec<Pending>) {
        let mut resend = Vec::new();
        let mut lost = Vec::new();
        let mut inner = self.lock();
        let Inner { queue, users } = &mut *inner;
        queue.handle_timeout(now, |r| match r {
            Retransmit::Resend((user, _), pending) => {
                resend.push((user.clone(), pending.body.clone()));
            }
            Retransmit::Lost((user, _), pending) => {
                release(users, &user, &pending);
                lost.push(pending);
            }
        });
        (resend, lost)
    }
}
