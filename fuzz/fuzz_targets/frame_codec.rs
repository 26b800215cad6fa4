//! The TCP frame codec (`FrameCodec::decode`) on an arbitrary byte stream, read in pieces of
//! arbitrary sizes, as a socket delivers it.
//!
//! Input: `[limit] [n] [n read sizes] [stream …]`. `limit` picks the body limit (0: the
//! default 6144 bytes, 255: 1 MiB, otherwise that many bytes); each read size is a number of
//! stream bytes handed over at once (0 means 256), used in turn.
//!
//! Checks, after every read:
//! - no panic;
//! - the frames decoded so far, framed again with `encode`, followed by what is still
//!   buffered, are exactly the bytes read: nothing lost, duplicated or reordered;
//! - every frame is non-empty and within the limit (and `encode` accepts it back);
//! - "incomplete" only while the header or the body is still short, and a bad header (zero or
//!   over the limit) is refused with exactly that error as soon as its 4 bytes are in, without
//!   consuming anything.

#![no_main]

use bytes::BytesMut;
use hongyan_shared::codec::frame::{DEFAULT_MAX_BODY, HEADER_LEN};
use hongyan_shared::{FrameCodec, FrameError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [limit, n, rest @ ..] = data else {
        return;
    };
    let max_body = match *limit {
        0 => DEFAULT_MAX_BODY,
        255 => 1 << 20,
        n => usize::from(n),
    };
    let (reads, stream) = rest.split_at(usize::from(*n).min(rest.len()));
    let codec = FrameCodec::new(max_body);

    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut reencoded = BytesMut::new();
    let mut sizes = reads
        .iter()
        .map(|&s| if s == 0 { 256 } else { usize::from(s) });
    while fed < stream.len() {
        let size = sizes.next().unwrap_or(stream.len());
        let chunk = &stream[fed..(fed + size).min(stream.len())];
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        let error = loop {
            match codec.decode(&mut buf) {
                Ok(Some(body)) => {
                    assert!(!body.is_empty() && body.len() <= max_body);
                    codec
                        .encode(&body, &mut reencoded)
                        .expect("a decoded frame is one the encoder accepts");
                }
                Ok(None) => {
                    if let Some(len) = announced(&buf) {
                        assert!((1..=max_body).contains(&len), "bad header left waiting");
                        assert!(
                            buf.len() < HEADER_LEN + len,
                            "a complete frame left waiting"
                        );
                    }
                    break None;
                }
                Err(error) => break Some(error),
            }
        };
        assert_eq!([&reencoded[..], &buf[..]].concat(), &stream[..fed]);
        if let Some(error) = error {
            let len = announced(&buf).expect("an error needs a complete header");
            let expected = if len == 0 {
                FrameError::Empty
            } else {
                FrameError::TooLarge { len, max: max_body }
            };
            assert!(len == 0 || len > max_body);
            assert_eq!(error, expected);
            // The connection is closed on a bad header: nothing after it is read.
            return;
        }
    }
});

/// The body length the buffered header announces, once all 4 bytes are in.
fn announced(buf: &[u8]) -> Option<usize> {
    let header: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(header) as usize)
}
