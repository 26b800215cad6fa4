//! The WebSocket gateway's message handling: arbitrary frames (any fin, reserved bits,
//! opcode, masking and payload, among them packets, binary messages, fragments, pings,
//! closes, messages over the limit), followed by raw bytes, read in pieces of arbitrary size
//! by the WebSocket library the gateway runs (tungstenite, configured as the gateway
//! configures it: the message and frame limit) and turned into what a session gets by the
//! gateway's own step (`engine::ws_inbound`).
//!
//! Checks:
//! - no panic;
//! - the packets out are the packets in: every text message of the frames, in order, and
//!   nothing else, until the session ends;
//! - the session ends only for a documented reason, and for the right one: the peer's close,
//!   a message over the limit (`TooLarge`, closed with 1009), a binary message, or a protocol
//!   violation (an unmasked or reserved-bit frame, a fragmented or oversized control frame, a
//!   continuation out of place, text that is not UTF-8, a reserved opcode), exactly as RFC 6455
//!   and the limit say (`hongyan_fuzz::ws_input::model`); a peer that disconnects without a
//!   close frame ends it as a protocol violation;
//! - the close frame the session ends with is 1009 with the limit for a message over it, else
//!   1000 "Bye", and fits a control frame.
//!
//! Raw bytes after the frames may do anything a byte stream can, so after the frames only the
//! packets already expected are checked.

#![no_main]

use std::io::{self, Read, Write};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use hongyan_fuzz::ws_input::{Expected, WsRun, encode, model};
use hongyan_server::engine::{PipeError, WsInbound, ws_close_frame, ws_inbound};
use libfuzzer_sys::fuzz_target;
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

fuzz_target!(|run: WsRun| {
    let limit = run.limit();
    let mut bytes = encode(&run.frames);
    let framed = bytes.len();
    bytes.extend_from_slice(&run.tail);
    let stream = Peer {
        bytes,
        at: 0,
        chunk: usize::from(run.chunk),
        eof: run.eof,
    };
    // As the gateway configures its upgrade (`gateway/ws.rs`).
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(4096)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let mut socket = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let mut got = Vec::new();
    loop {
        let item = match socket.read() {
            Ok(message) => match axum_message(message) {
                Some(message) => Some(Ok(message)),
                None => continue,
            },
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            // The stream ends: what axum's WebSocket yields as its end.
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => None,
            Err(e) => Some(Err(axum::Error::new(e))),
        };
        match ws_inbound(item, limit) {
            WsInbound::Packet(body) => got.push(Expected::Packet(body.to_vec())),
            WsInbound::Ignored => {}
            WsInbound::Closed => {
                got.push(Expected::Closed);
                check_close(None, limit);
                break;
            }
            WsInbound::Refused(error) => {
                got.push(match &error {
                    PipeError::TooLarge { max, .. } => {
                        assert_eq!(*max, limit);
                        Expected::TooLarge
                    }
                    PipeError::BinaryFrame => Expected::Binary,
                    PipeError::WebSocket(_) => Expected::Protocol,
                    other => panic!("a refusal no WebSocket yields: {other}"),
                });
                check_close(Some(&error), limit);
                break;
            }
        }
    }

    let expected = model(&run.frames, limit);
    let ended = expected.last().is_some_and(Expected::ends);
    if ended || (run.tail.is_empty() && !run.eof) {
        assert_eq!(got, expected, "{framed} bytes of frames");
    } else if run.tail.is_empty() {
        // The peer disconnected without a close frame.
        let mut expected = expected;
        expected.push(Expected::Protocol);
        assert_eq!(got, expected, "{framed} bytes of frames, then the end");
    } else {
        assert!(
            got.len() >= expected.len() && got[..expected.len()] == expected[..],
            "{got:?} does not start with {expected:?}"
        );
    }
});

/// What axum's WebSocket makes of a library message (`Message::from_tungstenite`, private
/// to axum): the same message in axum's types; raw frames are skipped.
fn axum_message(message: tungstenite::Message) -> Option<Message> {
    Some(match message {
        tungstenite::Message::Text(text) => Message::Text(Utf8Bytes::from(text.as_str())),
        tungstenite::Message::Binary(data) => Message::Binary(data),
        tungstenite::Message::Ping(data) => Message::Ping(data),
        tungstenite::Message::Pong(data) => Message::Pong(data),
        tungstenite::Message::Close(frame) => Message::Close(frame.map(|f| CloseFrame {
            code: f.code.into(),
            reason: Utf8Bytes::from(f.reason.as_str()),
        })),
        tungstenite::Message::Frame(_) => return None,
    })
}

/// The close frame a session ends with says why, and fits a control frame.
fn check_close(error: Option<&PipeError>, limit: usize) {
    let frame = ws_close_frame(error);
    match error {
        Some(PipeError::TooLarge { .. }) => {
            assert_eq!(frame.code, 1009);
            assert!(frame.reason.as_str().contains(&limit.to_string()));
        }
        _ => assert_eq!((frame.code, frame.reason.as_str()), (1000, "Bye")),
    }
    assert!(
        2 + frame.reason.len() <= 125,
        "a close frame over 125 bytes"
    );
}

/// The client's side of the TCP connection: it sends `bytes` in pieces of `chunk` bytes
/// (all at once for 0), then either closes (`eof`) or stays silent; whatever the server
/// writes (pongs, close replies) is taken and dropped.
struct Peer {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
    eof: bool,
}

impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.bytes.len() - self.at;
        if left == 0 {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let piece = if self.chunk == 0 { left } else { self.chunk };
        let n = piece.min(left).min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
