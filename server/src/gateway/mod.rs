//! Gateways: how bytes become packet bodies and how bodies leave, per transport. They hold no
//! protocol logic; every decision is in [`crate::core`].
//!
//! - [`tcp`]: length-prefixed frames (§3.1).
//! - [`udp`]: one packet per datagram, pseudo-sessions keyed by address (§3.2).
//! - [`ws`]: one packet per WebSocket text frame at `/websocket` (§3.3).
//! - [`driver`]: the one session loop all three run.

pub(crate) mod driver;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod ws;

use std::future::Future;

use bytes::Bytes;
use hongyan_shared::{FrameError, Transport};

/// Why a link failed or was closed by the server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A TCP frame header was invalid (empty or over the limit).
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// The peer sent more than the transport's limit.
    #[error("{len}-byte message exceeds the {max}-byte limit")]
    TooLarge {
        /// What arrived (0 when the WebSocket library did not say).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A WebSocket binary frame; MobileIMSDK uses text frames only.
    #[error("binary WebSocket frame")]
    BinaryFrame,
    /// The WebSocket protocol failed.
    #[error("websocket: {0}")]
    WebSocket(String),
}

/// One client connection as the session loop sees it: a source of packet bodies and a sink
/// for them. `recv` must be cancel-safe (it is raced against the outbox and timers).
pub(crate) trait Link: Send {
    /// The transport, which decides the few rules that differ (§4.2, §4.5).
    const TRANSPORT: Transport;

    /// The next packet body, `None` when the peer has gone.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Bytes, LinkError>>> + Send;

    /// Queues one packet body; it is written at the latest by the next [`flush`](Self::flush).
    fn send(&mut self, body: Bytes) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// Writes everything queued.
    fn flush(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// Ends the link, telling the peer why where the transport can (WebSocket close frames).
    fn close(self, error: Option<LinkError>) -> impl Future<Output = ()> + Send;
}
