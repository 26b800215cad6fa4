//! The bounded handshake stage between `accept` and the session.
//!
//! A TLS handshake costs the server an ECDHE and a signature and holds a rustls state of a few
//! kilobytes until it finishes, so a flood of connections that start handshakes, or never send
//! a byte, is a cheap way to exhaust a server. Three rules keep it bounded and keep real
//! clients served:
//!
//! - **A connection takes a handshake slot only once it has spoken.** Until its first byte
//!   arrives it costs a socket and a small task, no TLS state, and it holds its place in the
//!   connection limit like any connection; a flood of connections that never send a byte
//!   therefore never stands between a real client and the handshake stage. (Were slots taken
//!   before `accept`, about a hundred silent connections a second would keep every slot busy
//!   and every real client queued behind them in the kernel's backlog.)
//! - **At most [`max_in_progress`](HandshakeLimits::max_in_progress) handshakes at once.**
//!   Further connections wait for a slot in arrival order (the slots are a fair semaphore), so
//!   a login storm of real clients is served in order at the pace the CPU allows.
//! - **A deadline per connection** ([`timeout`](HandshakeLimits::timeout)), from accept to the
//!   finished handshake, waiting for the first byte and for a slot included, so a connection
//!   that stalls anywhere, and the slot it may hold, are let go after at most that long.
//!
//! A connection whose first byte is not a TLS handshake record is a plain client on a TLS
//! port. It is closed at once, cleanly: the server sends its FIN without a byte before it (a
//! TLS alert would only read as a garbage frame header), reads what the client sent so that
//! closing does not turn into a reset, and lets go after the client closes too, or after a
//! short linger.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::error::HandshakeError;
use super::metrics::TlsMetrics;
use super::stream::TlsStream;
use crate::accept::Handshake;

/// The first byte of every TLS record that starts a handshake (content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// How long a plain client on a TLS port may take to close after the server did.
const PLAIN_LINGER: Duration = Duration::from_secs(1);

/// Bounds of the handshake stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Handshakes in progress at most; further clients wait for a free slot.
    pub max_in_progress: usize,
    /// How long a connection may take from accept to the finished handshake.
    pub timeout: Duration,
}

impl Default for HandshakeLimits {
    /// 1024 handshakes, 10 s each. A handshake is mostly waiting for round trips, so a
    /// thousand in flight keep two cores busy at mobile latencies while holding a few
    /// megabytes; 10 s covers a slow mobile network's round trips with room to spare.
    fn default() -> Self {
        Self {
            max_in_progress: 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Turns accepted TCP connections into TLS connections, within [`HandshakeLimits`]. Cheap to
/// clone; clones share the slots and the counters.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    slots: Arc<Semaphore>,
    timeout: Duration,
    metrics: TlsMetrics,
}

impl TlsAcceptor {
    /// An acceptor for `config` (from [`tcp_gateway_config`](super::tcp_gateway_config) or
    /// [`http_config`](super::http_config)).
    pub fn new(config: Arc<ServerConfig>, limits: HandshakeLimits, metrics: TlsMetrics) -> Self {
        Self {
            config,
            slots: Arc::new(Semaphore::new(limits.max_in_progress.max(1))),
            timeout: limits.timeout,
            metrics,
        }
    }

    /// The counters this acceptor updates.
    pub fn metrics(&self) -> &TlsMetrics {
        &self.metrics
    }

    /// Turns an accepted connection into a TLS connection (see the module doc): waits for its
    /// first byte, turns a plain client away, waits for a handshake slot and runs the server
    /// side of the handshake, all within the deadline, and counts the outcome.
    pub async fn handshake(&self, stream: TcpStream) -> Result<TlsStream, HandshakeError> {
        let result = self.handshake_within_deadline(stream).await;
        match &result {
            Ok(_) => self.metrics.done.inc(),
            Err(HandshakeError::NotTls { .. }) => self.metrics.not_tls.inc(),
            Err(HandshakeError::TimedOut(_)) => self.metrics.timed_out.inc(),
            Err(HandshakeError::Closed | HandshakeError::Failed(_)) => self.metrics.failed.inc(),
        };
        result
    }

    async fn handshake_within_deadline(
        &self,
        stream: TcpStream,
    ) -> Result<TlsStream, HandshakeError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let first_byte = match tokio::time::timeout_at(deadline, first_byte(&stream)).await {
            Ok(Ok(Some(byte))) => byte,
            Ok(Ok(None)) => return Err(HandshakeError::Closed),
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => return Err(HandshakeError::TimedOut(self.timeout)),
        };
        if first_byte != TLS_HANDSHAKE_RECORD {
            refuse_plain(stream).await;
            return Err(HandshakeError::NotTls { first_byte });
        }
        let handshake = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let _in_progress = InProgress::new(&self.metrics);
            TlsStream::accept(self.config.clone(), stream).await
        };
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(HandshakeError::TimedOut(self.timeout)),
        }
    }
}

/// Counts one handshake in progress for as long as it lives, also when the handshake future
/// is dropped half-way.
struct InProgress<'a>(&'a TlsMetrics);

impl<'a> InProgress<'a> {
    fn new(metrics: &'a TlsMetrics) -> Self {
        metrics.in_progress.inc();
        Self(metrics)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.in_progress.dec();
    }
}

/// The first byte the client sent, without taking it from the socket; `None` if it closed.
async fn first_byte(stream: &TcpStream) -> std::io::Result<Option<u8>> {
    let mut byte = [0; 1];
    match stream.peek(&mut byte).await? {
        0 => Ok(None),
        _ => Ok(Some(byte[0])),
    }
}

/// Closes a plain client's connection cleanly: FIN first, then read (and drop) what it sent
/// until it closes too or [`PLAIN_LINGER`] passes. Closing a socket with unread bytes would
/// send a reset instead, which the client may see before the orderly end.
async fn refuse_plain(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0; 1024];
    let drain = async { while let Ok(1..) = stream.read(&mut sink).await {} };
    let _ = tokio::time::timeout(PLAIN_LINGER, drain).await;
}

/// A TLS port: the accept loops of the TCP gateway and the HTTP listener run the handshake
/// in each connection's task.
impl Handshake for TlsAcceptor {
    type Stream = TlsStream;
    type Error = HandshakeError;

    async fn handshake(&self, stream: TcpStream) -> Result<TlsStream, HandshakeError> {
        TlsAcceptor::handshake(self, stream).await
    }
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("free_slots", &self.slots.available_permits())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
