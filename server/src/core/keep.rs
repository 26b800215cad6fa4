//! Keeping messages for users who cannot take them now (issue 11): where a QoS message goes
//! ([`Route`]), and storing it, which is awaited before its sender is acknowledged. Online
//! delivery never waits for the store; only these paths do.

use hongyan_shared::{Fingerprint, Packet, UserId};
use hongyan_store::{NewMessage, Put, StoreError, StoredMessage};

use super::backlog::PutTicket;
use super::state::Core;
use crate::log_text::Untrusted;
use crate::metrics::StoreOp;
use crate::session::{PushError, SessionHandle};

/// Where a QoS message for a user goes now.
pub(crate) enum Route<'a> {
    /// The user is online and nothing stored waits ahead of the message: hand it to this
    /// session, from memory.
    Live(SessionHandle),
    /// Store it: the user is offline, or stored messages are being replayed to them and a new
    /// message must not overtake them. The put is already counted in the user's backlog, in
    /// the same critical section as this decision, so a replay cannot finish in between and
    /// strand the message until the next login.
    Store {
        /// The put, counted.
        ticket: PutTicket<'a>,
        /// Whether the user has an online session (then no offline notification is due).
        online: bool,
    },
    /// No store, and the user is offline.
    Offline,
}

impl Core {
    /// Where a QoS message for `user` goes now (see [`Route`]).
    pub(crate) fn route(&self, user: &UserId) -> Route<'_> {
        let Some(link) = &self.store else {
            return match self.session_of(user) {
                Some(online) => Route::Live(online),
                None => Route::Offline,
            };
        };
        if let Some((online, false)) = self.registry.route(user) {
            return Route::Live(online);
        }
        let now = self.clock.now();
        let mut backlogs = link.backlogs.lock();
        // Asked again under the backlog lock, under which a replay decides that it is done:
        // either it sees this put, or it finished before and the user is live again.
        match self.registry.route(user) {
            Some((online, false)) => Route::Live(online),
            online => Route::Store {
                ticket: link.backlogs.begin_put_locked(&mut backlogs, user, now),
                online: online.is_some(),
            },
        }
    }

    /// Whether a live push to `user` that failed with `error` is stored instead: with a store,
    /// every failure but a packet too large for the receiver's transport (which the caller
    /// hears about) means the receiver cannot take it now — its session is gone, its queue
    /// full, or the server holds as much as it may for it (what the bounds refuse is stored
    /// rather than held in memory, §8.1 item 8). Returns the counted put.
    pub(crate) fn store_instead(&self, user: &UserId, error: &PushError) -> Option<PutTicket<'_>> {
        let link = self.store.as_ref()?;
        match error {
            PushError::TooLarge { .. } => None,
            PushError::Offline
            | PushError::SlowConsumer
            | PushError::Overloaded
            | PushError::NotStored => Some(link.backlogs.begin_put(user, self.clock.now())),
        }
    }

    /// Stores `message`, whose put `ticket` counts, and lets the receiver's replay go on:
    /// a message stored for a user who is online is replayed to them at once. `Ok` means the
    /// message is durably stored (or already was): only then may its sender be acknowledged.
    pub(crate) async fn put(
        &self,
        ticket: PutTicket<'_>,
        message: NewMessage,
    ) -> Result<Put, StoreError> {
        let link = self
            .store
            .as_ref()
            .expect("a put ticket comes from the store");
        let result = link
            .call(&self.metrics, StoreOp::put, link.store.put(message))
            .await;
        if let Some(metrics) = &self.metrics.store {
            metrics.put(&result);
        }
        if let Err(error) = &result {
            tracing::debug!(to = %Untrusted(ticket.user().as_str()), %error, "message not stored");
        }
        let user = ticket.finish(result.is_ok());
        self.after_put(&user, result.is_ok()).await;
        result
    }

    /// The stored form of QoS `packet` for `receiver`, accepted now.
    pub(crate) fn stored_form(
        &self,
        packet: &Packet,
        receiver: &UserId,
        fp: &Fingerprint,
    ) -> NewMessage {
        let accepted_at = self.clock.unix_millis();
        let expires_at = self.store.as_ref().and_then(|link| {
            let ttl = i64::try_from(link.expiry?.as_millis()).unwrap_or(i64::MAX);
            Some(accepted_at.saturating_add(ttl))
        });
        NewMessage {
            receiver: receiver.clone(),
            sender: packet.from.clone().unwrap_or_else(UserId::server),
            fp: fp.clone(),
            typeu: packet.typeu,
            content: packet.data_content.clone().unwrap_or_default(),
            accepted_at,
            expires_at,
        }
    }

    /// Stores a server → client packet whose retransmissions ran out (the receiver went away,
    /// or never acknowledged): true if it is stored now.
    pub(super) async fn keep_given_up(&self, packet: &Packet) -> bool {
        let (Some(link), Some(user), Some(fp)) = (&self.store, &packet.to, &packet.fp) else {
            return false;
        };
        let ticket = link.backlogs.begin_put(user, self.clock.now());
        self.put(ticket, self.stored_form(packet, user, fp))
            .await
            .is_ok()
    }
}

/// A stored message as the QoS packet that replays it: its original `from`, `fp`, `typeu` and
/// content, to its receiver.
pub(crate) fn replay_packet(message: &StoredMessage) -> Packet {
    let mut packet = Packet::common_data(
        message.sender.as_str(),
        message.receiver.as_str(),
        message.content.clone(),
        Some(message.fp.clone()),
        message.typeu,
    );
    packet.qos = true;
    packet
}
