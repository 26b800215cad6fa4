//! The send API for embedding code (§7.3): push server → client messages, send messages in a
//! user's name, kick users, look up who is online.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hongyan_shared::history::{ConversationInfo, HistoryRange};
use hongyan_shared::{Fingerprint, Outgoing, Packet, Transport, UserId, codes};
use hongyan_store::StoreError;
use tokio::sync::oneshot;

use crate::cluster::{NodePage, NodeUser, Remote};
use crate::config::{MAX_FINGERPRINT_BYTES, MAX_USER_ID_BYTES};
use crate::core::{Core, Origin, Relayed, Route};
pub use crate::core::{Delivery, HistoryPage};
use crate::hooks::SessionInfo;
use crate::metrics::{Direction, StoreOp};
use crate::registry::OnlineInfo;
use crate::session::{Outbound, PushError};

/// A cloneable handle to a running server.
#[derive(Clone)]
pub struct ServerHandle {
    core: Arc<Core>,
}

/// A message handed to the receiver's session, or stored for it.
#[derive(Debug)]
pub struct Sent {
    /// The fingerprint, for QoS messages.
    pub fp: Option<Fingerprint>,
    receipt: Receipt,
}

#[derive(Debug)]
enum Receipt {
    /// Handed to the session; the outcome comes with the acknowledgement or the last
    /// retransmission.
    Waiting(oneshot::Receiver<Delivery>),
    /// Known already.
    Settled(Delivery),
}

impl Sent {
    /// Waits for the client's acknowledgement or for the retransmissions to run out (then,
    /// with a store, the message is stored: [`Delivery::Stored`]). A message without QoS counts
    /// as delivered once handed over; one stored at once (its receiver was offline) is
    /// [`Delivery::Stored`].
    pub async fn outcome(self) -> Delivery {
        match self.receipt {
            Receipt::Waiting(receipt) => receipt.await.unwrap_or(Delivery::Lost),
            Receipt::Settled(delivery) => delivery,
        }
    }

    /// The outcome if it is known without waiting: stored at once, or a message without QoS.
    pub fn settled(&self) -> Option<Delivery> {
        match self.receipt {
            Receipt::Waiting(_) => None,
            Receipt::Settled(delivery) => Some(delivery),
        }
    }
}

/// Why a user's stored messages could not be counted or erased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredError {
    /// The server keeps no messages (`store = off`).
    #[error("this server keeps no messages (its store setting is off)")]
    NoStore,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a user's conversation history could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The server keeps no history (no store, or `history_retention` is 0).
    #[error("this server keeps no conversation history (no store, or history_retention is 0)")]
    Off,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a message could not be sent in a user's name ([`ServerHandle::send_as`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendAsError {
    /// The sender is no user id a client could log in with.
    #[error(
        "{0:?} cannot send: it is not a user id a client could log in with (empty, \"0\", \"-1\" or over 256 bytes)"
    )]
    Sender(UserId),
    /// The receiver is no user id a client could log in with (a message for the server,
    /// `"0"`, is C2S, which the API does not send).
    #[error(
        "{0:?} cannot receive: it is not a user id a client could log in with (empty, \"0\", \"-1\" or over 256 bytes)"
    )]
    Receiver(UserId),
    /// The chosen fingerprint is empty, or longer than a client's QoS message may carry
    /// (§6.3).
    #[error("a fingerprint must be 1 to 128 bytes long")]
    Fingerprint,
    /// The application's `before_c2c` hook dropped the message, as it would a client's.
    #[error("refused by the before_c2c hook")]
    Refused,
}

/// Whether a client could log in as `user`, and so send and receive as them (§4.2).
fn usable(user: &UserId) -> bool {
    user.is_valid_login() && user.as_str().len() <= MAX_USER_ID_BYTES
}

/// Whether [`ServerHandle::send_as`] takes `message` from `from`: both are user ids a client
/// could log in as, and a chosen fingerprint is one a client's QoS message may carry.
pub(crate) fn check_send_as(from: &UserId, message: &Outgoing) -> Result<(), SendAsError> {
    if !usable(from) {
        return Err(SendAsError::Sender(from.clone()));
    }
    if !usable(&message.to) {
        return Err(SendAsError::Receiver(message.to.clone()));
    }
    if message
        .fp
        .as_ref()
        .is_some_and(|fp| fp.is_empty() || fp.as_str().len() > MAX_FINGERPRINT_BYTES)
    {
        return Err(SendAsError::Fingerprint);
    }
    Ok(())
}

