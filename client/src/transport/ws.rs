//! WebSocket: one JSON packet per text frame, no subprotocol (§3.3); `wss://` over TLS.

use futures_util::{SinkExt, StreamExt};
use hongyan_shared::Packet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::link::{LinkError, LinkEvent, LinkReporter, with_timeout};
use crate::config::ClientConfig;
use crate::tls::{TlsConnector, TlsSetupError};

/// The host of a WebSocket URL (an IPv6 address keeps its brackets).
pub(super) fn host(url: &str) -> Result<String, TlsSetupError> {
    url.into_client_request()
        .ok()
        .and_then(|request| request.uri().host().map(str::to_owned))
        .ok_or_else(|| TlsSetupError::ServerName(url.to_owned()))
}

pub(super) async fn run(
    url: &str,
    config: &ClientConfig,
    tls: Option<&TlsConnector>,
    outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_ws_message))
        .max_frame_size(Some(config.max_ws_message));
    if !config.endpoint.uses_tls() {
        let (socket, _response) = with_timeout(
            config.connect_timeout,
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config), true),
        )
        .await?;
        return messages(socket, outbound, reporter).await;
    }
    let tls = tls.ok_or(LinkError::NoTls)?;
    let socket = with_timeout(config.connect_timeout, async {
        let request = url.into_client_request()?;
        let uri = request.uri();
        let host = uri.host().ok_or(WsError::Url(UrlError::NoHostName))?;
        let port = uri.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect(format!("{host}:{port}")).await?;
        tcp.set_nodelay(true)?;
        let stream = tls.connect(tcp).await?;
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config)).await?;
        Ok::<_, LinkError>(socket)
    })
    .await?;
    messages(socket, outbound, reporter).await
}

/// Exchanges text frames on an open WebSocket until either side closes it.
async fn messages<S: AsyncRead + AsyncWrite + Unpin>(
    socket: WebSocketStream<S>,
    mut outbound: mpsc::Receiver<Packet>,
    reporter: &LinkReporter,
) -> Result<(), LinkError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_comes_from_the_url() {
        assert_eq!(host("wss://im.example/websocket").unwrap(), "im.example");
        assert_eq!(host("wss://127.0.0.1:3000/websocket").unwrap(), "127.0.0.1");
        assert_eq!(host("wss://[::1]:3000/websocket").unwrap(), "[::1]");
        assert!(host("wss:///websocket").is_err());
    }
}
