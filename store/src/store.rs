//! [`MessageStore`]: the one interface the server uses, whatever the backend.

use async_trait::async_trait;
use hongyan_shared::UserId;

use crate::{MessageId, NewMessage, Put, StoreError, StoreStats, StoredMessage};

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

    /// Commits what is queued, then releases the database. Calls after it fail with
    /// [`StoreError::Closed`]. Dropping the store without closing it also commits what is
    /// queued, but without waiting for it.
    async fn close(&self);

    /// The store's counters, for metrics.
    fn stats(&self) -> StoreStats;

    /// Which backend this is.
    fn backend(&self) -> BackendKind;
}
