//! One batch of jobs as one PostgreSQL transaction, in two pipelined round trips.
//!
//! The jobs are grouped by kind so that a batch costs a fixed handful of statements whatever
//! its size, and the statements are pipelined (sent together, answered in order), because
//! round trips, not rows, bound a batch's time:
//!
//! 1. `BEGIN`; remove the delivered messages; erase the erased receivers; lock the receivers
//!    of the puts; find which puts are stored already; count what those receivers hold.
//! 2. Decide each put (already stored, over the quota, or new), then: insert the new ones in
//!    one statement; update the health row if a probe asked; `COMMIT`.
//!
//! Expiry sweeps, rare, run between the two, one round trip each.
//!
//! Puts take a transaction-scoped advisory lock per receiver, in hash order so that two
//! batches cannot deadlock. That makes the quota check and the insert atomic across every node
//! sharing the database, and keeps ids in commit order per receiver: a later transaction for
//! the same receiver waits for the lock, so it takes its ids after every earlier one committed,
//! and replay paging never skips a row.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use deadpool_postgres::ClientWrapper;
use hongyan_shared::UserId;
use tokio_postgres::{Row, Statement};

use super::connection::{MESSAGE_COLUMNS, RECEIVER_LOCK_CLASS, message_from_row, pg_error};
use super::history;
use crate::queue::{Done, Job};
use crate::schema::epoch_ms;
use crate::{Limits, MessageId, NewMessage, Put, StoreError, StoredMessage};

/// Why a batch failed, and whether trying its jobs one by one could help.
pub(super) struct BatchError {
    pub error: StoreError,
    /// The server rejected something in the batch: another job alone may well succeed.
    pub per_job: bool,
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

/// Applies `batch` in one transaction on `client` and returns each job's outcome, in order.
/// On error the transaction may still be open: the caller must discard the connection.
pub(super) async fn transact(
    client: &ClientWrapper,
    limits: &Limits,
    batch: &[Job],
) -> Result<Vec<Done>, BatchError> {
    let st = Statements::prepare(client).await?;
    let work = Work::of(batch);
    let mut dones: Vec<Option<Done>> = std::iter::repeat_with(|| None).take(batch.len()).collect();

    // Round trip 1.
    let (remove_receivers, remove_ids) = work.remove_params();
    let erase_receivers: Vec<&str> = work.erases.iter().map(|(_, r)| r.as_str()).collect();
    let put_receivers = work.put_receivers();
    let (put_senders, put_fps) = (
        work.put_column(|m| m.sender.as_str()),
        work.put_column(|m| m.fp.as_str()),
    );
    let all_put_receivers = work.put_column(|m| m.receiver.as_str());
    let has_puts = !work.puts.is_empty();
    let (_, removed, erased, _, stored, held) = futures_util::try_join!(
        client.batch_execute("BEGIN"),
        when(!work.removes.is_empty(), async {
            client
                .query(&st.remove, &[&remove_receivers, &remove_ids])
                .await
        }),
        when(!work.erases.is_empty(), async {
            client.query(&st.erase, &[&erase_receivers]).await
        }),
        when(has_puts, async {
            client
                .query(&st.lock, &[&RECEIVER_LOCK_CLASS, &put_receivers])
                .await
        }),
        when(has_puts, async {
            client
                .query(&st.find, &[&all_put_receivers, &put_senders, &put_fps])
                .await
        }),
        when(has_puts && limits.max_per_receiver.is_some(), async {
            client.query(&st.count, &[&put_receivers]).await
        }),
    )?;
    for (i, n) in attribute_removed(&work.removes, &removed)? {
        dones[i] = Some(Done::Removed(n));
    }
    for (i, n) in attribute_erased(&work.erases, &erased)? {
        dones[i] = Some(Done::Removed(n));
    }

    for &(i, now_ms, limit) in &work.expires {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut expired = client
            .query(&st.expire, &[&now_ms, &limit])
            .await?
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<StoredMessage>, _>>()?;
        expired.sort_by_key(|m| m.id);
        dones[i] = Some(Done::Expired(expired));
    }

    // History, one job at a time (rare beside puts: the server hands it in batches).
    for &(i, job) in &work.history {
        dones[i] = Some(history::apply(client, job).await?);
    }

    // Round trip 2.
    let stored = ids_by_key(&stored)?;
    let held: HashMap<String, i64> = held
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let plans = plan_puts(limits, &work.puts, &stored, held);
    let inserts: Vec<&NewMessage> = work
        .puts
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| matches!(plan, Plan::Insert))
        .map(|((_, m), _)| *m)
        .collect();
    let columns = InsertColumns::of(&inserts);
    let probed_at = epoch_ms();
    let (inserted, _, ()) = futures_util::try_join!(
        when(!inserts.is_empty(), async {
            client.query(&st.insert, &columns.params()).await
        }),
        when(work.probe, async {
            client.query(&st.probe, &[&probed_at]).await
        }),
        client.batch_execute("COMMIT"),
    )?;
    let inserted = ids_by_key(&inserted)?;

