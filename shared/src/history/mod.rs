//! Conversation history and sync (§9.4), hongyan's first protocol extension: the documents a
//! hongyan client and server exchange so that the client's view of each conversation equals
//! the server's history, after any pattern of loss and reconnects.
//!
//! A conversation is the pair of its members; a client names it by the other member, its
//! *peer* (`"0"` for the server's pushes). The server numbers each conversation's messages
//! from 1, gapless, in the order it accepted them (its *seq*), within a history *epoch* that
//! changes only when a crash cost it the newest, not yet written, part of its history. The
//! client asks for its conversations (1000 → 1500), for pages of one (1001 → 1501), and says
//! how far it has read (1002 → 1502); once it asked anything, live messages and the
//! acknowledgements of its own messages carry their place ([`SeqTag`](crate::SeqTag)), so a
//! gap shows at once. MobileIMSDK clients never send these, so they never see any of it.
//!
//! # Layout
//! - `wire.rs`: the request and answer documents ([`SyncDocument`]s) and
//!   [`ConversationInfo`] / [`HistoryMessage`], what they describe.
//!
//! The client's side of the exchange is part of the sans-IO session
//! ([`ClientSession`](crate::ClientSession)); the server's is in `hongyan-server`'s core.

mod wire;

pub use wire::{
    ConversationInfo, ConversationsRequest, ConversationsResponse, HistoryMessage, HistoryRange,
    HistoryRequest, HistoryResponse, ReadRequest, ReadResponse, SyncDocument,
};
