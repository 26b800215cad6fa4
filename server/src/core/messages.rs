//! Application data and acknowledgements (§6.4): C2S with ACK and de-duplication, C2C
//! forwarding with the pseudo-ACK in the receiver's name, and ACKs of server → client packets.

use hongyan_shared::{Fingerprint, Instant, Packet, UserId};

use super::state::{Core, Flow};
use crate::config::{MAX_FINGERPRINT_BYTES, MAX_USER_ID_BYTES};
use crate::log_text::Untrusted;
use crate::metrics::{Direction, Refusal};
use crate::pipe::Pipe;
use crate::session::{Outbound, PushError, Session, SessionHandle};

impl Core {
    pub(super) async fn data<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        mut packet: Packet,
        user: UserId,
        now: Instant,
    ) -> Flow {
        // Hardening: the sender is who the session logged in as, never what the packet claims.
        packet.from = Some(user.clone());
        if packet.qos && packet.qos_fingerprint().is_none() {
            // QoS without a fingerprint cannot be acknowledged; deliver it as plain data
            // rather than emit a QoS packet the receiver would choke on (§6.3).
            tracing::debug!("QoS packet without fingerprint downgraded to QoS:false");
            packet.qos = false;
            packet.fp = None;
        }
        if let Some(fp) = packet.qos_fingerprint()
            && fp.as_str().len() > MAX_FINGERPRINT_BYTES
        {
            // Hardening: the server would remember it (retransmission queue, C2S window).
            // Refused like a message the server cannot take: no ACK, so the sender's QoS
            // reports it lost (§6.3).
            self.metrics.refused(Refusal::fingerprint_too_long);
            tracing::debug!(
                len = fp.as_str().len(),
                "QoS message with an overlong fingerprint refused"
            );
            return Flow::Continue;
        }
        if packet
            .to
            .as_ref()
            .is_some_and(|to| to.as_str().len() > MAX_USER_ID_BYTES)
        {
            // No such user can log in, so nothing may be kept for one (§4.2).
            self.metrics.refused(Refusal::user_id_too_long);
            tracing::debug!("message for an overlong user id refused");
            return Flow::Continue;
        }
        if packet.to.as_ref().is_some_and(UserId::is_server) {
            self.c2s(session, pipe, packet, &user, now).await
        } else {
            self.c2c(session, pipe, packet, &user, now).await
        }
    }

    async fn c2s<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        mut packet: Packet,
        user: &UserId,
        now: Instant,
    ) -> Flow {
        if !self.hooks.before_c2s(&mut packet, session.info()) {
            tracing::debug!(fp = ?packet.fp.as_ref().map(|fp| Untrusted(fp.as_str())), "c2s message dropped by before_c2s");
            return Flow::Continue;
        }
        let Some(fp) = packet.qos_fingerprint() else {
            self.deliver_c2s(session, &packet);
            return Flow::Continue;
        };
        // Delivered before the ACK is written: once the fingerprint is recorded, a sender whose
        // ACK was lost gets only ACKs, so the message must already be with the application.
        if self.first_c2s(user, fp, now) {
            self.deliver_c2s(session, &packet);
        } else {
            self.metrics.dedup_hit();
            tracing::debug!(fp = %Untrusted(fp.as_str()), "duplicate c2s acknowledged again, not delivered");
        }
        let ack = Packet::ack(UserId::SERVER, user.as_str(), fp, false);
        self.reply(session, pipe, ack).await
    }

    fn deliver_c2s(&self, session: &Session, packet: &Packet) {
        self.metrics.message(Direction::c2s);
        self.hooks.on_c2s(packet, session.info());
    }

    async fn c2c<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        mut packet: Packet,
        user: &UserId,
        now: Instant,
    ) -> Flow {
        if !self.hooks.before_c2c(&mut packet, session.info()) {
            tracing::debug!(fp = ?packet.fp.as_ref().map(|fp| Untrusted(fp.as_str())), "c2c message dropped by before_c2c");
            return Flow::Continue;
        }
        self.metrics.message(Direction::c2c);
        let fp = packet.qos_fingerprint().cloned();
        let receiver = packet.to.clone().unwrap_or_default();
        let body = self.encode_vec(&mut packet);
        let pushed = match self.session_of(&receiver) {
            Some(online) => self
                .forward(&online, &receiver, fp.as_ref(), body, now)
                .map_err(|e| {
                    tracing::debug!(to = %Untrusted(receiver.as_str()), error = %e, "c2c real-time send failed");
                }),
            None => Err(()),
        };
        if pushed.is_ok() {
            self.hooks.on_c2c_delivered(&packet);
        } else if !self.keep_for_offline_receiver(&packet).await {
            // Not kept: no ACK, so a QoS sender retries and finally reports it lost.
            return Flow::Continue;
        }
        match fp {
            Some(fp) => {
                let ack = Packet::ack(receiver.as_str(), user.as_str(), &fp, false);
                self.reply(session, pipe, ack).await
            }
            None => Flow::Continue,
        }
    }

    /// Hands an encoded C2C message to its receiver's online session: counted against
    /// `max_queued_bytes`, and a QoS one tracked for retransmission within the bounds of the
    /// retransmission queue. An error means the receiver cannot take it now (queue full,
    /// too large, a bound reached), and the message goes to
    /// [`keep_for_offline_receiver`](Self::keep_for_offline_receiver).
    fn forward(
        &self,
        online: &SessionHandle,
        receiver: &UserId,
        fp: Option<&Fingerprint>,
        body: Vec<u8>,
        now: Instant,
    ) -> Result<(), PushError> {
        let body = self.hold(body)?;
        match fp {
            Some(fp) => self.push_qos(online, receiver, fp, body, None, now),
            None => self.push(online, Outbound::packet(body)),
        }
    }

    /// The receiver of a C2C message is not online, or its session cannot take the message
    /// (its queue is full, the message is too large for it, or the server holds as much as it
    /// may for it: [`PushError`]): true if the message was kept for later, which earns its
    /// sender the pseudo-ACK. The one place a C2C message is handed over for later delivery
    /// (today: the application's `on_offline` hook), so also the one place where what the
    /// bounds refuse would be stored rather than held in memory.
    async fn keep_for_offline_receiver(&self, packet: &Packet) -> bool {
        let stored = self.hooks.on_offline(packet).await;
        self.metrics.offline(stored);
        stored
    }

    /// A type-4 from a logged-in user: it settles a server → client packet only if that packet
    /// was sent to this very user (hardening: the reference matches by fingerprint alone).
    pub(super) fn ack(&self, user: &UserId, packet: &Packet) {
        let Some(fp) = packet.data_content.as_deref() else {
            return;
        };
        let fp = Fingerprint::from(fp);
        if self.s2c.acknowledge(user, &fp) {
            self.metrics.qos_delivered();
            self.hooks.on_s2c_received(user, &fp);
        }
    }
}
