//! Conversation history in PostgreSQL: the writer's statements (in its batch transaction) and
//! what the readers' rows mean.
//!
//! Every history write goes through the first writer, one after the other: the server hands
//! history in one batch at a time, and a member's summary row is then never updated by two
//! transactions at once (no deadlock between writers).
//!
//! The nodes of a cluster share the database and hand history in unnumbered
//! ([`Job::NumberHistory`]): the transaction first takes an advisory lock per conversation, in
//! hash order (two nodes' batches cannot deadlock), then reads each conversation's newest seq
//! and which entries are written already, numbers the rest after it, and appends them. A second
//! node numbering the same conversation waits for the lock, so it reads the newest seq after
//! the first one committed: seqs stay gapless and unique, in commit order.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::ClientWrapper;
use hongyan_shared::UserId;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::connection::{CONVERSATION_LOCK_CLASS, pg_error};
use crate::history::{WrittenKey, number as number_entries, summary_changes, written_key};
use crate::queue::{Done, Job};
use crate::{BatchSummary, HistoryBatch};
use crate::{Conversation, ConversationSummary, HistoryEntry, StoreError};

/// The columns every query that reads history selects, in [`entry_from_row`]'s order.
pub(super) const ENTRY_COLUMNS: &str = "low, high, seq, sender, fp, typeu, content, accepted_at";

/// The columns every query that reads a member's summary selects.
pub(super) const SUMMARY_COLUMNS: &str = "peer, newest, newest_at, read_seq";

/// Each conversation's newest seq (NULL for one without history), in the order of the
/// [`member_columns`] given as `$1` and `$2`.
pub(super) const NEWEST_SEQS: &str =
    "SELECT c.newest FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY AS k(u, p, n)
     LEFT JOIN hongyan_conversations AS c ON c.user_id = k.u AND c.peer = k.p
     ORDER BY k.n";

/// The `(user_id, peer)` columns of `conversations`' rows in `hongyan_conversations`, one
/// member's row each (either holds the conversation's newest seq), as arrays for `unnest`.
pub(super) fn member_columns<'a>(
    conversations: impl IntoIterator<Item = &'a Conversation>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    conversations
        .into_iter()
        .map(|c| {
            let (user, peer) = c.some_user();
            (user.as_str(), peer.as_str())
        })
        .unzip()
}

/// A seq as PostgreSQL stores it (seqs stay far below `i64::MAX`).
pub(super) fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Carries out one history job inside the batch's transaction.
pub(super) async fn apply(
    client: &ClientWrapper,
    job: &Job,
) -> Result<Done, tokio_postgres::Error> {
    match job {
        Job::OpenHistory(shared, _) => open(client, *shared).await.map(Done::Number),
        Job::CloseHistory(_) => {
            client
                .execute(
                    "UPDATE hongyan_meta SET value = 0 WHERE key = 'history_open'",
                    &[],
                )
                .await?;
            Ok(Done::Nothing)
        }
        Job::AppendHistory(batches, _) => {
            let entries: Vec<HistoryEntry> =
                batches.iter().flat_map(HistoryBatch::entries).collect();
            append(client, &entries).await.map(Done::Number)
        }
        Job::NumberHistory(entries, _) => number(client, entries).await.map(Done::Seqs),
        Job::MarkRead {
            user, peer, seq, ..
        } => {
            let row = client
                .query_one(
                    "INSERT INTO hongyan_conversations (user_id, peer, newest, newest_at, read_seq)
                     VALUES ($1, $2, 0, 0, $3)
                     ON CONFLICT (user_id, peer) DO UPDATE
                         SET read_seq = GREATEST(hongyan_conversations.read_seq, EXCLUDED.read_seq)
                     RETURNING read_seq",
                    &[&user.as_str(), &peer.as_str(), &sql_seq(*seq)],
                )
                .await?;
            Ok(Done::Number(seq_of(row.try_get(0)?)))
        }
        Job::ExpireHistory {
            before_ms, limit, ..
        } => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let removed = client
                .execute(
                    "DELETE FROM hongyan_history WHERE ctid IN (
                         SELECT ctid FROM hongyan_history WHERE accepted_at < $1
                         ORDER BY accepted_at LIMIT $2 FOR UPDATE SKIP LOCKED
                     )",
                    &[before_ms, &limit],
                )
                .await?;
            Ok(Done::Number(removed))
        }
        _ => Ok(Done::Nothing),
    }
}

