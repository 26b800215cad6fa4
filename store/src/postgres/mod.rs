//! [`PostgresStore`]: messages in a PostgreSQL database, written with group commit.
//!
//! - `connection`: the pool, migrations, errors, rows.
//! - `writer`: the writer task: batching, failures, timeouts.
//! - `batch`: one batch as one transaction in two pipelined round trips.
//! - `history`: conversation history's statements and rows.

mod batch;
mod connection;
mod history;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;
use tokio_postgres::Row;

pub(crate) use self::connection::describe as describe_error;
use self::connection::{MESSAGE_COLUMNS, connect, message_from_row, pg_error};
use self::history::{
    ENTRY_COLUMNS, NEWEST_SEQS, SUMMARY_COLUMNS, entry_from_row, member_columns, newest_from_row,
    sql_seq, summary_from_row,
};
use self::writer::Writer;
use crate::queue::WriteQueue;
use crate::stats::Counters;
use crate::{
    BackendKind, Conversation, ConversationSummary, HistoryBatch, HistoryEntry, MessageId,
    MessageStore, NewMessage, Put, StoreConfig, StoreError, StoreStats, StoredMessage,
};

/// Messages in a PostgreSQL database, which several hongyan nodes may share.
///
/// A put returns once its batch's transaction committed (PostgreSQL's own durability: WAL
/// flushed with `synchronous_commit` at its default). Writer tasks, one per shard of
/// receivers ([`StoreConfig::writers`]), batch the writes into transactions of a few
/// pipelined multi-row statements; reads go straight to the pool. Connections
/// are made on demand, so the store opens only if the database is reachable, and afterwards
/// rides out restarts: calls fail with [`StoreError::Unavailable`] while it is down and succeed
/// again once it is back, without reopening.
///
/// Connections are not encrypted (`sslmode=require` is refused when the setting is parsed):
/// reach a remote database over a private network or a local socket.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    queue: WriteQueue,
    timeout: Duration,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`, libpq's URL
    /// syntax), brings its schema up to date and starts the writer tasks. Must be called
    /// within a tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::InvalidSpec`] for a URL that does not parse, [`StoreError::Unavailable`]
    /// when the database cannot be reached, [`StoreError::Schema`] when it cannot be migrated
    /// or is newer than this build.
    pub async fn open(url: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        let pg_config = crate::spec::parse_postgres_url(url)?;
        let pool = connection::pool(
            pg_config,
            config.readers + config.writers.max(1),
            config.timeout,
        )?;
        connection::migrate(&pool).await?;
        let counters = Arc::new(Counters::default());
        let (queue, shards) = WriteQueue::new(
            config.queue_capacity,
            config.writers,
            config.limits,
            Arc::clone(&counters),
        );
        for jobs in shards {
            let writer = Writer::new(
                pool.clone(),
                config.limits,
                config.max_batch,
                config.timeout,
                Arc::clone(&counters),
            );
            tokio::spawn(writer.run(jobs));
        }
        tracing::info!(url = %crate::spec::redact(url), "postgres message store open");
        Ok(PostgresStore {
            pool,
            queue,
            timeout: config.timeout,
        })
    }

    /// Runs one read query on a pooled connection, within the timeout; a connection that
    /// failed is discarded.
    async fn read(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = connect(&self.pool).await?;
        let query = async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        };
        match tokio::time::timeout(self.timeout, query).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(error)) => {
                drop(Object::take(client));
                Err(pg_error(&error))
            }
            Err(_) => {
                drop(Object::take(client));
                Err(StoreError::Unavailable(format!(
                    "postgres did not answer within {:?}",
                    self.timeout
                )))
            }
        }
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
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
        let after = after.map_or(0, MessageId::get);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM hongyan_pending
             WHERE receiver = $1 AND id > $2 AND (expires_at IS NULL OR expires_at > $3)
             ORDER BY id LIMIT $4"
        );
        self.read(&sql, &[&receiver.as_str(), &after, &now_ms, &limit])
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn remove(&self, receiver: &UserId, ids: &[MessageId]) -> Result<u64, StoreError> {
        self.queue.remove(receiver, ids).await
    }

    async fn count(&self, receiver: &UserId) -> Result<u64, StoreError> {
        let rows = self
            .read(
                "SELECT COUNT(*) FROM hongyan_pending WHERE receiver = $1",
                &[&receiver.as_str()],
            )
            .await?;
        let count: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("COUNT(*) returned no row".to_owned()))?
            .try_get(0)
            .map_err(|e| pg_error(&e))?;
        Ok(u64::try_from(count).unwrap_or(0))
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
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let (users, peers) = member_columns(conversations);
        self.read(NEWEST_SEQS, &[&users, &peers])
            .await?
            .iter()
            .map(newest_from_row)
            .collect()
    }

    async fn history(
        &self,
        conversation: &Conversation,
        range: HistoryRange,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (low, high) = (conversation.low().as_str(), conversation.high().as_str());
        let (sql, bound, newest_first) = match range {
            HistoryRange::After(after) => (
                format!(
                    "SELECT {ENTRY_COLUMNS} FROM hongyan_history
                     WHERE low = $1 AND high = $2 AND seq > $3 ORDER BY seq LIMIT $4"
                ),
                sql_seq(after),
                false,
            ),
            HistoryRange::Before(before) => (
                format!(
                    "SELECT {ENTRY_COLUMNS} FROM hongyan_history
                     WHERE low = $1 AND high = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
                ),
                before.map_or(i64::MAX, sql_seq),
                true,
            ),
        };
        let mut page = self
            .read(&sql, &[&low, &high, &bound, &limit])
            .await?
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if newest_first {
            page.reverse();
        }
        Ok(page)
    }

    async fn conversations(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map(UserId::as_str);
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM hongyan_conversations
             WHERE user_id = $1 AND ($2::TEXT IS NULL OR peer > $2) ORDER BY peer LIMIT $3"
        );
        self.read(&sql, &[&user.as_str(), &after, &limit])
            .await?
            .iter()
            .map(summary_from_row)
            .collect()
    }

    async fn conversation(
        &self,
        user: &UserId,
        peer: &UserId,
    ) -> Result<Option<ConversationSummary>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM hongyan_conversations WHERE user_id = $1 AND peer = $2"
        );
        self.read(&sql, &[&user.as_str(), &peer.as_str()])
            .await?
            .first()
            .map(summary_from_row)
            .transpose()
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
        self.pool.close();
    }

    fn stats(&self) -> StoreStats {
        self.queue.stats()
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Postgres
    }
}
