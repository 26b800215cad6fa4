//! Conversation history in SQLite: the writer's statements (in its batch transaction) and the
//! readers' queries.

use std::collections::{HashMap, HashSet};

use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, Statement};

use crate::history::{WrittenKey, number as number_entries, summary_changes, written_key};
use crate::{Conversation, ConversationSummary, HistoryEntry};

/// The columns every query that reads history selects, in [`entry_from_row`]'s order.
const ENTRY_COLUMNS: &str = "low, high, seq, sender, fp, typeu, content, accepted_at";

/// The columns every query that reads a member's summary selects.
const SUMMARY_COLUMNS: &str = "peer, newest, newest_at, read_seq";

/// A seq as SQLite stores it (seqs stay far below `i64::MAX`).
pub(super) fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Starts history writing: the epoch, grown when the last writer did not close it. `shared`
/// (the store numbers history) leaves it closed.
pub(super) fn open(conn: &Connection, shared: bool) -> rusqlite::Result<u64> {
    let meta = |key: &str| -> rusqlite::Result<i64> {
        conn.prepare_cached("SELECT value FROM hongyan_meta WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()
            .map(Option::unwrap_or_default)
    };
    let (mut epoch, open) = (meta("history_epoch")?, meta("history_open")?);
    if epoch == 0 || open != 0 {
        epoch += 1;
    }
    let mut set = conn.prepare_cached(
        "INSERT INTO hongyan_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?;
    set.execute(("history_epoch", epoch))?;
    set.execute(("history_open", i64::from(!shared)))?;
    Ok(seq_of(epoch))
}

/// Ends history writing cleanly.
pub(super) fn close(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE hongyan_meta SET value = 0 WHERE key = 'history_open'")?
        .execute([])?;
    Ok(())
}

/// Entries one `INSERT` writes: binding and stepping one statement per batch of rows rather
/// than per row (8 parameters a row, far below SQLite's limit of 32,766).
const ROWS_PER_INSERT: usize = 32;

/// The `INSERT` of `rows` history entries, skipping any already written.
///
/// `OR IGNORE` rather than `ON CONFLICT DO NOTHING`: the two skip an entry already written
/// alike, but with the upsert clause the statement may still abort (on the NOT NULL columns,
/// which the values never leave empty), so SQLite journals every page the statement changes,
/// spilling to a temporary file beyond 64 KiB, in case it must undo the statement alone.
fn insert_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!(
        "INSERT OR IGNORE INTO hongyan_history
             (low, high, seq, sender, fp, typeu, content, accepted_at)
         VALUES {values}"
    )
}

/// Writes `entries` (skipping any already written) and moves the members' summaries; returns
/// how many entries were new.
pub(super) fn append(conn: &Connection, entries: &[HistoryEntry]) -> rusqlite::Result<u64> {
    let mut written = 0;
    let mut chunks = entries.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut insert = conn.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
        for chunk in chunks.by_ref() {
            written += insert_rows(&mut insert, chunk)?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut insert = conn.prepare_cached(&insert_sql(1))?;
        for entry in rest {
            written += insert_rows(&mut insert, std::slice::from_ref(entry))?;
        }
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO hongyan_conversations (user_id, peer, newest, newest_at, read_seq)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id, peer) DO UPDATE SET
             newest_at = CASE WHEN excluded.newest > newest THEN excluded.newest_at
                              ELSE newest_at END,
             newest = max(newest, excluded.newest),
             read_seq = max(read_seq, excluded.read_seq)",
    )?;
    for ((user, peer), change) in summary_changes(entries) {
        upsert.execute((
            user.as_str(),
            peer.as_str(),
            sql_seq(change.newest),
            change.newest_at,
            sql_seq(change.read),
        ))?;
    }
    Ok(written)
}

