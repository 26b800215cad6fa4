//! The bridge between the UI and the shared sans-IO [`ClientSession`]: commands go in through a
//! [`SessionHandle`], the session's events come out as [`SessionUpdate`]s applied to the
//! [`ChatState`](crate::state::ChatState) signal.
//!
//! - `handle.rs`: the [`Command`]s the UI sends and the [`SessionHandle`] it sends them with.
//! - `driver.rs`: the task that owns the session and the gloo-net WebSocket (wasm32).
//! - `config.rs`: the session's tuning: the Java clients' defaults with history sync on.
//! - `events.rs`: the pure mapping from [`ClientEvent`]s to [`SessionUpdate`]s.
//! - `remembered.rs`: the tab's login in `sessionStorage`, so a reload logs in again.
//! - `entropy.rs`: fingerprints and session seeds from `crypto.getRandomValues`.
//!
//! [`ClientSession`]: hongyan_shared::client::ClientSession
//! [`ClientEvent`]: hongyan_shared::client::ClientEvent
//! [`SessionUpdate`]: crate::state::SessionUpdate

mod config;
mod driver;
mod entropy;
mod events;
mod handle;
pub mod remembered;

pub use config::{CATCH_UP, session_config};
pub use driver::spawn;
pub use entropy::{new_fingerprint, random_u64};
pub use events::updates_for;
pub use handle::{Command, SessionHandle};
