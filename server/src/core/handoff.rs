//! C2C messages a session hands to its lane ([`Lane`](crate::lane::Lane)) instead of relaying
//! them in its loop: in a cluster, a message whose receiver this node does not hold (another
//! node answers with its outcome, a client round trip later), and every message after it while
//! the lane holds any, so that a sender's messages keep their order. The sender hears its
//! pseudo-ACK through its outbox when the message's outcome is known, queued for the login
//! that sent the message.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use hongyan_shared::Packet;

use super::messages::{Relayed, pseudo_ack};
use super::state::Core;
use crate::session::{HandedOff, Outbound, Session, SessionHandle};

impl Core {
    /// Whether `packet`, a C2C message from `session`'s user, goes through the session's lane.
    pub(super) fn hands_off(&self, session: &Session, packet: &Packet) -> bool {
        self.clustered()
            && (session.lane.is_some()
                || packet
                    .to
                    .as_ref()
                    .is_some_and(|to| self.registry.get(to).is_none()))
    }

    /// Puts `packet` in `session`'s lane. A full lane is first given room by running its
    /// oldest message to its end: the session reads no more until then.
    pub(super) async fn hand_off(self: &Arc<Self>, session: &mut Session, packet: Packet) {
        let lane = session.lane.get_or_insert_with(Box::default);
        while lane.is_full() {
            lane.step(self.relay_from_lane()).await;
        }
        lane.push(HandedOff {
            packet,
            sender: session.handle.clone(),
        });
    }

    /// Relays the messages in `session`'s lane, one at a time, until it is empty, and then
    /// lets it go. The session's loop runs it beside reading and writing; dropped before the
    /// end, it resumes where it was at the next call.
    pub async fn drive_lane(self: &Arc<Self>, session: &mut Session) {
        while let Some(lane) = &mut session.lane {
            if !lane.step(self.relay_from_lane()).await {
                session.lane = None;
            }
        }
    }

    /// What relays a message taken from a lane.
    fn relay_from_lane(self: &Arc<Self>) -> impl FnOnce(HandedOff) -> BoxFuture<'static, ()> {
        move |HandedOff { packet, sender }| Box::pin(self.clone().relay_handed_off(sender, packet))
    }

    /// The C2C rules for a message taken from `sender`'s lane, as the session's loop applies
    /// them to one it relays itself; the pseudo-ACK goes to the sender's outbox, queued for the
    /// login that sent the message (`sender` was cloned when it was handed off), so never to a
    /// later user of a UDP address.
    async fn relay_handed_off(self: Arc<Self>, sender: SessionHandle, mut packet: Packet) {
        let now = self.clock.now();
        let relayed = self.relay(&mut packet, sender.info, None, now).await;
        let Some(mut ack) = pseudo_ack(&packet, relayed, sender.is_synced()) else {
            return;
        };
        let body = self.encode(&mut ack);
        if self.push(&sender, Outbound::packet(body)).is_err() {
            // As a lost ACK: the sender sends the message again, and its retransmission is
            // recognised by its fingerprint (the receiver's client, the store, the history).
            tracing::debug!("pseudo-ACK of a handed-off message not queued");
        }
        if matches!(relayed, Relayed::Kept { notify: true, .. }) {
            self.hooks.on_stored(&packet);
        }
    }
}