/// The epoch, grown when the last writer did not close it; history is open from now on,
/// unless it is `shared` (numbered by the store: nothing to lose in a crash).
async fn open(client: &ClientWrapper, shared: bool) -> Result<u64, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT key, value FROM hongyan_meta
             WHERE key IN ('history_epoch', 'history_open') FOR UPDATE",
            &[],
        )
        .await?;
    let (mut epoch, mut open) = (0i64, 0i64);
    for row in &rows {
        let key: &str = row.try_get(0)?;
        let value: i64 = row.try_get(1)?;
        match key {
            "history_epoch" => epoch = value,
            _ => open = value,
        }
    }
    if epoch == 0 || open != 0 {
        epoch += 1;
    }
    client
        .execute(
            "INSERT INTO hongyan_meta (key, value)
             VALUES ('history_epoch', $1), ('history_open', $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&epoch, &i64::from(!shared)],
        )
        .await?;
    Ok(seq_of(epoch))
}

/// Writes `entries` (skipping any already written) and moves the members' summaries, in two
/// pipelined statements; returns how many entries were new.
async fn append(
    client: &ClientWrapper,
    entries: &[HistoryEntry],
) -> Result<u64, tokio_postgres::Error> {
    let lows: Vec<&str> = entries
        .iter()
        .map(|e| e.conversation.low().as_str())
        .collect();
    let highs: Vec<&str> = entries
        .iter()
        .map(|e| e.conversation.high().as_str())
        .collect();
    let seqs: Vec<i64> = entries.iter().map(|e| sql_seq(e.seq)).collect();
    let senders: Vec<&str> = entries.iter().map(|e| e.sender.as_str()).collect();
    let fps: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.fp.as_ref().map(|fp| fp.as_str()))
        .collect();
    let typeus: Vec<i32> = entries.iter().map(|e| e.typeu).collect();
    let contents: Vec<&[u8]> = entries.iter().map(|e| e.content.as_bytes()).collect();
    let accepted: Vec<i64> = entries.iter().map(|e| e.accepted_at).collect();

    let changes = summary_changes(
        entries
            .iter()
            .map(|e| (&e.conversation, BatchSummary::of_entry(e))),
    );
    let users: Vec<&str> = changes.iter().map(|((u, _), _)| u.as_str()).collect();
    let peers: Vec<&str> = changes.iter().map(|((_, p), _)| p.as_str()).collect();
    let newest: Vec<i64> = changes.iter().map(|(_, c)| sql_seq(c.newest)).collect();
    let newest_at: Vec<i64> = changes.iter().map(|(_, c)| c.newest_at).collect();
    let read: Vec<i64> = changes.iter().map(|(_, c)| sql_seq(c.read)).collect();

    let insert = client.prepare_cached(
        "INSERT INTO hongyan_history (low, high, seq, sender, fp, typeu, content, accepted_at)
         SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                              $6::INTEGER[], $7::BYTEA[], $8::BIGINT[])
         ON CONFLICT DO NOTHING",
    );
    let upsert = client.prepare_cached(
        "INSERT INTO hongyan_conversations (user_id, peer, newest, newest_at, read_seq)
         SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])
         ON CONFLICT (user_id, peer) DO UPDATE SET
             newest_at = CASE WHEN EXCLUDED.newest > hongyan_conversations.newest
                              THEN EXCLUDED.newest_at
                              ELSE hongyan_conversations.newest_at END,
             newest = GREATEST(hongyan_conversations.newest, EXCLUDED.newest),
             read_seq = GREATEST(hongyan_conversations.read_seq, EXCLUDED.read_seq)",
    );
    let (insert, upsert) = futures_util::try_join!(insert, upsert)?;
    let entry_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &lows, &highs, &seqs, &senders, &fps, &typeus, &contents, &accepted,
    ];
    let summary_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&users, &peers, &newest, &newest_at, &read];
    let (written, _) = futures_util::try_join!(
        client.execute(&insert, &entry_params),
        client.execute(&upsert, &summary_params),
    )?;
    Ok(written)
}

