//! The PostgreSQL writer: one task, one transaction per batch, a few multi-row statements per
//! transaction.
//!
//! Like the SQLite writer it waits for the first queued job, takes whatever else is queued (up
//! to `max_batch`), commits it all at once and only then answers the callers. Within the
//! transaction the jobs are grouped by kind so that a batch costs a fixed handful of round
//! trips, whatever its size: removes, erases, then puts (lock the receivers, find those
//! already stored, count for the quota, insert), expiry sweeps, and one health probe.
//!
//! Puts take a transaction-scoped advisory lock per receiver before inserting. That makes the
//! quota check and the insert atomic across every node sharing the database, and it keeps ids
//! in commit order per receiver: a later transaction for the same receiver waits for the lock,
//! so it takes its ids after every earlier one committed, and replay paging never skips a row.
//!
//! A batch that fails because of what the server answered (an error in the SQL or data) is
//! retried job by job; one that fails because the connection did (refused, lost, timed out)
//! fails every job at once, without trying each against a database that is not there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool, Transaction};
use hongyan_shared::UserId;
use tokio::sync::mpsc;

use super::connection::{
    MESSAGE_COLUMNS, RECEIVER_LOCK_CLASS, connect, message_from_row, pg_error,
};
use crate::queue::{Done, Job};
use crate::schema::epoch_ms;
use crate::stats::Counters;
use crate::{Limits, MessageId, NewMessage, Put, StoreError, StoredMessage};

/// The writer task's state.
pub(super) struct Writer {
    pool: Pool,
    limits: Limits,
    max_batch: usize,
    timeout: Duration,
    counters: Arc<Counters>,
}

/// Why a batch failed, and whether trying its jobs one by one could help.
struct BatchError {
    error: StoreError,
    /// The server rejected something in the batch: another job alone may well succeed.
    per_job: bool,
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(error: tokio_postgres::Error) -> Self {
        BatchError {
            per_job: error.as_db_error().is_some(),
            error: pg_error(&error),
        }
    }
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        BatchError {
            error,
            per_job: false,
        }
    }
}

impl Writer {
    pub fn new(
        pool: Pool,
        limits: Limits,
        max_batch: usize,
        timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        Writer {
            pool,
            limits,
            max_batch: max_batch.max(1),
            timeout,
            counters,
        }
    }

    /// Runs until every queue sender is gone or a [`Job::Close`] arrives, committing all that
    /// was queued before.
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if let Some(at) = batch.iter().position(|job| matches!(job, Job::Close(_))) {
                let mut after = batch.split_off(at);
                let close = after.remove(0);
                self.commit(batch).await;
                jobs.close();
                for job in after
                    .into_iter()
                    .chain(std::iter::from_fn(|| jobs.try_recv().ok()))
                {
                    job.fail(StoreError::Closed);
                }
                self.pool.close();
                close.finish(Ok(Done::Nothing), &self.counters);
                return;
            }
            self.commit(batch).await;
        }
        self.pool.close();
    }

    /// Applies `batch` in one transaction and answers every job.
    async fn commit(&self, batch: Vec<Job>) {
        let started = Instant::now();
        match self.apply(&batch).await {
            Ok(dones) => {
                self.counters.commit(batch.len(), started.elapsed());
                for (job, done) in batch.into_iter().zip(dones) {
                    job.finish(Ok(done), &self.counters);
                }
            }
            Err(BatchError { error, per_job }) => {
                Counters::add(&self.counters.commit_failures, 1);
                if per_job && batch.len() > 1 {
                    tracing::warn!(%error, jobs = batch.len(), "postgres group commit failed; retrying each write alone");
                    for job in batch {
                        Box::pin(self.commit(vec![job])).await;
                    }
                } else {
                    tracing::warn!(%error, jobs = batch.len(), "postgres group commit failed");
                    for job in batch {
                        job.fail(error.clone());
                    }
                }
            }
        }
    }

    /// Applies `batch` in one transaction on a pooled connection, within the timeout. A
    /// connection that failed or timed out mid-transaction is discarded, never pooled again.
    async fn apply(&self, batch: &[Job]) -> Result<Vec<Done>, BatchError> {
        let mut client = connect(&self.pool).await.map_err(|error| BatchError {
            error,
            per_job: false,
        })?;
        let result =
            tokio::time::timeout(self.timeout, transact(&mut client, &self.limits, batch)).await;
        match result {
            Ok(Ok(dones)) => Ok(dones),
            Ok(Err(error)) => {
                drop(Object::take(client));
                Err(error)
            }
            Err(_) => {
                drop(Object::take(client));
                Err(BatchError {
                    error: StoreError::Unavailable(format!(
                        "postgres did not commit within {:?}",
                        self.timeout
                    )),
                    per_job: false,
                })
            }
        }
    }
}

