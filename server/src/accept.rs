//! What turns an accepted TCP connection into the stream a listener serves: nothing for a
//! plain port ([`Plain`]), a TLS handshake for a TLS port (`tls::TlsAcceptor`).
//!
//! An accept loop is generic over its [`Handshake`], so the connection limit, the deadlines
//! and everything after them are written once for both. The loop accepts, decides whether the
//! connection is admitted at all (the connection limit, before any handshake work), and runs
//! the [`handshake`](Handshake::handshake) in the connection's own task, which bounds it
//! itself (the TLS acceptor: a deadline, and a bounded number of handshakes in progress that a
//! connection joins only once it has sent its first byte).

use std::fmt::Display;
use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How an accepted TCP connection becomes the stream the server speaks its protocol on.
pub(crate) trait Handshake: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Stream: AsyncRead + AsyncWrite + Readable + Unpin + Send + 'static;
    /// Why a handshake failed (the handshake counts its own outcomes; the loop only logs it).
    type Error: Display + Send;

    /// Runs the handshake on `stream`, within its own deadline and bounds.
    fn handshake(
        &self,
        stream: TcpStream,
    ) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send;
}

/// A plain port: the accepted stream is served as it is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plain;

impl Handshake for Plain {
    type Stream = TcpStream;
    type Error = std::convert::Infallible;

    async fn handshake(&self, stream: TcpStream) -> Result<TcpStream, Self::Error> {
        Ok(stream)
    }
}

/// A stream that can wait until a read would make progress without being handed a buffer, so
/// that a connection waiting for its peer holds none (the TCP gateway's pipe waits this way).
pub(crate) trait Readable {
    /// Waits until a read would return data or the end of the stream. Cancel-safe.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Readable for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
}