impl ServerHandle {
    /// The send API of the server whose protocol core is `core` (a server built with
    /// [`Server::bind`](crate::Server::bind) hands it out as [`Bound::handle`](crate::Bound::handle)).
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Sends `push` to its receiver's online session (S2C, from `"0"`). Without a fingerprint
    /// a QoS message gets a fresh UUID, as `LocalSendHelper.sendData(uid, text)` does.
    ///
    /// With a message store, a QoS message whose receiver is offline (or cannot take it now:
    /// its queue is full, the server holds as much as it may for it, or it is being replayed
    /// stored messages, which it must not overtake) is stored, awaiting the commit, and
    /// replayed at the receiver's next login: its outcome is [`Delivery::Stored`] at once. One
    /// that cannot be stored fails with [`PushError::NotStored`]. Without a store, or without
    /// QoS, it fails with [`PushError::Offline`] when the user is not online, and with
    /// [`PushError::SlowConsumer`] or [`PushError::Overloaded`] when the server cannot take it
    /// for the user now; the application may then keep it itself.
    pub async fn send(&self, push: Outgoing) -> Result<Sent, PushError> {
        let core = &self.core;
        let fp = match (push.qos, push.fp) {
            (true, None) => Some(Fingerprint::new(uuid::Uuid::new_v4().to_string())),
            (_, fp) => fp,
        };
        let mut packet = Packet::common_data(
            UserId::SERVER,
            push.to.as_str(),
            push.content,
            fp.clone(),
            push.typeu,
        );
        packet.qos = push.qos;
        let body = core.encode_vec(&mut packet);
        let server = UserId::server();
        let Some(qos_fp) = fp.clone().filter(|_| push.qos) else {
            let now = core.clock.now();
            match core.session_of(&push.to) {
                Some(online) => {
                    core.deliver_kept(&packet, &server, &push.to, now, |tag| {
                        let body = core.hold(body)?;
                        let body = core.tagged_for(&online, body, tag)?;
                        core.push(&online, Outbound::packet(body))
                    })
                    .0?;
                }
                None if core.clustered()
                    && core.cluster.deliver(&push.to, body.into()).await == Remote::Forwarded =>
                {
                    // Kept here, by the pushing node, once (the receiver's node keeps none).
                    core.keep_stored(&packet, &server, &push.to, true, core.clock.now());
                }
                None => return Err(PushError::Offline),
            }
            core.metrics.message(Direction::s2c);
            return Ok(Sent {
                fp,
                receipt: Receipt::Settled(Delivery::Delivered),
            });
        };
        if core.clustered() && core.registry.get(&push.to).is_none() {
            // On another node, that node's QoS decides; on none, it is stored here.
            let settled = match core.cluster.deliver(&push.to, body.clone().into()).await {
                Remote::NotHere => None,
                Remote::Forwarded | Remote::Delivered => Some(Delivery::Delivered),
                Remote::Stored => Some(Delivery::Stored),
                Remote::Lost => Some(Delivery::Lost),
            };
            if let Some(delivery) = settled {
                if delivery != Delivery::Lost {
                    // Kept here, by the pushing node, once (the receiver's node keeps none).
                    core.keep_stored(&packet, &server, &push.to, true, core.clock.now());
                }
                core.metrics.message(Direction::s2c);
                return Ok(Sent {
                    fp,
                    receipt: Receipt::Settled(delivery),
                });
            }
        }
        let ticket = match core.route(&push.to) {
            Route::Live(online) => {
                let (tx, rx) = oneshot::channel();
                let now = core.clock.now();
                let (pushed, _) = core.deliver_kept(&packet, &server, &push.to, now, |tag| {
                    let body = core.hold(body)?;
                    core.push_qos(
                        &online,
                        &push.to,
                        &qos_fp,
                        body,
                        Some(tx),
                        now,
                        Origin::Live,
                        tag,
                    )
                });
                match pushed {
                    Ok(()) => {
                        core.metrics.message(Direction::s2c);
                        return Ok(Sent {
                            fp,
                            receipt: Receipt::Waiting(rx),
                        });
                    }
                    Err(error) => core.store_instead(&push.to, &error).ok_or(error)?,
                }
            }
            Route::Store { ticket, .. } => ticket,
            Route::Offline => return Err(PushError::Offline),
        };
        let message = core.stored_form(&packet, &push.to, &qos_fp);
        let put = core
            .put(ticket, message)
            .await
            .map_err(|_| PushError::NotStored)?;
        let fresh = matches!(put, hongyan_store::Put::Stored(_));
        core.keep_stored(&packet, &server, &push.to, fresh, core.clock.now());
        core.metrics.message(Direction::s2c);
        Ok(Sent {
            fp,
            receipt: Receipt::Settled(Delivery::Stored),
        })
    }

