//! The application's hooks into the server: the equivalent of MobileIMSDK's
//! `ServerEventListener` and `MessageQoSEventListenerS2C` (§7.1, §7.2).

use std::net::SocketAddr;

use async_trait::async_trait;
use hongyan_shared::{Fingerprint, Packet, Transport, UserId};

use crate::log_limit::LogLimit;
use crate::log_text::Untrusted;

/// Identifies a session (one TCP connection, WebSocket connection, UDP address or HTTP
/// session), or a message the HTTP API sends in a user's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// What hooks are told about the session a call concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session.
    pub id: SessionId,
    /// How the client is connected.
    pub transport: Transport,
    /// The client's address.
    pub peer: SocketAddr,
}

/// A login to verify.
#[derive(Debug, Clone, Copy)]
pub struct LoginRequest<'a> {
    /// `loginUserId`.
    pub user_id: &'a UserId,
    /// `loginToken`, if sent.
    pub token: Option<&'a str>,
    /// `extra`, if sent.
    pub extra: Option<&'a str>,
    /// The session logging in.
    pub session: SessionInfo,
}

/// Application callbacks. Every method has a default, so an application implements only what it
/// needs. Methods run on the session's task: keep the synchronous ones short (queue work
/// elsewhere); the `async` ones may wait, but only that session waits with them.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// `onUserLoginVerify`: 0 accepts the login; any other code refuses it and is sent to the
    /// client (use codes ≥ 1025). The default accepts everyone.
    async fn verify_login(&self, login: LoginRequest<'_>) -> i32 {
        let _ = login;
        0
    }

    /// `onUserLoginSucess`: the login response was written and the session registered.
    fn on_login(&self, user: &UserId, extra: Option<&str>, session: SessionInfo) {
        let _ = (user, extra, session);
    }

    /// `onUserLogout`: the user's online session closed. `kick_code` is the kickout code when
    /// an administrator ended it (2), `None` for a normal close.
    fn on_logout(&self, user: &UserId, session: SessionInfo, kick_code: Option<i32>) {
        let _ = (user, session, kick_code);
    }

    /// `onTransferMessage4C2SBefore`: may inspect or rewrite a client → server message; false
    /// drops it without an acknowledgement.
    fn before_c2s(&self, packet: &mut Packet, session: SessionInfo) -> bool {
        let _ = (packet, session);
        true
    }

    /// `onTransferMessage4C2CBefore`: may inspect or rewrite a client → client message; false
    /// drops it without an acknowledgement.
    fn before_c2c(&self, packet: &mut Packet, session: SessionInfo) -> bool {
        let _ = (packet, session);
        true
    }

    /// `onTransferMessage4C2S`: a message for the server arrived (once per fingerprint).
    fn on_c2s(&self, packet: &Packet, session: SessionInfo) {
        let _ = (packet, session);
    }

    /// `onTransferMessage4C2C`: a message was handed to its online receiver. Fires again for
    /// a retransmission, as in the reference.
    fn on_c2c_delivered(&self, packet: &Packet) {
        let _ = packet;
    }

    /// `onTransferMessage_RealTimeSendFaild`: the receiver is offline or cannot take the
    /// message, and the server does not store it (`store = off`, and messages without QoS):
    /// return true if the application stored it for later (the sender then gets an
    /// acknowledgement), false to drop it (the sender retries, then reports it lost). The
    /// sender's session waits for the answer. With a store, a QoS message is stored instead
    /// and [`on_stored`](Self::on_stored) is called.
    async fn on_offline(&self, packet: &Packet) -> bool {
        let _ = packet;
        false
    }

    /// With a message store: a QoS message for a receiver who is offline was stored and its
    /// sender acknowledged (to send a push notification, say). Called on the sender's path,
    /// so it must not wait: a slow application would stall the sender's session, whose
    /// later messages would time out. No MobileIMSDK equivalent (the reference has no store).
    fn on_stored(&self, packet: &Packet) {
        let _ = packet;
    }

    /// `messagesLost`: server → client QoS packets that were not acknowledged after the last
    /// retransmission.
    fn on_s2c_lost(&self, lost: &[Packet]) {
        let _ = lost;
    }

    /// Stored messages that outlived `store_ttl_secs` without reaching their receiver were
    /// removed from the store: each is reported here once, and will not be delivered. No
    /// MobileIMSDK equivalent.
    fn on_expired(&self, expired: &[Packet]) {
        let _ = expired;
    }

    /// `messagesBeReceived`: `user` acknowledged the server → client packet `fp`. Only
    /// acknowledgements of packets that were actually sent to that user are reported.
    fn on_s2c_received(&self, user: &UserId, fp: &Fingerprint) {
        let _ = (user, fp);
    }

    /// Adds the hooks' own series to the server's `/metrics`; called once, when the server is
    /// bound. Names get the server's `hongyan_` prefix.
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let _ = registry;
    }
}

/// The hooks `hongyan serve` runs with: **every login is accepted** and events are logged.
/// Replace them (embed the server with your own [`Hooks`], or use the webhook integration)
/// before exposing a server to untrusted clients.
///
/// Client-chosen text (user ids, fingerprints) is logged escaped and cut short, and the
/// lines a client can cause without end (logins, losses) are rate-limited: a few per 10 s,
/// then one summary line with their count. Every message's fate is in the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggingHooks;

static LOGINS: LogLimit = LogLimit::info("login");
static LOGOUTS: LogLimit = LogLimit::info("logout");
static LOST: LogLimit = LogLimit::info("server to client message lost");

#[async_trait]
impl Hooks for LoggingHooks {
    fn on_login(&self, user: &UserId, _extra: Option<&str>, session: SessionInfo) {
        if LOGINS.allow() {
            tracing::info!(user = %Untrusted(user.as_str()), session = %session.id, transport = %session.transport, peer = %session.peer, "login");
        }
    }

    fn on_logout(&self, user: &UserId, session: SessionInfo, kick_code: Option<i32>) {
        if LOGOUTS.allow() {
            tracing::info!(user = %Untrusted(user.as_str()), session = %session.id, ?kick_code, "logout");
        }
    }

    fn on_c2s(&self, packet: &Packet, _session: SessionInfo) {
        tracing::debug!(from = %Untrusted(packet.from_str()), fp = ?packet.fp.as_ref().map(|fp| Untrusted(fp.as_str())), typeu = packet.typeu, "c2s message");
    }

    fn on_s2c_lost(&self, lost: &[Packet]) {
        for p in lost {
            if LOST.allow() {
                tracing::info!(to = %Untrusted(p.to_str()), fp = ?p.fp.as_ref().map(|fp| Untrusted(fp.as_str())), "server to client message lost");
            }
        }
    }

    fn on_expired(&self, expired: &[Packet]) {
        tracing::info!(
            count = expired.len(),
            "stored messages expired before they could be delivered"
        );
        for p in expired {
            tracing::debug!(from = %Untrusted(p.from_str()), to = %Untrusted(p.to_str()),
                fp = ?p.fp.as_ref().map(|fp| Untrusted(fp.as_str())), "stored message expired");
        }
    }
}
