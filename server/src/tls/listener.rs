//! A listener that yields finished TLS connections.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tracing::Instrument;

use super::handshake::TlsAcceptor;

/// Finished connections waiting for [`TlsListener::accept`]. Small: the consumer only spawns a
/// task per connection, and while it lags, handshake slots stay taken, which holds the accept
/// loop back.
const READY: usize = 16;

/// A TCP listener with the [`TlsAcceptor`]'s bounded handshake stage in front: `accept` returns
/// connections whose handshake has finished, in the order they finished. Handshakes run
/// concurrently in their own tasks, so a slow client delays no one else.
///
/// It is an axum [`Listener`](axum::serve::Listener), so `axum::serve` can run HTTPS on it;
/// with `into_make_service_with_connect_info::<SocketAddr>`, wrap it in
/// [`ListenerExt::tap_io`](axum::serve::ListenerExt::tap_io) (a no-op closure), which carries
/// the peer address through.
///
/// Dropping it stops accepting and closes the port; handshakes under way end on their own
/// within the deadline.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` (in a task on the current tokio runtime).
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY);
        let span = tracing::debug_span!("tls_listener", addr = %local_addr);
        tokio::spawn(accept_loop(listener, acceptor, tx).instrument(span));
        Ok(Self { ready, local_addr })
    }

    /// The next connection whose handshake finished, with the peer's address.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        self.ready
            .recv()
            .await
            .expect("the accept loop runs for as long as the listener exists")
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        TlsListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Takes a handshake slot, then a connection, and hands both to a handshake task; stops when
/// the [`TlsListener`] is dropped.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let slot = tokio::select! {
            slot = acceptor.slot() => slot,
            () = ready.closed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        // Linux hands out accepted sockets with the listener's TCP_NODELAY (the server's
        // `bind_tcp` sets it); elsewhere set it here.
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match acceptor.handshake(&slot, stream).await {
                // The listener may be gone by now; the connection then just closes.
                Ok(tls) => drop(ready.send((tls, peer)).await),
                Err(error) => tracing::debug!(%peer, %error, "no TLS connection"),
            }
            drop(slot);
        });
    }
}
