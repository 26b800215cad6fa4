//! The send API for embedding code (§7.3): push server → client messages, send messages in a
//! user's name, kick users, look up who is online.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hongyan_shared::{Fingerprint, Kickout, Outgoing, Packet, Transport, UserId, codes};
use hongyan_store::StoreError;
use tokio::sync::oneshot;

use crate::config::{MAX_FINGERPRINT_BYTES, MAX_USER_ID_BYTES};
pub use crate::core::Delivery;
use crate::core::{Core, Origin, Relayed, Route};
use crate::hooks::SessionInfo;
use crate::metrics::{Direction, KickReason, StoreOp};
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
        let Some(qos_fp) = fp.clone().filter(|_| push.qos) else {
            let online = core.session_of(&push.to).ok_or(PushError::Offline)?;
            let body = core.hold(body)?;
            core.push(&online, Outbound::packet(body))?;
            core.metrics.message(Direction::s2c);
            return Ok(Sent {
                fp,
                receipt: Receipt::Settled(Delivery::Delivered),
            });
        };
        let ticket = match core.route(&push.to) {
            Route::Live(online) => {
                let (tx, rx) = oneshot::channel();
                let now = core.clock.now();
                let pushed = core.hold(body).and_then(|body| {
                    core.push_qos(
                        &online,
                        &push.to,
                        &qos_fp,
                        body,
                        Some(tx),
                        now,
                        Origin::Live,
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
        core.put(ticket, message)
            .await
            .map_err(|_| PushError::NotStored)?;
        core.metrics.message(Direction::s2c);
        Ok(Sent {
            fp,
            receipt: Receipt::Settled(Delivery::Stored),
        })
    }

    /// Sends `message` from user `from` to `message.to` (C2C), by exactly the rules of a
    /// message a client of `from` sends (§6.4): `before_c2c` (told the session's transport is
    /// [`Transport::Http`], under an id of its own), forwarding with QoS and retransmission,
    /// store and forward, `on_c2c_delivered` and `on_offline`. Whoever holds the handle speaks
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
            Relayed::Forwarded => {
                receipt.map_or(Receipt::Settled(Delivery::Delivered), Receipt::Waiting)
            }
            Relayed::Kept { notify } => {
                if notify {
                    core.hooks.on_offline(&packet).await;
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

    /// Kicks `user` with an application-defined code (use codes above 100).
    pub fn kick_with_code(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool {
        let Some(online) = self.core.session_of(user) else {
            return false;
        };
        let mut packet = Packet::kickout(
            user.as_str(),
            &Kickout {
                code,
                reason: reason.map(str::to_owned),
            },
        );
        let body = self.core.encode(&mut packet);
        self.core.metrics.kickout(if code == codes::KICKOUT_ADMIN {
            KickReason::admin
        } else {
            KickReason::application
        });
        if online
            .push(Outbound::kick(body, code), &*self.core.clock)
            .is_err()
        {
            online.close();
        }
        true
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
