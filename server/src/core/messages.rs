//! Application data and acknowledgements (§6.4): C2S with ACK and de-duplication, C2C
//! forwarding with the pseudo-ACK in the receiver's name, and ACKs of server → client packets.

use hongyan_shared::{Fingerprint, Instant, Packet, SeqTag, UserId};
use hongyan_store::Put;

use super::backlog::PutTicket;
use super::keep::Route;
use super::s2c::Origin;
use super::state::{Core, Flow};
use crate::config::{MAX_FINGERPRINT_BYTES, MAX_USER_ID_BYTES};
use crate::log_text::Untrusted;
use crate::metrics::{Direction, Refusal};
use crate::pipe::Pipe;
use crate::session::{Outbound, PushError, Session, SessionHandle};

/// What became of a C2C message its receiver could not take at once.
enum Kept {
    /// Stored (by the message store or the application): its sender is acknowledged.
    /// `notify`: the receiver is offline and the message new, so the offline hook is told
    /// (for a push notification) once the acknowledgement is written. `tag`: its place in
    /// the conversation's history, if it has one now.
    Yes { notify: bool, tag: Option<SeqTag> },
    /// Not kept: no acknowledgement, so a QoS sender retransmits and finally reports it lost.
    No,
}

impl Core {
    pub(super) async fn data<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        mut packet: Packet,
        user: UserId,
        now: Instant,
    ) -> Flow {
        // Hardening: the sender is who the session logged in as, never what the packet claims,
        // and a message's place in history is the server's to say (§9.4).
        packet.from = Some(user.clone());
        packet.seq = None;
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
        let receiver = packet.to.clone().unwrap_or_default();
        let body = self.encode_vec(&mut packet);
        let Some(fp) = packet.qos_fingerprint().cloned() else {
            // Without QoS: fire and forget, as in the reference (never stored by hongyan).
            let pushed = match self.session_of(&receiver) {
                Some(online) => {
                    self.deliver_kept(&packet, user, &receiver, now, |tag| {
                        self.forward(&online, &receiver, None, body, tag, now)
                    })
                    .0
                }
                None => Err(PushError::Offline),
            };
            if pushed.is_ok() {
                self.hooks.on_c2c_delivered(&packet);
            } else {
                self.keep_for_offline_receiver(&packet, None).await;
            }
            return Flow::Continue;
        };
        let put = match self.route(&receiver) {
            Route::Live(online) => {
                let (forwarded, tag) = self.deliver_kept(&packet, user, &receiver, now, |tag| {
                    self.forward(&online, &receiver, Some(&fp), body, tag, now)
                });
                match forwarded {
                    Ok(()) => {
                        self.hooks.on_c2c_delivered(&packet);
                        let ack = self.pseudo_ack(session, &receiver, user, &fp, tag);
                        return self.reply(session, pipe, ack).await;
                    }
                    Err(e) => {
                        tracing::debug!(to = %Untrusted(receiver.as_str()), error = %e, "c2c real-time send failed");
                        self.store_instead(&receiver, &e)
                            .map(|ticket| (ticket, true))
                    }
                }
            }
            Route::Store { ticket, online } => Some((ticket, online)),
            Route::Offline => None,
        };
        let Kept::Yes { notify, tag } = self.keep_for_offline_receiver(&packet, put).await else {
            // Not kept: no ACK, so the sender retries and finally reports it lost.
            return Flow::Continue;
        };
        let ack = self.pseudo_ack(session, &receiver, user, &fp, tag);
        let flow = self.reply(session, pipe, ack).await;
        if notify && flow == Flow::Continue {
            // The sender hears first; the application's notification may take a while.
            if pipe.flush().await.is_err() {
                return Flow::Close;
            }
            self.hooks.on_offline(&packet).await;
        }
        flow
    }

    /// The acknowledgement `sender` gets in `receiver`'s name for its message `fp` (§6.4):
    /// with the message's place in history for a session that syncs (§9.4).
    fn pseudo_ack(
        &self,
        session: &Session,
        receiver: &UserId,
        sender: &UserId,
        fp: &Fingerprint,
        tag: Option<SeqTag>,
    ) -> Packet {
        let mut ack = Packet::ack(receiver.as_str(), sender.as_str(), fp, false);
        if session.handle.is_synced() {
            ack.seq = tag;
        }
        ack
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
        tag: Option<SeqTag>,
        now: Instant,
    ) -> Result<(), PushError> {
        let body = self.hold(body)?;
        match fp {
            Some(fp) => self.push_qos(online, receiver, fp, body, None, now, Origin::Live, tag),
            None => {
                let body = self.tagged_for(online, body, tag)?;
                self.push(online, Outbound::packet(body))
            }
        }
    }

    /// The receiver of a C2C message is not online, or its session cannot take the message
    /// (its queue is full, the message is too large for it, or the server holds as much as it
    /// may for it: [`PushError`]), or stored messages are replayed to it first: whether the
    /// message was kept for later, which earns its sender the pseudo-ACK. The one place a C2C
    /// message is handed over for later delivery, so also where what the bounds refuse is
    /// stored rather than held in memory. With a store (`put`: the counted put, and whether
    /// the receiver is online) it is stored and the commit awaited; an `on_offline`
    /// notification follows the acknowledgement. Without one (or without QoS) the
    /// application's `on_offline` hook decides, as in the reference.
    async fn keep_for_offline_receiver(
        &self,
        packet: &Packet,
        put: Option<(PutTicket<'_>, bool)>,
    ) -> Kept {
        let (Some((ticket, online)), Some(fp)) = (put, packet.qos_fingerprint()) else {
            let stored = self.hooks.on_offline(packet).await;
            self.metrics.offline(stored);
            return if stored {
                Kept::Yes {
                    notify: false,
                    tag: None,
                }
            } else {
                Kept::No
            };
        };
        let receiver = ticket.user().clone();
        let result = self
            .put(ticket, self.stored_form(packet, &receiver, fp))
            .await;
        self.metrics.offline(result.is_ok());
        let sender = packet.from.clone().unwrap_or_default();
        let now = self.clock.now();
        match result {
            Ok(Put::Stored(_)) => Kept::Yes {
                notify: !online,
                tag: self.keep_stored(packet, &sender, &receiver, true, now),
            },
            Ok(Put::AlreadyStored(_)) => Kept::Yes {
                notify: false,
                tag: self.keep_stored(packet, &sender, &receiver, false, now),
            },
            Err(_) => Kept::No,
        }
    }

    /// A type-4 from a logged-in user: it settles a server → client packet only if that packet
    /// was sent to this very user (hardening: the reference matches by fingerprint alone). A
    /// replayed stored message is then removed from the store.
    pub(super) async fn ack(&self, user: &UserId, packet: &Packet) {
        let Some(fp) = packet.data_content.as_deref() else {
            return;
        };
        let fp = Fingerprint::from(fp);
        if let Some(origin) = self.s2c.acknowledge(user, &fp) {
            self.metrics.qos_delivered();
            self.hooks.on_s2c_received(user, &fp);
            if let Origin::Stored(id) = origin {
                self.acknowledged_stored(user, id).await;
            }
        }
    }
}
