//! The packets captured between MobileIMSDK's own server and clients, one per line of
//! `shared/tests/vectors/wire-samples.txt` (the vectors the codec tests check byte for byte).

use hongyan_shared::{FrameCodec, Packet, PacketType};

/// The capture file, compiled in so a target never reads the disk.
const VECTORS: &str = include_str!("../../shared/tests/vectors/wire-samples.txt");

/// Every captured packet body, in capture order.
pub fn bodies() -> impl Iterator<Item = &'static str> {
    VECTORS
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split_once(' ').expect("direction, space, body").1)
}

/// The captured bodies as a slice, for picking one by index.
pub fn body_list() -> &'static [&'static str] {
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| bodies().collect())
}

/// Every captured packet, decoded.
pub fn packets() -> impl Iterator<Item = Packet> {
    bodies().map(|body| Packet::decode(body.as_bytes()).expect("the captures decode"))
}

/// One captured body of each packet type, and one with non-ASCII text in it: the few that
/// cover the shapes the captures hold.
pub fn distinct_bodies() -> Vec<&'static str> {
    let mut seen = Vec::new();
    bodies()
        .filter(|body| {
            let packet = Packet::decode(body.as_bytes()).expect("the captures decode");
            let shape = (packet.kind, body.is_ascii());
            let new = !seen.contains(&shape);
            seen.push(shape);
            new
        })
        .collect()
}

/// The TCP frame that carries `body` (4-byte big-endian length, then the body).
pub fn frame(body: &str) -> Vec<u8> {
    let mut frame = bytes::BytesMut::new();
    FrameCodec::default()
        .encode(body.as_bytes(), &mut frame)
        .expect("the captures fit a frame");
    frame.to_vec()
}

/// The payload documents (`dataContent` of logins, login responses, errors and kickouts), each
/// once.
pub fn payloads() -> Vec<String> {
    let mut documents: Vec<String> = packets()
        .filter(|p| {
            matches!(
                p.kind,
                PacketType::Login
                    | PacketType::LoginResponse
                    | PacketType::Error
                    | PacketType::Kickout
            )
        })
        .filter_map(|p| p.data_content)
        .collect();
    documents.sort();
    documents.dedup();
    documents
}
