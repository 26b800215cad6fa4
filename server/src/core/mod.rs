//! The logic core: every protocol decision the server makes, shared by all gateways.
//!
//! A gateway turns bytes into packet bodies; its session loop hands each to
//! [`Core::handle_packet`] with the session's state, its [`Pipe`](crate::pipe::Pipe) and the
//! time. The core answers on the pipe, reaches other sessions through the registry, and says
//! whether the session goes on ([`Flow`]). What other tasks queued for a session comes back
//! through [`Core::handle_outbound`], its deadline through [`Core::handle_session_timeout`].
//! Time is always an argument or read from the core's one [`Clock`](crate::clock::Clock), so
//! every rule here is tested without sockets or sleeps (`tests/`).
//!
//! # Layout
//! - `state`: [`Core`] (what every rule shares) and [`Flow`]; where a user's session is.
//! - `lifecycle`: a session opens, expires when idle, closes (§3.4, §4.4, §5.2).
//! - `dispatch`: the type table (§4.1), keepalive, echo, logout, 301 (§4.5).
//! - `login`: login, verification, the duplicate-login rules (§4.2, §4.3).
//! - `messages`: C2S, C2C and acknowledgements (§6.4).
//! - `handoff`: C2C messages relayed from a session's lane, off its loop (a cluster's
//!   receivers on other nodes).
//! - `reply`: writing on the session's own pipe; what a connection does after a refusal.
//! - `outbound`: what other tasks queued for a session, kickouts included.
//! - `kick`: kickouts sent to a session from elsewhere (a newer login, an administrator).
//! - `remote`: what this node answers for its users when another node of a cluster asks.
//! - `s2c`: the queue of QoS packets the server sent, awaiting acknowledgement, bounded per
//!   user and server-wide.
//! - `queued`: the server-wide bound on bytes held for delivery (`max_queued_bytes`).
//! - `retransmit`: pushing QoS packets to clients, the retransmission tick, giving up (§6.2).
//! - `store_link`: the message store and its bookkeeping (`backlog`: puts in flight and
//!   replays per user; `acked`: acknowledged messages awaiting removal; `outage`: store
//!   failures in the log, once per burst).
//! - `keep`: where a QoS message goes (live, or stored first) and storing it (§6.6).
//! - `replay`: replaying stored messages to their receiver, in order, within a window.
//! - `chores`: removals, the expiry sweep, stalled replays; the store's readiness.
//! - `history`: conversation history in memory: each conversation's next seq, numbering
//!   messages as they are delivered, the entries waiting to be written (issue 12).
//! - `history_io`: the history's work with the store: opening its epoch, loading counters,
//!   writing behind delivery, the retention sweep; reads merged with what is not written yet.
//! - `sync`: the conversation-sync requests of hongyan clients (§9.4), answered within the
//!   session's packet limit.

mod acked;
mod backlog;
mod chores;
mod dispatch;
mod handoff;
mod history;
mod history_io;
mod keep;
mod kick;
mod lifecycle;
mod login;
mod messages;
mod outage;
mod outbound;
mod queued;
mod remote;
mod replay;
mod reply;
mod retransmit;
mod s2c;
mod state;
mod store_link;
mod sync;
#[cfg(test)]
mod tests;

pub(crate) use self::chores::run as run_store_chores;
pub use self::history_io::HistoryPage;
pub(crate) use self::keep::Route;
pub(crate) use self::messages::Relayed;
pub(crate) use self::retransmit::run as run_retransmission;
pub use self::s2c::Delivery;
pub(crate) use self::s2c::Origin;
pub use self::state::{Core, Flow};
