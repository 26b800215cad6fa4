//! Gateways: how bytes become packet bodies and how bodies leave, per transport. Each
//! implements [`Pipe`](crate::pipe::Pipe); they hold no protocol logic: every decision is in
//! the core.
//!
//! - [`tcp`]: length-prefixed frames (§3.1).
//! - [`udp`]: one packet per datagram, pseudo-sessions keyed by address (§3.2).
//! - [`ws`]: one packet per WebSocket text frame at `/websocket` (§3.3); [`ws_message`]:
//!   what each message means for its session, without the socket.
//! - [`sse`]: HTTP sessions, a backend receiving as a user: events out as Server-Sent
//!   Events, acknowledgements in as HTTP requests.
//! - [`memory`]: an in-memory pipe for tests and simulations.
//! - [`driver`]: the one session loop every gateway runs.

pub(crate) mod driver;
pub(crate) mod memory;
pub(crate) mod sse;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod ws;
pub(crate) mod ws_message;
