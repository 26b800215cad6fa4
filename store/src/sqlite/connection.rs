//! Opening SQLite connections, migrating the schema, mapping SQLite's errors and rows.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, Row, TransactionBehavior};

use crate::schema::{self, CREATE_MIGRATIONS_TABLE, epoch_ms};
use crate::{MessageId, StoreConfig, StoreError, StoredMessage};

/// The columns every query that reads messages selects, in [`message_from_row`]'s order.
pub(super) const MESSAGE_COLUMNS: &str =
    "id, receiver, sender, fp, typeu, content, accepted_at, expires_at";

/// Opens the writer's connection: WAL, and an fsync on every commit (`synchronous=FULL`), so
/// a commit that returned survives a power cut.
pub(super) fn open_writer(path: &Path, config: &StoreConfig) -> Result<Connection, StoreError> {
    let conn = open(path, config.timeout)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| at(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: the database refused WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| at(path, e))?;
    // Checkpoint every ~40 MB of WAL rather than SQLite's 4 MB: index pages that several
    // batches dirty are copied into the database once instead of once per batch or two,
    // about a quarter fewer bytes written under load. The file is cut back to 64 MB after.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(|e| at(path, e))?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(|e| at(path, e))?;
    if let Some(pages) = config.sqlite_max_page_count {
        let pages = i64::try_from(pages).unwrap_or(i64::MAX);
        conn.pragma_update_and_check(None, "max_page_count", pages, |row| row.get::<_, i64>(0))
            .map_err(|e| at(path, e))?;
    }
    Ok(conn)
}

/// Opens a read connection: it cannot write, so a bug cannot bypass the writer.
pub(super) fn open_reader(path: &Path, timeout: Duration) -> Result<Connection, StoreError> {
    let conn = open(path, timeout)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| at(path, e))?;
    Ok(conn)
}

fn open(path: &Path, timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| at(path, e))?;
    // Another process holding the write lock (a backup, a second hongyan by mistake) is
    // waited for, up to the configured timeout, instead of failing at once.
    conn.busy_timeout(timeout).map_err(|e| at(path, e))?;
    Ok(conn)
}

/// Brings the schema up to date in one `BEGIN IMMEDIATE` transaction: two processes opening
/// the same file at once take turns, and the second finds nothing left to do.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let schema_error = |e: rusqlite::Error| match db_error(e) {
        StoreError::Unavailable(text) => StoreError::Schema(text),
        other => other,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    tx.execute_batch(CREATE_MIGRATIONS_TABLE)
        .map_err(schema_error)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM hongyan_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(schema_error)?;
    for migration in schema::missing(current).map_err(StoreError::Schema)? {
        tx.execute_batch(migration.sqlite)
            .and_then(|()| rust_step(&tx, migration.version))
            .map_err(|e| {
                StoreError::Schema(format!("migration {} failed: {e}", migration.version))
            })?;
        tx.execute(
            "INSERT INTO hongyan_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            (migration.version, migration.name, epoch_ms()),
        )
        .map_err(schema_error)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migrated sqlite store"
        );
    }
    tx.commit().map_err(db_error)
}

/// The part of migration `version` that SQL cannot do: moving history rows into batches
/// (version 5).
fn rust_step(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    match version {
        5 => super::history::pack_history_rows(conn),
        _ => Ok(()),
    }
}

/// Reads a message from a row selected with [`MESSAGE_COLUMNS`].
pub(super) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: MessageId::new(row.get(0)?),
        receiver: row.get::<_, String>(1)?.into(),
        sender: row.get::<_, String>(2)?.into(),
        fp: row.get::<_, String>(3)?.into(),
        typeu: row.get(4)?,
        content: String::from_utf8(row.get(5)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Blob, Box::new(e))
        })?,
        accepted_at: row.get(6)?,
        expires_at: row.get(7)?,
    })
}

/// What a SQLite error means to the server: a damaged file or a row of the wrong shape is
/// corruption, anything else (full, I/O, locked, cannot open) makes the store unavailable.
pub(super) fn db_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(error.to_string()),
        _ => match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(error.to_string())
            }
            _ => StoreError::Unavailable(error.to_string()),
        },
    }
}

/// [`db_error`], naming the file: errors while opening are about a path.
fn at(path: &Path, error: rusqlite::Error) -> StoreError {
    match db_error(error) {
        StoreError::Unavailable(text) => {
            StoreError::Unavailable(format!("{}: {text}", path.display()))
        }
        StoreError::Corrupt(text) => StoreError::Corrupt(format!("{}: {text}", path.display())),
        other => other,
    }
}