    for ((i, message), plan) in work.puts.iter().zip(plans) {
        let outcome = match plan {
            Plan::Stored(id) => Ok(Put::AlreadyStored(MessageId::new(id))),
            Plan::Refused(error) => Err(error),
            Plan::Insert | Plan::Repeat => match (inserted.get(&key_of(message)), plan) {
                (Some(&id), Plan::Insert) => Ok(Put::Stored(MessageId::new(id))),
                (Some(&id), _) => Ok(Put::AlreadyStored(MessageId::new(id))),
                // The receiver's lock rules this out; should it happen, the message is stored
                // by someone, and the sender's retransmission will be answered AlreadyStored.
                (None, _) => Err(StoreError::Unavailable(
                    "a concurrent transaction stored the same message; retry".to_owned(),
                )),
            },
        };
        dones[*i] = Some(Done::Put(outcome));
    }
    Ok(dones
        .into_iter()
        .map(|done| done.unwrap_or(Done::Nothing))
        .collect())
}

/// The statements a batch may run, prepared once per connection (deadpool caches them).
struct Statements {
    remove: Statement,
    erase: Statement,
    lock: Statement,
    find: Statement,
    count: Statement,
    insert: Statement,
    expire: Statement,
    probe: Statement,
}

impl Statements {
    async fn prepare(client: &ClientWrapper) -> Result<Self, tokio_postgres::Error> {
        Ok(Statements {
            remove: client
                .prepare_cached(
                    "DELETE FROM hongyan_pending AS p
                     USING unnest($1::TEXT[], $2::BIGINT[]) AS d(receiver, id)
                     WHERE p.receiver = d.receiver AND p.id = d.id
                     RETURNING p.id",
                )
                .await?,
            erase: client
                .prepare_cached(
                    "WITH gone AS (
                         DELETE FROM hongyan_pending WHERE receiver = ANY($1::TEXT[])
                         RETURNING receiver
                     )
                     SELECT receiver, COUNT(*) FROM gone GROUP BY receiver",
                )
                .await?,
            lock: client
                .prepare_cached(
                    "SELECT COUNT(pg_advisory_xact_lock($1, h)) FROM (
                         SELECT DISTINCT hashtext(r) AS h FROM unnest($2::TEXT[]) AS r ORDER BY h
                     ) AS locks",
                )
                .await?,
            find: client
                .prepare_cached(
                    "SELECT p.id, p.receiver, p.sender, p.fp FROM hongyan_pending AS p
                     JOIN unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS k(receiver, sender, fp)
                       ON p.receiver = k.receiver AND p.sender = k.sender AND p.fp = k.fp",
                )
                .await?,
            count: client
                .prepare_cached(
                    "SELECT receiver, COUNT(*) FROM hongyan_pending
                     WHERE receiver = ANY($1::TEXT[]) GROUP BY receiver",
                )
                .await?,
            insert: client
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
                .await?,
            // `SKIP LOCKED`: nodes sweeping at once neither wait for each other nor remove a
            // row twice.
            expire: client
                .prepare_cached(&format!(
                    "DELETE FROM hongyan_pending WHERE id IN (
                         SELECT id FROM hongyan_pending WHERE expires_at <= $1
                         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
                     ) RETURNING {MESSAGE_COLUMNS}"
                ))
                .await?,
            probe: client
                .prepare_cached("UPDATE hongyan_health SET probed_at = $1 WHERE id = 1")
                .await?,
        })
    }
}

/// A batch's jobs grouped by kind, each with its index in the batch.
struct Work<'a> {
    removes: Vec<(usize, &'a UserId, &'a [MessageId])>,
    erases: Vec<(usize, &'a UserId)>,
    puts: Vec<(usize, &'a NewMessage)>,
    expires: Vec<(usize, i64, usize)>,
    history: Vec<(usize, &'a Job)>,
    probe: bool,
}

impl<'a> Work<'a> {
    fn of(batch: &'a [Job]) -> Self {
        let mut work = Work {
            removes: Vec::new(),
            erases: Vec::new(),
            puts: Vec::new(),
            expires: Vec::new(),
            history: Vec::new(),
            probe: false,
        };
        for (i, job) in batch.iter().enumerate() {
            match job {
                Job::Put(message, _) => work.puts.push((i, message)),
                Job::Remove(receiver, ids, _) => work.removes.push((i, receiver, ids)),
                Job::Erase(receiver, _) => work.erases.push((i, receiver)),
                Job::Expire { now_ms, limit, .. } => work.expires.push((i, *now_ms, *limit)),
                Job::Probe(_) => work.probe = true,
                Job::OpenHistory(..)
                | Job::CloseHistory(_)
                | Job::AppendHistory(..)
                | Job::NumberHistory(..)
                | Job::MarkRead { .. }
                | Job::ExpireHistory { .. } => work.history.push((i, job)),
                // Never in a batch: `Batch::gather` stops at a close.
                Job::Close(_) => {}
            }
        }
        // Numbering first: it locks its conversations before this transaction touches any
        // member's row (a read position), as every node's does, so two nodes' batches never
        // wait for each other in a cycle.
        work.history
            .sort_by_key(|(_, job)| !matches!(job, Job::NumberHistory(..)));
        work
    }

    /// `(receiver, id)` for every id every remove names.
    fn remove_params(&self) -> (Vec<&'a str>, Vec<i64>) {
        self.removes
            .iter()
            .flat_map(|(_, receiver, ids)| ids.iter().map(|id| (receiver.as_str(), id.get())))
            .unzip()
    }

    /// The puts' receivers, each once.
    fn put_receivers(&self) -> Vec<&'a str> {
        let mut receivers = self.put_column(|m| m.receiver.as_str());
        receivers.sort_unstable();
        receivers.dedup();
        receivers
    }

    fn put_column(&self, column: impl Fn(&'a NewMessage) -> &'a str) -> Vec<&'a str> {
        self.puts.iter().map(|(_, m)| column(m)).collect()
    }
}

/// The columns of an insert, as arrays.
struct InsertColumns<'a> {
    receivers: Vec<&'a str>,
    senders: Vec<&'a str>,
    fps: Vec<&'a str>,
    typeus: Vec<i32>,
    contents: Vec<&'a [u8]>,
    accepted: Vec<i64>,
    expires: Vec<Option<i64>>,
}

