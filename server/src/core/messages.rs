//! Application data and acknowledgements (§6.4): C2S with ACK and de-duplication, C2C
//! forwarding with the pseudo-ACK in the receiver's name, and ACKs of server → client packets.

use std::sync::Arc;

use hongyan_shared::{Fingerprint, Instant, Packet, SeqTag, UserId};
use hongyan_store::Put;
use tokio::sync::oneshot;

use super::backlog::PutTicket;
use super::keep::Route;
use super::s2c::{Delivery, Origin};
use super::state::{Core, Flow};
use crate::cluster::Remote;
use crate::config::{MAX_FINGERPRINT_BYTES, MAX_USER_ID_BYTES};
use crate::hooks::SessionInfo;
use crate::log_text::Untrusted;
use crate::metrics::{Direction, Refusal};
use crate::pipe::Pipe;
use crate::session::{Outbound, PushError, Session, SessionHandle};

/// What became of a C2C message (§6.4), which decides what its sender hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relayed {
    /// `before_c2c` dropped it: no acknowledgement.
    Refused,
    /// Handed to the receiver's online session; with QoS, tracked for retransmission. The
    /// sender is acknowledged. `tag`: its place in the conversation's history (§9.4), if it
    /// has one now.
    Forwarded { tag: Option<SeqTag> },
    /// Kept for later, by the message store or the application: the sender is acknowledged.
    /// `notify`: the receiver is offline and the message new, so the offline hook is told
    /// (for a push notification) once the sender has heard. `tag` as for `Forwarded`.
    Kept { notify: bool, tag: Option<SeqTag> },
    /// Not kept: no acknowledgement, so a QoS sender retransmits and finally reports it lost.
    NotKept,
}

impl Relayed {
    /// The message's place in its conversation's history, if it has one now.
    pub(crate) fn tag(self) -> Option<SeqTag> {
        match self {
            Relayed::Forwarded { tag } | Relayed::Kept { tag, .. } => tag,
            Relayed::Refused | Relayed::NotKept => None,
        }
    }
}

/// The pseudo-ACK that tells the sender of `packet`, a C2C message relayed as `relayed`,
/// what became of it (§6.4): for a QoS message handed over or kept, in its receiver's name;
/// with its place in history for a sender that asked for history (`synced`, §9.4).
pub(super) fn pseudo_ack(packet: &Packet, relayed: Relayed, synced: bool) -> Option<Packet> {
    let fp = match (relayed, packet.qos_fingerprint()) {
        (Relayed::Forwarded { .. } | Relayed::Kept { .. }, Some(fp)) => fp,
        // Refused, not kept, or without QoS: nothing to acknowledge.
        _ => return None,
    };
    let mut ack = Packet::ack(packet.to_str(), packet.from_str(), fp, false);
    if synced {
        ack.seq = relayed.tag();
    }
    Some(ack)
}

impl Core {
    pub(super) async fn data<P: Pipe>(
        self: &Arc<Self>,
        session: &mut Session,
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
        } else if self.hands_off(session, &packet) {
            self.hand_off(session, packet).await;
            Flow::Continue
        } else {
            self.c2c(session, pipe, packet, now).await
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
        now: Instant,
    ) -> Flow {
        let relayed = self.relay(&mut packet, session.info(), None, now).await;
        let Some(ack) = pseudo_ack(&packet, relayed, session.handle.is_synced()) else {
            return Flow::Continue;
        };
        // Not `relayed` itself across the awaits: every connection's task would carry its tag.
        let notify = matches!(relayed, Relayed::Kept { notify: true, .. });
        let flow = self.reply(session, pipe, ack).await;
        if notify {
            self.hooks.on_stored(&packet);
        }
        flow
    }