/// Numbers `entries` after what their conversations hold and appends them (see the module
/// doc); the seq each got, 0 for one written before.
async fn number(
    client: &ClientWrapper,
    entries: &[HistoryEntry],
) -> Result<Vec<u64>, tokio_postgres::Error> {
    let mut conversations: Vec<&Conversation> = entries.iter().map(|e| &e.conversation).collect();
    conversations.sort();
    conversations.dedup();
    let lows: Vec<&str> = conversations.iter().map(|c| c.low().as_str()).collect();
    let highs: Vec<&str> = conversations.iter().map(|c| c.high().as_str()).collect();
    let (users, peers) = member_columns(conversations.iter().copied());
    let keys: Vec<WrittenKey> = entries.iter().filter_map(written_key).collect();
    let key_lows: Vec<&str> = keys.iter().map(|(c, _, _)| c.low().as_str()).collect();
    let key_highs: Vec<&str> = keys.iter().map(|(c, _, _)| c.high().as_str()).collect();
    let key_senders: Vec<&str> = keys.iter().map(|(_, s, _)| s.as_str()).collect();
    let key_fps: Vec<&str> = keys.iter().map(|(_, _, fp)| fp.as_str()).collect();

    let (lock, newest, find) = futures_util::try_join!(
        client.prepare_cached(
            "SELECT COUNT(pg_advisory_xact_lock($1, h)) FROM (
                 SELECT DISTINCT hashtext(l || ' ' || r) AS h
                 FROM unnest($2::TEXT[], $3::TEXT[]) AS c(l, r) ORDER BY h
             ) AS locks",
        ),
        client.prepare_cached(NEWEST_SEQS),
        client.prepare_cached(
            "SELECT h.low, h.high, h.sender, h.fp
             FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) AS k(l, r, s, f)
             JOIN hongyan_history AS h
                 ON h.low = k.l AND h.high = k.r AND h.sender = k.s AND h.fp = k.f",
        ),
    )?;
    // Pipelined, and run in this order: the reads see what the lock's last holder committed.
    let lock_params: [&(dyn ToSql + Sync); 3] = [&CONVERSATION_LOCK_CLASS, &lows, &highs];
    let newest_params: [&(dyn ToSql + Sync); 2] = [&users, &peers];
    let find_params: [&(dyn ToSql + Sync); 4] = [&key_lows, &key_highs, &key_senders, &key_fps];
    let (_, newest, found) = futures_util::try_join!(
        client.query(&lock, &lock_params),
        client.query(&newest, &newest_params),
        client.query(&find, &find_params),
    )?;
    let mut newest_of: HashMap<&Conversation, u64> = HashMap::new();
    for (conversation, row) in conversations.iter().zip(&newest) {
        let newest: Option<i64> = row.try_get(0)?;
        newest_of.insert(conversation, newest.map_or(0, seq_of));
    }
    let mut written: HashSet<WrittenKey> = HashSet::new();
    for row in &found {
        let (low, high, sender, fp): (String, String, String, String) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        let conversation = Conversation::between(&low.into(), &high.into());
        written.insert((conversation, sender.into(), fp.into()));
    }
    let (seqs, numbered) = number_entries(
        entries.to_vec(),
        |c| newest_of.get(c).copied().unwrap_or(0),
        |key| written.contains(key),
    );
    if !numbered.is_empty() {
        append(client, &numbered).await?;
    }
    Ok(seqs)
}

/// Reads a history entry from a row selected with [`ENTRY_COLUMNS`].
pub(super) fn entry_from_row(row: &Row) -> Result<HistoryEntry, StoreError> {
    let column = |e: tokio_postgres::Error| pg_error(&e);
    let low: String = row.try_get(0).map_err(column)?;
    let high: String = row.try_get(1).map_err(column)?;
    let seq: i64 = row.try_get(2).map_err(column)?;
    Ok(HistoryEntry {
        conversation: Conversation::between(&low.into(), &high.into()),
        seq: seq_of(seq),
        sender: row.try_get::<_, String>(3).map_err(column)?.into(),
        fp: row
            .try_get::<_, Option<String>>(4)
            .map_err(column)?
            .map(Into::into),
        typeu: row.try_get(5).map_err(column)?,
        content: String::from_utf8(row.try_get(6).map_err(column)?).map_err(|e| {
            StoreError::Corrupt(format!("history entry {seq}: content is not UTF-8: {e}"))
        })?,
        accepted_at: row.try_get(7).map_err(column)?,
    })
}

/// Reads a member's summary from a row selected with [`SUMMARY_COLUMNS`].
pub(super) fn summary_from_row(row: &Row) -> Result<ConversationSummary, StoreError> {
    let column = |e: tokio_postgres::Error| pg_error(&e);
    Ok(ConversationSummary {
        peer: UserId::from(row.try_get::<_, String>(0).map_err(column)?),
        newest: seq_of(row.try_get(1).map_err(column)?),
        newest_at: row.try_get(2).map_err(column)?,
        read: seq_of(row.try_get(3).map_err(column)?),
    })
}

/// Reads a seq that may be missing (a conversation without history).
pub(super) fn newest_from_row(row: &Row) -> Result<u64, StoreError> {
    let newest: Option<i64> = row.try_get(0).map_err(|e| pg_error(&e))?;
    Ok(newest.map_or(0, seq_of))
}