impl<'a> InsertColumns<'a> {
    fn of(messages: &[&'a NewMessage]) -> Self {
        InsertColumns {
            receivers: messages.iter().map(|m| m.receiver.as_str()).collect(),
            senders: messages.iter().map(|m| m.sender.as_str()).collect(),
            fps: messages.iter().map(|m| m.fp.as_str()).collect(),
            typeus: messages.iter().map(|m| m.typeu).collect(),
            contents: messages.iter().map(|m| m.content.as_bytes()).collect(),
            accepted: messages.iter().map(|m| m.accepted_at).collect(),
            expires: messages.iter().map(|m| m.expires_at).collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &self.receivers,
            &self.senders,
            &self.fps,
            &self.typeus,
            &self.contents,
            &self.accepted,
            &self.expires,
        ]
    }
}

/// `query` when `run`, else no rows without a round trip. The query is sent when first
/// polled, so queries joined in order are pipelined in order.
async fn when(
    run: bool,
    query: impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if run { query.await } else { Ok(Vec::new()) }
}

/// How many ids each remove removed: each removed id counts for the first remove naming it.
fn attribute_removed(
    removes: &[(usize, &UserId, &[MessageId])],
    rows: &[Row],
) -> Result<Vec<(usize, u64)>, tokio_postgres::Error> {
    let mut gone: HashSet<i64> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(removes
        .iter()
        .map(|(i, _, ids)| {
            let removed = ids.iter().filter(|id| gone.remove(&id.get())).count();
            (*i, removed as u64)
        })
        .collect())
}

/// How many messages each erase removed: a receiver's count goes to its first erase.
fn attribute_erased(
    erases: &[(usize, &UserId)],
    rows: &[Row],
) -> Result<Vec<(usize, u64)>, tokio_postgres::Error> {
    let mut erased: HashMap<String, i64> = rows
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

/// What a put comes to, decided before the insert.
enum Plan {
    /// Already in the database under this id.
    Stored(i64),
    /// Refused: the receiver is at the limit.
    Refused(StoreError),
    /// New: to insert.
    Insert,
    /// The same message as an earlier put of this batch.
    Repeat,
}

/// Decides each put in arrival order: a message already stored or sent twice within the batch
/// is inserted at most once, and no receiver goes over the limit.
fn plan_puts(
    limits: &Limits,
    puts: &[(usize, &NewMessage)],
    stored: &HashMap<Key, i64>,
    mut held: HashMap<String, i64>,
) -> Vec<Plan> {
    let mut planned: HashSet<Key> = HashSet::new();
    puts.iter()
        .map(|(_, message)| {
            let key = key_of(message);
            if let Some(&id) = stored.get(&key) {
                return Plan::Stored(id);
            }
            if planned.contains(&key) {
                return Plan::Repeat;
            }
            let count = held
                .entry(message.receiver.as_str().to_owned())
                .or_insert(0);
            if let Some(limit) = limits.max_per_receiver
                && u64::try_from(*count).unwrap_or(0) >= limit
            {
                return Plan::Refused(StoreError::QuotaExceeded {
                    receiver: message.receiver.clone(),
                    limit,
                });
            }
            *count += 1;
            planned.insert(key);
            Plan::Insert
        })
        .collect()
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

/// Rows of `(id, receiver, sender, fp)` as ids by key.
fn ids_by_key(rows: &[Row]) -> Result<HashMap<Key, i64>, tokio_postgres::Error> {
    rows.iter()
        .map(|row| {
            let key = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            Ok((key, row.try_get(0)?))
        })
        .collect()
}