    /// Sends `message` from user `from` to `message.to` (C2C), by exactly the rules of a
    /// message a client of `from` sends (§6.4): `before_c2c` (told the session's transport is
    /// [`Transport::Http`], under an id of its own), forwarding with QoS and retransmission,
    /// store and forward, `on_c2c_delivered`, `on_offline` and `on_stored`. Whoever holds the handle speaks
    /// for every user; `from` need not be online. Without a fingerprint a QoS message gets a
    /// fresh UUID.
    ///
    /// [`Sent::outcome`] says what its sender would have heard, and more: handed to the
    /// receiver's session, a QoS message resolves to [`Delivery::Delivered`] when the receiver
    /// acknowledges it (a client sender hears at the hand-over already) or, once its
    /// retransmissions ran out, to [`Delivery::Stored`] or [`Delivery::Lost`]; kept for later
    /// (by the store, or the application's `on_offline`) it is `Stored` at once; not kept
    /// (the receiver cannot take it and nothing stored it: a client's sender would retransmit)
    /// it is `Lost` at once; without QoS, `Delivered` once handed over.
    pub async fn send_as(&self, from: &UserId, message: Outgoing) -> Result<Sent, SendAsError> {
        self.send_as_from(from, message, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
            .await
    }

    /// [`send_as`](Self::send_as) on behalf of a caller at `peer` (the HTTP API's client),
    /// which `before_c2c` is told.
    pub(crate) async fn send_as_from(
        &self,
        from: &UserId,
        message: Outgoing,
        peer: SocketAddr,
    ) -> Result<Sent, SendAsError> {
        let core = &self.core;
        check_send_as(from, &message)?;
        let fp = match (message.qos, message.fp) {
            (true, None) => Some(Fingerprint::new(uuid::Uuid::new_v4().to_string())),
            (_, fp) => fp,
        };
        let mut packet = Packet::common_data(
            from.as_str(),
            message.to.as_str(),
            message.content,
            fp,
            message.typeu,
        );
        packet.qos = message.qos;
        let sender = SessionInfo {
            id: core.next_session_id(),
            transport: Transport::Http,
            peer,
        };
        let (waiter, receipt) = if message.qos {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let relayed = core
            .relay(&mut packet, sender, waiter, core.clock.now())
            .await;
        let receipt = match relayed {
            Relayed::Refused => return Err(SendAsError::Refused),
            Relayed::Forwarded { .. } => {
                receipt.map_or(Receipt::Settled(Delivery::Delivered), Receipt::Waiting)
            }
            Relayed::Kept { notify, .. } => {
                if notify {
                    core.hooks.on_stored(&packet);
                }
                Receipt::Settled(Delivery::Stored)
            }
            Relayed::NotKept => Receipt::Settled(Delivery::Lost),
        };
        // As sent: the hook may have rewritten it.
        Ok(Sent {
            fp: packet.fp,
            receipt,
        })
    }

    /// Kicks `user` with code 2 (admin), as `sendKickout` does; their `on_logout` hook fires
    /// with that code. Returns false if the user was not online.
    pub fn kick(&self, user: &UserId, reason: Option<&str>) -> bool {
        self.kick_with_code(user, codes::KICKOUT_ADMIN, reason)
    }

    /// Kicks `user` with an application-defined code (use codes above 100). Only a session
    /// on this node: [`kick_anywhere`](Self::kick_anywhere) reaches the whole cluster.
    pub fn kick_with_code(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool {
        self.core.kick_local(user, code, reason)
    }

    /// [`kick_with_code`](Self::kick_with_code) on whichever node of the cluster holds
    /// `user` (this one first). Returns false if none does.
    pub async fn kick_anywhere(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool {
        self.core.kick_local(user, code, reason)
            || (self.core.clustered() && self.core.cluster.kick(user, code, reason).await)
    }

    /// `user`'s session on whichever node of the cluster holds it (this one first).
    pub async fn online_anywhere(&self, user: &UserId) -> Option<NodeUser> {
        match self.core.registry.info(user) {
            Some(info) => Some(self.core.node_user(user, &info)),
            None if self.core.clustered() => self.core.cluster.user(user).await,
            None => None,
        }
    }

    /// Every node's page of online users after `after`, at most `limit` each; `None` for a
    /// single node, or while the cluster cannot be asked.
    pub async fn online_pages(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Option<Vec<NodePage>> {
        self.core.cluster.pages(after, limit).await
    }

    /// This node's name in a cluster.
    pub fn node_name(&self) -> Option<&str> {
        self.core.cluster.node_name()
    }

    /// Whether `user` is online.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.core.session_of(user).is_some()
    }

    /// Where and since when `user` is online.
    pub fn online_info(&self, user: &UserId) -> Option<OnlineInfo> {
        self.core.registry.info(user)
    }

    /// Number of online users.
    pub fn online_count(&self) -> usize {
        self.core.registry.len()
    }

    /// Online users in id order, starting after `after`, at most `limit`.
    pub fn online_page(&self, after: Option<&UserId>, limit: usize) -> Vec<(UserId, OnlineInfo)> {
        self.core.registry.page(after, limit)
    }

    /// Whether a QoS packet with fingerprint `fp` sent to `user` (pushed, or a forwarded C2C
    /// message) still awaits acknowledgement. A push reusing it is not tracked again (as in the
    /// reference), so its [`Sent::outcome`] would not reflect the client's answer.
    pub fn is_in_flight(&self, user: &UserId, fp: &Fingerprint) -> bool {
        self.core.s2c.contains(user, fp)
    }

    /// Server → client QoS packets awaiting acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.core.s2c.len()
    }

    /// Bytes of packets held for delivery: queued for sessions or awaiting acknowledgement
    /// (at most `max_queued_bytes`).
    pub fn queued_bytes(&self) -> usize {
        self.core.queued.bytes()
    }

    /// Client → server fingerprints the de-duplication window remembers, and the bytes it
    /// counts for them (at most the `dedup` configuration's `capacity` and `max_bytes`).
    pub fn c2s_window(&self) -> (usize, usize) {
        self.core.c2s_window()
    }

    /// How many messages the store keeps for `user`, not yet delivered (expired ones not yet
    /// swept included).
    pub async fn stored_count(&self, user: &UserId) -> Result<u64, StoredError> {
        let link = self.core.store.as_ref().ok_or(StoredError::NoStore)?;
        let count = link.store.count(user);
        Ok(link.call(&self.core.metrics, StoreOp::count, count).await?)
    }

    /// Whether the server keeps conversation history (§9.4): it has a message store, and
    /// `history_retention` is above 0.
    pub fn keeps_history(&self) -> bool {
        self.core.history.is_some()
    }

    /// The history epoch (§9.4): it changes only when a crash cost the history its newest,
    /// unwritten messages. `None` without history, or before the store chores opened it.
    pub fn history_epoch(&self) -> Option<u64> {
        self.core.history.as_ref()?.epoch()
    }

    /// `user`'s conversations after `after` (by peer id), at most `limit`, with their newest
    /// seq, `user`'s read position and unread count, and whether more follow. Includes what is
    /// numbered but not written yet.
    pub async fn conversations(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<(Vec<ConversationInfo>, bool), HistoryError> {
        if self.core.history.is_none() {
            return Err(HistoryError::Off);
        }
        Ok(self.core.conversations_of(user, after, limit).await?)
    }

    /// Up to `limit` messages of the conversation between `user` and `peer` (`"0"`: the
    /// server's pushes to `user`) in `range`, oldest first, with the conversation's newest
    /// seq. Includes what is numbered but not written yet.
    pub async fn history(
        &self,
        user: &UserId,
        peer: &UserId,
        range: HistoryRange,
        limit: usize,
    ) -> Result<HistoryPage, HistoryError> {
        if self.core.history.is_none() {
            return Err(HistoryError::Off);
        }
        Ok(self.core.history_of(user, peer, range, limit).await?)
    }

    /// Erases every message the store keeps for `user` (the account was deleted) and returns
    /// how many there were. Messages already replayed to an online session may still reach
    /// it; nothing erased is replayed again.
    pub async fn erase_stored(&self, user: &UserId) -> Result<u64, StoredError> {
        let link = self.core.store.as_ref().ok_or(StoredError::NoStore)?;
        let erase = link.store.erase(user);
        let erased = link.call(&self.core.metrics, StoreOp::erase, erase).await?;
        link.acked.forget(user);
        self.core.forget_replayed(user);
        Ok(erased)
    }
}
