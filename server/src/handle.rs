//! The send API for embedding code (§7.3): push server → client messages, kick users, look
//! up who is online.

use std::sync::Arc;

use hongyan_shared::history::{ConversationInfo, HistoryRange};
use hongyan_shared::{Fingerprint, Kickout, Outgoing, Packet, UserId, codes};
use hongyan_store::StoreError;
use tokio::sync::oneshot;

use crate::core::{Core, Origin, Route};
pub use crate::core::{Delivery, HistoryPage};
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
            let online = core.session_of(&push.to).ok_or(PushError::Offline)?;
            let now = core.clock.now();
            core.deliver_kept(&packet, &server, &push.to, now, |tag| {
                let body = core.hold(body)?;
                let body = core.tagged_for(&online, body, tag)?;
                core.push(&online, Outbound::packet(body))
            })
            .0?;
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

    /// How many messages the store keeps for `user`, not yet delivered (expired ones not yet
    /// swept included).
    pub async fn stored_count(&self, user: &UserId) -> Result<u64, StoredError> {
        let link = self.core.store.as_ref().ok_or(StoredError::NoStore)?;
        let count = link.store.count(user);
        Ok(link.call(&self.core.metrics, StoreOp::count, count).await?)
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
