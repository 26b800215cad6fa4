//! Sending QoS packets to clients and retransmitting them (§6.2): a push is tracked before it
//! is queued, the tick resends to the user's current session, and packets out of retries are
//! given up on in one place.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use hongyan_shared::{Fingerprint, Instant, Packet, UserId};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::s2c::{Delivery, Origin, Pending};
use super::state::Core;
use crate::log_limit;
use crate::session::{Outbound, PushError, SessionHandle};

/// How often the queue is checked; the queue's own tick (5 s by default) decides what is due.
const POLL: Duration = Duration::from_millis(250);

impl Core {
    /// Hands QoS packet `fp` to `user`'s `online` session and tracks it for retransmission.
    /// Tracked before it is queued, not after: the receiver's ACK may reach another worker
    /// thread before this task goes on (seen as a needless retransmission once in ~1 million
    /// benchmark messages); a push that fails untracks it again. A packet that would exceed
    /// the bounds of the retransmission queue is refused with [`PushError::Overloaded`]
    /// (counted by reason) and not queued: the one place that bound refuses. A packet already
    /// in flight to the user keeps its entry (and its retransmission schedule) and is sent
    /// again, to the user's current session: a sender's retransmission, or a stored message
    /// replayed to a new session while its copy to the old one awaits acknowledgement (the
    /// entry then carries the stored id, so the acknowledgement removes it from the store).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_qos(
        &self,
        online: &SessionHandle,
        user: &UserId,
        fp: &Fingerprint,
        body: Bytes,
        waiter: Option<oneshot::Sender<Delivery>>,
        now: Instant,
        origin: Origin,
    ) -> Result<(), PushError> {
        let pending = Pending {
            body: body.clone(),
            waiter,
            origin,
        };
        let tracked = self
            .s2c
            .track(user.clone(), fp.clone(), pending, now)
            .map_err(|reason| {
                self.metrics.refused(reason);
                PushError::Overloaded
            })?;
        let pushed = self.push(online, Outbound::packet(body));
        if pushed.is_err() && tracked {
            self.s2c.untrack(user, fp);
        }
        pushed
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: the retransmission
    /// queue's next tick or the C2S de-duplication window's next sweep, whichever is first;
    /// `None` while no QoS packet awaits acknowledgement and the window is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sweep = self.poll_c2s_sweep();
        match (self.s2c.poll_timeout(), sweep) {
            (Some(tick), Some(sweep)) => Some(tick.min(sweep)),
            (tick, sweep) => tick.or(sweep),
        }
    }

    /// Runs what is due at `now`: the retransmission tick (§6.2), where packets not yet
    /// acknowledged are sent again to their user's *current* online session, if any, and
    /// those out of retries are given up on; and the sweep of the C2S de-duplication window
    /// (§6.3), so expired fingerprints are forgotten even when no C2S message comes.
    pub async fn handle_timeout(&self, now: Instant) {
        self.sweep_c2s(now);
        let (resend, lost) = self.s2c.tick(now);
        for (user, body) in resend {
            if let Some(online) = self.session_of(&user)
                && let Some(body) = self.restamp(body)
            {
                let _ = self.push(&online, Outbound::packet(body));
            }
        }
        if !lost.is_empty() {
            self.give_up(lost).await;
        }
    }

    /// Server → client QoS packets whose retries ran out: the one place they are given up
    /// on. With a store, a live one is stored instead (its waiting API caller hears
    /// [`Delivery::Stored`]) and a replayed one, still stored, is replayed again; what could
    /// not be stored is reported lost (to waiting API callers and the `on_s2c_lost` hook).
    async fn give_up(&self, lost: Vec<Pending>) {
        let mut live = Vec::with_capacity(lost.len());
        for pending in lost {
            let packet = match Packet::decode(&pending.body) {
                Ok(packet) => packet,
                Err(e) => {
                    tracing::error!(error = %e, "a packet the server encoded did not decode");
                    continue;
                }
            };
            match (pending.origin, &packet.to) {
                (Origin::Stored(id), Some(user)) => self.replayed_unacknowledged(user, id).await,
                _ => live.push((packet, pending.waiter)),
            }
        }
        let stored = join_all(live.iter().map(|(packet, _)| self.keep_given_up(packet))).await;
        let mut packets = Vec::new();
        for ((packet, waiter), stored) in live.into_iter().zip(stored) {
            if let Some(waiter) = waiter {
                let _ = waiter.send(if stored {
                    Delivery::Stored
                } else {
                    Delivery::Lost
                });
            }
            if !stored {
                packets.push(packet);
            }
        }
        if !packets.is_empty() {
            self.metrics.qos_lost(packets.len());
            self.hooks.on_s2c_lost(&packets);
        }
    }
}

/// Drives the retransmission tick and the de-duplication sweep until shutdown. The queue's
/// own tick (5 s by default) decides what is due; this only looks often enough to honour it,
/// and logs the summaries of rate-limited log lines on the way.
pub(crate) async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {
                core.handle_timeout(core.clock.now()).await;
                log_limit::flush();
            }
        }
    }
}
