//! TCP: 4-byte big-endian length-prefixed JSON frames (§3.1).

use bytes::BytesMut;
use hongyan_shared::{FrameCodec, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::link::{LinkError, LinkEvent, LinkReporter, with_timeout};
use crate::config::ClientConfig;

pub(super) async fn run(
    addr: &str,
    config: &ClientConfig,
    mut outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
    let stream = with_timeout(config.connect_timeout, TcpStream::connect(addr)).await?;
    stream.set_nodelay(true)?;
    tracing::debug!(local = ?stream.local_addr().ok(), "tcp connected");
    reporter.report(LinkEvent::Connected).await?;
    let (mut reader, mut writer) = stream.into_split();
    let inbound = FrameCodec::new(config.max_tcp_frame);
    let outgoing = FrameCodec::new(config.session.max_packet_len);
    let mut read_buf = BytesMut::with_capacity(8 * 1024);
    let mut write_buf = BytesMut::new();
    let mut body = Vec::new();
    loop {
        tokio::select! {
            packet = outbound.recv() => {
                let Some(packet) = packet else {
                    // Closed by the driver: everything queued was written.
                    writer.shutdown().await.ok();
                    return Ok(());
                };
                body.clear();
                packet.encode_into(&mut body);
                match outgoing.encode(&body, &mut write_buf) {
                    Ok(()) => writer.write_all_buf(&mut write_buf).await?,
                    Err(error) => tracing::warn!(%error, "packet not sent"),
                }
            }
            read = reader.read_buf(&mut read_buf) => {
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
