//! What hongyan's fuzz targets share: the captured packets they start from, the clock they move,
//! and the operations the state-machine targets are driven by.
//!
//! Each target in `fuzz_targets/` is one file that states, in its doc comment, the property it
//! checks; libFuzzer (through cargo-fuzz) feeds it inputs and reports any panic as a crash.
//! `scripts/fuzz` runs them; `docs/RELIABILITY.md` records how long and what they found.
//!
//! # Layout
//! - [`samples`]: the MobileIMSDK packets captured on the wire
//!   (`shared/tests/vectors/wire-samples.txt`), as bodies, TCP frames and payload documents:
//!   the seed corpora and the "real packet" operations of the state-machine targets.
//! - [`clock`]: a clock that only moves forward, by amounts taken from the input.
//! - [`session_input`]: the operations that drive a client session, decoded from the input
//!   with `arbitrary`.
//! - [`server_input`]: the operations that drive the server's protocol core: peers on each
//!   transport, hostile packets, the application's pushes and kicks, time.
//! - [`server_harness`]: the server core run as the gateways' session loop runs it, on
//!   in-memory pipes and a manual clock, with the checks of its invariants.
//! - [`udp_input`]: the operations of the UDP path: datagrams from many addresses, some
//!   over the inbound limit.
//! - [`ws_input`]: WebSocket frames field by field, their encoding, and a model of what the
//!   gateway must make of them.
//! - [`seeds`]: the seed corpus of each target, written to `fuzz/seeds/` by
//!   `cargo run --example seeds`.
//!
//! A target for another state machine is one more file in `fuzz_targets/` with, if it needs
//! one, its own operations module here, reusing [`samples`], [`clock`] and, for the server,
//! [`server_harness`].

pub mod clock;
pub mod samples;
pub mod seeds;
pub mod server_harness;
pub mod server_input;
pub mod session_input;
pub mod udp_input;
pub mod ws_input;
