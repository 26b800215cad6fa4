//! hongyan's message store: messages kept for receivers who cannot take them yet, durably,
//! so that an acknowledgement to a sender means "delivered or stored", and a stored message
//! reaches its receiver exactly once, across restarts and crashes.
//!
//! The server holds one [`MessageStore`] as `Arc<dyn MessageStore>`, opened from a
//! [`StoreSpec`] (the `store` setting: `sqlite` by default, `sqlite:PATH`, `postgres://…`,
//! `memory`, `off`). It [`put`](MessageStore::put)s a message before acknowledging it, reads
//! a receiver's messages back in acceptance order with [`pending`](MessageStore::pending),
//! and [`remove`](MessageStore::remove)s each once the receiver acknowledged it.
//!
//! ```no_run
//! use hongyan_store::{NewMessage, Put, StoreConfig, StoreSpec};
//!
//! # async fn run() -> Result<(), hongyan_store::StoreError> {
//! let config = StoreConfig::new("/var/lib/hongyan/hongyan.db");
//! let Some(store) = "sqlite".parse::<StoreSpec>()?.open(&config).await? else {
//!     return Ok(()); // `off`: no store
//! };
//! let put = store
//!     .put(NewMessage {
//!         receiver: "bob".into(),
//!         sender: "alice".into(),
//!         fp: "7f2c…".into(),
//!         typeu: 0,
//!         content: "hello".to_owned(),
//!         accepted_at: 1_700_000_000_000,
//!         expires_at: None,
//!     })
//!     .await?; // durable now: acknowledge to alice
//! let replay = store.pending(&"bob".into(), None, 1_700_000_000_001, 100).await?;
//! store.remove(&"bob".into(), &[put.id()]).await?; // bob acknowledged it
//! # let _ = replay;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`store`]: the [`MessageStore`] trait every backend implements.
//! - [`message`]: [`NewMessage`] in, [`StoredMessage`] out, [`MessageId`], [`Put`].
//! - [`history`]: conversation history: [`Conversation`], [`HistoryEntry`] (numbered by the
//!   server), [`HistoryBatch`] (a conversation's entries of one write, packed),
//!   [`ConversationSummary`] (a member's newest seq and read position).
//! - [`spec`]: [`StoreSpec`], the setting that picks a backend, and opening it.
//! - [`config`]: [`StoreConfig`] and [`Limits`] (per-receiver quota, message size).
//! - [`error`]: [`StoreError`], what every call can fail with.
//! - [`stats`]: [`StoreStats`], counters for the server's metrics.
//! - `queue`: the bounded write queue and jobs both SQL writers drain (group commit).
//! - `schema`: the versioned migrations both SQL backends apply on open.
//! - [`memory`]: [`MemoryStore`], for tests and benchmarks.
//! - [`sqlite`]: [`SqliteStore`]: one file, WAL, one writer thread, fsync per batch.
//! - [`postgres`]: [`PostgresStore`]: a pool and one writer task, shareable by nodes.
//! - `testing` (feature `testing`): `TempPostgres`, a throwaway PostgreSQL server for tests.

pub mod config;
pub mod error;
pub mod history;
pub mod memory;
pub mod message;
pub mod postgres;
mod queue;
mod schema;
pub mod spec;
pub mod sqlite;
pub mod stats;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{Limits, StoreConfig};
pub use error::StoreError;
pub use history::{BatchSummary, Conversation, ConversationSummary, HistoryBatch, HistoryEntry};
pub use memory::MemoryStore;
pub use message::{MessageId, NewMessage, Put, StoredMessage};
pub use postgres::PostgresStore;
pub use spec::StoreSpec;
pub use sqlite::SqliteStore;
pub use stats::StoreStats;
pub use store::{BackendKind, MessageStore};
