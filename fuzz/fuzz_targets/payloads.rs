//! The payload documents carried in `dataContent` (`LoginInfo`, `LoginResponse`,
//! `ErrorResponse`, `Kickout`), each decoded from the same arbitrary string, as a client or
//! the server reads them from a packet.
//!
//! Checks: no panic; every document that decodes survives `encode → decode` unchanged, and its
//! encoding is stable. (`KeepAlive` is always `{}` and the acknowledgement's payload is a bare
//! fingerprint: neither has a decoder.)

#![no_main]

use std::fmt::Debug;

use hongyan_shared::{DecodeError, ErrorResponse, Kickout, LoginInfo, LoginResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    round_trip(data, LoginInfo::decode, LoginInfo::to_json);
    round_trip(data, LoginResponse::decode, LoginResponse::to_json);
    round_trip(data, ErrorResponse::decode, ErrorResponse::to_json);
    round_trip(data, Kickout::decode, Kickout::to_json);
});

fn round_trip<T: PartialEq + Debug>(
    data: &str,
    decode: fn(&str) -> Result<T, DecodeError>,
    encode: fn(&T) -> String,
) {
    let Ok(document) = decode(data) else {
        return;
    };
    let json = encode(&document);
    let again = decode(&json).expect("the encoder's output decodes");
    assert_eq!(again, document);
    assert_eq!(encode(&again), json);
}
