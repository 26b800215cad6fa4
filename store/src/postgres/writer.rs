//! A PostgreSQL writer: the task that drains one shard of the queue in batches, one
//! transaction each (see `batch` for the transaction itself).
//!
//! Like the SQLite writer it waits for the first queued job, takes whatever else is queued (up
//! to `max_batch`), commits it all at once and only then answers the callers.
//!
//! A batch that fails because of what the server answered (an error in the SQL or data) is
//! retried job by job; one that fails because the connection did (refused, lost, timed out)
//! fails every job at once, without trying each against a database that is not there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use tokio::sync::mpsc;

use super::batch::{BatchError, transact};
use super::connection::connect;
use crate::queue::{Batch, Done, Job};
use crate::stats::Counters;
use crate::{Limits, StoreError};

/// The writer task's state.
pub(super) struct Writer {
    pool: Pool,
    limits: Limits,
    max_batch: usize,
    timeout: Duration,
    counters: Arc<Counters>,
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
            let batch = Batch::gather(first, &mut jobs, self.max_batch);
            if !batch.jobs.is_empty() {
                self.commit(batch.jobs).await;
            }
            if let Some(closing) = batch.closing {
                closing.finish(&mut jobs);
                return;
            }
        }
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
                    tracing::debug!(%error, jobs = batch.len(), "postgres group commit failed; retrying each write alone");
                    for job in batch {
                        Box::pin(self.commit(vec![job])).await;
                    }
                } else {
                    tracing::debug!(%error, jobs = batch.len(), "postgres group commit failed");
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
        let client = connect(&self.pool).await.map_err(|error| BatchError {
            error,
            per_job: false,
        })?;
        let result =
            tokio::time::timeout(self.timeout, transact(&client, &self.limits, batch)).await;
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
