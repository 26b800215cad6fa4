//! The end-to-end suite: real servers on real sockets, the native clients, and headless
//! Chromium against the built H5 client. Run one part with a filter, e.g.
//! `cargo test -p hongyan-tests --test e2e browser_`.
//!
//! Every file here is a module of this one test binary rather than a binary of its own: each
//! binary links the whole server, store and clients (some 90 MB in a debug build), so one
//! binary instead of thirty-odd saves gigabytes of disk and a minute of linking. Two stay
//! apart: `hardening_flood.rs` captures the process's log with a global subscriber, and
//! `soak.rs` has its own harness and flags.

mod api_support;
mod client_support;

mod api_auth;
mod api_browser;
mod api_history;
mod api_observability;
mod api_openapi;
mod api_push;
mod api_send_as;
mod api_sessions;
mod api_users;
mod api_webhooks;
mod browser_chat;
mod browser_history;
mod browser_session;
mod client_chat;
mod client_history;
mod client_many;
mod client_qos;
mod client_relogin;
mod client_transports;
mod conformance;
mod cross_transport;
mod hardening;
mod hardening_http;
mod hardening_udp;
mod limits;
mod malformed;
mod protocol_doc;
mod simulation;
mod store_forward;
mod tls_browser;
mod tls_https;
mod tls_tcp;
mod wire_samples;
