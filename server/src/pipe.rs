//! The pipe: how one session's packet bodies reach and leave its peer. It sits below the
//! core, which writes a session's own replies into it, and the gateways implement it: a TCP
//! stream, a WebSocket, one address on the UDP socket, an HTTP session (no socket at all: an
//! SSE stream fed by HTTP requests), an in-memory queue (`MemoryPipe`, for tests and
//! simulations). The core and the gateways both use this module; neither imports the
//! other to reach it.
//!
//! What differs between transports is not an `if` on the transport in the core but a property
//! of the pipe ([`PipeProperties`]): whether it is a connection that ends after a refusal, a
//! 301 or a kickout, the largest packet it may carry out, and whether an unauthenticated peer
//! may be spoofed.

use std::future::Future;

use bytes::Bytes;
use hongyan_shared::{FrameError, Transport};

/// What the protocol rules need to know about how a pipe carries packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeProperties {
    /// The transport: reported to hooks and metrics, and it chooses the configured idle expiry.
    pub transport: Transport,
    /// The largest packet body the server may write; a larger reply is dropped, not truncated.
    pub max_outbound: usize,
    /// True for a UDP pseudo-session, which is no connection: it stays after a refusal, a 301
    /// or a kickout, where a connection (TCP, WebSocket) is closed once the answer is written;
    /// an administrator's kick therefore logs its user out at once.
    pub connectionless: bool,
    /// True when the peer's address may be forged until it logs in (UDP): a reply to an
    /// unauthenticated peer is never larger than its request, and its echo is not answered,
    /// so the server cannot be used to amplify traffic at a victim.
    pub spoofable: bool,
}

impl PipeProperties {
    /// The rules of `transport`'s own gateway, with `max_outbound` as its limit: TCP and
    /// WebSocket are connections; UDP is connection-less and spoofable.
    pub fn of(transport: Transport, max_outbound: usize) -> Self {
        let datagram = transport == Transport::Udp;
        Self {
            transport,
            max_outbound,
            connectionless: datagram,
            spoofable: datagram,
        }
    }
}

/// Why a pipe failed or was closed by the server.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
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
    /// The pipe is closed (an in-memory pipe told to fail).
    #[error("the pipe is closed")]
    Closed,
}

/// One session's way to its peer: a source of packet bodies and a sink for them.
///
/// The gateway's session loop reads with [`recv`](Self::recv) and ends the pipe with
/// [`close`](Self::close); the core writes with [`send`](Self::send) and
/// [`flush`](Self::flush), so "answer the login, then register" really waits for the write.
pub trait Pipe: Send {
    /// The pipe's properties; read once, when its session opens.
    fn properties(&self) -> PipeProperties;

    /// The next packet body, `None` when the peer has gone. Must be cancel-safe: it is raced
    /// against the outbox and timers.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Bytes, PipeError>>> + Send;

    /// Queues one packet body; it is written at the latest by the next [`flush`](Self::flush).
    fn send(&mut self, body: Bytes) -> impl Future<Output = Result<(), PipeError>> + Send;

    /// Writes everything queued.
    fn flush(&mut self) -> impl Future<Output = Result<(), PipeError>> + Send;

    /// Ends the pipe, after writing what is queued, telling the peer why where the transport
    /// can (WebSocket close frames).
    fn close(self, error: Option<PipeError>) -> impl Future<Output = ()> + Send;

    /// The core tells the pipe that its session logged in (its answer was written and it was
    /// registered). A gateway that keeps state for a peer that has not logged in only as long
    /// as answering it takes (UDP, §3.2) keeps the session from here on.
    fn logged_in(&mut self) {}
}
