//! The server's retransmission queue for QoS packets it sends (§6.2): C2C messages it
//! forwarded and S2C messages pushed by the application.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hongyan_shared::{
    Fingerprint, Instant, Packet, Retransmit, RetransmitSchedule, SendQueue, UserId,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Core;
use crate::session::{Outbound, PushError, SessionHandle};

/// The outcome of a server → client QoS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The client acknowledged it.
    Delivered,
    /// The client did not acknowledge it after the last retransmission.
    Lost,
}

pub(crate) struct Pending {
    body: Bytes,
    waiter: Option<oneshot::Sender<Delivery>>,
}

type Key = (UserId, Fingerprint);

/// How often the queue is checked; the queue's own tick (5 s by default) decides what is due.
const POLL: Duration = Duration::from_millis(250);

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

    /// Remembers a QoS packet about to be handed to `user`'s session. Returns false if the
    /// fingerprint was already in flight to that user (a retransmission from the sender),
    /// which keeps its first entry.
    fn track(
        &self,
        user: UserId,
        fp: Fingerprint,
        body: Bytes,
        waiter: Option<oneshot::Sender<Delivery>>,
    ) -> bool {
        self.lock()
            .insert((user, fp), Pending { body, waiter }, Instant::now())
    }

    /// Forgets a packet [`track`](Self::track) just added whose push then failed.
    fn untrack(&self, user: &UserId, fp: &Fingerprint) {
        drop(self.lock().acknowledge(&(user.clone(), fp.clone())));
    }

    /// Settles `(user, fp)`; true if it was in flight.
    pub(crate) fn acknowledge(&self, user: &UserId, fp: &Fingerprint) -> bool {
        let pending = self.lock().acknowledge(&(user.clone(), fp.clone()));
        match pending {
            Some(pending) => {
                if let Some(waiter) = pending.waiter {
                    let _ = waiter.send(Delivery::Delivered);
                }
                true
            }
            None => false,
        }
    }

    /// Whether `fp` sent to `user` awaits acknowledgement.
    pub(crate) fn contains(&self, user: &UserId, fp: &Fingerprint) -> bool {
        self.lock().contains(&(user.clone(), fp.clone()))
    }

    /// Packets awaiting acknowledgement.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Runs the retransmission tick if due: resends go to the user's current online session
    /// (if any), losses are reported to the hooks and to waiters.
    fn tick(&self, core: &Core, now: Instant) {
        let mut resend: Vec<(UserId, Bytes)> = Vec::new();
        let mut lost: Vec<Pending> = Vec::new();
        self.lock().handle_timeout(now, |r| match r {
            Retransmit::Resend((user, _), pending) => {
                resend.push((user.clone(), pending.body.clone()))
            }
            Retransmit::Lost(_, pending) => lost.push(pending),
        });
        for (user, body) in resend {
            if let Some(online) = core.registry.get(&user) {
                let _ = online.push(Outbound::Packet(core.restamp(body)));
            }
        }
        if lost.is_empty() {
            return;
        }
        core.metrics.qos_lost(lost.len());
        let mut packets = Vec::with_capacity(lost.len());
        for pending in lost {
            if let Some(waiter) = pending.waiter {
                let _ = waiter.send(Delivery::Lost);
            }
            match Packet::decode(&pending.body) {
                Ok(packet) => packets.push(packet),
                Err(e) => tracing::error!(error = %e, "a packet the server encoded did not decode"),
            }
        }
        core.hooks.on_s2c_lost(&packets);
    }
}

impl Core {
    /// Hands QoS packet `fp` to `user`'s `online` session and tracks it for retransmission.
    /// Tracked before it is queued, not after: the receiver's ACK may reach another worker
    /// thread before this task goes on (seen as a needless retransmission once in ~1 million
    /// benchmark messages); a push that fails untracks it again.
    pub(crate) fn push_qos(
        &self,
        online: &SessionHandle,
        user: &UserId,
        fp: &Fingerprint,
        body: Bytes,
        waiter: Option<oneshot::Sender<Delivery>>,
    ) -> Result<(), PushError> {
        let tracked = self
            .s2c
            .track(user.clone(), fp.clone(), body.clone(), waiter);
        let pushed = online.push(Outbound::Packet(body));
        if pushed.is_err() && tracked {
            self.s2c.untrack(user, fp);
        }
        pushed
    }
}

/// Drives the retransmission tick until shutdown.
pub(crate) async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => core.s2c.tick(&core, Instant::now()),
        }
    }
}
