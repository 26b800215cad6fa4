//! The write queue the SQL backends share: callers enqueue [`Job`]s without blocking, a
//! writer per shard drains them in batches, commits each batch once, then completes every
//! caller.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hongyan_shared::UserId;
use tokio::sync::{mpsc, oneshot};

use crate::stats::Counters;
use crate::{
    HistoryBatch, HistoryEntry, Limits, MessageId, NewMessage, Put, StoreError, StoreStats,
    StoredMessage,
};

/// Where a job's result goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write waiting for the writer.
#[derive(Debug)]
pub(crate) enum Job {
    /// Store a message.
    Put(NewMessage, Reply<Put>),
    /// Remove a receiver's delivered messages.
    Remove(UserId, Vec<MessageId>, Reply<u64>),
    /// Remove all of a receiver's messages.
    Erase(UserId, Reply<u64>),
    /// Remove up to `limit` messages expired at `now_ms`.
    Expire {
        /// Milliseconds since the Unix epoch.
        now_ms: i64,
        /// The most messages to remove.
        limit: usize,
        /// The removed messages.
        reply: Reply<Vec<StoredMessage>>,
    },
    /// Commit a small write, to prove the store can.
    Probe(Reply<()>),
    /// Start writing history: the epoch, grown if the last writer did not close it. `true`:
    /// a node of a cluster, whose history the store numbers, which leaves it closed.
    OpenHistory(bool, Reply<u64>),
    /// The history writer closed: the next open keeps the epoch.
    CloseHistory(Reply<()>),
    /// Write history batches and move the members' summaries.
    AppendHistory(Arc<[HistoryBatch]>, Reply<()>),
    /// Number history entries after what their conversations hold, then append them; the
    /// seq each got (0: already written).
    NumberHistory(Vec<HistoryEntry>, Reply<Vec<u64>>),
    /// Move a member's read position forward.
    MarkRead {
        /// Whose read position.
        user: UserId,
        /// The conversation's other member.
        peer: UserId,
        /// The position.
        seq: u64,
        /// Where it is now.
        reply: Reply<u64>,
    },
    /// Remove up to `limit` history entries accepted before `before_ms`.
    ExpireHistory {
        /// Milliseconds since the Unix epoch.
        before_ms: i64,
        /// The most entries to remove.
        limit: usize,
        /// How many were removed.
        reply: Reply<u64>,
    },
    /// Commit what is queued before this, then stop the writer.
    Close(oneshot::Sender<()>),
}

/// What a job did, before its batch committed.
#[derive(Debug)]
pub(crate) enum Done {
    /// A put's outcome: refusals (quota) are outcomes too, they commit nothing.
    Put(Result<Put, StoreError>),
    /// How many messages a remove or erase removed.
    Removed(u64),
    /// What an expire removed.
    Expired(Vec<StoredMessage>),
    /// A number: the history epoch, a read position, history entries written or removed.
    Number(u64),
    /// The seqs history entries got, in order (0: already written).
    Seqs(Vec<u64>),
    /// A probe or close that succeeded.
    Nothing,
}

impl Job {
    /// Answers the caller with `result`, counting it. `done` must be what applying this job
    /// produced.
    pub fn finish(self, result: Result<Done, StoreError>, counters: &Counters) {
        match result {
            Ok(done) => self.succeed(done, counters),
            Err(error) => self.fail(error),
        }
    }

    /// Answers the caller with `error`.
    pub fn fail(self, error: StoreError) {
        // A caller that gave up (dropped its future) no longer listens: nothing to do then.
        match self {
            Job::Put(_, reply) => drop(reply.send(Err(error))),
            Job::Remove(_, _, reply) | Job::Erase(_, reply) => drop(reply.send(Err(error))),
            Job::Expire { reply, .. } => drop(reply.send(Err(error))),
            Job::Probe(reply) | Job::CloseHistory(reply) | Job::AppendHistory(_, reply) => {
                drop(reply.send(Err(error)));
            }
            Job::NumberHistory(_, reply) => drop(reply.send(Err(error))),
            Job::OpenHistory(_, reply)
            | Job::MarkRead { reply, .. }
            | Job::ExpireHistory { reply, .. } => drop(reply.send(Err(error))),
            Job::Close(reply) => drop(reply.send(())),
        }
    }