/// The batch's transaction: every job's outcome, committed.
async fn transact(
    client: &mut Object,
    limits: &Limits,
    batch: &[Job],
) -> Result<Vec<Done>, BatchError> {
    let mut dones: Vec<Option<Done>> = std::iter::repeat_with(|| None).take(batch.len()).collect();
    let tx = client.transaction().await?;

    let removes: Vec<(usize, &UserId, &[MessageId])> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, job)| match job {
            Job::Remove(receiver, ids, _) => Some((i, receiver, ids.as_slice())),
            _ => None,
        })
        .collect();
    for (i, removed) in remove(&tx, &removes).await? {
        dones[i] = Some(Done::Removed(removed));
    }

    let erases: Vec<(usize, &UserId)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, job)| match job {
            Job::Erase(receiver, _) => Some((i, receiver)),
            _ => None,
        })
        .collect();
    for (i, erased) in erase(&tx, &erases).await? {
        dones[i] = Some(Done::Removed(erased));
    }

    let puts: Vec<(usize, &NewMessage)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, job)| match job {
            Job::Put(message, _) => Some((i, message)),
            _ => None,
        })
        .collect();
    for (i, outcome) in put(&tx, limits, &puts).await? {
        dones[i] = Some(Done::Put(outcome));
    }

    for (i, job) in batch.iter().enumerate() {
        if let Job::Expire { now_ms, limit, .. } = job {
            dones[i] = Some(Done::Expired(expire(&tx, *now_ms, *limit).await?));
        }
    }

    if batch.iter().any(|job| matches!(job, Job::Probe(_))) {
        let probe = tx
            .prepare_cached("UPDATE hongyan_health SET probed_at = $1 WHERE id = 1")
            .await?;
        tx.execute(&probe, &[&epoch_ms()]).await?;
    }

    tx.commit().await?;
    Ok(dones
        .into_iter()
        .map(|done| done.unwrap_or(Done::Nothing))
        .collect())
}

/// Removes each job's ids in one statement; each id counts for the first job that named it.
async fn remove(
    tx: &Transaction<'_>,
    removes: &[(usize, &UserId, &[MessageId])],
) -> Result<Vec<(usize, u64)>, BatchError> {
    if removes.is_empty() {
        return Ok(Vec::new());
    }
    let mut receivers = Vec::new();
    let mut ids = Vec::new();
    for (_, receiver, job_ids) in removes {
        for id in *job_ids {
            receivers.push(receiver.as_str());
            ids.push(id.get());
        }
    }
    let statement = tx
        .prepare_cached(
            "DELETE FROM hongyan_pending AS p
             USING unnest($1::TEXT[], $2::BIGINT[]) AS d(receiver, id)
             WHERE p.receiver = d.receiver AND p.id = d.id
             RETURNING p.id",
        )
        .await?;
    let mut gone: HashSet<i64> = tx
        .query(&statement, &[&receivers, &ids])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(removes
        .iter()
        .map(|(i, _, job_ids)| {
            let removed = job_ids.iter().filter(|id| gone.remove(&id.get())).count();
            (*i, removed as u64)
        })
        .collect())
}

/// Erases the receivers in one statement; each receiver's count goes to its first job.
async fn erase(
    tx: &Transaction<'_>,
    erases: &[(usize, &UserId)],
) -> Result<Vec<(usize, u64)>, BatchError> {
    if erases.is_empty() {
        return Ok(Vec::new());
    }
    let receivers: Vec<&str> = erases.iter().map(|(_, r)| r.as_str()).collect();
    let statement = tx
        .prepare_cached(
            "WITH gone AS (
                 DELETE FROM hongyan_pending WHERE receiver = ANY($1::TEXT[]) RETURNING receiver
             )
             SELECT receiver, COUNT(*) FROM gone GROUP BY receiver",
        )
        .await?;
    let mut erased: HashMap<String, i64> = tx
        .query(&statement, &[&receivers])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(erases
        .iter()
        .map(|(i, receiver)| {
            let n = erased.remove(receiver.as_str()).unwrap_or(0);
            (*i, u64::try_from(n).unwrap_or(0))
        })
        .collect())
}

