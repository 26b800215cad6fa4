//! Failures are errors, never false successes, and a store recovers once its database does,
//! without being reopened. Every failure here is real: a SQLite file that cannot grow, a
//! lock held by another connection, a PostgreSQL server that was stopped.

use std::sync::Arc;
use std::time::Duration;

use hongyan_store::{Limits, MessageStore, Put, SqliteStore, StoreConfig, StoreError, StoreSpec};

use crate::backend::{Backend, Kind, NOW, bounded, message, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_database_fails_puts_and_health_until_room_is_made() {
    bounded(async {
        let mut backend = Backend::new(Kind::Sqlite, Limits::UNLIMITED).await;
        // A database that may not grow past 64 pages fails as a full disk does: SQLITE_FULL.
        backend.config.sqlite_max_page_count = Some(64);
        let store = backend.open().await;
        store.health().await.unwrap();

        let mut stored = Vec::new();
        let full = loop {
            let mut m = message("bob", "alice", &stored.len().to_string());
            m.content = "x".repeat(1_000);
            match store.put(m).await {
                Ok(put) => stored.push(put.id()),
                Err(error) => break error,
            }
            assert!(stored.len() < 1_000, "64 pages hold far fewer messages");
        };
        assert!(
            matches!(&full, StoreError::Unavailable(text) if text.contains("full")),
            "{full}"
        );
        assert!(!stored.is_empty());
        assert!(matches!(
            store.health().await,
            Err(StoreError::Unavailable(_))
        ));
        // Nothing was stored that was not acknowledged.
        assert_eq!(
            store.count(&"bob".into()).await.unwrap(),
            stored.len() as u64
        );

        // A remove queued among puts that fail is not failed with them: a failed batch is
        // retried job by job. One removed message frees less than a page, and each of these
        // puts needs five.
        let big_puts: Vec<_> = (0..4)
            .map(|i| {
                let store = Arc::clone(&store);
                let mut m = message("bob", "carol", &i.to_string());
                m.content = "y".repeat(20_000);
                tokio::spawn(async move { store.put(m).await })
            })
            .collect();
        assert_eq!(store.remove(&"bob".into(), &stored[..1]).await, Ok(1));
        for put in big_puts {
            let refused = put.await.unwrap();
            assert!(
                matches!(refused, Err(StoreError::Unavailable(_))),
                "{refused:?}"
            );
        }
        assert_eq!(
            store.count(&"bob".into()).await.unwrap(),
            stored.len() as u64 - 1
        );

        // Delivering more makes room: the same store takes messages again.
        let delivered = stored.len() / 2;
        assert_eq!(
            store.remove(&"bob".into(), &stored[1..delivered]).await,
            Ok(delivered as u64 - 1)
        );
        store.health().await.unwrap();
        assert!(matches!(
            store.put(message("bob", "alice", "after")).await,
            Ok(Put::Stored(_))
        ));
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_queue_refuses_at_once_and_never_drops_a_write() {
    bounded(async {
        let mut backend = Backend::new(Kind::Sqlite, Limits::UNLIMITED).await;
        backend.config.queue_capacity = 4;
        backend.config.max_batch = 1;
        backend.config.timeout = Duration::from_secs(60);
        let store = backend.open().await;
        store.health().await.unwrap();

        // Another connection holds the write lock: the writer waits on its first job and the
        // queue fills.
        let locker = rusqlite::Connection::open(&backend.config.default_sqlite_path).unwrap();
        locker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let puts: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(
                    async move { store.put(message("bob", "alice", &i.to_string())).await },
                )
            })
            .collect();
        // At most one job in the writer and four queued: the rest are refused at once.
        wait_until(Duration::from_secs(30), || store.stats().overloaded >= 15).await;
        locker.execute_batch("COMMIT").unwrap();

        let mut acknowledged = 0;
        for put in puts {
            match put.await.unwrap() {
                Ok(Put::Stored(_)) => acknowledged += 1,
                Err(StoreError::Overloaded { capacity: 4 }) => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert!(
            (4..=5).contains(&acknowledged),
            "{acknowledged} acknowledged"
        );
        assert_eq!(store.count(&"bob".into()).await.unwrap(), acknowledged);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_missing_directory_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("hongyan.db");
    let error = SqliteStore::open(&path, &StoreConfig::new(&path))
        .await
        .expect_err("the directory does not exist");
    assert!(
        matches!(&error, StoreError::Unavailable(text) if text.contains("absent")),
        "{error}"
    );
}

#[tokio::test]
async fn sqlite_a_file_that_is_not_a_database_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hongyan.db");
    std::fs::write(
        &path,
        "not a database, but long enough to have a header ".repeat(100),
    )
    .unwrap();
    let error = SqliteStore::open(&path, &StoreConfig::new(&path))
        .await
        .expect_err("garbage is not a database");
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stopped_database_fails_every_call_and_recovers_without_reopening() {
    bounded(async {
        let backend = Backend::new(Kind::Postgres, Limits::UNLIMITED).await;
        let store = backend.open().await;
        let before = store
            .put(message("bob", "alice", "before"))
            .await
            .unwrap()
            .id();

        tokio::task::block_in_place(|| backend.postgres().stop()).unwrap();
        let down = store.put(message("bob", "alice", "down")).await;
        assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
        assert!(matches!(
            store.health().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.pending(&"bob".into(), None, NOW, 10).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.remove(&"bob".into(), &[before]).await,
            Err(StoreError::Unavailable(_))
        ));

        tokio::task::block_in_place(|| backend.postgres().start_again()).unwrap();
        store.health().await.unwrap();
        let after = store.put(message("bob", "alice", "after")).await.unwrap();
        assert!(matches!(after, Put::Stored(_)));
        let fps: Vec<String> = store
            .pending(&"bob".into(), None, NOW, 10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.fp.to_string())
            .collect();
        // The put that failed was not stored; the one before the outage was not lost.
        assert_eq!(fps, ["before", "after"]);
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_unreachable_database_fails_open_promptly() {
    bounded(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec: StoreSpec = format!("postgres://postgres@127.0.0.1:{port}/hongyan")
            .parse()
            .unwrap();
        let mut config = StoreConfig::new("unused.db");
        config.timeout = Duration::from_secs(5);
        let error = spec
            .open(&config)
            .await
            .err()
            .expect("nothing listens there");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    })
    .await;
}

/// `off` opens nothing: the server keeps its behaviour without a store.
#[tokio::test]
async fn off_opens_no_store() {
    let store: Option<Arc<dyn MessageStore>> = StoreSpec::Off
        .open(&StoreConfig::new("unused.db"))
        .await
        .unwrap();
    assert!(store.is_none());
}