    fn succeed(self, done: Done, counters: &Counters) {
        match (self, done) {
            (Job::Put(_, reply), Done::Put(outcome)) => {
                match &outcome {
                    Ok(Put::Stored(_)) => Counters::add(&counters.stored, 1),
                    Ok(Put::AlreadyStored(_)) => Counters::add(&counters.duplicates, 1),
                    Err(StoreError::QuotaExceeded { .. }) => {
                        Counters::add(&counters.quota_refusals, 1);
                    }
                    Err(_) => {}
                }
                drop(reply.send(outcome));
            }
            (Job::Remove(_, _, reply), Done::Removed(n)) => {
                Counters::add(&counters.removed, n);
                drop(reply.send(Ok(n)));
            }
            (Job::Erase(_, reply), Done::Removed(n)) => {
                Counters::add(&counters.erased, n);
                drop(reply.send(Ok(n)));
            }
            (Job::Expire { reply, .. }, Done::Expired(messages)) => {
                Counters::add(&counters.expired, messages.len() as u64);
                drop(reply.send(Ok(messages)));
            }
            (Job::Probe(reply) | Job::CloseHistory(reply), Done::Nothing) => {
                drop(reply.send(Ok(())));
            }
            (Job::AppendHistory(_, reply), Done::Number(n)) => {
                Counters::add(&counters.history_written, n);
                drop(reply.send(Ok(())));
            }
            (Job::NumberHistory(_, reply), Done::Seqs(seqs)) => {
                let written = seqs.iter().filter(|&&seq| seq > 0).count();
                Counters::add(&counters.history_written, written as u64);
                drop(reply.send(Ok(seqs)));
            }
            (Job::ExpireHistory { reply, .. }, Done::Number(n)) => {
                Counters::add(&counters.history_expired, n);
                drop(reply.send(Ok(n)));
            }
            (Job::OpenHistory(_, reply) | Job::MarkRead { reply, .. }, Done::Number(n)) => {
                drop(reply.send(Ok(n)));
            }
            (Job::Close(reply), Done::Nothing) => drop(reply.send(())),
            (job, done) => unreachable!("a writer answered {job:?} with {done:?}"),
        }
    }
}

/// What a writer took from its shard in one go.
pub(crate) struct Batch {
    /// The jobs to commit together, in queue order.
    pub jobs: Vec<Job>,
    /// A close that came after them: the writer commits `jobs`, then [`Closing::finish`]es.
    pub closing: Option<Closing>,
}

impl Batch {
    /// `first` and whatever else is queued right now, up to `max` jobs in all, stopping at a
    /// close.
    pub fn gather(first: Job, jobs: &mut mpsc::Receiver<Job>, max: usize) -> Batch {
        let mut batch = Batch {
            jobs: Vec::new(),
            closing: None,
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            if let Job::Close(reply) = job {
                batch.closing = Some(Closing(reply));
                break;
            }
            batch.jobs.push(job);
            if batch.jobs.len() < max {
                next = jobs.try_recv().ok();
            }
        }
        batch
    }
}

/// A close the writer received: once it committed what came before, it refuses what came
/// after and answers the close.
pub(crate) struct Closing(oneshot::Sender<()>);

impl Closing {
    /// Stops the shard: every job still queued fails with [`StoreError::Closed`], later sends
    /// fail at once, and the closer is answered. Call it after releasing the database.
    pub fn finish(self, jobs: &mut mpsc::Receiver<Job>) {
        jobs.close();
        while let Ok(job) = jobs.try_recv() {
            job.fail(StoreError::Closed);
        }
        // A closer that stopped waiting has nothing to be told.
        let _ = self.0.send(());
    }
}

/// The callers' end of the queue: enqueues without ever waiting for room.
///
/// The queue may be split into shards, one writer each, by receiver: every job for one
/// receiver goes through the same shard in the order it was queued, so a receiver's messages
/// keep their acceptance order, while writers for different receivers commit in parallel.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    shards: Vec<mpsc::Sender<Job>>,
    capacity: usize,
    limits: Limits,
    counters: Arc<Counters>,
}

impl WriteQueue {
    /// A queue of about `capacity` jobs in `shards` shards, and each shard's writer end.
    pub fn new(
        capacity: usize,
        shards: usize,
        limits: Limits,
        counters: Arc<Counters>,
    ) -> (Self, Vec<mpsc::Receiver<Job>>) {
        let shards = shards.max(1);
        let per_shard = capacity.div_ceil(shards).max(1);
        let (senders, receivers) = (0..shards).map(|_| mpsc::channel(per_shard)).unzip();
        let queue = WriteQueue {
            shards: senders,
            capacity: per_shard * shards,
            limits,
            counters,
        };
        (queue, receivers)
    }

    /// Checks `message` against the limits, then queues it.
    pub async fn put(&self, message: NewMessage) -> Result<Put, StoreError> {
        check_message(&self.limits, &message)?;
        let shard = self.shard_of(&message.receiver);
        self.submit(shard, |reply| Job::Put(message, reply)).await
    }

    /// Queues a remove.
    pub async fn remove(&self, receiver: &UserId, ids: &[MessageId]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.submit(self.shard_of(receiver), |reply| {
            Job::Remove(receiver.clone(), ids.to_vec(), reply)
        })
        .await
    }

    /// Queues an erase.
    pub async fn erase(&self, receiver: &UserId) -> Result<u64, StoreError> {
        self.submit(self.shard_of(receiver), |reply| {
            Job::Erase(receiver.clone(), reply)
        })
        .await
    }

