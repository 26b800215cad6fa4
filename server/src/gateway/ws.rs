//! The WebSocket gateway (§3.3): one packet per text frame at `/websocket` on the HTTP
//! listener.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use hongyan_shared::Transport;

use super::driver;
use super::ws_message::{WsInbound, ws_close_frame, ws_inbound};
use crate::http::listen::ConnectionPermit;
use crate::http::state::HttpState;
use crate::metrics::Refusal;
use crate::pipe::{Pipe, PipeError, PipeProperties};

/// tungstenite reads into a 128 KiB buffer by default, allocated when the connection opens
/// and kept for its life; it grows only while a larger frame arrives. Packets are a few hundred
/// bytes and most connections idle, so 1 KiB: at 4 KiB it was most of an idle WebSocket
/// session's memory (measured: 8.9 KB per connection at 4 KiB, see docs/PERFORMANCE.md).
const READ_BUFFER: usize = 1024;
/// Frames are collected up to this many bytes and written when the session loop flushes (at
/// the end of a batch); 0 would write every frame with its own system call.
const WRITE_BUFFER: usize = 4096;

pub(crate) struct WsPipe {
    socket: WebSocket,
    max_message: usize,
}

impl Pipe for WsPipe {
    fn properties(&self) -> PipeProperties {
        PipeProperties::of(Transport::WebSocket, self.max_message)
    }

    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        loop {
            // Pings are answered by the library; control frames do not count as traffic for
            // the idle timer (§3.3), so they never leave this loop.
            return match ws_inbound(self.socket.recv().await, self.max_message) {
                WsInbound::Packet(body) => Some(Ok(body)),
                WsInbound::Ignored => continue,
                WsInbound::Closed => None,
                WsInbound::Refused(error) => Some(Err(error)),
            };
        }
    }

    async fn send(&mut self, body: Bytes) -> Result<(), PipeError> {
        let text = Utf8Bytes::try_from(body)
            .map_err(|_| PipeError::WebSocket("outgoing packet is not UTF-8".into()))?;
        self.socket
            .feed(Message::Text(text))
            .await
            .map_err(|e| PipeError::WebSocket(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        self.socket
            .flush()
            .await
            .map_err(|e| PipeError::WebSocket(e.to_string()))
    }

    async fn close(mut self, error: Option<PipeError>) {
        let frame = ws_close_frame(error.as_ref());
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}

/// `GET /websocket`: upgrades to a MobileIMSDK session (no subprotocol, no compression), from
/// an allowed Origin (`ws_allowed_origins`). The session keeps the connection's permit of the
/// connection limit, so it counts once; a connection beyond the limit never gets here (the
/// HTTP listener answers it 503).
pub(crate) async fn upgrade(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(permit): Extension<ConnectionPermit>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(allowed) = &state.core.config.ws_allowed_origins {
        let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let origin = text(header::ORIGIN);
        if !allowed.allows(origin, text(header::HOST)) {
            state.core.metrics.refused(Refusal::ws_origin);
            tracing::debug!(%peer, ?origin, "websocket upgrade from an origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    let max_message = state.core.config.ws_max_message;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| {
            state.tracker.track_future(async move {
                let pipe = WsPipe {
                    socket,
                    max_message,
                };
                driver::drive(state.core, pipe, peer, &state.shutdown).await;
                drop(permit);
            })
        })
}