/// Numbers `entries` after what their conversations hold and writes them, leaving out those
/// written before (see `MessageStore::number_history`); the seq each got, 0 for one left out.
/// The writer's transaction is the only one that writes, so nothing moves the counters
/// between the reads and the append. A retransmission is looked for among its
/// conversation's rows (no index by fingerprint: one server numbers history itself and
/// recognises retransmissions in memory).
pub(super) fn number(conn: &Connection, entries: &[HistoryEntry]) -> rusqlite::Result<Vec<u64>> {
    let conversations: Vec<Conversation> = entries
        .iter()
        .map(|e| e.conversation.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let seqs = newest_seqs(conn, &conversations)?;
    let newest: HashMap<Conversation, u64> = conversations.into_iter().zip(seqs).collect();
    let mut find = conn.prepare_cached(
        "SELECT 1 FROM hongyan_history
         WHERE low = ?1 AND high = ?2 AND sender = ?3 AND fp = ?4 LIMIT 1",
    )?;
    let mut written: HashSet<WrittenKey> = HashSet::new();
    for key in entries.iter().filter_map(written_key) {
        let (conversation, sender, fp) = &key;
        let found = find
            .query_row(
                (
                    conversation.low().as_str(),
                    conversation.high().as_str(),
                    sender.as_str(),
                    fp.as_str(),
                ),
                |_| Ok(()),
            )
            .optional()?;
        if found.is_some() {
            written.insert(key);
        }
    }
    let (seqs, numbered) = number_entries(
        entries.to_vec(),
        |c| newest.get(c).copied().unwrap_or(0),
        |key| written.contains(key),
    );
    append(conn, &numbered)?;
    Ok(seqs)
}

/// Runs `insert`, an `INSERT` of `entries.len()` rows, with `entries`; returns how many rows
/// were new.
fn insert_rows(insert: &mut Statement<'_>, entries: &[HistoryEntry]) -> rusqlite::Result<u64> {
    let mut at = 0;
    let mut bind = |value: &dyn ToSql| {
        at += 1;
        insert.raw_bind_parameter(at, value)
    };
    for entry in entries {
        bind(&entry.conversation.low().as_str())?;
        bind(&entry.conversation.high().as_str())?;
        bind(&sql_seq(entry.seq))?;
        bind(&entry.sender.as_str())?;
        bind(&entry.fp.as_ref().map(|fp| fp.as_str()))?;
        bind(&entry.typeu)?;
        bind(&entry.content.as_bytes())?;
        bind(&entry.accepted_at)?;
    }
    Ok(insert.raw_execute()? as u64)
}

/// Moves `user`'s read position with `peer` forward to `seq`; returns where it is.
pub(super) fn mark_read(
    conn: &Connection,
    user: &UserId,
    peer: &UserId,
    seq: u64,
) -> rusqlite::Result<u64> {
    let read: i64 = conn
        .prepare_cached(
            "INSERT INTO hongyan_conversations (user_id, peer, newest, newest_at, read_seq)
             VALUES (?1, ?2, 0, 0, ?3)
             ON CONFLICT (user_id, peer) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq)
             RETURNING read_seq",
        )?
        .query_row((user.as_str(), peer.as_str(), sql_seq(seq)), |row| {
            row.get(0)
        })?;
    Ok(seq_of(read))
}

/// How many of the oldest rows the retention sweep looks through for each entry it may
/// remove.
const SWEEP_LOOKAHEAD: usize = 4;

/// Removes up to `limit` entries accepted before `before_ms`, oldest first.
///
/// There is no index by time (one B-tree fewer to write per entry): rows are written in the
/// order their messages were accepted, so the oldest are the first by rowid, and the sweep
/// looks through the first `SWEEP_LOOKAHEAD × limit` of them. An entry written after a
/// younger one (the server's clock went back) goes at a later sweep, once the rows before
/// it have; the sweep never reads the whole table.
pub(super) fn expire(conn: &Connection, before_ms: i64, limit: usize) -> rusqlite::Result<u64> {
    let window = i64::try_from(limit.saturating_mul(SWEEP_LOOKAHEAD)).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let removed = conn
        .prepare_cached(
            "DELETE FROM hongyan_history WHERE rowid IN (
                 SELECT rowid FROM (
                     SELECT rowid, accepted_at FROM hongyan_history ORDER BY rowid LIMIT ?3
                 )
                 WHERE accepted_at < ?1 ORDER BY rowid LIMIT ?2
             )",
        )?
        .execute((before_ms, limit, window))?;
    Ok(removed as u64)
}

