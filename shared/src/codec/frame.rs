//! TCP framing (§3.1): a 4-byte big-endian body length, then the UTF-8 JSON body.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The reference's maximum frame body, in bytes, on the server and in the Java TCP client.
pub const DEFAULT_MAX_BODY: usize = 6144;

/// The length-prefix size.
pub const HEADER_LEN: usize = 4;

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announced an empty body; the reference closes the connection.
    #[error("zero-length frame")]
    Empty,
    /// The header announced (or the encoder was given) a body over the limit. Refused as soon
    /// as the header arrives, before the body is read.
    #[error("frame body of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced or attempted body length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Splits a byte stream into frame bodies and frames outgoing bodies, enforcing one body limit
/// in both directions (a peer with the same limit must never receive a frame it would refuse).
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_body: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BODY)
    }
}

impl FrameCodec {
    /// A codec whose frame bodies are at most `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        Self { max_body }
    }

    /// The body limit.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Takes the next complete frame body out of `buf`, if one has arrived. Fails as soon as a
    /// header is invalid, without waiting for its body.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(header.try_into().expect("slice is 4 bytes")) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max_body {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_body,
            });
        }
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// Appends `body` as one frame to `out`.
    pub fn encode(&self, body: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
        self.check(body.len())?;
        out.reserve(HEADER_LEN + body.len());
        out.put_u32(u32::try_from(body.len()).expect("checked against max_body"));
        out.put_slice(body);
        Ok(())
    }

    /// Whether a body of `len` bytes may be sent.
    pub fn check(&self, len: usize) -> Result<(), FrameError> {
        if len == 0 {
            Err(FrameError::Empty)
        } else if len > self.max_body || u32::try_from(len).is_err() {
            Err(FrameError::TooLarge {
                len,
                max: self.max_body,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_frame_from_the_wire_samples_decodes() {
        let body = br#"{"bridge":false,"type":1,"dataContent":"{}","from":"tcp6841A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#;
        assert_eq!(body.len(), 0x66);
        let mut buf = BytesMut::from(&[0, 0, 0, 0x66][..]);
        buf.extend_from_slice(body);
        let codec = FrameCodec::default();
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &body[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_and_coalesced_frames_are_reassembled() {
        let codec = FrameCodec::default();
        let mut wire = BytesMut::new();
        codec.encode(b"{\"a\":1}", &mut wire).unwrap();
        codec.encode(b"{\"b\":2}", &mut wire).unwrap();
        let mut buf = BytesMut::new();
        let mut bodies = Vec::new();
        for byte in wire {
            buf.extend_from_slice(&[byte]);
            while let Some(body) = codec.decode(&mut buf).unwrap() {
                bodies.push(body);
            }
        }
        assert_eq!(bodies, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
    }

    #[test]
    fn oversized_header_fails_before_the_body_arrives() {
        let codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert_eq!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 6144
            })
        );
        let mut buf = BytesMut::from(&[0, 0, 0x18, 0x01][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 6145, .. })
        ));
    }

    #[test]
    fn zero_length_frame_is_an_error() {
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        assert_eq!(
            FrameCodec::default().decode(&mut buf),
            Err(FrameError::Empty)
        );
    }

    #[test]
    fn encoder_refuses_bodies_the_peer_would_refuse() {
        let codec = FrameCodec::new(10);
        let mut out = BytesMut::new();
        assert!(codec.encode(&[b'x'; 10], &mut out).is_ok());
        assert!(codec.encode(&[b'x'; 11], &mut out).is_err());
        assert!(codec.encode(&[], &mut out).is_err());
    }
}
