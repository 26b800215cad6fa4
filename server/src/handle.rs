//! The send API for embedding code (§7.3): push server → client messages, kick users, look
//! up who is online.

use std::sync::Arc;

use hongyan_shared::{Fingerprint, Kickout, Outgoing, Packet, UserId, codes};
use tokio::sync::oneshot;

use crate::core::Core;
pub use crate::core::Delivery;
use crate::metrics::{Direction, KickReason};
use crate::registry::OnlineInfo;
use crate::session::{Outbound, PushError};

/// A cloneable handle to a running server.
#[derive(Clone)]
pub struct ServerHandle {
    core: Arc<Core>,
}

/// A message handed to the receiver's session.
#[derive(Debug)]
pub struct Sent {
    /// The fingerprint, for QoS messages.
    pub fp: Option<Fingerprint>,
    receipt: Option<oneshot::Receiver<Delivery>>,
}

impl Sent {
    /// Waits for the client's acknowledgement or for the retransmissions to run out. A message
    /// without QoS counts as delivered once handed over.
    pub async fn outcome(self) -> Delivery {
        match self.receipt {
            Some(receipt) => receipt.await.unwrap_or(Delivery::Lost),
            None => Delivery::Delivered,
        }
    }
}

impl ServerHandle {
    /// The send API of the server whose protocol core is `core` (a server built with
    /// [`Server::bind`](crate::Server::bind) hands it out as [`Bound::handle`](crate::Bound::handle)).
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Sends `push` to its receiver's online session (S2C, from `"0"`). Without a fingerprint
    /// a QoS message gets a fresh UUID, as `LocalSendHelper.sendData(uid, text)` does. Fails
    /// with [`PushError::Offline`] when the user is not online, and with
    /// [`PushError::SlowConsumer`] or [`PushError::Overloaded`] when the server cannot take
    /// it for the user now; the application may then store it for later.
    pub fn send(&self, push: Outgoing) -> Result<Sent, PushError> {
        let online = self.core.session_of(&push.to).ok_or(PushError::Offline)?;
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
        let body = self.core.encode_vec(&mut packet);
        let body = self.core.hold(body)?;
        let receipt = match (&fp, push.qos) {
            (Some(fp), true) => {
                let (tx, rx) = oneshot::channel();
                let now = self.core.clock.now();
                self.core
                    .push_qos(&online, &push.to, fp, body, Some(tx), now)?;
                Some(rx)
            }
            _ => {
                self.core.push(&online, Outbound::packet(body))?;
                None
            }
        };
        self.core.metrics.message(Direction::s2c);
        Ok(Sent { fp, receipt })
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
}
