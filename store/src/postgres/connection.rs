//! The PostgreSQL connection pool, migrations, and what PostgreSQL's errors and rows mean.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::{NoTls, Row};

use crate::schema::{self, CREATE_MIGRATIONS_TABLE, epoch_ms};
use crate::{MessageId, StoreError, StoredMessage};

/// The columns every query that reads messages selects, in [`message_from_row`]'s order.
pub(super) const MESSAGE_COLUMNS: &str =
    "id, receiver, sender, fp, typeu, content, accepted_at, expires_at";

/// The advisory-lock class of a receiver's lock (`pg_advisory_xact_lock(class, hashtext(r))`):
/// "hong" in ASCII, so hongyan's locks stay apart from other applications'.
pub(super) const RECEIVER_LOCK_CLASS: i32 = 0x686f_6e67;
/// The advisory-lock class that serialises migrations between nodes opening at once.
const MIGRATION_LOCK_CLASS: i32 = RECEIVER_LOCK_CLASS + 1;
/// The advisory-lock class of a conversation's numbering by the store (nodes of a cluster).
pub(super) const CONVERSATION_LOCK_CLASS: i32 = RECEIVER_LOCK_CLASS + 2;

/// A pool of `size` connections to `config`'s database. Connections are made on demand, so
/// the pool exists even while the database is down; a connection found closed is replaced,
/// which is how the store reconnects after the server went away.
pub(super) fn pool(
    mut config: tokio_postgres::Config,
    size: usize,
    timeout: Duration,
) -> Result<Pool, StoreError> {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("hongyan");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
}

/// A connection from `pool`, or why none could be had.
pub(super) async fn connect(pool: &Pool) -> Result<Object, StoreError> {
    pool.get()
        .await
        .map_err(|e: PoolError| StoreError::Unavailable(describe(&e)))
}

/// Brings the schema up to date in one transaction, holding an advisory lock so nodes that
/// open the same database at once take turns; the second finds nothing left to do.
pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = connect(pool).await?;
    let schema_error = |e: tokio_postgres::Error| StoreError::Schema(describe(&e));
    let tx = client.transaction().await.map_err(|e| pg_error(&e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, 0)",
        &[&MIGRATION_LOCK_CLASS],
    )
    .await
    .map_err(|e| pg_error(&e))?;
    tx.batch_execute(CREATE_MIGRATIONS_TABLE)
        .await
        .map_err(schema_error)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM hongyan_migrations",
            &[],
        )
        .await
        .map_err(schema_error)?
        .get(0);
    for migration in schema::missing(current).map_err(StoreError::Schema)? {
        tx.batch_execute(migration.postgres).await.map_err(|e| {
            StoreError::Schema(format!(
                "migration {} failed: {}",
                migration.version,
                describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO hongyan_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &epoch_ms()],
        )
        .await
        .map_err(schema_error)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migrated postgres store"
        );
    }
    tx.commit().await.map_err(|e| pg_error(&e))
}

/// Reads a message from a row selected with [`MESSAGE_COLUMNS`].
pub(super) fn message_from_row(row: &Row) -> Result<StoredMessage, StoreError> {
    let column = |e: tokio_postgres::Error| pg_error(&e);
    let id: i64 = row.try_get(0).map_err(column)?;
    Ok(StoredMessage {
        id: MessageId::new(id),
        receiver: row.try_get::<_, String>(1).map_err(column)?.into(),
        sender: row.try_get::<_, String>(2).map_err(column)?.into(),
        fp: row.try_get::<_, String>(3).map_err(column)?.into(),
        typeu: row.try_get(4).map_err(column)?,
        content: String::from_utf8(row.try_get(5).map_err(column)?)
            .map_err(|e| StoreError::Corrupt(format!("message {id}: content is not UTF-8: {e}")))?,
        accepted_at: row.try_get(6).map_err(column)?,
        expires_at: row.try_get(7).map_err(column)?,
    })
}

/// What a PostgreSQL error means to the server: damaged data is corruption, everything else
/// (connection refused or lost, server shutting down, disk full, read-only) makes the store
/// unavailable.
pub(super) fn pg_error(error: &tokio_postgres::Error) -> StoreError {
    let corrupt = error.code().is_some_and(|code| {
        // Class XX: internal error, data_corrupted (XX001), index_corrupted (XX002).
        matches!(code.code(), "XX001" | "XX002")
    }) || error.to_string().starts_with("error deserializing");
    if corrupt {
        StoreError::Corrupt(describe(error))
    } else {
        StoreError::Unavailable(describe(error))
    }
}

/// An error with its causes, because the drivers' own messages ("db error", "error
/// connecting to server") leave out what happened.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
