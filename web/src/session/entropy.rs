//! Randomness for fingerprints and session seeds, from the browser's CSPRNG.

use hongyan_shared::Fingerprint;

/// Fills `buf` from `crypto.getRandomValues`.
fn fill(buf: &mut [u8]) {
    let crypto = web_sys::window()
        .and_then(|window| window.crypto().ok())
        .expect("the H5 client runs in a browser window, which has window.crypto");
    crypto
        .get_random_values_with_u8_array(buf)
        .expect("getRandomValues accepts up to 65536 bytes");
}

/// A fresh UUIDv4-style message fingerprint, as the Java SDK makes them.
pub fn new_fingerprint() -> Fingerprint {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    Fingerprint::from_random(u128::from_le_bytes(bytes))
}

/// 64 random bits, for [`SessionConfig::seed`](hongyan_shared::client::SessionConfig::seed).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
