//! Read connections, used from tokio's blocking pool so the runtime never waits on disk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::connection::{db_error, open_reader};
use crate::StoreError;

/// Up to `size` read connections, opened on first use and kept for the next read. WAL lets
/// them read committed data while the writer writes.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub fn new(path: PathBuf, size: usize, timeout: Duration) -> Self {
        Readers {
            path,
            timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `read` on a read connection in the blocking pool.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match readers.lock_idle().pop() {
                Some(conn) => conn,
                None => open_reader(&readers.path, readers.timeout)?,
            };
            let result = read(&conn).map_err(db_error);
            // A connection is only as broken as its file: keep it, the next read retries.
            if !readers.permits.is_closed() {
                readers.lock_idle().push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite read task failed: {e}")))?
    }

    /// Refuses further reads and closes the idle connections.
    pub fn close(&self) {
        self.permits.close();
        self.lock_idle().clear();
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // Pushing or popping a connection cannot leave the list inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
