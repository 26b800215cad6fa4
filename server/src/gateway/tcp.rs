//! The TCP gateway (§3.1): 4-byte big-endian length-prefixed JSON frames, on a plain port or,
//! unchanged, inside TLS (§3.5): the accept loop is generic over the [`Handshake`] that turns
//! an accepted connection into the stream the frames travel on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::future::Either;
use hongyan_shared::{FrameCodec, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver;
use crate::accept::{Handshake, Readable};
use crate::core::Core;
use crate::limits::AddressSlot;
use crate::log_limit::LogLimit;
use crate::metrics::Refusal;
use crate::pipe::{Pipe, PipeError, PipeProperties};

static REFUSED: LogLimit = LogLimit::warn("connection limit reached; tcp connection refused");
static CROWDED: LogLimit =
    LogLimit::warn("address holds max_connections_per_ip; tcp connection refused");

/// Bytes read per `read` call: enough for a burst of packets in one system call.
const READ_CHUNK: usize = 4096;
/// Queued output above which a send writes through instead of waiting for the flush.
const WRITE_HIGH_WATER: usize = 32 * 1024;
/// One TCP connection, on a plain `TcpStream` or a [`TlsStream`](crate::tls::TlsStream). It
/// owns the whole stream (one task reads and writes it, so no split halves and their shared
/// `Arc`), and holds a read buffer only while bytes are in it: it waits for readability with
/// no buffer, reads a chunk, and drops the buffer once every frame in it is taken. An idle
/// connection therefore holds no read buffer at all (nor does its TLS stream).
pub(crate) struct TcpPipe<S> {
    stream: S,
    read: BytesMut,
    out: BytesMut,
    codec: FrameCodec,
}

impl<S> TcpPipe<S> {
    fn new(stream: S, codec: FrameCodec) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
            out: BytesMut::new(),
            codec,
        }
    }
}

impl<S> Pipe for TcpPipe<S>
where
    S: AsyncRead + AsyncWrite + Readable + Unpin + Send + 'static,
{
    fn properties(&self) -> PipeProperties {
        PipeProperties::of(Transport::Tcp, self.codec.max_body())
    }

    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        loop {
            match self.codec.decode(&mut self.read) {
                Ok(Some(body)) => return Some(Ok(body)),
                Ok(None) => {}
                Err(e) => return Some(Err(e.into())),
            }
            if self.read.is_empty() {
                // Frames already taken keep their bytes alive; this only lets go of ours.
                self.read = BytesMut::new();
            }
            // Cancel-safe: waiting for readability consumes nothing.
            if let Err(e) = self.stream.readable().await {
                return Some(Err(e.into()));
            }
            if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
                self.read.reserve(READ_CHUNK);
            }
            // Ready now, so this reads at once (cancel-safe too: it reads nothing if it waits).
            // Unlike `try_read_buf`, a read that does not fill the buffer tells tokio the
            // socket is drained, which saves the next `read`, that would only return `EAGAIN`.
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) if self.read.is_empty() => return None,
                Ok(0) => {
                    return Some(Err(PipeError::Io(std::io::ErrorKind::UnexpectedEof.into())));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    async fn send(&mut self, body: Bytes) -> Result<(), PipeError> {
        self.codec.encode(&body, &mut self.out)?;
        if self.out.len() >= WRITE_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            // A TLS stream encrypts what it is given and sends it by the flush; a plain
            // stream has nothing left to flush.
            self.stream.flush().await?;
            if self.out.capacity() > READ_CHUNK {
                // A burst is over: an idle connection keeps no large write buffer.
                self.out = BytesMut::new();
            } else {
                self.out.clear();
            }
        }
        Ok(())
    }

    async fn close(mut self, _error: Option<PipeError>) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}

/// Accepts connections until shutdown, one task per connection, at most as many as `limiter`
/// has permits (shared with the HTTP listener, WebSocket sessions included), and at most
/// `max_connections_per_ip` from one address (counted with its HTTP connections). `handshake`
/// turns each accepted connection into its stream, in the connection's task, after the limits
/// are checked (a refused connection costs no handshake work).
pub(crate) async fn serve<H: Handshake>(
    listener: TcpListener,
    handshake: H,
    core: Arc<Core>,
    limiter: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let codec = FrameCodec::new(core.config.max_frame_body);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limiter.clone().try_acquire_owned() else {
            core.metrics.refused(Refusal::connection_limit);
            if REFUSED.allow() {
                tracing::warn!(%peer, "connection limit reached; tcp connection refused");
            }
            continue;
        };
        let Ok(slot) = core.limits.connection(peer.ip()) else {
            core.metrics.refused(Refusal::address_connections);
            if CROWDED.allow() {
                tracing::warn!(%peer, "address holds max_connections_per_ip; tcp connection refused");
            }
            continue;
        };
        // Linux hands out accepted sockets with the listener's TCP_NODELAY (see `bind_tcp`).
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        let accepted = Accepted {
            stream,
            peer,
            core: core.clone(),
            codec,
            shutdown: shutdown.clone(),
            permit,
            slot,
        };
        tracker.spawn(connection(handshake.clone(), accepted));
    }
}

