//! The SQLite writer: one thread, one connection, one transaction per batch.
//!
//! The thread blocks for the first queued job, takes whatever else is queued (up to
//! `max_batch`), applies it all in one `BEGIN IMMEDIATE` transaction and commits: one fsync
//! for the whole batch. Only then does it answer the callers. While it commits, new jobs
//! queue up and form the next batch, so batches grow with the load and the fsync cost per
//! message falls.
//!
//! If a batch fails, nothing of it was committed. Unless the cause fails everything alike
//! (locked, I/O error), the writer then retries each job alone, so one job's failure, or a
//! full disk that a remove relieves, does not fail the others. Every job gets an outcome; none
//! is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hongyan_shared::UserId;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use super::connection::{MESSAGE_COLUMNS, db_error, message_from_row};
use super::history;
use crate::queue::{Batch, Done, Job};
use crate::schema::epoch_ms;
use crate::stats::Counters;
use crate::{Limits, MessageId, NewMessage, Put, StoreError};

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    limits: Limits,
    max_batch: usize,
    counters: Arc<Counters>,
}

/// Receivers' stored-message counts, loaded once per transaction for the quota.
type Held = HashMap<UserId, u64>;

impl Writer {
    pub fn new(
        conn: Connection,
        limits: Limits,
        max_batch: usize,
        counters: Arc<Counters>,
    ) -> Self {
        Writer {
            conn,
            limits,
            max_batch: max_batch.max(1),
            counters,
        }
    }

    /// Runs until every queue sender is gone or a [`Job::Close`] arrives, committing all that
    /// was queued before.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let batch = Batch::gather(first, &mut jobs, self.max_batch);
            if !batch.jobs.is_empty() {
                self.commit(batch.jobs);
            }
            if let Some(closing) = batch.closing {
                // Answer the close once the file is released, so a reopen finds it settled.
                drop(self.conn);
                closing.finish(&mut jobs);
                return;
            }
        }
    }

    /// Applies `batch` in one transaction and answers every job.
    fn commit(&mut self, batch: Vec<Job>) {
        let started = Instant::now();
        match self.apply(&batch) {
            Ok(dones) => {
                self.counters.commit(batch.len(), started.elapsed());
                for (job, done) in batch.into_iter().zip(dones) {
                    job.finish(Ok(done), &self.counters);
                }
            }
            Err(error) if batch.len() > 1 && !is_database_wide(&error) => {
                Counters::add(&self.counters.commit_failures, 1);
                // The callers see the errors, and the server counts them: no log line per batch.
                tracing::debug!(%error, jobs = batch.len(), "sqlite group commit failed; retrying each write alone");
                for job in batch {
                    self.commit(vec![job]);
                }
            }
            Err(error) => {
                Counters::add(&self.counters.commit_failures, 1);
                let error = db_error(error);
                for job in batch {
                    job.fail(error.clone());
                }
            }
        }
    }

    /// Applies `batch` in one transaction: all of it is committed, or none of it.
    fn apply(&mut self, batch: &[Job]) -> rusqlite::Result<Vec<Done>> {
        let limits = self.limits;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut held = Held::new();
        let mut dones = Vec::with_capacity(batch.len());
        for job in batch {
            let done = match job {
                Job::Put(message, _) => Done::Put(put(&tx, &limits, &mut held, message)?),
                Job::Remove(receiver, ids, _) => {
                    Done::Removed(remove(&tx, &mut held, receiver, ids)?)
                }
                Job::Erase(receiver, _) => Done::Removed(erase(&tx, &mut held, receiver)?),
                Job::Expire { now_ms, limit, .. } => {
                    let expired = expire(&tx, *now_ms, *limit)?;
                    for message in &expired {
                        if let Some(n) = held.get_mut(&message.receiver) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    Done::Expired(expired)
                }
                Job::Probe(_) => {
                    probe(&tx)?;
                    Done::Nothing
                }
                Job::OpenHistory(shared, _) => Done::Number(history::open(&tx, *shared)?),
                Job::CloseHistory(_) => {
                    history::close(&tx)?;
                    Done::Nothing
                }
                Job::AppendHistory(entries, _) => Done::Number(history::append(&tx, entries)?),
                Job::NumberHistory(entries, _) => Done::Seqs(history::number(&tx, entries)?),
                Job::MarkRead {
                    user, peer, seq, ..
                } => Done::Number(history::mark_read(&tx, user, peer, *seq)?),
                Job::ExpireHistory {
                    before_ms, limit, ..
                } => Done::Number(history::expire(&tx, *before_ms, *limit)?),
                // Never in a batch: `Batch::gather` stops at a close.
                Job::Close(_) => Done::Nothing,
            };
            dones.push(done);
        }
        tx.commit()?;
        Ok(dones)
    }
}