/// What a put in the batch comes to before the insert.
enum Plan {
    /// Already in the database under this id.
    Stored(i64),
    /// Refused: the receiver is at the limit.
    Refused(StoreError),
    /// To insert.
    Insert,
    /// The same message as an earlier put of this batch.
    Repeat,
}

/// Stores the batch's messages with one insert, after locking their receivers, finding those
/// already stored and checking the quota.
async fn put(
    tx: &Transaction<'_>,
    limits: &Limits,
    puts: &[(usize, &NewMessage)],
) -> Result<Vec<(usize, Result<Put, StoreError>)>, BatchError> {
    if puts.is_empty() {
        return Ok(Vec::new());
    }
    let mut receivers: Vec<&str> = puts.iter().map(|(_, m)| m.receiver.as_str()).collect();
    receivers.sort_unstable();
    receivers.dedup();
    // Locks in one fixed order (by hash), so two nodes' batches cannot deadlock.
    let lock = tx
        .prepare_cached(
            "SELECT COUNT(pg_advisory_xact_lock($1, h)) FROM (
                 SELECT DISTINCT hashtext(r) AS h FROM unnest($2::TEXT[]) AS r ORDER BY h
             ) AS locks",
        )
        .await?;
    tx.query_one(&lock, &[&RECEIVER_LOCK_CLASS, &receivers])
        .await?;

    let messages: Vec<&NewMessage> = puts.iter().map(|(_, m)| *m).collect();
    let mut existing = find_stored(tx, &messages).await?;
    let mut held: HashMap<String, i64> = match limits.max_per_receiver {
        Some(_) => {
            let count = tx
                .prepare_cached(
                    "SELECT receiver, COUNT(*) FROM hongyan_pending
                     WHERE receiver = ANY($1::TEXT[]) GROUP BY receiver",
                )
                .await?;
            tx.query(&count, &[&receivers])
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()?
        }
        None => HashMap::new(),
    };

    // Decide in arrival order; a message sent twice within the batch is inserted once.
    let mut plans = Vec::with_capacity(puts.len());
    let mut inserts: Vec<&NewMessage> = Vec::new();
    let mut planned: HashSet<Key> = HashSet::new();
    for message in &messages {
        let key = key_of(message);
        let plan = if let Some(&id) = existing.get(&key) {
            Plan::Stored(id)
        } else if planned.contains(&key) {
            Plan::Repeat
        } else {
            let count = held
                .entry(message.receiver.as_str().to_owned())
                .or_insert(0);
            match limits.max_per_receiver {
                Some(limit) if u64::try_from(*count).unwrap_or(0) >= limit => {
                    Plan::Refused(StoreError::QuotaExceeded {
                        receiver: message.receiver.clone(),
                        limit,
                    })
                }
                _ => {
                    *count += 1;
                    planned.insert(key);
                    inserts.push(message);
                    Plan::Insert
                }
            }
        };
        plans.push(plan);
    }

    let inserted = insert(tx, &inserts).await?;
    // A row the insert skipped was stored by someone else after all: read its id.
    let skipped: Vec<&NewMessage> = inserts
        .iter()
        .filter(|m| !inserted.contains_key(&key_of(m)))
        .copied()
        .collect();
    if !skipped.is_empty() {
        existing.extend(find_stored(tx, &skipped).await?);
    }

    Ok(puts
        .iter()
        .zip(plans)
        .map(|((i, message), plan)| {
            let key = key_of(message);
            let outcome = match plan {
                Plan::Stored(id) => Ok(Put::AlreadyStored(MessageId::new(id))),
                Plan::Refused(error) => Err(error),
                Plan::Insert => match inserted.get(&key) {
                    Some(&id) => Ok(Put::Stored(MessageId::new(id))),
                    None => already(existing.get(&key)),
                },
                Plan::Repeat => already(inserted.get(&key).or(existing.get(&key))),
            };
            (*i, outcome)
        })
        .collect())
}

