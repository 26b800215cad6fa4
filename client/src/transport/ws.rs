//! WebSocket: one JSON packet per text frame, no subprotocol (§3.3).

use futures_util::{SinkExt, StreamExt};
use hongyan_shared::Packet;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::link::{LinkError, LinkEvent, LinkReporter, with_timeout};
use crate::config::ClientConfig;

pub(super) async fn run(
    url: &str,
    config: &ClientConfig,
    mut outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_ws_message))
        .max_frame_size(Some(config.max_ws_message));
    let (socket, _response) = with_timeout(
        config.connect_timeout,
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config), true),
    )
    .await?;
    tracing::debug!("websocket connected");
    reporter.report(LinkEvent::Connected).await?;
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            packet = outbound.recv() => {
                let Some(packet) = packet else {
                    sink.close().await.ok();
                    return Ok(());
                };
                sink.send(Message::text(packet.to_json())).await?;
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => reporter.packet(text.as_bytes()).await?,
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(other)) => tracing::trace!(kind = ?other, "ignoring non-text frame"),
                Some(Err(error)) => return Err(error.into()),
            }
        }
    }
}
