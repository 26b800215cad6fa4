//! The hongyan native client: MobileIMSDK v6 over TCP, UDP or WebSocket, with one API.
//!
//! A [`Client`] logs in, keeps the link alive, logs in again after a link loss with the saved
//! `firstLoginTime`, retransmits QoS messages and drops duplicates. All of that protocol logic
//! is the shared, sans-IO [`ClientSession`](hongyan_shared::client::ClientSession) (the browser
//! client runs the same code); this crate only drives it with tokio sockets and timers.
//!
//! ```no_run
//! use hongyan_client::{Client, ClientConfig, Endpoint};
//! use hongyan_shared::client::{ClientEvent, ConnectionState};
//! use hongyan_shared::LoginInfo;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // `hongyan serve` listening on its default TCP port.
//! let config = ClientConfig::new(Endpoint::Tcp("127.0.0.1:8901".into()));
//! let (alice, mut events) = Client::connect(config, LoginInfo::new("alice", Some("t"), None))?;
//! alice.wait_for(ConnectionState::Online).await?;
//!
//! let fp = alice.send_c2c("bob", "hello bob", 0).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         ClientEvent::MessageDelivered(done) if done == fp => break,
//!         ClientEvent::MessagesLost(_) => break,
//!         ClientEvent::MessageReceived(m) => println!("<{}> {}", m.from, m.content),
//!         _ => {}
//!     }
//! }
//! alice.logout().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`ClientConfig`] and [`Endpoint`]: where to connect, sense mode, relogin
//!   interval, retransmit schedule and frame limits.
//! - `client.rs`: the application's [`Client`] handle, its [`Events`] stream, and the driver
//!   task that owns the session and its connections.
//! - `transport/`: one task per connection: TCP frames, UDP datagrams, WebSocket text frames.
//! - [`chat`]: `hongyan chat`, the terminal client (human or JSON lines).
//! - [`error`]: the client's error type, [`ClientError`].

pub mod chat;
mod client;
pub mod config;
pub mod error;
mod transport;

pub use client::{Client, Events, Outgoing};
pub use config::{ClientConfig, Endpoint};
pub use error::ClientError;
pub use hongyan_shared::client::{ClientEvent, ConnectionState, ReceivedMessage};
