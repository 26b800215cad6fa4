//! The seed corpus of each target, made from the wire captures ([`crate::samples`]), so
//! every target starts from real packets and frames rather than from nothing.
//!
//! `cargo run --example seeds` writes them to `fuzz/seeds/<target>/capture-*`, where they
//! are committed beside the inputs of crashes found and fixed (`fuzz/seeds/<target>/crash-*`).
//! `client_session` has none of its own: its `Captured` operation draws from the same
//! captures.

use crate::samples;

/// A seed: its file name and contents.
pub type Seed = (String, Vec<u8>);

/// The seeds of the target named `target`.
pub fn for_target(target: &str) -> Vec<Seed> {
    match target {
        "frame_codec" => frame_codec(),
        "packet_decode" => numbered(
            samples::distinct_bodies()
                .into_iter()
                .map(|b| b.as_bytes().to_vec()),
        ),
        "payloads" => numbered(samples::payloads().into_iter().map(String::into_bytes)),
        _ => Vec::new(),
    }
}

/// Names seeds `capture-00`, `capture-01`, ….
fn numbered(contents: impl Iterator<Item = Vec<u8>>) -> Vec<Seed> {
    contents
        .enumerate()
        .map(|(i, c)| (format!("capture-{i:02}"), c))
        .collect()
}

/// A frame of each distinct capture under the default limit in one read, then all of them as
/// one TCP stream in reads of 7, 100 and 1 bytes (so headers and bodies are split), then a
/// frame over a tiny limit. The input layout is the one `fuzz_targets/frame_codec.rs`
/// documents.
fn frame_codec() -> Vec<Seed> {
    let bodies = samples::distinct_bodies();
    let mut seeds = numbered(
        bodies
            .iter()
            .map(|body| [&[0, 0][..], &samples::frame(body)].concat()),
    );
    let stream: Vec<u8> = bodies
        .iter()
        .flat_map(|body| samples::frame(body))
        .collect();
    seeds.push((
        "capture-stream-split".to_owned(),
        [&[0, 3, 7, 100, 1][..], &stream].concat(),
    ));
    seeds.push((
        "capture-over-limit".to_owned(),
        [&[64, 0][..], &samples::frame(bodies[0])].concat(),
    ));
    seeds
}
