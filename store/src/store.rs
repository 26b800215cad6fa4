//! [`MessageStore`]: the one interface the server uses, whatever the backend.

use std::sync::Arc;

use async_trait::async_trait;
use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;

use crate::{
    Conversation, ConversationSummary, HistoryBatch, HistoryEntry, MessageId, NewMessage, Put,
    StoreError, StoreStats, StoredMessage,
};

/// Which backend a store is, for logs and metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// [`MemoryStore`](crate::MemoryStore): lost on exit.
    Memory,
    /// [`SqliteStore`](crate::SqliteStore): one file, one writer.
    Sqlite,
    /// [`PostgresStore`](crate::PostgresStore): a PostgreSQL database, shareable by nodes.
    Postgres,
}

impl BackendKind {
    /// The backend's name as the store setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// Messages kept for receivers who could not take them yet.
///
/// Every write is durable when its future completes `Ok` (committed and, for the SQL
/// backends, fsync'd), and no `Ok` is ever returned for a write that did not commit. Writes
/// from many tasks are group-committed: callers wait for the commit that carries their write.
///
/// Ids grow in acceptance order per receiver, and a message committed later never gets a
/// smaller id than one a reader already saw, so [`pending`](Self::pending) pages are stable.
///
/// The server holds a store as `Arc<dyn MessageStore>`, chosen at run time from a
/// [`StoreSpec`](crate::StoreSpec).
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Durably stores `message`, or recognises it as already stored.
    ///
    /// Idempotent on `(receiver, sender, fp)`: while a message is stored, putting it again
    /// returns [`Put::AlreadyStored`] with its id and writes nothing (a sender's
    /// retransmission is acknowledged again, never stored twice). Once it was removed (delivered)
    /// the same key may be stored anew: the server's duplicate window covers that case.
    ///
    /// # Errors
    /// [`StoreError::InvalidMessage`] for a NUL in an id, [`StoreError::TooLarge`] above [`Limits::max_content_bytes`](crate::Limits),
    /// [`StoreError::QuotaExceeded`] when the receiver already has
    /// [`Limits::max_per_receiver`](crate::Limits) messages (checked atomically with the
    /// insert; a duplicate is still answered `AlreadyStored`), [`StoreError::Overloaded`] when
    /// the write queue is full, [`StoreError::Unavailable`] when the database cannot commit.
    async fn put(&self, message: NewMessage) -> Result<Put, StoreError>;

