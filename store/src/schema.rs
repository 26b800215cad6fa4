//! The schema both SQL backends share, as numbered migrations.
//!
//! Each [`Migration`] is written once per dialect and describes the same tables. A store
//! applies, on open and in one transaction, every migration newer than the database's
//! version, recording each in `hongyan_migrations`; a database newer than this build is
//! refused rather than guessed at. Tables carry a `hongyan_` prefix because a PostgreSQL
//! database may be shared with other applications.
//!
//! # Tables (version 1)
//! - `hongyan_pending`: messages not yet delivered, one row per message. `id` is the
//!   acceptance order (never reused); `(receiver, sender, fp)` is unique, which makes `put`
//!   idempotent; `(receiver, id)` serves replay; `expires_at` (partial) serves expiry.
//!   `content` is bytes (the UTF-8 of the body), not text: PostgreSQL's text cannot hold the
//!   NUL character a Java client may send, and a body must come back exactly as it went in.
//! - `hongyan_health`: the scratch row [`MessageStore::health`](crate::MessageStore::health)
//!   writes.
//! - `hongyan_migrations`: which migrations ran, and when.
//!
//! # Tables (version 2: conversation history, issue 12)
//! - `hongyan_history`: every message of every conversation, keyed by `(low, high, seq)`, the
//!   conversation's members in id order and the message's place in it; `accepted_at` (indexed)
//!   serves the retention sweep. `fp` is null for a message without one. Written in batches
//!   behind delivery; pending stays the small, hot table of undelivered messages (a stored
//!   message is in both), and retention 0 writes nothing here.
//! - `hongyan_conversations`: one row per member (a user, never `"0"`) and conversation: its
//!   newest seq and when it was accepted, and the member's read position. Rows outlive the
//!   retention of the messages, so numbering never starts over.
//! - `hongyan_meta`: `history_epoch` and `history_open` (1 while a server writes history; a
//!   server that finds it still 1 crashed, and the epoch grows).
//!
//! # Indexes (version 3: history numbered by the store, for a cluster)
//! - `hongyan_history_by_fp` (PostgreSQL only): `(low, high, sender, fp)`, where the nodes of a
//!   cluster look for a retransmission before they number a message. SQLite serves one server,
//!   which numbers history itself and recognises retransmissions in memory, so its history
//!   table keeps one index fewer to write.
//!
//! # Indexes (version 4: SQLite's history swept in row order)
//! - SQLite drops `hongyan_history_by_time`: its retention sweep goes through the oldest rows
//!   in the order they were written (the table's rowid, which is the order messages were
//!   accepted), so a history row costs two B-tree inserts instead of three on the one
//!   writer thread. PostgreSQL, whose rows have no such order, keeps the index.
//!
//! # Tables (version 5: SQLite's history kept in batches)
//! - SQLite replaces `hongyan_history` with `hongyan_history_batches`: a row per conversation
//!   and write, keyed by `(low, high, first_seq)`, holding the entries packed
//!   ([`HistoryBatch`](crate::HistoryBatch): seq, sender, fp, typeu, time and content each),
//!   with the seqs and times the reads and the sweep look at (`last_seq`, `oldest_at`,
//!   `newest_at`, `entries`). One server writes a conversation's new messages every flush
//!   delay, tens of them under load: one row instead of one each makes the writer's work per
//!   conversation, not per message. Reads unpack the rows that hold the range; the sweep goes
//!   by rowid as before and rewrites a row that is only partly old. The existing rows move in
//!   batches of up to 64. PostgreSQL keeps a row per entry: its nodes number entries as they
//!   write them and look for a retransmission by fingerprint, which an index serves.

use std::time::{SystemTime, UNIX_EPOCH};

/// One step of the schema.
#[derive(Debug)]
pub(crate) struct Migration {
    /// The version the database has once this ran; versions count up from 1 without gaps.
    pub version: i64,
    /// What the step does, recorded beside its version.
    pub name: &'static str,
    /// The step in SQLite's dialect.
    pub sqlite: &'static str,
    /// The step in PostgreSQL's dialect.
    pub postgres: &'static str,
}

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    PENDING,
    HISTORY,
    NUMBERED_BY_STORE,
    SWEPT_IN_ROW_ORDER,
    HISTORY_IN_BATCHES,
];

const PENDING: Migration = Migration {
    version: 1,
    name: "pending messages",
    sqlite: "
        CREATE TABLE hongyan_pending (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            receiver    TEXT    NOT NULL,
            sender      TEXT    NOT NULL,
            fp          TEXT    NOT NULL,
            typeu       INTEGER NOT NULL,
            content     BLOB    NOT NULL,
            accepted_at INTEGER NOT NULL,
            expires_at  INTEGER
        );
        CREATE UNIQUE INDEX hongyan_pending_by_key ON hongyan_pending (receiver, sender, fp);
        CREATE INDEX hongyan_pending_by_receiver ON hongyan_pending (receiver, id);
        CREATE INDEX hongyan_pending_by_expiry ON hongyan_pending (expires_at)
            WHERE expires_at IS NOT NULL;
        CREATE TABLE hongyan_health (
            id        INTEGER PRIMARY KEY,
            probed_at INTEGER NOT NULL,
            pad       BLOB
        );
    ",
    postgres: "
        CREATE TABLE hongyan_pending (
            id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            receiver    TEXT    NOT NULL,
            sender      TEXT    NOT NULL,
            fp          TEXT    NOT NULL,
            typeu       INTEGER NOT NULL,
            content     BYTEA   NOT NULL,
            accepted_at BIGINT  NOT NULL,
            expires_at  BIGINT
        );
        CREATE UNIQUE INDEX hongyan_pending_by_key ON hongyan_pending (receiver, sender, fp);
        CREATE INDEX hongyan_pending_by_receiver ON hongyan_pending (receiver, id);
        CREATE INDEX hongyan_pending_by_expiry ON hongyan_pending (expires_at)
            WHERE expires_at IS NOT NULL;
        CREATE TABLE hongyan_health (
            id        BIGINT PRIMARY KEY,
            probed_at BIGINT NOT NULL,
            pad       BYTEA
        );
        INSERT INTO hongyan_health (id, probed_at) VALUES (1, 0);
    ",
};

