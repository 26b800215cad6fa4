//! The messages a store keeps: what the server hands in and what it reads back.

use std::fmt;

use hongyan_shared::{Fingerprint, UserId};

/// A stored message's place in its store: ids grow in acceptance order and are never reused,
/// so paging with [`MessageStore::pending`](crate::MessageStore::pending)'s `after` never skips
/// or repeats a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(i64);

impl MessageId {
    /// Wraps a raw id as the database assigned it.
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    /// The raw id, as the database stores it.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A message the server accepted for a receiver and hands to the store to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Who the message is for.
    pub receiver: UserId,
    /// Who sent it.
    pub sender: UserId,
    /// The sender's fingerprint: with `receiver` and `sender` it identifies the message, so a
    /// retransmission is recognised and not stored twice.
    pub fp: Fingerprint,
    /// The application's message type (MobileIMSDK `typeu`), kept as is.
    pub typeu: i32,
    /// The message body (MobileIMSDK `dataContent`), kept as is.
    pub content: String,
    /// When the server accepted the message, in milliseconds since the Unix epoch.
    pub accepted_at: i64,
    /// When the message expires, in milliseconds since the Unix epoch; `None` keeps it until it
    /// is delivered or erased.
    pub expires_at: Option<i64>,
}

/// A message as the store keeps it: a [`NewMessage`] with its [`MessageId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The store's id for the message, in acceptance order.
    pub id: MessageId,
    /// Who the message is for.
    pub receiver: UserId,
    /// Who sent it.
    pub sender: UserId,
    /// The sender's fingerprint.
    pub fp: Fingerprint,
    /// The application's message type (MobileIMSDK `typeu`).
    pub typeu: i32,
    /// The message body (MobileIMSDK `dataContent`).
    pub content: String,
    /// When the server accepted the message, in milliseconds since the Unix epoch.
    pub accepted_at: i64,
    /// When the message expires, in milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

impl StoredMessage {
    /// The stored form of `message` under `id`.
    pub fn new(id: MessageId, message: NewMessage) -> Self {
        let NewMessage {
            receiver,
            sender,
            fp,
            typeu,
            content,
            accepted_at,
            expires_at,
        } = message;
        Self {
            id,
            receiver,
            sender,
            fp,
            typeu,
            content,
            accepted_at,
            expires_at,
        }
    }

    /// True when the message has expired at `now_ms` (milliseconds since the Unix epoch).
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// What [`MessageStore::put`](crate::MessageStore::put) did with a message. Both outcomes mean
/// the message is durably stored, so the server may acknowledge it to the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The message was committed under this id.
    Stored(MessageId),
    /// The same `(receiver, sender, fp)` was already stored under this id (a retransmission):
    /// nothing was written and the message will still be delivered once.
    AlreadyStored(MessageId),
}

impl Put {
    /// The id the message is stored under, whichever way it got there.
    pub fn id(self) -> MessageId {
        match self {
            Put::Stored(id) | Put::AlreadyStored(id) => id,
        }
    }
}