    /// Up to `limit` of `receiver`'s messages with an id greater than `after` (all when
    /// `None`), oldest first, leaving out those expired at `now_ms`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be read.
    async fn pending(
        &self,
        receiver: &UserId,
        after: Option<MessageId>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Removes `receiver`'s messages with these ids (they were delivered and acknowledged) and
    /// returns how many were still there; ids already gone (expired, erased, removed) are
    /// skipped, so a count below `ids.len()` tells the caller which race it lost.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: nothing was removed.
    async fn remove(&self, receiver: &UserId, ids: &[MessageId]) -> Result<u64, StoreError>;

    /// How many messages `receiver` has stored, expired or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be read.
    async fn count(&self, receiver: &UserId) -> Result<u64, StoreError>;

    /// Removes every message stored for `receiver` (the account was deleted) and returns how
    /// many there were.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: nothing was removed.
    async fn erase(&self, receiver: &UserId) -> Result<u64, StoreError>;

    /// Removes up to `limit` messages expired at `now_ms`, and returns them (oldest id first)
    /// so the server can report each one as lost. A message is returned by exactly one call.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: nothing was removed.
    async fn expire(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredMessage>, StoreError>;

    /// Whether the store can take messages now: a real write committed through the same queue
    /// and transaction as puts, so a full disk, a database that went away or a full queue
    /// shows here (for `/readyz`). Recovers by itself once the database does.
    ///
    /// # Errors
    /// The error a put would get now.
    async fn health(&self) -> Result<(), StoreError>;

    /// A server starts writing history: returns its history epoch. The epoch stays what it was
    /// if the last server to write history closed it ([`close_history`](Self::close_history))
    /// after its last append, and grows by one otherwise (a crash: seqs that server handed out
    /// may never have been written), so clients that compare it know when to drop what they
    /// learned. A fresh database starts at 1. Committed before it returns.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`].
    async fn open_history(&self) -> Result<u64, StoreError>;

    /// A node of a cluster starts writing history, which the store numbers
    /// ([`number_history`](Self::number_history)): returns the epoch, grown if a server that
    /// numbered history itself left it open (a crash), and leaves it closed, since a node
    /// that dies loses no seq it handed out (it hands out none). Committed before it returns.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`].
    async fn open_shared_history(&self) -> Result<u64, StoreError>;

    /// The server wrote its last history (every append committed): the next
    /// [`open_history`](Self::open_history) keeps the epoch.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: the next open counts it as
    /// a crash.
    async fn close_history(&self) -> Result<(), StoreError>;

    /// Writes `batches` (entries numbered by the server, each conversation's in seq order)
    /// in one group commit, and moves each member's summary: the conversation's newest seq,
    /// and the sender's read position to the message it sent. A batch already written (the
    /// same conversation and first seq; in PostgreSQL, an entry with the same conversation
    /// and seq) is skipped, so a retry after an ambiguous failure writes nothing twice.
    /// Shared, not owned: the server keeps reading the entries while they are written.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: nothing was written.
    async fn append_history(&self, batches: Arc<[HistoryBatch]>) -> Result<(), StoreError>;

    /// Numbers `entries` (their `seq` is ignored) and writes them, in one transaction: each
    /// conversation's go after the newest seq written in it, in the order given, and move the
    /// members' summaries as [`append_history`](Self::append_history) does. Writers that
    /// number one conversation at once are serialised, so seqs stay gapless and unique across
    /// every node sharing the store. An entry whose (conversation, sender, fp) is written
    /// already, or repeated in `entries`, is a retransmission and is left out (a retry after an
    /// ambiguous failure writes nothing twice, within the history's retention). Returns the seq
    /// each entry got, in order: 0 for one left out.
    ///
    /// # Errors
    /// [`StoreError::InvalidMessage`] for a NUL in an id, [`StoreError::Overloaded`] or
    /// [`StoreError::Unavailable`]: nothing was written.
    async fn number_history(&self, entries: Vec<HistoryEntry>) -> Result<Vec<u64>, StoreError>;

    /// The newest seq written in each of `conversations` (0 for one without history), in the
    /// same order: where the server goes on numbering.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be read.
    async fn newest_seqs(&self, conversations: &[Conversation]) -> Result<Vec<u64>, StoreError>;

    /// Up to `limit` entries of `conversation` in `range`, oldest first:
    /// [`HistoryRange::After`] the oldest after a seq, [`HistoryRange::Before`] the newest
    /// below one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be read.
    async fn history(
        &self,
        conversation: &Conversation,
        range: HistoryRange,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Up to `limit` of `user`'s conversations, in peer-id order, after `after`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be read.
    async fn conversations(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    /// `user`'s conversation with `peer`, if it has one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be read.
    async fn conversation(
        &self,
        user: &UserId,
        peer: &UserId,
    ) -> Result<Option<ConversationSummary>, StoreError>;

    /// Moves `user`'s read position in the conversation with `peer` to `seq`, unless it is
    /// already further (a read position never moves back), and returns where it is now. The
    /// caller bounds `seq` by the conversation's newest seq.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: nothing was written.
    async fn mark_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<u64, StoreError>;

    /// Removes up to `limit` history entries accepted before `before_ms` (the retention
    /// period), oldest first, and returns how many. Conversations keep their newest seq, so
    /// numbering never starts over.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] or [`StoreError::Unavailable`]: nothing was removed.
    async fn expire_history(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError>;

    /// Commits what is queued, then releases the database. Calls after it fail with
    /// [`StoreError::Closed`]. Dropping the store without closing it also commits what is
    /// queued, but without waiting for it.
    async fn close(&self);

    /// The store's counters, for metrics.
    fn stats(&self) -> StoreStats;

    /// Which backend this is.
    fn backend(&self) -> BackendKind;
}