/// An accepted connection within the limit, before its handshake.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    core: Arc<Core>,
    codec: FrameCodec,
    shutdown: CancellationToken,
    /// Held, never read: the connection's place in `max_connections`.
    permit: OwnedSemaphorePermit,
    /// Held, never read: the connection's place in its address's `max_connections_per_ip`.
    slot: Option<AddressSlot>,
}

/// One connection's task: its handshake, then its session. Made of combinators rather than
/// an `async fn`, which would keep its arguments (the stream before the handshake, the
/// acceptor) for the connection's whole life: the task is the larger of its two phases, and
/// the session phase holds nothing of the handshake's.
fn connection<H: Handshake>(
    handshake: H,
    accepted: Accepted,
) -> impl Future<Output = ()> + Send + use<H> {
    let Accepted {
        stream,
        peer,
        core,
        codec,
        shutdown,
        permit,
        slot,
    } = accepted;
    shake_hands(handshake, stream, peer, shutdown.clone()).then(move |stream| match stream {
        Some(stream) => {
            let session = driver::drive(core, TcpPipe::new(stream, codec), peer, &shutdown);
            Either::Left(session.map(move |()| drop((permit, slot))))
        }
        None => Either::Right(std::future::ready(())),
    })
}

/// Runs the handshake unless shutdown comes first (it does not wait for one: a handshake is
/// bounded by its own deadline anyway). The handshake's state is boxed for as long as it
/// runs (a TLS handshake's is a kilobyte), so the task is no larger for it.
async fn shake_hands<H: Handshake>(
    handshake: H,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) -> Option<H::Stream> {
    tokio::select! {
        () = shutdown.cancelled() => None,
        done = Box::pin(handshake.handshake(stream)) => match done {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "tcp handshake failed");
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::hooks::LoggingHooks;

    /// Every connection holds its session future for life; see `driver` for why it is small.
    #[tokio::test]
    async fn an_idle_tcp_session_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let core = Arc::new(Core::new(
            Config::loopback(),
            Arc::new(LoggingHooks),
            Arc::new(SystemClock),
        ));
        let token = CancellationToken::new();
        let pipe = TcpPipe::new(server, FrameCodec::default());
        let session = driver::drive(core, pipe, peer, &token);
        assert!(
            std::mem::size_of_val(&session) <= 1568,
            "{} bytes",
            std::mem::size_of_val(&session)
        );
    }

    /// The task of a connection, handshake and session, on a plain and on a TLS port: it lives
    /// as long as the connection. The handshake's state is not kept beside the session's (the
    /// task is the larger of the two phases, not their sum): the session's future (at most
    /// 1,568 bytes, above) plus the connection's permits (the connection limit, the address's
    /// share); and the TLS stream adds a pointer to its boxed state.
    #[tokio::test]
    async fn a_connection_task_stays_small_on_plain_and_tls_ports() {
        let core = Arc::new(Core::new(
            Config::loopback(),
            Arc::new(LoggingHooks),
            Arc::new(SystemClock),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limiter = Arc::new(Semaphore::new(2));
        let mut accepted = Vec::new();
        for _ in 0..2 {
            let _client = TcpStream::connect(addr).await.unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            accepted.push(Accepted {
                stream,
                peer,
                core: core.clone(),
                codec: FrameCodec::default(),
                shutdown: CancellationToken::new(),
                permit: limiter.clone().try_acquire_owned().unwrap(),
                slot: None,
            });
        }
        let cert = crate::tls::tests::support::TestCert::new(&["localhost"]);
        let dir = crate::tls::tests::support::TempDir::new();
        let files = cert.write_to(dir.path(), "gateway");
        let metrics = crate::tls::TlsMetrics::default();
        let certificate = crate::tls::ServerCertificate::load(files, metrics.clone()).unwrap();
        let config = crate::tls::tcp_gateway_config(certificate).unwrap();
        let tls = crate::tls::TlsAcceptor::new(config, Default::default(), metrics);

        let plain = connection(crate::accept::Plain, accepted.pop().unwrap());
        let tls = connection(tls, accepted.pop().unwrap());
        let (plain, tls) = (size_of_val(&plain), size_of_val(&tls));
        assert!(plain <= 1568 + 64, "plain: {plain} bytes");
        assert!(tls <= plain + 64, "TLS: {tls} bytes, plain: {plain}");
    }
}
