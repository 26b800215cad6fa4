//! The `Protocal` envelope (§1), the payloads that travel inside it (§2.1), and the message an
//! application hands over to be sent.
//!
//! # Layout
//! - `outgoing.rs`: [`Outgoing`], an application message (type 2) before its sender is known,
//!   and the size check every sender applies to it.
//! - `envelope.rs`: [`Packet`], one struct for every packet type, with the reference's
//!   factories and its `decode` / `encode_into` entry points.
//! - `wire.rs`: the packet's JSON members, in the reference's order, read leniently.
//! - `payload.rs`: the documents inside `dataContent` ([`LoginInfo`], [`LoginResponse`],
//!   [`ErrorResponse`], [`Kickout`]) and the protocol [`codes`].
//! - `seq_tag.rs`: [`SeqTag`], a message's place in its conversation's history, carried only
//!   to sessions that opted in to conversation sync (§9.4).
//! - `kind.rs`: [`PacketType`]. `ids.rs`: [`UserId`] and [`Fingerprint`].
//!
//! Each file imports only files listed after it (and the JSON codec), never this module.

mod envelope;
mod ids;
mod kind;
mod outgoing;
mod payload;
mod seq_tag;
mod wire;

pub use envelope::Packet;
pub use ids::{Fingerprint, UserId};
pub use kind::PacketType;
pub use outgoing::{Outgoing, PacketTooLarge};
pub use payload::{ErrorResponse, KeepAlive, Kickout, LoginInfo, LoginResponse, codes};
pub use seq_tag::SeqTag;
