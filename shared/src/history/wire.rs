//! The documents of the conversation-sync extension (§9.4): what travels, as JSON, in the
//! `dataContent` of packet types 1000–1002 (requests) and 1500–1502 (their answers).
//!
//! These are hongyan's own documents, read and written by serde (any valid JSON; unknown keys
//! ignored, so later versions can add keys). Every request carries an `id` that its answer
//! repeats: requests are retried on loss (they are not QoS), and a late or repeated answer is
//! recognised by it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::json::{self, DecodeError};
use crate::packet::{Fingerprint, Packet, PacketType, UserId};

/// A document of the sync extension, with the packet type that carries it.
pub trait SyncDocument: Serialize + DeserializeOwned {
    /// The packet type that carries this document.
    const KIND: PacketType;

    /// The document's JSON.
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("sync documents always serialize")
    }

    /// Decodes the document from a packet's `dataContent`.
    fn decode(data_content: &str) -> Result<Self, DecodeError> {
        json::decode_object(data_content.as_bytes())
    }

    /// The packet carrying this document from `from` to `to` (`"0"` is the server).
    fn to_packet(&self, from: &str, to: &str) -> Packet {
        Packet::extension(Self::KIND, self.to_json(), from, to)
    }
}

/// 1000: "my conversations", the page after `after` (by peer id), at most `limit` of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsRequest {
    /// Repeated by the answer.
    pub id: u32,
    /// The last peer of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// The most conversations wanted; 0 or absent: the server's page size. The server may
    /// return fewer (its own cap, the transport's packet limit) and says so with `more`.
    #[serde(default)]
    pub limit: u32,
}

impl SyncDocument for ConversationsRequest {
    const KIND: PacketType = PacketType::ConversationsRequest;
}

/// One conversation of the user who asked, as the server keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationInfo {
    /// The other member: a user id, or `"0"` for the server's pushes to the user.
    pub peer: UserId,
    /// The newest seq in the conversation (its messages are numbered from 1).
    pub newest: u64,
    /// The user's read position: every seq up to it is read. Sending a message moves it to
    /// that message.
    #[serde(default)]
    pub read: u64,
    /// `newest - read`: messages the user has not read.
    #[serde(default)]
    pub unread: u64,
    /// When the newest message was accepted, in epoch milliseconds.
    #[serde(default)]
    pub at: i64,
}

/// 1500: the answer to [`ConversationsRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsResponse {
    /// The request's id.
    pub id: u32,
    /// The server's history epoch (§9.4); 0 when the server keeps no history.
    pub epoch: u64,
    /// Conversations in peer-id order, after the request's `after`.
    #[serde(default)]
    pub items: Vec<ConversationInfo>,
    /// More conversations follow the last one: ask again with `after` set to its peer.
    #[serde(default)]
    pub more: bool,
}

impl SyncDocument for ConversationsResponse {
    const KIND: PacketType = PacketType::ConversationsResponse;
}

/// Which messages of a conversation a [`HistoryRequest`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryRange {
    /// Those with a seq greater than this, oldest first: catching up.
    After(u64),
    /// The newest ones with a seq below this (`None`: the newest of all): scrolling back.
    Before(Option<u64>),
}

/// 1001: messages of the conversation with `peer`, a page at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// Repeated by the answer.
    pub id: u32,
    /// The other member of the conversation (`"0"`: the server's pushes).
    pub peer: UserId,
    /// Messages with a seq greater than this, oldest first. Takes precedence over `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The newest messages with a seq below this; with neither key, the newest messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// The most messages wanted; 0 or absent: the server's page size.
    #[serde(default)]
    pub limit: u32,
}

impl HistoryRequest {
    /// A request for `range` of the conversation with `peer`.
    pub fn new(id: u32, peer: UserId, range: HistoryRange, limit: u32) -> Self {
        let (after, before) = match range {
            HistoryRange::After(after) => (Some(after), None),
            HistoryRange::Before(before) => (None, before),
        };
        Self {
            id,
            peer,
            after,
            before,
            limit,
        }
    }

    /// What the request asks for.
    pub fn range(&self) -> HistoryRange {
        match self.after {
            Some(after) => HistoryRange::After(after),
            None => HistoryRange::Before(self.before),
        }
    }
}

