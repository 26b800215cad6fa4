//! The hongyan native client: MobileIMSDK v6 over TCP, UDP or WebSocket, with one API.
//!
//! A [`Client`] logs in, keeps the link alive, logs in again after a link loss with the saved
//! `firstLoginTime`, retransmits QoS messages and drops duplicates. All of that protocol logic
//! is the shared, sans-IO [`ClientSession`](hongyan_shared::client::ClientSession) (the browser
//! client runs the same code); this crate only drives it with tokio sockets and timers.
//!
//! ```
//! use hongyan_client::{Client, ClientConfig, Endpoint};
//! use hongyan_shared::client::{ClientEvent, ConnectionState};
//! use hongyan_shared::LoginInfo;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let addr = stand_in_server().await;
//! // `addr` is where `hongyan serve` listens for TCP, e.g. "127.0.0.1:8901".
//! let config = ClientConfig::new(Endpoint::Tcp(addr));
//! let (alice, mut events) = Client::connect(config, LoginInfo::new("alice", Some("t"), None))?;
//! alice.wait_for(ConnectionState::Online).await?;
//!
//! let fp = alice.send_c2c("bob", "hello bob", 0).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         ClientEvent::MessageDelivered(done) if done == fp => break,
//!         ClientEvent::MessagesLost(_) => panic!("not delivered"),
//!         ClientEvent::MessageReceived(m) => println!("<{}> {}", m.from, m.content),
//!         _ => {}
//!     }
//! }
//! alice.logout().await;
//! # Ok(())
//! # }
//! # // A stand-in for `hongyan serve`, so the example runs anywhere: it accepts every login
//! # // and acknowledges every message.
//! # async fn stand_in_server() -> String {
//! #     use hongyan_shared::{FrameCodec, LoginResponse, Packet, PacketType};
//! #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #     let addr = listener.local_addr().unwrap().to_string();
//! #     tokio::spawn(async move {
//! #         let (mut socket, _) = listener.accept().await.unwrap();
//! #         let (codec, mut buf) = (FrameCodec::default(), bytes::BytesMut::new());
//! #         while socket.read_buf(&mut buf).await.unwrap_or(0) > 0 {
//! #             while let Some(body) = codec.decode(&mut buf).unwrap() {
//! #                 let p = Packet::decode(&body).unwrap();
//! #                 let reply = match p.kind {
//! #                     PacketType::Login => Packet::login_response(
//! #                         p.from_str(),
//! #                         LoginResponse { code: 0, first_login_time: 1 },
//! #                     ),
//! #                     PacketType::CommonData => {
//! #                         Packet::ack(p.to_str(), p.from_str(), p.fp.as_ref().unwrap(), false)
//! #                     }
//! #                     _ => continue,
//! #                 };
//! #                 let mut out = bytes::BytesMut::new();
//! #                 codec.encode(reply.to_json().as_bytes(), &mut out).unwrap();
//! #                 socket.write_all(&out).await.unwrap();
//! #             }
//! #         }
//! #     });
//! #     addr
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`ClientConfig`] and [`Endpoint`]: where to connect, sense mode, relogin
//!   interval, retransmit schedule, frame limits, TLS.
//! - [`tls`]: [`TlsOptions`] and [`Trust`]: which certificates a `tls://` or `wss://`
//!   connection accepts.
//! - `client.rs`: the application's [`Client`] handle, its [`Events`] stream, and the driver
//!   task that owns the session and its connections.
//! - `transport/`: one task per connection: TCP frames (plain or TLS), UDP datagrams,
//!   WebSocket text frames (`ws://` or `wss://`).
//! - [`error`]: the client's error type, [`ClientError`].

mod client;
pub mod config;
pub mod error;
pub mod tls;
mod transport;

pub use client::{Client, Events};
pub use config::{ClientConfig, Endpoint};
pub use error::ClientError;
pub use hongyan_shared::Outgoing;
pub use hongyan_shared::client::{ClientEvent, ConnectionState, ReceivedMessage};
pub use tls::{TlsOptions, TlsSetupError, Trust};
