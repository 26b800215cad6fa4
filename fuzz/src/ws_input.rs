//! What a hostile WebSocket client sends (`ws_gateway`): frames described field by field
//! (fin, reserved bits, opcode, masking, payload), encoded as a client would, then raw bytes;
//! and a model of what RFC 6455 and the gateway's limits make of them.

use arbitrary::Arbitrary;

use crate::server_input::{ClientPacket, Seen};

/// One connection's input after the upgrade.
#[derive(Arbitrary, Debug)]
pub struct WsRun {
    /// The message limit (`ws_max_message`, also the frame limit): the default 65536, or a
    /// small one so that packets exceed it.
    pub small_limit: Option<u8>,
    /// Bytes per read (0: everything at once), so frames arrive in pieces.
    pub chunk: u8,
    /// The frames.
    pub frames: Vec<FrameInput>,
    /// Raw bytes after the frames: garbage, or the start of a frame.
    pub tail: Vec<u8>,
    /// Whether the peer then closes the TCP connection (else it stays, silent).
    pub eof: bool,
}

impl WsRun {
    /// The message and frame limit.
    pub fn limit(&self) -> usize {
        self.small_limit.map_or(65_536, |l| usize::from(l) + 1)
    }
}

/// One frame.
#[derive(Arbitrary, Debug)]
pub struct FrameInput {
    /// FIN.
    pub fin: bool,
    /// Reserved bits set (1 to 7), mostly none.
    pub rsv: Option<u8>,
    /// The opcode.
    pub opcode: Opcode,
    /// An unmasked frame, which a client must never send.
    pub unmasked: bool,
    /// The masking key.
    pub mask: [u8; 4],
    /// The payload.
    pub payload: PayloadInput,
}

/// An opcode.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0.
    Continuation,
    /// 0x1.
    Text,
    /// 0x2.
    Binary,
    /// 0x8.
    Close,
    /// 0x9.
    Ping,
    /// 0xA.
    Pong,
    /// A reserved one: 0x3–0x7 (data) or 0xB–0xF (control).
    Reserved(u8),
}

impl Opcode {
    fn code(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
            Self::Reserved(n) => [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF][usize::from(n % 10)],
        }
    }

    fn is_control(self) -> bool {
        self.code() & 0x8 != 0
    }
}

/// A payload.
#[derive(Arbitrary, Debug)]
pub enum PayloadInput {
    /// A packet, as JSON.
    Packet(ClientPacket),
    /// Any text.
    Text(String),
    /// Any bytes.
    Bytes(Vec<u8>),
    /// One byte repeated, to reach the limits.
    Repeat(u8, u16),
}

impl PayloadInput {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Packet(packet) => packet.to_bytes(None, &Seen::default()),
            Self::Text(text) => text.as_bytes().to_vec(),
            Self::Bytes(bytes) => bytes.clone(),
            Self::Repeat(byte, count) => vec![*byte; usize::from(*count)],
        }
    }
}

/// What the gateway must make of the input, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A text message: one packet body.
    Packet(Vec<u8>),
    /// The peer closed the WebSocket.
    Closed,
    /// The session ends: a message over the limit (1009).
    TooLarge,
    /// The session ends: a binary message.
    Binary,
    /// The session ends: a protocol violation.
    Protocol,
}

impl Expected {
    /// Whether the session ends with it.
    pub fn ends(&self) -> bool {
        !matches!(self, Self::Packet(_))
    }
}

/// The bytes of `frames` as a client writes them: minimal length encoding, masked unless
/// told otherwise.
pub fn encode(frames: &[FrameInput]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        let payload = frame.payload.bytes();
        let rsv = frame.rsv.map_or(0, |r| r % 7 + 1);
        out.push(u8::from(frame.fin) << 7 | rsv << 4 | frame.opcode.code());
        let mask_bit = if frame.unmasked { 0 } else { 0x80 };
        match payload.len() {
            len @ 0..=125 => out.push(mask_bit | u8::try_from(len).expect("at most 125")),
            len @ 126..=65_535 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&u16::try_from(len).expect("fits").to_be_bytes());
            }
            len => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if frame.unmasked {
            out.extend_from_slice(&payload);
        } else {
            out.extend_from_slice(&frame.mask);
            out.extend(
                payload
                    .iter()
                    .zip(frame.mask.iter().cycle())
                    .map(|(b, m)| b ^ m),
            );
        }
    }
    out
}

/// What RFC 6455, as the gateway's WebSocket library applies it, and the gateway's limit
/// make of `frames`: every text message, then what ends the session if anything does. A
/// reserved opcode is refused with the header, a length over the limit as soon as the header
/// is read, everything else once the payload is in; a fragmented text message is checked for
/// UTF-8 fragment by fragment.
pub fn model(frames: &[FrameInput], limit: usize) -> Vec<Expected> {
    let mut out = Vec::new();
    // The message being assembled: whether it is text, and its bytes.
    let mut incomplete: Option<(bool, Vec<u8>)> = None;
    for frame in frames {
        let payload = frame.payload.bytes();
        let end = |e: Expected, mut out: Vec<Expected>| {
            out.push(e);
            out
        };
        if matches!(frame.opcode, Opcode::Reserved(_)) {
            // Refused with the header, before its length is looked at.
            return end(Expected::Protocol, out);
        }
        if payload.len() > limit {
            return end(Expected::TooLarge, out);
        }
        if frame.unmasked || frame.rsv.is_some() {
            return end(Expected::Protocol, out);
        }
        if frame.opcode.is_control() {
            if !frame.fin || payload.len() > 125 {
                return end(Expected::Protocol, out);
            }
            match frame.opcode {
                Opcode::Close => {
                    let closed = match payload.len() {
                        0 => Expected::Closed,
                        1 => Expected::Protocol,
                        _ if std::str::from_utf8(&payload[2..]).is_err() => Expected::Protocol,
                        _ => Expected::Closed,
                    };
                    return end(closed, out);
                }
                Opcode::Ping | Opcode::Pong => continue,
                _ => return end(Expected::Protocol, out),
            }
        }
        let (text, bytes) = match (frame.opcode, incomplete.take()) {
            (Opcode::Continuation, None) => return end(Expected::Protocol, out),
            (Opcode::Continuation, Some((text, mut bytes))) => {
                if bytes.len() + payload.len() > limit {
                    return end(Expected::TooLarge, out);
                }
                bytes.extend_from_slice(&payload);
                (text, bytes)
            }
            (_, Some(_)) => return end(Expected::Protocol, out),
            (Opcode::Text, None) => (true, payload),
            (Opcode::Binary, None) => (false, payload),
            _ => return end(Expected::Protocol, out),
        };
        if text && !frame.fin && utf8_broken(&bytes) {
            return end(Expected::Protocol, out);
        }
        if !frame.fin {
            incomplete = Some((text, bytes));
            continue;
        }
        if !text {
            return end(Expected::Binary, out);
        }
        if std::str::from_utf8(&bytes).is_err() {
            return end(Expected::Protocol, out);
        }
        out.push(Expected::Packet(bytes));
    }
    out
}

/// Whether `bytes` cannot be the start of UTF-8 text (it is not merely cut short).
fn utf8_broken(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_err_and(|e| e.error_len().is_some())
}
