//! The client side of the protocol as a sans-IO state machine ([`ClientSession`]): login,
//! keepalive, link-loss detection, auto-relogin, kickout, logout, QoS sending and
//! duplicate-free receiving (§4.7, §5, §6.1, §6.3).
//!
//! The session never touches a socket or a clock. A driver (the native `hongyan-client`, the
//! browser client, or a test) feeds it what happens and carries out what it asks:
//!
//! ```
//! use hongyan_shared::client::{ClientEvent, ClientSession, ConnectionState, SessionConfig, TransportCommand};
//! use hongyan_shared::{Instant, LoginInfo, LoginResponse, Outgoing, Packet, PacketType, Transport};
//!
//! let t0 = Instant::now();
//! let mut session = ClientSession::new(SessionConfig::new(Transport::Tcp, 42), t0);
//! session.login(LoginInfo::new("alice", Some("token"), None), t0).unwrap();
//!
//! // The session asks for a connection; the driver opens it and reports back.
//! assert_eq!(session.poll_transport(), Some(TransportCommand::Open));
//! session.handle_connected(t0);
//! let login = session.poll_transmit().unwrap();
//! assert_eq!(login.kind, PacketType::Login);
//!
//! // The server's answer arrives; the session is online and keepalives are scheduled.
//! let response = LoginResponse { code: 0, first_login_time: 1_700_000_000_000 };
//! session.handle_packet(Packet::login_response("alice", response), t0);
//! assert_eq!(session.state(), ConnectionState::Online);
//!
//! // A QoS message leaves at once and is tracked until the server acknowledges it.
//! let fp = session.send(Outgoing::new("bob", "hello"), t0).unwrap();
//! let message = session.poll_transmit().unwrap();
//! assert_eq!(message.fp.as_ref(), Some(&fp));
//! session.handle_packet(Packet::ack("bob", "alice", &fp, false), t0);
//! let events: Vec<ClientEvent> = std::iter::from_fn(|| session.poll_event()).collect();
//! assert!(events.contains(&ClientEvent::MessageDelivered(fp)));
//!
//! // The driver sleeps until the next deadline, then hands the time back.
//! let next = session.poll_timeout().unwrap();
//! session.handle_timeout(next);
//! ```
//!
//! # History sync
//! With [`SessionConfig::sync`] set, the session also keeps the user's conversations in step
//! with a hongyan server's history (§9.4): after every login it asks for the conversations
//! list and fetches what it lacks, page by page; live messages carry their seq; the
//! application asks for older pages with [`ClientSession::fetch_older`] and reports reading
//! with [`ClientSession::mark_read`]. What it learns comes as [`ClientEvent::History`]
//! events, which a [`HistoryView`] turns into per-conversation message lists.
//!
//! # Layout
//! - [`ClientSession`] (`session.rs`): the state machine.
//! - `sync.rs`: its history sync: requests, retries, gaps, catching up ([`SyncState`]).
//! - [`SessionConfig`], [`SyncConfig`] (`config.rs`): sense mode, relogin interval,
//!   retransmit schedule, packet size limit, the fingerprint seed, history sync tuning.
//! - [`ClientEvent`], [`HistoryEvent`], [`ConnectionState`], [`TransportCommand`]
//!   (`event.rs`): its outputs.
//! - [`HistoryView`] (`view.rs`): the conversations an application keeps, from the events.

mod config;
mod event;
mod rng;
mod session;
mod sync;
mod view;

pub use config::{
    JAVA_UDP_CLIENT_MAX_DATAGRAM, SERVER_UDP_MAX_DATAGRAM, SERVER_WS_MAX_FRAME, SessionConfig,
    SyncConfig, TIMEOUT_CHECK_INTERVAL,
};
pub use event::{ClientEvent, ConnectionState, HistoryEvent, ReceivedMessage, TransportCommand};
pub use session::{ClientSession, LoginError, SendError, SyncError};
pub use sync::SyncState;
pub use view::{ConversationView, HistoryView, Learned};
