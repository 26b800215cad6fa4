//! Conversation history in PostgreSQL: the writer's statements (in its batch transaction) and
//! what the readers' rows mean.
//!
//! Every history write goes through the first writer, one after the other: the server hands
//! history in one batch at a time, and a member's summary row is then never updated by two
//! transactions at once (no deadlock between writers).

use deadpool_postgres::ClientWrapper;
use hongyan_shared::UserId;
use tokio_postgres::Row;

use super::connection::pg_error;
use crate::history::summary_changes;
use crate::queue::{Done, Job};
use crate::{Conversation, ConversationSummary, HistoryEntry, StoreError};

/// The columns every query that reads history selects, in [`entry_from_row`]'s order.
pub(super) const ENTRY_COLUMNS: &str = "low, high, seq, sender, fp, typeu, content, accepted_at";

/// The columns every query that reads a member's summary selects.
pub(super) const SUMMARY_COLUMNS: &str = "peer, newest, newest_at, read_seq";

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
        Job::OpenHistory(_) => open(client).await.map(Done::Number),
        Job::CloseHistory(_) => {
            client
                .execute(
                    "UPDATE hongyan_meta SET value = 0 WHERE key = 'history_open'",
                    &[],
                )
                .await?;
            Ok(Done::Nothing)
        }
        Job::AppendHistory(entries, _) => append(client, entries).await.map(Done::Number),
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

/// The epoch, grown when the last writer did not close it; history is open from now on.
async fn open(client: &ClientWrapper) -> Result<u64, tokio_postgres::Error> {
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
             VALUES ('history_epoch', $1), ('history_open', 1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&epoch],
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

    let changes = summary_changes(entries);
    let users: Vec<&str> = changes.keys().map(|(u, _)| u.as_str()).collect();
    let peers: Vec<&str> = changes.keys().map(|(_, p)| p.as_str()).collect();
    let newest: Vec<i64> = changes.values().map(|c| sql_seq(c.newest)).collect();
    let newest_at: Vec<i64> = changes.values().map(|c| c.newest_at).collect();
    let read: Vec<i64> = changes.values().map(|c| sql_seq(c.read)).collect();

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