impl SyncDocument for HistoryRequest {
    const KIND: PacketType = PacketType::HistoryRequest;
}

/// One message of a conversation's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// Its place in the conversation.
    pub seq: u64,
    /// Who sent it (`"0"`: the server).
    pub from: UserId,
    /// Its fingerprint, when it had one (every QoS message does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<Fingerprint>,
    /// The application's `typeu`.
    #[serde(default)]
    pub typeu: i32,
    /// When the server accepted it, in epoch milliseconds.
    #[serde(default)]
    pub at: i64,
    /// The message (`dataContent`); absent when it is too large to fit in one packet of the
    /// transport that asked (a UDP session: 1024 bytes), to be read over another transport
    /// or the HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// 1501: the answer to [`HistoryRequest`]: every message of the conversation with a seq from
/// `from` through `through`, oldest first. A seq in that range missing from `items` is not
/// kept any more (past the retention period, or lost in a crash before it was written).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The request's id.
    pub id: u32,
    /// The server's history epoch (§9.4).
    pub epoch: u64,
    /// The conversation's other member, as asked.
    pub peer: UserId,
    /// The newest seq in the conversation when the page was read.
    pub newest: u64,
    /// The first seq the page covers.
    pub from: u64,
    /// The last seq the page covers (below `from` when it covers nothing).
    pub through: u64,
    /// The messages, oldest first.
    #[serde(default)]
    pub items: Vec<HistoryMessage>,
    /// More messages lie beyond the page in the direction asked: after `through` for
    /// [`HistoryRange::After`], before `from` for [`HistoryRange::Before`].
    #[serde(default)]
    pub more: bool,
}

impl SyncDocument for HistoryResponse {
    const KIND: PacketType = PacketType::HistoryResponse;
}

/// 1002: the user has read the conversation with `peer` up to `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// Repeated by the answer.
    pub id: u32,
    /// The other member of the conversation.
    pub peer: UserId,
    /// Every message up to this seq is read. A read position never moves back, and never past
    /// the newest message.
    pub seq: u64,
}

impl SyncDocument for ReadRequest {
    const KIND: PacketType = PacketType::ReadRequest;
}

/// 1502: the answer to [`ReadRequest`]: the read position now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResponse {
    /// The request's id.
    pub id: u32,
    /// The conversation's other member, as asked.
    pub peer: UserId,
    /// The read position now.
    pub read: u64,
    /// The newest seq in the conversation.
    pub newest: u64,
    /// `newest - read`.
    pub unread: u64,
}

impl SyncDocument for ReadResponse {
    const KIND: PacketType = PacketType::ReadResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_compact_json_with_optional_keys_left_out() {
        let request = HistoryRequest::new(7, UserId::from("bob"), HistoryRange::After(12), 50);
        assert_eq!(
            request.to_json(),
            r#"{"id":7,"peer":"bob","after":12,"limit":50}"#
        );
        assert_eq!(
            HistoryRequest::new(8, "0".into(), HistoryRange::Before(None), 0).to_json(),
            r#"{"id":8,"peer":"0","limit":0}"#
        );
        let packet = request.to_packet("alice", UserId::SERVER);
        assert_eq!(packet.kind.code(), 1001);
        let back = HistoryRequest::decode(packet.data_content.as_deref().unwrap()).unwrap();
        assert_eq!(back, request);
        assert_eq!(back.range(), HistoryRange::After(12));
    }

    #[test]
    fn a_message_too_large_for_the_transport_has_no_content() {
        let page: HistoryResponse = HistoryResponse::decode(
            r#"{"id":1,"epoch":2,"peer":"bob","newest":3,"from":3,"through":3,
                "items":[{"seq":3,"from":"bob","typeu":-1,"at":5}],"unknown":true}"#,
        )
        .unwrap();
        assert_eq!(page.items[0].content, None);
        assert_eq!(page.items[0].fp, None);
        assert!(!page.more);
    }

    #[test]
    fn a_document_that_is_not_an_object_is_refused() {
        assert!(ReadRequest::decode("[]").is_err());
        assert!(
            ReadRequest::decode(r#"{"id":1}"#).is_err(),
            "peer and seq are required"
        );
    }
}
