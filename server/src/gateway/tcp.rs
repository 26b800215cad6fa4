//! The TCP gateway (§3.1): 4-byte big-endian length-prefixed JSON frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hongyan_shared::{FrameCodec, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{Decoder, FramedRead};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Link, LinkError, driver};
use crate::core::Core;

/// Read buffer a connection starts with; it grows only while a large frame arrives.
const READ_BUFFER: usize = 512;
/// Queued output above which a send writes through instead of waiting for the flush.
const WRITE_HIGH_WATER: usize = 32 * 1024;

struct FrameDecoder(FrameCodec);

impl Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = LinkError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, LinkError> {
        Ok(self.0.decode(src)?)
    }
}

pub(crate) struct TcpLink {
    read: FramedRead<OwnedReadHalf, FrameDecoder>,
    write: OwnedWriteHalf,
    out: BytesMut,
    codec: FrameCodec,
}

impl TcpLink {
    fn new(stream: TcpStream, codec: FrameCodec) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read: FramedRead::with_capacity(read, FrameDecoder(codec), READ_BUFFER),
            write,
            out: BytesMut::new(),
            codec,
        }
    }
}

impl Link for TcpLink {
    const TRANSPORT: Transport = Transport::Tcp;

    async fn recv(&mut self) -> Option<Result<Bytes, LinkError>> {
        self.read.next().await
    }

    async fn send(&mut self, body: Bytes) -> Result<(), LinkError> {
        self.codec.encode(&body, &mut self.out)?;
        if self.out.len() >= WRITE_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        if !self.out.is_empty() {
            self.write.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn close(mut self, _error: Option<LinkError>) {
        let _ = self.flush().await;
        let _ = self.write.shutdown().await;
    }
}

/// Accepts connections until shutdown, one task per connection, at most as many as `limiter`
/// has permits (shared with the WebSocket gateway).
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
            tracing::warn!(%peer, "connection limit reached; tcp connection refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            accept(core, stream, peer, codec, &shutdown).await;
            drop(permit);
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
    driver::drive(core, TcpLink::new(stream, codec), peer, shutdown).await;
}
