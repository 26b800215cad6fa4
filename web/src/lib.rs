//! hongyan-web, the H5 client: a Leptos app (client-side rendered, wasm32) that speaks
//! MobileIMSDK v6 over a WebSocket through the same sans-IO session as the native client.
//!
//! # Layout
//! - [`state`]: the client's state as plain data ([`state::ChatState`], the login form, the
//!   connection status) with its rules and unit tests; no DOM.
//! - [`session`]: the driver that runs the shared [`ClientSession`] over a gloo-net WebSocket,
//!   turning UI commands into session inputs and session events into state updates.
//! - [`components`]: the Leptos components: login screen, conversation list, thread, composer
//!   and status badge. They read the state and send commands to the session.
//!
//! [`ClientSession`]: hongyan_shared::client::ClientSession
//!
//! `main.rs` only calls [`start`]; everything is in the library so browser tests can mount it.

pub mod components;
pub mod session;
pub mod state;

pub use components::App;

/// Installs the panic hook and console logger and mounts [`App`] on `<body>`.
pub fn start() {
    console_error_panic_hook::set_once();
    // A second logger (e.g. in tests) is harmless: keep the first.
    let _ = console_log::init_with_level(log::Level::Info);
    leptos::mount::mount_to_body(App);
}
