//! [`SqliteStore`]: messages in one SQLite file, written by one thread with group commit.
//!
//! - `connection`: opening connections (WAL, `synchronous=FULL`), migrations, errors, rows.
//! - `writer`: the writer thread and its batches.
//! - `readers`: read connections in tokio's blocking pool.
//! - `history`: conversation history's statements and queries.

mod connection;
mod history;
mod readers;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;

use self::connection::{MESSAGE_COLUMNS, message_from_row};
use self::readers::Readers;
use self::writer::Writer;
use crate::queue::WriteQueue;
use crate::stats::Counters;
use crate::{
    BackendKind, Conversation, ConversationSummary, HistoryBatch, HistoryEntry, MessageId,
    MessageStore, NewMessage, Put, StoreConfig, StoreError, StoreStats, StoredMessage,
};

/// Messages in a SQLite database file: zero set-up, one machine.
///
/// A put returns once its batch is committed with an fsync (WAL, `synchronous=FULL`), so an
/// acknowledged message survives a crash or power cut. All writes go through one dedicated
/// thread; reads use separate connections in tokio's blocking pool. The file is meant for one
/// hongyan process at a time (another process's lock is waited for up to
/// [`StoreConfig::timeout`]).
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    queue: WriteQueue,
    readers: Arc<Readers>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`, brings its schema up to date and
    /// starts the writer thread. The directory must exist.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or set up,
    /// [`StoreError::Schema`] when it cannot be migrated or is newer than this build,
    /// [`StoreError::Corrupt`] when it is not a database.
    pub async fn open(path: impl Into<PathBuf>, config: &StoreConfig) -> Result<Self, StoreError> {
        let path = path.into();
        let opening = path.clone();
        let setup = config.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let mut conn = connection::open_writer(&opening, &setup)?;
            connection::migrate(&mut conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", path.display())))??;

        let counters = Arc::new(Counters::default());
        // One shard, one writer: SQLite lets one transaction write at a time anyway.
        let (queue, mut shards) = WriteQueue::new(
            config.queue_capacity,
            1,
            config.limits,
            Arc::clone(&counters),
        );
        let jobs = shards
            .pop()
            .expect("WriteQueue::new makes at least one shard");
        let writer = Writer::new(conn, config.limits, config.max_batch, counters);
        std::thread::Builder::new()
            .name("hongyan-sqlite-writer".to_owned())
            .spawn(move || writer.run(jobs))
            .map_err(|e| StoreError::Unavailable(format!("starting the sqlite writer: {e}")))?;
        let readers = Arc::new(Readers::new(path.clone(), config.readers, config.timeout));
        tracing::info!(path = %path.display(), "sqlite message store open");
        Ok(SqliteStore {
            path,
            queue,
            readers,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn put(&self, message: NewMessage) -> Result<Put, StoreError> {
        self.queue.put(message).await
    }

    async fn pending(
        &self,
        receiver: &UserId,
        after: Option<MessageId>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let receiver = receiver.as_str().to_owned();
        let after = after.map_or(0, MessageId::get);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.readers
            .read(move |conn| {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM hongyan_pending
                     WHERE receiver = ?1 AND id > ?2 AND (expires_at IS NULL OR expires_at > ?3)
                     ORDER BY id LIMIT ?4"
                );
                conn.prepare_cached(&sql)?
                    .query_map((receiver, after, now_ms, limit), message_from_row)?
                    .collect()
            })
            .await
    }

    async fn remove(&self, receiver: &UserId, ids: &[MessageId]) -> Result<u64, StoreError> {
        self.queue.remove(receiver, ids).await
    }

    async fn count(&self, receiver: &UserId) -> Result<u64, StoreError> {
        let receiver = receiver.clone();
        self.readers
            .read(move |conn| writer::count(conn, &receiver))
            .await
    }

    async fn erase(&self, receiver: &UserId) -> Result<u64, StoreError> {
        self.queue.erase(receiver).await
    }

    async fn expire(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        self.queue.expire(now_ms, limit).await
    }

    async fn open_history(&self) -> Result<u64, StoreError> {
        self.queue.open_history(false).await
    }

    async fn open_shared_history(&self) -> Result<u64, StoreError> {
        self.queue.open_history(true).await
    }

    async fn close_history(&self) -> Result<(), StoreError> {
        self.queue.close_history().await
    }

    async fn append_history(&self, batches: Arc<[HistoryBatch]>) -> Result<(), StoreError> {
        self.queue.append_history(batches).await
    }

    async fn number_history(&self, entries: Vec<HistoryEntry>) -> Result<Vec<u64>, StoreError> {
        self.queue.number_history(entries).await
    }

    async fn newest_seqs(&self, conversations: &[Conversation]) -> Result<Vec<u64>, StoreError> {
        let conversations = conversations.to_vec();
        self.readers
            .read(move |conn| history::newest_seqs(conn, &conversations))
            .await
    }

    async fn history(
        &self,
        conversation: &Conversation,
        range: HistoryRange,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let conversation = conversation.clone();
        self.readers
            .read(move |conn| history::page(conn, &conversation, range, limit))
            .await
    }

    async fn conversations(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let (user, after) = (user.clone(), after.cloned());
        self.readers
            .read(move |conn| history::conversations(conn, &user, after.as_ref(), limit))
            .await
    }

    async fn conversation(
        &self,
        user: &UserId,
        peer: &UserId,
    ) -> Result<Option<ConversationSummary>, StoreError> {
        let (user, peer) = (user.clone(), peer.clone());
        self.readers
            .read(move |conn| history::conversation(conn, &user, &peer))
            .await
    }

    async fn mark_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<u64, StoreError> {
        self.queue.mark_read(user, peer, seq).await
    }

    async fn expire_history(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        self.queue.expire_history(before_ms, limit).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.queue.probe().await
    }

    async fn close(&self) {
        self.queue.close().await;
        self.readers.close();
    }

    fn stats(&self) -> StoreStats {
        self.queue.stats()
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Sqlite
    }
}
