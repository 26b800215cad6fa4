//! What a [`ClientSession`](super::ClientSession) tells its driver and application.

use std::fmt;

use crate::packet::{Fingerprint, Kickout, Packet, UserId};

/// Where the session stands, from the application's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// No login wanted: never logged in, logged out, kicked out or refused.
    Offline,
    /// The first login of this session is under way (connecting, or waiting for the response).
    Connecting,
    /// Logged in: keepalives run and messages flow.
    Online,
    /// The link was lost after a successful login; the session logs in again every relogin
    /// interval with the saved `firstLoginTime`.
    Reconnecting,
}

impl ConnectionState {
    /// Lowercase name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Reconnecting => "reconnecting",
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An application message (type 2) received from the server or another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Its fingerprint, when the sender gave one (always for QoS messages).
    pub fp: Option<Fingerprint>,
    /// The sender: a user, or `"0"` for the server (S2C).
    pub from: UserId,
    /// The receiver as the packet names it (normally this session's user).
    pub to: UserId,
    /// The application content (`dataContent`), empty when absent.
    pub content: String,
    /// The application sub-type (`typeu`).
    pub typeu: i32,
    /// Whether the sender asked for an acknowledgement (already sent by the session).
    pub qos: bool,
    /// The server's send time in epoch milliseconds, or -1 / 0 when not stamped.
    pub sm: i64,
}

impl ReceivedMessage {
    pub(crate) fn from_packet(packet: Packet) -> Self {
        Self {
            fp: packet.fp,
            from: packet.from.unwrap_or_default(),
            to: packet.to.unwrap_or_default(),
            content: packet.data_content.unwrap_or_default(),
            typeu: packet.typeu,
            qos: packet.qos,
            sm: packet.sm,
        }
    }
}

/// Something the application should hear about: what MobileIMSDK reports through
/// `ChatBaseEvent`, `ChatMessageEvent` and `MessageQoSEvent`, plus connection-state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The connection state changed.
    StateChanged(ConnectionState),
    /// The server answered a login (`onLoginResponse`). `code` 0 is success; anything else is
    /// the application's refusal code.
    LoginResponse {
        /// 0 on success.
        code: i32,
        /// The time the server associates with this client instance; -1 on refusal.
        first_login_time: i64,
    },
    /// The link to the server was lost after a login (`onLinkClose`), or the session was kicked
    /// out. The session reconnects by itself unless it was kicked out.
    LinkClosed,
    /// The server ended the session (`onKickout`); the session will not log in again by itself.
    Kickout(Kickout),
    /// A message arrived (`onRecieveMessage`). Duplicates of QoS messages are acknowledged again
    /// but reported once.
    MessageReceived(ReceivedMessage),
    /// The server reported an error (`onErrorResponse`); 301 means "not logged in", after which
    /// the session logs in again. (hongyan's error 1000 is reported as
    /// [`RateLimited`](Self::RateLimited) instead.)
    ErrorResponse {
        /// The error code: 301 from MobileIMSDK's server and hongyan's.
        code: i32,
        /// For 301: the rejected packet as the server re-encoded it.
        message: Option<String>,
    },
    /// The server refused a message because this session sends faster than its limit
    /// (hongyan's error 1000, `codes::RATE_LIMITED`, §4.6). The message was not acknowledged:
    /// a QoS message is retransmitted on its schedule and reported delivered or lost as
    /// usual; one without QoS is gone. Sending more slowly avoids it.
    RateLimited {
        /// The refused message's fingerprint, if it had one.
        fp: Option<Fingerprint>,
    },
    /// QoS messages whose retries ran out, or that were still pending when the session ended
    /// (`messagesLost`). Each fingerprint is reported lost or delivered exactly once.
    MessagesLost(Vec<Packet>),
    /// A QoS message was acknowledged (`messagesBeReceived`): for C2S the server has it, for C2C
    /// the server relayed it to the receiver or stored it offline (§6).
    MessageDelivered(Fingerprint),
}

/// What the session asks its driver to do with the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportCommand {
    /// Open a new connection (TCP connection, WebSocket, or a fresh UDP socket with a new
    /// source port), closing the current one first if there is one. Answer with
    /// [`handle_connected`](super::ClientSession::handle_connected) or
    /// [`handle_disconnected`](super::ClientSession::handle_disconnected); packets that still
    /// arrive from the replaced connection must not be passed to the session.
    Open,
    /// Close the current connection, after sending the packets already polled. Do not report
    /// it back with `handle_disconnected`.
    Close,
}
