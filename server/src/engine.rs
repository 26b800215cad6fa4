//! The engine: the server's protocol core without its sockets, for embedding code that brings
//! its own transport, and for tests that drive the rules deterministically.
//!
//! A [`Core`] holds what every session shares and reads the time from one [`Clock`]. A session
//! is opened on it ([`Core::open_session`]) with the [`PipeProperties`] of the [`Pipe`] that
//! reaches its peer; the caller owns the [`Session`] and its [`Outbox`] and runs its loop:
//!
//! - a packet body arrived → [`Core::handle_packet`]; replies are written on the pipe;
//! - the outbox has an item (queued by another session, a push or a kick) →
//!   [`Core::handle_outbound`];
//! - while the session has messages handed off ([`Session::has_handed_off`]: in a cluster, for
//!   users on other nodes) → [`Core::drive_lane`], beside the rest, never instead of reading;
//! - the session's deadline ([`Core::poll_session_timeout`]) passed →
//!   [`Core::handle_session_timeout`];
//! - the peer left or the core said [`Flow::Close`] (or [`Session::is_closing`]) →
//!   [`Core::close_session`], then close the pipe.
//!
//! The server-wide retransmission tick is [`Core::poll_timeout`] / [`Core::handle_timeout`];
//! with a message store ([`Core::with_store`]), its chores (removals, the expiry sweep) are
//! [`Core::poll_store_timeout`] / [`Core::handle_store_timeout`]. Pushes and kicks go through a
//! [`ServerHandle`](crate::ServerHandle) made from the core.
//! The futures these methods return wait only on the pipe, the application's hooks and the
//! message store: with a [`MemoryPipe`], hooks that answer at once and a memory store (or none)
//! they complete on their first poll.
//!
//! Inside `hongyan serve` each gateway's pipe runs this very loop (`gateway::driver`).

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::core::{Core, Flow};
pub use crate::gateway::memory::MemoryPipe;
pub use crate::gateway::udp::table::{
    PseudoSessionId, PseudoSessions, UdpLimits, Unopened, inbound_datagram,
};
pub use crate::gateway::ws_message::{WsInbound, ws_close_frame, ws_inbound};
pub use crate::pipe::{Pipe, PipeError, PipeProperties};
pub use crate::session::{Outbound, Outbox, Session};
