//! UDP: one JSON packet per datagram (§3.2), from a fresh socket (new source port) per
//! connection, as the Java client does on every relogin.

use std::net::SocketAddr;

use hongyan_shared::Packet;
use tokio::net::{UdpSocket, lookup_host};
use tokio::sync::mpsc;

use super::link::{LinkError, LinkEvent, LinkReporter, with_timeout};
use crate::config::ClientConfig;

pub(super) async fn run(
    addr: &str,
    config: &ClientConfig,
    mut outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
    let target: SocketAddr = with_timeout(config.connect_timeout, lookup_host(addr))
        .await?
        .next()
        .ok_or_else(|| LinkError::NoAddress(addr.to_owned()))?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    tracing::debug!(local = ?socket.local_addr().ok(), "udp socket ready");
    reporter.report(LinkEvent::Connected).await?;
    let mut buf = vec![0u8; config.max_udp_datagram.max(1)];
    let mut body = Vec::new();
    loop {
        tokio::select! {
            packet = outbound.recv() => {
                let Some(packet) = packet else {
                    return Ok(());
                };
                body.clear();
                packet.encode_into(&mut body);
                if let Err(error) = socket.send(&body).await {
                    // UDP has no link to lose: the keepalive timeout notices a dead server.
                    tracing::debug!(%error, "datagram not sent");
                }
            }
            received = socket.recv(&mut buf) => match received {
                Ok(len) => reporter.packet(&buf[..len]).await?,
                // An ICMP "port unreachable" surfaces here; the keepalive timeout handles it.
                Err(error) => tracing::debug!(%error, "udp receive error"),
            }
        }
    }
}