/// A put whose message is stored under `id`, by this batch or before.
fn already(id: Option<&i64>) -> Result<Put, StoreError> {
    id.map(|&id| Put::AlreadyStored(MessageId::new(id)))
        .ok_or_else(|| {
            StoreError::Unavailable("postgres neither inserted nor found a message".to_owned())
        })
}

/// What makes a message unique: `(receiver, sender, fp)`.
type Key = (String, String, String);

fn key_of(message: &NewMessage) -> Key {
    (
        message.receiver.as_str().to_owned(),
        message.sender.as_str().to_owned(),
        message.fp.as_str().to_owned(),
    )
}

/// The ids of those `messages` that are already stored.
async fn find_stored(
    tx: &Transaction<'_>,
    messages: &[&NewMessage],
) -> Result<HashMap<Key, i64>, BatchError> {
    let receivers: Vec<&str> = messages.iter().map(|m| m.receiver.as_str()).collect();
    let senders: Vec<&str> = messages.iter().map(|m| m.sender.as_str()).collect();
    let fps: Vec<&str> = messages.iter().map(|m| m.fp.as_str()).collect();
    let statement = tx
        .prepare_cached(
            "SELECT p.id, p.receiver, p.sender, p.fp FROM hongyan_pending AS p
             JOIN unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS k(receiver, sender, fp)
               ON p.receiver = k.receiver AND p.sender = k.sender AND p.fp = k.fp",
        )
        .await?;
    ids_by_key(tx.query(&statement, &[&receivers, &senders, &fps]).await?)
}

/// Rows of `(id, receiver, sender, fp)` as ids by key.
fn ids_by_key(rows: Vec<tokio_postgres::Row>) -> Result<HashMap<Key, i64>, BatchError> {
    let mut ids = HashMap::with_capacity(rows.len());
    for row in rows {
        ids.insert(
            (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            row.try_get(0)?,
        );
    }
    Ok(ids)
}

/// Inserts `messages` in one statement, ids in their order; returns the ids by key, leaving
/// out any row that turned out to be stored already.
async fn insert(
    tx: &Transaction<'_>,
    messages: &[&NewMessage],
) -> Result<HashMap<Key, i64>, BatchError> {
    if messages.is_empty() {
        return Ok(HashMap::new());
    }
    let receivers: Vec<&str> = messages.iter().map(|m| m.receiver.as_str()).collect();
    let senders: Vec<&str> = messages.iter().map(|m| m.sender.as_str()).collect();
    let fps: Vec<&str> = messages.iter().map(|m| m.fp.as_str()).collect();
    let typeus: Vec<i32> = messages.iter().map(|m| m.typeu).collect();
    let contents: Vec<&[u8]> = messages.iter().map(|m| m.content.as_bytes()).collect();
    let accepted: Vec<i64> = messages.iter().map(|m| m.accepted_at).collect();
    let expires: Vec<Option<i64>> = messages.iter().map(|m| m.expires_at).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO hongyan_pending
                 (receiver, sender, fp, typeu, content, accepted_at, expires_at)
             SELECT receiver, sender, fp, typeu, content, accepted_at, expires_at
             FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::INTEGER[], $5::BYTEA[],
                         $6::BIGINT[], $7::BIGINT[])
                  WITH ORDINALITY
                  AS m(receiver, sender, fp, typeu, content, accepted_at, expires_at, n)
             ORDER BY n
             ON CONFLICT (receiver, sender, fp) DO NOTHING
             RETURNING id, receiver, sender, fp",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &receivers, &senders, &fps, &typeus, &contents, &accepted, &expires,
            ],
        )
        .await?;
    ids_by_key(rows)
}

/// Removes up to `limit` messages expired at `now_ms`. `SKIP LOCKED` lets nodes sweep at the
/// same time without waiting for, or removing twice, each other's rows.
async fn expire(
    tx: &Transaction<'_>,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<StoredMessage>, BatchError> {
    let statement = tx
        .prepare_cached(&format!(
            "DELETE FROM hongyan_pending WHERE id IN (
                 SELECT id FROM hongyan_pending WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ) RETURNING {MESSAGE_COLUMNS}"
        ))
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut expired = tx
        .query(&statement, &[&now_ms, &limit])
        .await?
        .iter()
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    expired.sort_by_key(|m| m.id);
    Ok(expired)
}
