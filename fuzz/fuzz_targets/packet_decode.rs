//! The packet JSON decoder (`Packet::decode`) on arbitrary bytes, as any transport delivers
//! them.
//!
//! Checks: no panic; every packet that decodes survives `encode → decode` unchanged, and its
//! encoding is stable (`encode(decode(encode(p))) == encode(p)`), so what the server relays is
//! what it read, and relaying it twice changes nothing. Both encoders (`to_json`,
//! `encode_into`) write the same bytes.

#![no_main]

use hongyan_shared::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    let json = packet.to_json();
    let mut appended = b"prefix".to_vec();
    packet.encode_into(&mut appended);
    assert_eq!(&appended[6..], json.as_bytes());

    let again = Packet::decode(json.as_bytes()).expect("the encoder's output decodes");
    assert_eq!(again, packet);
    assert_eq!(again.to_json(), json);
});