/// The newest seq of each conversation (0 without history).
pub(super) fn newest_seqs(
    conn: &Connection,
    conversations: &[Conversation],
) -> rusqlite::Result<Vec<u64>> {
    let mut select = conn.prepare_cached(
        "SELECT newest FROM hongyan_conversations WHERE user_id = ?1 AND peer = ?2",
    )?;
    conversations
        .iter()
        .map(|c| {
            let (user, peer) = c.some_user();
            let newest: Option<i64> = select
                .query_row((user.as_str(), peer.as_str()), |row| row.get(0))
                .optional()?;
            Ok(newest.map_or(0, seq_of))
        })
        .collect()
}

/// Up to `limit` entries of `conversation` in `range`, oldest first.
pub(super) fn page(
    conn: &Connection,
    conversation: &Conversation,
    range: HistoryRange,
    limit: usize,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (low, high) = (conversation.low().as_str(), conversation.high().as_str());
    match range {
        HistoryRange::After(after) => {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM hongyan_history
                 WHERE low = ?1 AND high = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"
            );
            conn.prepare_cached(&sql)?
                .query_map((low, high, sql_seq(after), limit), entry_from_row)?
                .collect()
        }
        HistoryRange::Before(before) => {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM hongyan_history
                 WHERE low = ?1 AND high = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
            );
            let before = before.map_or(i64::MAX, sql_seq);
            let mut page = conn
                .prepare_cached(&sql)?
                .query_map((low, high, before, limit), entry_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            page.reverse();
            Ok(page)
        }
    }
}

/// Up to `limit` of `user`'s conversations after `after`, in peer-id order.
pub(super) fn conversations(
    conn: &Connection,
    user: &UserId,
    after: Option<&UserId>,
    limit: usize,
) -> rusqlite::Result<Vec<ConversationSummary>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM hongyan_conversations
         WHERE user_id = ?1 AND (?2 IS NULL OR peer > ?2) ORDER BY peer LIMIT ?3"
    );
    conn.prepare_cached(&sql)?
        .query_map(
            (user.as_str(), after.map(UserId::as_str), limit),
            summary_from_row,
        )?
        .collect()
}

/// `user`'s conversation with `peer`.
pub(super) fn conversation(
    conn: &Connection,
    user: &UserId,
    peer: &UserId,
) -> rusqlite::Result<Option<ConversationSummary>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM hongyan_conversations WHERE user_id = ?1 AND peer = ?2"
    );
    conn.prepare_cached(&sql)?
        .query_row((user.as_str(), peer.as_str()), summary_from_row)
        .optional()
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let low: String = row.get(0)?;
    let high: String = row.get(1)?;
    Ok(HistoryEntry {
        conversation: Conversation::between(&low.into(), &high.into()),
        seq: seq_of(row.get(2)?),
        sender: row.get::<_, String>(3)?.into(),
        fp: row.get::<_, Option<String>>(4)?.map(Into::into),
        typeu: row.get(5)?,
        content: String::from_utf8(row.get(6)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Blob, Box::new(e))
        })?,
        accepted_at: row.get(7)?,
    })
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<ConversationSummary> {
    Ok(ConversationSummary {
        peer: row.get::<_, String>(0)?.into(),
        newest: seq_of(row.get(1)?),
        newest_at: row.get(2)?,
        read: seq_of(row.get(3)?),
    })
}
