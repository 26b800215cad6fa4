//! A backend under test, and the helpers every test uses.

/// `tests_for!(module, Kind, [test, …])`: a module of `#[tokio::test]`s, one per test
/// function, each running it against the backend `Kind` within [`bounded`]'s deadline.
macro_rules! tests_for {
    ($module:ident, $kind:ident, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                crate::backend::bounded(super::$test(crate::backend::Kind::$kind)).await;
            })*
        }
    };
}

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hongyan_store::testing::TempPostgres;
use hongyan_store::{Limits, MessageStore, NewMessage, StoreConfig, StoreSpec};
use tempfile::TempDir;

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Sqlite,
    Postgres,
}

/// A backend's database, kept for the length of a test so it can be opened again.
pub struct Backend {
    pub spec: StoreSpec,
    pub config: StoreConfig,
    // Dropped after every store the test opened: stops the server, removes the files.
    pub postgres: Option<TempPostgres>,
    _dir: TempDir,
}

impl Backend {
    /// A fresh, empty database of `kind`, with `limits`.
    pub async fn new(kind: Kind, limits: Limits) -> Backend {
        let dir = tempfile::tempdir().expect("a temporary directory can be made");
        let mut config = StoreConfig::new(dir.path().join("hongyan.db")).with_limits(limits);
        // Small enough that the queue and batching paths are exercised, bounded so that
        // a hung database fails the test instead of hanging it.
        config.timeout = Duration::from_secs(10);
        let (spec, postgres) = match kind {
            Kind::Memory => (StoreSpec::Memory, None),
            Kind::Sqlite => (StoreSpec::Sqlite(None), None),
            Kind::Postgres => {
                let pg = tokio::task::spawn_blocking(start_postgres)
                    .await
                    .expect("the harness does not panic");
                let url = pg
                    .create_database("hongyan")
                    .expect("createdb on a fresh server");
                (StoreSpec::Postgres(url), Some(pg))
            }
        };
        Backend {
            spec,
            config,
            postgres,
            _dir: dir,
        }
    }

    /// Opens a store on this backend's database.
    pub async fn open(&self) -> Arc<dyn MessageStore> {
        self.spec
            .open(&self.config)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.spec))
            .expect("only `off` opens no store")
    }

    /// The running PostgreSQL server; only for [`Kind::Postgres`].
    pub fn postgres(&self) -> &TempPostgres {
        self.postgres.as_ref().expect("a postgres backend")
    }
}

/// Starts a server, failing loudly (never skipping) when PostgreSQL is missing.
fn start_postgres() -> TempPostgres {
    TempPostgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL for the tests: {e}"))
}

/// A message from `sender` to `receiver` with fingerprint `fp`.
pub fn message(receiver: &str, sender: &str, fp: &str) -> NewMessage {
    NewMessage {
        receiver: receiver.into(),
        sender: sender.into(),
        fp: fp.into(),
        typeu: 7,
        content: format!("{sender} → {receiver}: {fp}"),
        accepted_at: NOW,
        expires_at: None,
    }
}

/// The clock every test reads: stores take time as an argument.
pub const NOW: i64 = 1_700_000_000_000;

/// Runs a test's body with a deadline, so a hung database fails the test instead of hanging
/// the run.
pub async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("the test finishes within two minutes");
}

/// Waits until `condition` holds, up to `deadline`.
pub async fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
