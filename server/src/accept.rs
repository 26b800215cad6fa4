//! What turns an accepted TCP connection into the stream a listener serves: nothing for a
//! plain port ([`Plain`]), a TLS handshake for a TLS port (`tls::TlsAcceptor`).
//!
//! An accept loop is generic over its [`Handshake`], so the connection limit, the deadlines
//! and everything after them are written once for both. The loop takes a
//! [`slot`](Handshake::slot) *before* it accepts (a handshake stage that is full then leaves
//! new connections in the kernel's backlog), decides whether the connection is admitted at
//! all (the connection limit, before any handshake work), and runs the
//! [`handshake`](Handshake::handshake) in the connection's own task.

use std::fmt::Display;
use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How an accepted TCP connection becomes the stream the server speaks its protocol on.
pub(crate) trait Handshake: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A place in the handshake stage, held from before `accept` until the handshake ends.
    type Slot: Send + 'static;
    /// Why a handshake failed (the handshake counts its own outcomes; the loop only logs it).
    type Error: Display + Send;

    /// Waits for room in the handshake stage.
    fn slot(&self) -> impl Future<Output = Self::Slot> + Send;

    /// Runs the handshake on `stream`, within its own deadline; `slot` is given up when it
    /// ends.
    fn handshake(
        &self,
        slot: Self::Slot,
        stream: TcpStream,
    ) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send;
}

/// A plain port: the accepted stream is served as it is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;
    type Slot = ();
    type Error = std::convert::Infallible;

    async fn slot(&self) {}

    async fn handshake(&self, (): (), stream: TcpStream) -> Result<TcpStream, Self::Error> {
        Ok(stream)
    }
}