const HISTORY: Migration = Migration {
    version: 2,
    name: "conversation history",
    sqlite: "
        CREATE TABLE hongyan_history (
            low         TEXT    NOT NULL,
            high        TEXT    NOT NULL,
            seq         INTEGER NOT NULL,
            sender      TEXT    NOT NULL,
            fp          TEXT,
            typeu       INTEGER NOT NULL,
            content     BLOB    NOT NULL,
            accepted_at INTEGER NOT NULL,
            PRIMARY KEY (low, high, seq)
        );
        CREATE INDEX hongyan_history_by_time ON hongyan_history (accepted_at);
        CREATE TABLE hongyan_conversations (
            user_id   TEXT    NOT NULL,
            peer      TEXT    NOT NULL,
            newest    INTEGER NOT NULL,
            newest_at INTEGER NOT NULL,
            read_seq  INTEGER NOT NULL,
            PRIMARY KEY (user_id, peer)
        ) WITHOUT ROWID;
        CREATE TABLE hongyan_meta (
            key   TEXT    PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO hongyan_meta (key, value) VALUES ('history_epoch', 0), ('history_open', 0);
    ",
    postgres: "
        CREATE TABLE hongyan_history (
            low         TEXT    NOT NULL,
            high        TEXT    NOT NULL,
            seq         BIGINT  NOT NULL,
            sender      TEXT    NOT NULL,
            fp          TEXT,
            typeu       INTEGER NOT NULL,
            content     BYTEA   NOT NULL,
            accepted_at BIGINT  NOT NULL,
            PRIMARY KEY (low, high, seq)
        );
        CREATE INDEX hongyan_history_by_time ON hongyan_history (accepted_at);
        CREATE TABLE hongyan_conversations (
            user_id   TEXT    NOT NULL,
            peer      TEXT    NOT NULL,
            newest    BIGINT  NOT NULL,
            newest_at BIGINT  NOT NULL,
            read_seq  BIGINT  NOT NULL,
            PRIMARY KEY (user_id, peer)
        );
        CREATE TABLE hongyan_meta (
            key   TEXT    PRIMARY KEY,
            value BIGINT  NOT NULL
        );
        INSERT INTO hongyan_meta (key, value) VALUES ('history_epoch', 0), ('history_open', 0);
    ",
};

const NUMBERED_BY_STORE: Migration = Migration {
    version: 3,
    name: "history numbered by the store",
    sqlite: "SELECT 1;",
    postgres: "
        CREATE INDEX hongyan_history_by_fp ON hongyan_history (low, high, sender, fp)
            WHERE fp IS NOT NULL;
    ",
};

const SWEPT_IN_ROW_ORDER: Migration = Migration {
    version: 4,
    name: "history swept in row order",
    sqlite: "DROP INDEX hongyan_history_by_time;",
    postgres: "SELECT 1;",
};

const HISTORY_IN_BATCHES: Migration = Migration {
    version: 5,
    name: "history kept in batches",
    // The rows move in a step of the SQLite store's own (`sqlite::history::pack_history_rows`),
    // which drops `hongyan_history` after.
    sqlite: "
        CREATE TABLE hongyan_history_batches (
            low       TEXT    NOT NULL,
            high      TEXT    NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq  INTEGER NOT NULL,
            oldest_at INTEGER NOT NULL,
            newest_at INTEGER NOT NULL,
            entries   INTEGER NOT NULL,
            body      BLOB    NOT NULL,
            PRIMARY KEY (low, high, first_seq)
        );
    ",
    postgres: "SELECT 1;",
};

/// The version a database has once every migration ran.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The migrations a database at `current` still needs, or why it cannot be opened.
pub(crate) fn missing(current: i64) -> Result<&'static [Migration], String> {
    let latest = latest_version();
    if current > latest {
        return Err(format!(
            "the database is at schema version {current}, newer than this build of hongyan \
             knows ({latest}): upgrade hongyan, or point it at another database"
        ));
    }
    let done = MIGRATIONS.partition_point(|m| m.version <= current);
    Ok(&MIGRATIONS[done..])
}

/// SQL that creates the migrations table if it is missing; the same in both dialects.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS hongyan_migrations (
        version    BIGINT PRIMARY KEY,
        name       TEXT   NOT NULL,
        applied_at BIGINT NOT NULL
    )";

/// Milliseconds since the Unix epoch, for bookkeeping columns (`applied_at`, `probed_at`).
pub(crate) fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
    }

    #[test]
    fn a_database_newer_than_this_build_is_refused() {
        assert!(missing(latest_version() + 1).is_err());
        assert!(missing(latest_version()).unwrap().is_empty());
        assert_eq!(missing(0).unwrap().len(), MIGRATIONS.len());
    }
}
