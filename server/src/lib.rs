//! hongyan's server: a MobileIMSDK v6-compatible IM server over TCP, UDP and WebSocket.
//! Section numbers (`§4.3`) refer to `docs/PROTOCOL.md`, the protocol as hongyan implements it.
//!
//! The server is a library first: bind it, then serve it until a shutdown signal.
//!
//! ```no_run
//! use std::sync::Arc;
//! use hongyan_server::{Config, LoggingHooks, Server};
//!
//! # async fn run() -> Result<(), hongyan_server::ServerError> {
//! let bound = Server::bind(Config::loopback(), Arc::new(LoggingHooks)).await?;
//! println!("tcp on {:?}", bound.tcp_addr());
//! let handle = bound.handle(); // push messages, kick users, list who is online
//! bound.serve(async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`Config`], the one definition of every server setting: its TOML key, help
//!   text and default (the `hongyan` command in `cli/` builds its flags from it).
//! - [`server`]: [`Server::bind`] and [`Bound::serve`]: listeners, tasks, graceful shutdown.
//! - [`engine`]: the protocol core's public face, for embedding code that brings its own
//!   transport and for deterministic tests: the core, a session, the pipe, the clock.
//! - `core`: every protocol rule: dispatch, login and duplicate logins, C2S/C2C/ACK routing,
//!   kickouts, idle expiry, the server's retransmission queue, store and forward.
//! - `pipe`: the [`Pipe`](engine::Pipe) below the core: how a session's packets reach its
//!   peer, and the properties that make transports differ.
//! - [`cluster`]: how the core reaches users on other nodes: the [`Cluster`](cluster::Cluster)
//!   seam, one node's [`SingleNode`](cluster::SingleNode), the cluster on NATS.
//! - `clock`: the one [`Clock`](engine::Clock) the core reads.
//! - `gateway`: TCP, UDP and WebSocket pipes, HTTP sessions' pipe (events out as SSE,
//!   acknowledgements in as requests), an in-memory one, and the one session loop they share
//!   (`gateway::driver`). No protocol decisions live there.
//! - `registry`: the online map, `user → session`.
//! - `session`: a session's own state, its outbox and the handle others use to reach it.
//! - `lane`: C2C messages a session handed off to be relayed in order while its loop reads
//!   on (a cluster's receivers on other nodes).
//! - `mailbox`: the small bounded queue behind outboxes and UDP inboxes.
//! - `log_limit`: rate-limited log lines, summarised by count, for what clients can cause
//!   without end.
//! - `log_text`: client-chosen text (user ids, fingerprints) made safe to log.
//! - [`hooks`]: the [`Hooks`] trait applications implement (verify logins, store offline
//!   messages when the server keeps none, observe events).
//! - [`hongyan_store`] (re-exported): the message store the `store` setting opens, where
//!   messages for users who cannot take them are kept before their senders are acknowledged.
//! - [`handle`]: [`ServerHandle`], the send API for embedding code.
//! - `http`: the HTTP listener (its accept loop, the connection limit, request deadlines) and
//!   router (WebSocket upgrade, H5 client, API, health, metrics).
//! - `accept`: what turns an accepted connection into the stream a listener serves (plain, or
//!   a TLS handshake), so accept loops are written once for both.
//! - `open_files`: the connection limit the open-file limit allows.
//! - [`limits`]: the abuse limits: messages per session, logins per address and in total,
//!   connections and UDP pseudo-sessions per address, the API's request rate; exemptions.
//! - `api`: the HTTP API for backends under `/api` (push, online users, kick, stats), its
//!   OpenAPI document and Swagger UI.
//! - `as_user`: the API's operations that act as a user: send in a user's name (C2C), and
//!   HTTP sessions that receive as one (Server-Sent Events).
//! - `probes`: `/readyz` and `/metrics`.
//! - `metrics`: the server's counters and gauges, exported at `/metrics`.
//! - [`token`]: bearer tokens (admin, metrics, webhook) and the generated admin token.
//! - [`webhook`]: [`WebhookHooks`], the hooks that call an application backend over HTTP.
//! - [`tls`]: TLS for the TCP gateway and the HTTP listener: certificates from PEM files,
//!   reloaded without a restart, a bounded handshake stage, a self-signed development
//!   certificate.

mod accept;
mod api;
mod as_user;
mod clock;
pub mod cluster;
pub mod config;
mod core;
pub mod engine;
mod gateway;
pub mod handle;
pub mod hooks;
mod http;
mod lane;
pub mod limits;
mod log_limit;
mod log_text;
mod mailbox;
mod metrics;
mod open_files;
mod pipe;
mod probes;
mod registry;
pub mod server;
mod session;
pub mod tls;
pub mod token;
pub mod webhook;

pub use config::Config;
pub use handle::{
    Delivery, HistoryError, HistoryPage, SendAsError, Sent, ServerHandle, StoredError,
};
/// The message [`ServerHandle::send`] takes: the same type the clients send.
pub use hongyan_shared::Outgoing;
/// The message store crate: [`MessageStore`](hongyan_store::MessageStore), its backends and
/// the [`StoreSpec`](hongyan_store::StoreSpec) the `store` setting parses into.
pub use hongyan_store;
pub use hooks::{Hooks, LoggingHooks, LoginRequest, SessionId, SessionInfo};
/// The metrics library whose registry [`Hooks::register_metrics`] receives.
pub use prometheus_client;
pub use registry::OnlineInfo;
pub use server::{Bound, Server, ServerError};
pub use session::PushError;
pub use token::{BearerToken, TokenOrigin};
pub use webhook::{WebhookConfig, WebhookHooks};
