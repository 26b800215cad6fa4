//! What one WebSocket message means for its session (§3.3), and the close frame a session
//! ends with: the WebSocket gateway's per-message step, without the socket, so that the
//! `ws_gateway` fuzz target runs the very rules.
//!
//! A text message is a packet body; pings and pongs are answered by the library and do not
//! count as traffic; a close frame ends the session; a binary message, one over the limit or
//! a protocol violation ends it too, with a close frame that says why where the protocol has
//! a code for it (1009 for a message too large), else the reference's 1000 "Bye".

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;

use crate::pipe::PipeError;

/// What one item of a WebSocket's message stream is for its session.
#[derive(Debug)]
pub enum WsInbound {
    /// A text message: one packet body.
    Packet(Bytes),
    /// A ping or a pong: answered by the library, not traffic; read on.
    Ignored,
    /// The peer closed the WebSocket (or the stream ended).
    Closed,
    /// The session ends because of this: a binary message, a message over the limit, a
    /// protocol violation.
    Refused(PipeError),
}

/// The meaning of `item`, the next item of a WebSocket's message stream (`None`: the stream
/// ended), for a session whose messages may be at most `max` bytes.
pub fn ws_inbound(item: Option<Result<Message, axum::Error>>, max: usize) -> WsInbound {
    match item {
        None | Some(Ok(Message::Close(_))) => WsInbound::Closed,
        Some(Ok(Message::Text(text))) => WsInbound::Packet(Bytes::from(text)),
        Some(Ok(Message::Binary(_))) => WsInbound::Refused(PipeError::BinaryFrame),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => WsInbound::Ignored,
        Some(Err(error)) => WsInbound::Refused(refusal(error, max)),
    }
}

/// A stream error as the session's reason to end: the library's own capacity error (a frame
/// or message over the limit) is [`PipeError::TooLarge`], anything else a protocol error.
fn refusal(error: axum::Error, max: usize) -> PipeError {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => match *error {
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size,
                ..
            }) => PipeError::TooLarge { len: size, max },
            other => PipeError::WebSocket(other.to_string()),
        },
        Err(other) => PipeError::WebSocket(other.to_string()),
    }
}

/// The close frame a session ends with, for why it ends: the reference closes with 1000
/// "Bye"; a message over the limit gets 1009 (§3.3), and since a WebSocket allows one close
/// frame, that one carries the 1009.
pub fn ws_close_frame(error: Option<&PipeError>) -> CloseFrame {
    match error {
        Some(PipeError::TooLarge { max, .. }) => CloseFrame {
            code: 1009,
            reason: Utf8Bytes::from(format!("Max frame length of {max} has been exceeded.")),
        },
        _ => CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("Bye"),
        },
    }
}
