//! The TCP gateway (§3.1): 4-byte big-endian length-prefixed JSON frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hongyan_shared::{FrameCodec, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver;
use crate::core::Core;
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
/// One TCP connection. It owns the whole stream (one task reads and writes it, so no split
/// halves and their shared `Arc`), and holds a read buffer only while bytes are in it: it
/// waits for readability with no buffer, reads a chunk, and drops the buffer once every frame
/// in it is taken. An idle connection therefore holds no read buffer at all.
pub(crate) struct TcpPipe {
    stream: TcpStream,
    read: BytesMut,
    out: BytesMut,
    codec: FrameCodec,
}

impl TcpPipe {
    fn new(stream: TcpStream, codec: FrameCodec) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
            out: BytesMut::new(),
            codec,
        }
    }
}

impl Pipe for TcpPipe {
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
/// `max_connections_per_ip` from one address (counted with its HTTP connections).
pub(crate) async fn serve(
    listener: TcpListener,
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
        let core = core.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            accept(core, stream, peer, codec, &shutdown).await;
            drop((permit, slot));
        });
    }
}

async fn accept(
    core: Arc<Core>,
    stream: TcpStream,
    peer: SocketAddr,
    codec: FrameCodec,
    shutdown: &CancellationToken,
) {
    driver::drive(core, TcpPipe::new(stream, codec), peer, shutdown).await;
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
            std::mem::size_of_val(&session) <= 1536,
            "{} bytes",
            std::mem::size_of_val(&session)
        );
    }
}
