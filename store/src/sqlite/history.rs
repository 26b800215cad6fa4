//! Conversation history in SQLite: the writer's statements (in its batch transaction) and the
//! readers' queries.

use std::collections::{HashMap, HashSet};

use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;
use rusqlite::{Connection, OptionalExtension, Row, Statement};

use crate::history::{WrittenKey, number as number_entries, summary_changes, written_key};
use crate::{Conversation, ConversationSummary, HistoryBatch, HistoryEntry, StoreError};

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

/// Writes `batches` and moves the members' summaries; returns how many entries were new.
/// What a conversation holds already is skipped: a batch's entries up to the last seq of the
/// batch written before that starts within its range (a retry after an ambiguous
/// failure, or one with more behind it, writes only what is new).
pub(super) fn append(conn: &Connection, batches: &[HistoryBatch]) -> rusqlite::Result<u64> {
    let mut insert = conn.prepare_cached(INSERT_BATCH)?;
    // Batches do not overlap: the last one to start within a batch's range ends furthest.
    let mut covered = conn.prepare_cached(
        "SELECT last_seq FROM hongyan_history_batches
         WHERE low = ?1 AND high = ?2 AND first_seq <= ?3 ORDER BY first_seq DESC LIMIT 1",
    )?;
    let mut written = 0;
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        let conversation = batch.conversation();
        let summary = batch.summary();
        let held: Option<i64> = covered
            .query_row(
                (
                    conversation.low().as_str(),
                    conversation.high().as_str(),
                    sql_seq(summary.newest),
                ),
                |row| row.get(0),
            )
            .optional()?;
        let held = held.map_or(0, seq_of);
        let fresh;
        let batch = if held >= summary.first {
            fresh = batch.retain(|e| e.seq > held);
            &fresh
        } else {
            batch
        };
        if !batch.is_empty() && insert_batch(&mut insert, batch)? {
            written += batch.len() as u64;
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
    let nonempty = batches.iter().filter(|b| !b.is_empty());
    for ((user, peer), change) in summary_changes(nonempty.map(|b| (b.conversation(), b.summary())))
    {
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

/// The statement [`insert_batch`] runs.
const INSERT_BATCH: &str = "INSERT OR IGNORE INTO hongyan_history_batches
        (low, high, first_seq, last_seq, oldest_at, newest_at, entries, body)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Writes `batch` with `insert` ([`INSERT_BATCH`]): whether it was new.
fn insert_batch(insert: &mut Statement<'_>, batch: &HistoryBatch) -> rusqlite::Result<bool> {
    let conversation = batch.conversation();
    let summary = batch.summary();
    let new = insert.execute((
        conversation.low().as_str(),
        conversation.high().as_str(),
        sql_seq(summary.first),
        sql_seq(summary.newest),
        summary.oldest_at,
        summary.newest_at,
        batch.len() as i64,
        batch.bytes(),
    ))?;
    Ok(new > 0)
}

/// The most entries migration 5 packs into one batch.
const MIGRATED_BATCH: usize = 64;

/// Migration 5's step: the rows of `hongyan_history` (one per entry) become batches of up to
/// [`MIGRATED_BATCH`] entries of one conversation, in seq order, and the table goes. The
/// summaries stay as they are: they already count every row.
pub(super) fn pack_history_rows(conn: &Connection) -> rusqlite::Result<()> {
    let mut select = conn.prepare(
        "SELECT low, high, seq, sender, fp, typeu, content, accepted_at
         FROM hongyan_history ORDER BY low, high, seq",
    )?;
    let mut insert = conn.prepare(INSERT_BATCH)?;
    let mut rows = select.query([])?;
    let mut batch: Option<HistoryBatch> = None;
    while let Some(row) = rows.next()? {
        let low: String = row.get(0)?;
        let high: String = row.get(1)?;
        let entry = HistoryEntry {
            conversation: Conversation::between(&low.into(), &high.into()),
            seq: seq_of(row.get(2)?),
            sender: row.get::<_, String>(3)?.into(),
            fp: row.get::<_, Option<String>>(4)?.map(Into::into),
            typeu: row.get(5)?,
            content: String::from_utf8_lossy(&row.get::<_, Vec<u8>>(6)?).into_owned(),
            accepted_at: row.get(7)?,
        };
        let full = batch
            .as_ref()
            .is_some_and(|b| b.conversation() != &entry.conversation || b.len() >= MIGRATED_BATCH);
        if full && let Some(done) = batch.take() {
            insert_batch(&mut insert, &done)?;
        }
        let open = match batch.as_mut() {
            Some(open) => open,
            None => batch.insert(HistoryBatch::new(entry.conversation.clone()).map_err(sql_error)?),
        };
        open.push_entry(&entry).map_err(sql_error)?;
    }
    if let Some(done) = batch {
        insert_batch(&mut insert, &done)?;
    }
    drop(rows);
    conn.execute_batch("DROP TABLE hongyan_history;")
}

/// A store error where the writer's statements speak rusqlite's.
fn sql_error(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Reads a batch from a row selected as `low, high, body`.
fn batch_from_row(row: &Row<'_>) -> rusqlite::Result<HistoryBatch> {
    let low: String = row.get(0)?;
    let high: String = row.get(1)?;
    let conversation = Conversation::between(&low.into(), &high.into());
    HistoryBatch::from_bytes(conversation, row.get(2)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// The `(sender, fp)` of every entry written in `conversation`: what a retransmission repeats.
fn written_fps(
    conn: &Connection,
    conversation: &Conversation,
) -> rusqlite::Result<HashSet<(UserId, String)>> {
    let mut select = conn.prepare_cached(
        "SELECT low, high, body FROM hongyan_history_batches WHERE low = ?1 AND high = ?2",
    )?;
    let batches = select.query_map(
        (conversation.low().as_str(), conversation.high().as_str()),
        batch_from_row,
    )?;
    let mut fps = HashSet::new();
    for batch in batches {
        for entry in batch?.entries() {
            if let Some(fp) = entry.fp {
                fps.insert((entry.sender, fp.as_str().to_owned()));
            }
        }
    }
    Ok(fps)
}

/// Numbers `entries` after what their conversations hold and writes them, leaving out those
/// written before (see `MessageStore::number_history`); the seq each got, 0 for one left out.
/// The writer's transaction is the only one that writes, so nothing moves the counters
/// between the reads and the append. A retransmission is looked for among its
/// conversation's batches, each read through (no index by fingerprint: one server numbers
/// history itself and recognises retransmissions in memory; this serves the store's own
/// tests and a cluster tried on SQLite).
pub(super) fn number(conn: &Connection, entries: &[HistoryEntry]) -> rusqlite::Result<Vec<u64>> {
    let conversations: Vec<Conversation> = entries
        .iter()
        .map(|e| e.conversation.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let seqs = newest_seqs(conn, &conversations)?;
    let newest: HashMap<Conversation, u64> = conversations.into_iter().zip(seqs).collect();
    let mut fps: HashMap<Conversation, HashSet<(UserId, String)>> = HashMap::new();
    let mut written: HashSet<WrittenKey> = HashSet::new();
    for key in entries.iter().filter_map(written_key) {
        let (conversation, sender, fp) = &key;
        if !fps.contains_key(conversation) {
            fps.insert(conversation.clone(), written_fps(conn, conversation)?);
        }
        let sent = (sender.clone(), fp.as_str().to_owned());
        if fps.get(conversation).is_some_and(|fps| fps.contains(&sent)) {
            written.insert(key);
        }
    }
    let (seqs, numbered) = number_entries(
        entries.to_vec(),
        |c| newest.get(c).copied().unwrap_or(0),
        |key| written.contains(key),
    );
    append(conn, &HistoryBatch::group(&numbered).map_err(sql_error)?)?;
    Ok(seqs)
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

/// How many of the oldest batches the retention sweep looks through for each entry it may
/// remove.
const SWEEP_LOOKAHEAD: usize = 4;

/// Removes up to `limit` entries accepted before `before_ms`, oldest batches first.
///
/// There is no index by time (one B-tree fewer to write per batch): batches are written in
/// the order their messages were accepted, so the oldest are the first by rowid, and the
/// sweep looks through the first `SWEEP_LOOKAHEAD × limit` of them. A batch whose entries all
/// outlived the retention goes whole; one that holds younger entries too (or would take the
/// sweep past `limit`) is written again without the old ones. An entry written after a
/// younger one (the server's clock went back) goes at a later sweep, once the batches before
/// it have; the sweep never reads the whole table.
pub(super) fn expire(conn: &Connection, before_ms: i64, limit: usize) -> rusqlite::Result<u64> {
    let window = i64::try_from(limit.saturating_mul(SWEEP_LOOKAHEAD)).unwrap_or(i64::MAX);
    let mut select = conn.prepare_cached(
        "SELECT rowid, entries, newest_at FROM (
             SELECT rowid, entries, oldest_at, newest_at
             FROM hongyan_history_batches ORDER BY rowid LIMIT ?2
         )
         WHERE oldest_at < ?1 ORDER BY rowid",
    )?;
    // Gathered before any is changed: the sweep does not write a table it is reading.
    let candidates = select
        .query_map((before_ms, window), |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut delete = conn.prepare_cached("DELETE FROM hongyan_history_batches WHERE rowid = ?1")?;
    let mut read = conn
        .prepare_cached("SELECT low, high, body FROM hongyan_history_batches WHERE rowid = ?1")?;
    let mut rewrite = conn.prepare_cached(
        "UPDATE hongyan_history_batches
         SET first_seq = ?2, oldest_at = ?3, entries = ?4, body = ?5 WHERE rowid = ?1",
    )?;
    let mut removed = 0;
    for (rowid, entries, newest_at) in candidates {
        if removed >= limit {
            break;
        }
        let entries = usize::try_from(entries).unwrap_or(0);
        if newest_at < before_ms && removed + entries <= limit {
            delete.execute([rowid])?;
            removed += entries;
            continue;
        }
        let batch = read.query_row([rowid], batch_from_row)?;
        let mut room = limit - removed;
        let kept = batch.retain(|entry| {
            let old = entry.accepted_at < before_ms && room > 0;
            room -= usize::from(old);
            !old
        });
        removed += batch.len() - kept.len();
        if kept.is_empty() {
            delete.execute([rowid])?;
        } else {
            let summary = kept.summary();
            rewrite.execute((
                rowid,
                sql_seq(summary.first),
                summary.oldest_at,
                kept.len() as i64,
                kept.bytes(),
            ))?;
        }
    }
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

/// Up to `limit` entries of `conversation` in `range`, oldest first: read from the batches
/// that hold them, from the one that holds the range's first (or, going back, last) seq.
pub(super) fn page(
    conn: &Connection,
    conversation: &Conversation,
    range: HistoryRange,
    limit: usize,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    let (low, high) = (conversation.low().as_str(), conversation.high().as_str());
    let mut page = Vec::new();
    match range {
        HistoryRange::After(after) => {
            let mut select = conn.prepare_cached(
                "SELECT low, high, body FROM hongyan_history_batches
                 WHERE low = ?1 AND high = ?2 AND first_seq >= coalesce((
                     SELECT max(first_seq) FROM hongyan_history_batches
                     WHERE low = ?1 AND high = ?2 AND first_seq <= ?3
                 ), 0)
                 ORDER BY first_seq",
            )?;
            let mut batches = select.query_map((low, high, sql_seq(after)), batch_from_row)?;
            while page.len() < limit {
                let Some(batch) = batches.next() else { break };
                let batch = batch?;
                let newer = batch.entries().filter(|e| e.seq > after);
                page.extend(newer.take(limit - page.len()));
            }
        }
        HistoryRange::Before(before) => {
            let before = before.unwrap_or(u64::MAX);
            let mut select = conn.prepare_cached(
                "SELECT low, high, body FROM hongyan_history_batches
                 WHERE low = ?1 AND high = ?2 AND first_seq < ?3 ORDER BY first_seq DESC",
            )?;
            let mut batches = select.query_map((low, high, sql_seq(before)), batch_from_row)?;
            while page.len() < limit {
                let Some(batch) = batches.next() else { break };
                let mut older: Vec<HistoryEntry> =
                    batch?.entries().filter(|e| e.seq < before).collect();
                let from = older.len().saturating_sub(limit - page.len());
                page.extend(older.drain(from..).rev());
            }
            page.reverse();
        }
    }
    Ok(page)
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

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<ConversationSummary> {
    Ok(ConversationSummary {
        peer: row.get::<_, String>(0)?.into(),
        newest: seq_of(row.get(1)?),
        newest_at: row.get(2)?,
        read: seq_of(row.get(3)?),
    })
}
