//! TCP: 4-byte big-endian length-prefixed JSON frames (§3.1), in the clear or inside TLS from
//! the first byte (§3.5), the frames unchanged.

use bytes::BytesMut;
use hongyan_shared::{FrameCodec, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::link::{LinkError, LinkEvent, LinkReporter, with_timeout};
use crate::config::ClientConfig;
use crate::tls::TlsConnector;

/// The host part of `host:port` (`[::1]:8901` gives `[::1]`).
pub(super) fn host(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _port)| host)
}

pub(super) async fn run(
    addr: &str,
    config: &ClientConfig,
    tls: Option<&TlsConnector>,
    outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
    match (config.endpoint.uses_tls(), tls) {
        (false, _) => {
            let stream = with_timeout(config.connect_timeout, connect(addr)).await?;
            frames(stream, config, outbound, reporter).await
        }
        (true, Some(tls)) => {
            let stream = with_timeout(config.connect_timeout, async {
                let stream = tls.connect(connect(addr).await?).await?;
                let (_, session) = stream.get_ref();
                tracing::debug!(version = ?session.protocol_version(), "tls established");
                Ok::<_, std::io::Error>(stream)
            })
            .await?;
            frames(stream, config, outbound, reporter).await
        }
        (true, None) => Err(LinkError::NoTls),
    }
}

async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    tracing::debug!(local = ?stream.local_addr().ok(), "tcp connected");
    Ok(stream)
}

/// Exchanges frames on an open connection until either side closes it.
async fn frames(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    config: &ClientConfig,
    mut outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
    reporter.report(LinkEvent::Connected).await?;
    let inbound = FrameCodec::new(config.max_tcp_frame);
    let outgoing = FrameCodec::new(config.session.max_packet_len);
    let mut read_buf = BytesMut::with_capacity(8 * 1024);
    let mut write_buf = BytesMut::new();
    let mut body = Vec::new();
    loop {
        // `select!` drops the losing future before running a branch, so the branch may use
        // the stream the read borrowed.
        tokio::select! {
            packet = outbound.recv() => {
                let Some(packet) = packet else {
                    // Closed by the driver: everything queued was written. (Over TLS this
                    // sends close_notify first.)
                    stream.shutdown().await.ok();
                    return Ok(());
                };
                body.clear();
                packet.encode_into(&mut body);
                match outgoing.encode(&body, &mut write_buf) {
                    Ok(()) => {
                        stream.write_all_buf(&mut write_buf).await?;
                        // A TLS stream holds written bytes until flushed.
                        stream.flush().await?;
                    }
                    Err(error) => tracing::warn!(%error, "packet not sent"),
                }
            }
            read = stream.read_buf(&mut read_buf) => {
                if read? == 0 {
                    return Ok(());
                }
                while let Some(frame) = inbound.decode(&mut read_buf)? {
                    reporter.packet(&frame).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_what_precedes_the_port() {
        assert_eq!(host("im.example:8901"), "im.example");
        assert_eq!(host("127.0.0.1:8901"), "127.0.0.1");
        assert_eq!(host("[::1]:8901"), "[::1]");
    }
}