/// True for failures that would fail every job alone just the same (the file is locked,
/// unreadable or gone), which are not worth retrying job by job. A full disk is not among
/// them: removes still succeed and free room.
fn is_database_wide(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
        )
    )
}

/// Stores `message` unless it is already stored or its receiver is at the limit.
fn put(
    conn: &Connection,
    limits: &Limits,
    held: &mut Held,
    message: &NewMessage,
) -> rusqlite::Result<Result<Put, StoreError>> {
    let existing: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM hongyan_pending WHERE receiver = ?1 AND sender = ?2 AND fp = ?3",
        )?
        .query_row(
            (
                message.receiver.as_str(),
                message.sender.as_str(),
                message.fp.as_str(),
            ),
            |row| row.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok(Ok(Put::AlreadyStored(MessageId::new(id))));
    }
    if let Some(limit) = limits.max_per_receiver {
        let count = match held.get(&message.receiver) {
            Some(&n) => n,
            None => {
                let n = count(conn, &message.receiver)?;
                held.insert(message.receiver.clone(), n);
                n
            }
        };
        if count >= limit {
            return Ok(Err(StoreError::QuotaExceeded {
                receiver: message.receiver.clone(),
                limit,
            }));
        }
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO hongyan_pending
                 (receiver, sender, fp, typeu, content, accepted_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             RETURNING id",
        )?
        .query_row(
            (
                message.receiver.as_str(),
                message.sender.as_str(),
                message.fp.as_str(),
                message.typeu,
                message.content.as_bytes(),
                message.accepted_at,
                message.expires_at,
            ),
            |row| row.get(0),
        )?;
    if let Some(n) = held.get_mut(&message.receiver) {
        *n += 1;
    }
    Ok(Ok(Put::Stored(MessageId::new(id))))
}

/// How many messages `receiver` has stored.
pub(super) fn count(conn: &Connection, receiver: &UserId) -> rusqlite::Result<u64> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM hongyan_pending WHERE receiver = ?1")?
        .query_row([receiver.as_str()], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn remove(
    conn: &Connection,
    held: &mut Held,
    receiver: &UserId,
    ids: &[MessageId],
) -> rusqlite::Result<u64> {
    let mut delete =
        conn.prepare_cached("DELETE FROM hongyan_pending WHERE receiver = ?1 AND id = ?2")?;
    let mut removed = 0;
    for id in ids {
        removed += delete.execute((receiver.as_str(), id.get()))? as u64;
    }
    if let Some(n) = held.get_mut(receiver) {
        *n = n.saturating_sub(removed);
    }
    Ok(removed)
}

fn erase(conn: &Connection, held: &mut Held, receiver: &UserId) -> rusqlite::Result<u64> {
    let erased = conn
        .prepare_cached("DELETE FROM hongyan_pending WHERE receiver = ?1")?
        .execute([receiver.as_str()])?;
    if let Some(n) = held.get_mut(receiver) {
        *n = 0;
    }
    Ok(erased as u64)
}

/// Removes up to `limit` messages expired at `now_ms`, soonest expiry first.
fn expire(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
) -> rusqlite::Result<Vec<crate::StoredMessage>> {
    let sql = format!(
        "DELETE FROM hongyan_pending WHERE id IN (
             SELECT id FROM hongyan_pending WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2
         ) RETURNING {MESSAGE_COLUMNS}"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut expired = conn
        .prepare_cached(&sql)?
        .query_map((now_ms, limit), message_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    expired.sort_by_key(|m| m.id);
    Ok(expired)
}

/// Writes and deletes a row large enough to need new pages, so a database that cannot grow
/// (full disk, `max_page_count`) fails the probe as it would fail a put.
fn probe(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO hongyan_health (probed_at, pad) VALUES (?1, zeroblob(?2))")?
        .execute((epoch_ms(), PROBE_BYTES))?;
    conn.prepare_cached("DELETE FROM hongyan_health")?
        .execute([])?;
    Ok(())
}

/// Two default-sized pages: more than a page always needs an overflow page.
const PROBE_BYTES: i64 = 8192;
