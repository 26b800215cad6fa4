//! The hongyan protocol core: MobileIMSDK v6 packets, codecs and QoS state, with no IO.
//!
//! Everything here is a plain data structure or a pure function. Nothing reads the clock
//! (time comes in as a `now` argument), opens a socket, spawns a task or draws random numbers,
//! so the same code runs in the server, in native clients and in the browser (wasm32), and
//! every protocol rule can be tested deterministically.
//!
//! Section numbers (`§4.3`) refer to `docs/PROTOCOL.md`, the protocol as hongyan implements it.
//!
//! # Layout
//! - [`packet`]: the `Protocal` envelope ([`Packet`]), its [`PacketType`]s, the payload
//!   documents ([`LoginInfo`], [`LoginResponse`], [`ErrorResponse`], [`Kickout`]), the
//!   identifier newtypes ([`UserId`], [`Fingerprint`]), the protocol [`codes`], and
//!   [`Outgoing`], the message an application sends (client, browser and server alike).
//! - [`codec`]: the JSON codec ([`codec::json`], Gson-exact output, lenient input) and the TCP
//!   frame codec ([`codec::frame`]). It knows bytes and JSON, not packets.
//! - [`qos`]: the retransmitting [`SendQueue`] and the receiver's [`DedupWindow`].
//! - [`sense`]: sense modes, keepalive timings and the [`Transport`] enum.
//! - [`history`]: the documents of conversation history and sync (§9.4), hongyan's own
//!   extension: conversations, pages of messages, read positions.
//! - [`client`]: the client session state machine ([`ClientSession`]) that the native and
//!   browser clients drive, with its history sync and [`HistoryView`].
//!
//! Dependencies run one way: `client` uses `history`, `qos`, `sense`, `packet` and `codec`;
//! `history` uses `packet` and `codec`; `packet` uses `codec`; `codec`, `qos` and `sense` use
//! none of the others. Modules import each other by
//! their own paths: the re-exports below are for users of the crate.

pub mod client;
pub mod codec;
pub mod history;
pub mod packet;
pub mod qos;
pub mod sense;

pub use client::{
    ClientEvent, ClientSession, ConnectionState, HistoryEvent, HistoryView, ReceivedMessage,
    SessionConfig, SyncConfig, TransportCommand,
};
pub use codec::frame::{FrameCodec, FrameError};
pub use codec::json::DecodeError;
pub use packet::{
    ErrorResponse, Fingerprint, KeepAlive, Kickout, LoginInfo, LoginResponse, Outgoing, Packet,
    PacketTooLarge, PacketType, SeqTag, UserId, codes,
};
pub use qos::{DedupConfig, DedupWindow, Retransmit, RetransmitSchedule, SendQueue};
pub use sense::{KeepAliveTiming, SenseMode, Transport};
/// The monotonic instant every `now` argument takes: `std::time::Instant` natively, a
/// `performance.now()`-backed equivalent on wasm32 (the core itself never calls `now()`).
pub use web_time::Instant;
