//! Counters every backend keeps, for the server to export as metrics.
//!
//! The store only counts (plain atomics, no metrics library): the server reads a
//! [`StoreStats`] snapshot when it is scraped and times the calls it makes itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a store's counters since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Messages committed by `put`.
    pub stored: u64,
    /// `put`s answered [`Put::AlreadyStored`](crate::Put::AlreadyStored) (retransmissions).
    pub duplicates: u64,
    /// `put`s refused because the receiver's limit was reached.
    pub quota_refusals: u64,
    /// Messages removed after delivery (`remove`).
    pub removed: u64,
    /// Messages removed by `erase`.
    pub erased: u64,
    /// Messages removed by `expire`.
    pub expired: u64,
    /// Writes refused because the write queue was full.
    pub overloaded: u64,
    /// History entries written by `append_history`.
    pub history_written: u64,
    /// History entries removed by `expire_history` (the retention period).
    pub history_expired: u64,
    /// Group commits that succeeded.
    pub commits: u64,
    /// Writes those commits carried (`commit_ops / commits` is the mean batch size).
    pub commit_ops: u64,
    /// Time spent in successful group commits, from the batch's first statement to its
    /// durable commit.
    pub commit_time: Duration,
    /// Group commits that failed (each failed caller got an error).
    pub commit_failures: u64,
    /// Writes waiting for the writer when the snapshot was taken.
    pub queued: u64,
}

/// The live counters behind [`StoreStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub quota_refusals: AtomicU64,
    pub removed: AtomicU64,
    pub erased: AtomicU64,
    pub expired: AtomicU64,
    pub overloaded: AtomicU64,
    pub history_written: AtomicU64,
    pub history_expired: AtomicU64,
    pub commits: AtomicU64,
    pub commit_ops: AtomicU64,
    pub commit_nanos: AtomicU64,
    pub commit_failures: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a successful group commit of `ops` writes that took `elapsed`.
    pub fn commit(&self, ops: usize, elapsed: Duration) {
        Self::add(&self.commits, 1);
        Self::add(&self.commit_ops, ops as u64);
        Self::add(
            &self.commit_nanos,
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        );
    }

    /// The counters now, with `queued` writes waiting.
    pub fn snapshot(&self, queued: u64) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            stored: get(&self.stored),
            duplicates: get(&self.duplicates),
            quota_refusals: get(&self.quota_refusals),
            removed: get(&self.removed),
            erased: get(&self.erased),
            expired: get(&self.expired),
            overloaded: get(&self.overloaded),
            history_written: get(&self.history_written),
            history_expired: get(&self.history_expired),
            commits: get(&self.commits),
            commit_ops: get(&self.commit_ops),
            commit_time: Duration::from_nanos(get(&self.commit_nanos)),
            commit_failures: get(&self.commit_failures),
            queued,
        }
    }
}
