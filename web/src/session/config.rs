//! How the H5 client tunes its [`ClientSession`](hongyan_shared::client::ClientSession).

use std::time::Duration;

use hongyan_shared::Transport;
use hongyan_shared::client::{SessionConfig, SyncConfig};

/// How many of a conversation's newest messages the session fetches to catch up after a
/// login (a reload, another browser) or a gap; older ones load when the user scrolls up. A
/// hundred fills a thread several screens high and keeps the first sync of many
/// conversations short.
pub const CATCH_UP: u64 = 100;

/// The WebSocket session of the H5 client: the Java clients' defaults, with conversation
/// history sync on (§9.4), so the client shows what the server keeps after a reload or from
/// another browser. `seed` must come from a real entropy source.
pub fn session_config(seed: u64) -> SessionConfig {
    let mut config = SessionConfig::new(Transport::WebSocket, seed);
    config.sync = Some(SyncConfig {
        catch_up: CATCH_UP,
        history_page: 50,
        // A page of the WebSocket transport is cheap; the default grace keeps a reordered
        // message from costing a request.
        gap_grace: Duration::from_millis(1000),
        ..SyncConfig::default()
    });
    config
}
