//! [`StoreConfig`]: the limits a store enforces and how its writer and readers are sized.

use std::path::PathBuf;
use std::time::Duration;

/// What a store refuses to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most messages kept for one receiver; a put beyond it fails with
    /// [`StoreError::QuotaExceeded`](crate::StoreError::QuotaExceeded). `None`: no limit.
    pub max_per_receiver: Option<u64>,
    /// The largest `content` accepted, in bytes; a larger put fails with
    /// [`StoreError::TooLarge`](crate::StoreError::TooLarge) before it reaches the database.
    /// `None`: no limit.
    pub max_content_bytes: Option<usize>,
}

impl Limits {
    /// No limit at all: for tests and benchmarks.
    pub const UNLIMITED: Limits = Limits {
        max_per_receiver: None,
        max_content_bytes: None,
    };
}

impl Default for Limits {
    /// 10,000 messages per receiver and 64 KiB of content: far above what a chat user
    /// accumulates, low enough that one flooded account cannot fill the disk.
    fn default() -> Self {
        Limits {
            max_per_receiver: Some(10_000),
            max_content_bytes: Some(64 * 1024),
        }
    }
}

/// How to open a store, whatever its backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// What the store refuses to keep.
    pub limits: Limits,
    /// Where `sqlite` (without a path) keeps its database: the server passes
    /// `<state dir>/hongyan.db`.
    pub default_sqlite_path: PathBuf,
    /// How many writes may wait for the writer; beyond it a write fails at once with
    /// [`StoreError::Overloaded`](crate::StoreError::Overloaded) instead of queueing without
    /// bound.
    pub queue_capacity: usize,
    /// The most writes committed in one transaction (one group commit).
    pub max_batch: usize,
    /// PostgreSQL only: how many writers commit in parallel, each for its own share of the
    /// receivers (a receiver's writes always go through the same writer, in order). More
    /// writers overlap PostgreSQL's commit latency; SQLite always has one.
    pub writers: usize,
    /// How many connections serve reads (SQLite read connections, PostgreSQL pool size beside
    /// the writer's connection).
    pub readers: usize,
    /// How long one database round trip (a PostgreSQL batch, connecting, a read) may take
    /// before it fails with [`StoreError::Unavailable`](crate::StoreError::Unavailable); for
    /// SQLite, how long to wait for another process's lock.
    pub timeout: Duration,
    /// SQLite only: the most pages the database file may hold (SQLite's `max_page_count`),
    /// beyond which writes fail as "disk full". `None`: SQLite's own limit. Lets an operator
    /// cap the file's size, and lets tests provoke a real full database.
    pub sqlite_max_page_count: Option<u64>,
}

impl StoreConfig {
    /// Defaults, with `sqlite` kept at `default_sqlite_path`.
    pub fn new(default_sqlite_path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            limits: Limits::default(),
            default_sqlite_path: default_sqlite_path.into(),
            queue_capacity: 65_536,
            max_batch: 4_096,
            writers: 4,
            readers: 4,
            timeout: Duration::from_secs(5),
            sqlite_max_page_count: None,
        }
    }

    /// The same configuration with other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
