//! [`StoreError`]: everything a store call can fail with.

use hongyan_shared::UserId;

/// Why a store call failed. A failed [`put`](crate::MessageStore::put) never stored the message
/// as far as the caller can rely on (see [`StoreError::Unavailable`] for the one ambiguous
/// case), so the server must not acknowledge it.
///
/// Errors are `Clone` because one failed group commit fails every caller in its batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or cannot write: server down, connection lost, disk full,
    /// I/O error, timeout. The text is the driver's. If it struck while a commit was in flight
    /// the message may in fact be stored; a retransmission then gets
    /// [`Put::AlreadyStored`](crate::Put::AlreadyStored), never a second copy.
    #[error("message store unavailable: {0}")]
    Unavailable(String),
    /// The receiver already has as many stored messages as the limit allows.
    #[error("{receiver} already has {limit} stored messages, the most the store keeps per user")]
    QuotaExceeded {
        /// Whose limit was reached.
        receiver: UserId,
        /// The per-receiver limit.
        limit: u64,
    },
    /// The message content is larger than the store accepts.
    #[error("message of {size} bytes exceeds the store's limit of {limit} bytes")]
    TooLarge {
        /// The content's size in bytes.
        size: usize,
        /// The largest content the store accepts, in bytes.
        limit: usize,
    },
    /// The message cannot be stored as given: its receiver, sender or fingerprint contains a
    /// NUL character, which no backend keeps faithfully in an id.
    #[error("message cannot be stored: {0}")]
    InvalidMessage(String),
    /// The write queue is full: the database is not keeping up with the load.
    #[error("message store overloaded: its write queue of {capacity} is full")]
    Overloaded {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The schema could not be created or migrated, or the database was written by a newer
    /// hongyan.
    #[error("message store schema: {0}")]
    Schema(String),
    /// The database is damaged, or holds a row that breaks the schema's rules.
    #[error("message store corrupt: {0}")]
    Corrupt(String),
    /// The store setting could not be parsed.
    #[error("invalid message store setting {given:?}: {reason}")]
    InvalidSpec {
        /// The setting as given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store was closed (or its writer stopped) and takes no more calls.
    #[error("message store closed")]
    Closed,
}