    /// The C2C rules (§6.4) from `before_c2c` on, for `packet`, whose `from` is its sender's
    /// user id, sent from `sender` (a client's session, or the HTTP API sending in a user's
    /// name): the one path of every C2C message. The message is handed to the receiver's
    /// online session from memory, or kept for later (the message store, else the
    /// application's `on_offline`); the caller tells the sender what became of it (a
    /// pseudo-ACK, an API outcome). `waiter`, for a QoS message handed to the receiver's
    /// session, hears whether the receiver acknowledged it, or what became of it when its
    /// retransmissions ran out. With history on, a message handed over or kept is numbered
    /// in its conversation (§9.4).
    pub(crate) async fn relay(
        &self,
        packet: &mut Packet,
        sender: SessionInfo,
        waiter: Option<oneshot::Sender<Delivery>>,
        now: Instant,
    ) -> Relayed {
        if !self.hooks.before_c2c(packet, sender) {
            tracing::debug!(fp = ?packet.fp.as_ref().map(|fp| Untrusted(fp.as_str())), "c2c message dropped by before_c2c");
            return Relayed::Refused;
        }
        self.metrics.message(Direction::c2c);
        let receiver = packet.to.clone().unwrap_or_default();
        let body = self.encode_vec(packet);
        let Some(fp) = packet.qos_fingerprint().cloned() else {
            // Without QoS: fire and forget, as in the reference (never stored by hongyan).
            let pushed = match self.session_of(&receiver) {
                Some(online) => {
                    let sender = packet.from.clone().unwrap_or_default();
                    self.deliver_kept(packet, &sender, &receiver, now, |tag| {
                        self.forward(&online, &receiver, None, body, tag, now)
                    })
                }
                None => {
                    let remote = self.clustered()
                        && self.cluster.deliver(&receiver, body.into()).await == Remote::Forwarded;
                    if remote {
                        // The sender's node keeps the history of what it sent elsewhere.
                        let sender = packet.from.clone().unwrap_or_default();
                        (
                            Ok(()),
                            self.keep_stored(packet, &sender, &receiver, true, now),
                        )
                    } else {
                        (Err(PushError::Offline), None)
                    }
                }
            };
            if let (Ok(()), tag) = pushed {
                self.hooks.on_c2c_delivered(packet);
                return Relayed::Forwarded { tag };
            }
            return self.keep_for_offline_receiver(packet, None).await;
        };
        if self.clustered() && self.registry.get(&receiver).is_none() {
            // Not here: the node that holds the receiver runs the QoS with its client and
            // answers with the outcome; nobody holds them → stored here, as on one node.
            // The history of a message handed to another node is kept here, by the sender's
            // node, once (the receiver's node keeps none).
            let sender = packet.from.clone().unwrap_or_default();
            match self.cluster.deliver(&receiver, body.clone().into()).await {
                Remote::NotHere => {}
                Remote::Forwarded | Remote::Delivered => {
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(Delivery::Delivered);
                    }
                    self.hooks.on_c2c_delivered(packet);
                    let now = self.clock.now();
                    return Relayed::Forwarded {
                        tag: self.keep_stored(packet, &sender, &receiver, true, now),
                    };
                }
                Remote::Stored => {
                    let now = self.clock.now();
                    return Relayed::Kept {
                        notify: false,
                        tag: self.keep_stored(packet, &sender, &receiver, true, now),
                    };
                }
                Remote::Lost => return Relayed::NotKept,
            }
        }
        let put = match self.route(&receiver) {
            Route::Live(online) => {
                let sender = packet.from.clone().unwrap_or_default();
                let (forwarded, tag) = self.deliver_kept(packet, &sender, &receiver, now, |tag| {
                    self.forward(&online, &receiver, Some((&fp, waiter)), body, tag, now)
                });
                match forwarded {
                    Ok(()) => {
                        self.hooks.on_c2c_delivered(packet);
                        return Relayed::Forwarded { tag };
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
        self.keep_for_offline_receiver(packet, put).await
    }

    /// Hands an encoded C2C message to its receiver's online session: counted against
    /// `max_queued_bytes`, and a QoS one tracked for retransmission within the bounds of the
    /// retransmission queue. An error means the receiver cannot take it now (queue full,
    /// too large, a bound reached), and the message goes to
    /// [`keep_for_offline_receiver`](Self::keep_for_offline_receiver).
    pub(super) fn forward(
        &self,
        online: &SessionHandle,
        receiver: &UserId,
        qos: Option<(&Fingerprint, Option<oneshot::Sender<Delivery>>)>,
        body: Vec<u8>,
        tag: Option<SeqTag>,
        now: Instant,
    ) -> Result<(), PushError> {
        let body = self.hold(body)?;
        match qos {
            Some((fp, waiter)) => {
                self.push_qos(online, receiver, fp, body, waiter, now, Origin::Live, tag)
            }
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
    /// the receiver is online) it is stored and the commit awaited; an `on_stored`
    /// notification follows the acknowledgement. Without one (or without QoS) the
    /// application's `on_offline` hook decides, as in the reference.
    async fn keep_for_offline_receiver(
        &self,
        packet: &Packet,
        put: Option<(PutTicket<'_>, bool)>,
    ) -> Relayed {
        let (Some((ticket, online)), Some(fp)) = (put, packet.qos_fingerprint()) else {
            let stored = self.hooks.on_offline(packet).await;
            self.metrics.offline(stored);
            return if stored {
                Relayed::Kept {
                    notify: false,
                    tag: None,
                }
            } else {
                Relayed::NotKept
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
            Ok(Put::Stored(_)) => Relayed::Kept {
                notify: !online,
                tag: self.keep_stored(packet, &sender, &receiver, true, now),
            },
            Ok(Put::AlreadyStored(_)) => Relayed::Kept {
                notify: false,
                tag: self.keep_stored(packet, &sender, &receiver, false, now),
            },
            Err(_) => Relayed::NotKept,
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