    /// Queues an expiry sweep (on the first shard: sweeps touch every receiver).
    pub async fn expire(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.submit(0, |reply| Job::Expire {
            now_ms,
            limit,
            reply,
        })
        .await
    }

    /// Queues the start of history writing (on the first shard, like every history job that
    /// is not one user's).
    pub async fn open_history(&self, shared: bool) -> Result<u64, StoreError> {
        self.submit(0, |reply| Job::OpenHistory(shared, reply))
            .await
    }

    /// Queues the end of history writing.
    pub async fn close_history(&self) -> Result<(), StoreError> {
        self.submit(0, Job::CloseHistory).await
    }

    /// Queues history batches (each checked as it was built).
    pub async fn append_history(&self, batches: Arc<[HistoryBatch]>) -> Result<(), StoreError> {
        if batches.iter().all(HistoryBatch::is_empty) {
            return Ok(());
        }
        self.submit(0, |reply| Job::AppendHistory(batches, reply))
            .await
    }

    /// Queues history entries for the store to number.
    pub async fn number_history(&self, entries: Vec<HistoryEntry>) -> Result<Vec<u64>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        for entry in &entries {
            check_history(entry)?;
        }
        self.submit(0, |reply| Job::NumberHistory(entries, reply))
            .await
    }

    /// Queues a read position (on the first shard, with the history appends that move the
    /// same rows).
    pub async fn mark_read(
        &self,
        user: &UserId,
        peer: &UserId,
        seq: u64,
    ) -> Result<u64, StoreError> {
        let (user, peer) = (user.clone(), peer.clone());
        self.submit(0, |reply| Job::MarkRead {
            user,
            peer,
            seq,
            reply,
        })
        .await
    }

    /// Queues a history retention sweep.
    pub async fn expire_history(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        self.submit(0, |reply| Job::ExpireHistory {
            before_ms,
            limit,
            reply,
        })
        .await
    }

    /// Queues a probe write on every shard: healthy means every writer can commit.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let probes = (0..self.shards.len()).map(|shard| self.submit(shard, Job::Probe));
        for result in futures_util::future::join_all(probes).await {
            result?;
        }
        Ok(())
    }

    /// Queues a close on every shard and waits until each writer committed everything queued
    /// before it. Waits for room in the queue: closing must not fail because the store is busy.
    pub async fn close(&self) {
        let closes = self.shards.iter().map(|shard| async move {
            let (reply, done) = oneshot::channel();
            if shard.send(Job::Close(reply)).await.is_ok() {
                // An error means the writer already stopped, which is what we wait for.
                let _ = done.await;
            }
        });
        futures_util::future::join_all(closes).await;
    }

    /// The counters, with the queue's current depth.
    pub fn stats(&self) -> StoreStats {
        let free: usize = self.shards.iter().map(mpsc::Sender::capacity).sum();
        self.counters
            .snapshot(self.capacity.saturating_sub(free) as u64)
    }

    fn shard_of(&self, receiver: &UserId) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        receiver.hash(&mut hasher);
        (hasher.finish() % self.shards.len() as u64) as usize
    }

    async fn submit<T>(
        &self,
        shard: usize,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, result) = oneshot::channel();
        self.shards[shard]
            .try_send(job(reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    Counters::add(&self.counters.overloaded, 1);
                    StoreError::Overloaded {
                        capacity: self.capacity,
                    }
                }
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        // The writer answers every job it takes; a dropped reply means it stopped.
        result.await.unwrap_or(Err(StoreError::Closed))
    }
}

/// Fails a history entry no backend keeps faithfully (a NUL in an id), before it fails a
/// whole batch.
pub(crate) fn check_history(entry: &HistoryEntry) -> Result<(), StoreError> {
    let ids = [
        entry.conversation.low().as_str(),
        entry.conversation.high().as_str(),
        entry.sender.as_str(),
        entry.fp.as_ref().map_or("", |fp| fp.as_str()),
    ];
    if ids.iter().any(|id| id.contains('\0')) {
        return Err(StoreError::InvalidMessage(
            "a history entry's id contains a NUL character".to_owned(),
        ));
    }
    Ok(())
}

/// Fails a message the store would refuse anyway, before it costs a place in a batch: one
/// above the size limit, or with a NUL in an id (PostgreSQL would reject it mid-batch).
pub(crate) fn check_message(limits: &Limits, message: &NewMessage) -> Result<(), StoreError> {
    if let Some(limit) = limits.max_content_bytes
        && message.content.len() > limit
    {
        return Err(StoreError::TooLarge {
            size: message.content.len(),
            limit,
        });
    }
    for (what, id) in [
        ("receiver", message.receiver.as_str()),
        ("sender", message.sender.as_str()),
        ("fingerprint", message.fp.as_str()),
    ] {
        if id.contains('\0') {
            return Err(StoreError::InvalidMessage(format!(
                "the {what} contains a NUL character"
            )));
        }
    }
    Ok(())
}
