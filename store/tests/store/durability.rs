//! What the persistent backends (SQLite, PostgreSQL) add: messages outlive the store that
//! wrote them, and the schema migrates itself, once, whoever opens first.

use hongyan_store::{Limits, MessageId, Put, StoreError};

use crate::backend::{Backend, Kind, NOW, message};

/// Runs each test against every backend that keeps messages across a reopen.
macro_rules! persistent_backends {
    ($($tests:tt)*) => {
        tests_for!(sqlite, Sqlite, [$($tests)*]);
        tests_for!(postgres, Postgres, [$($tests)*]);
    };
}

persistent_backends!(
    messages_survive_closing_and_reopening,
    ids_are_never_reused_after_a_reopen,
    stores_opening_at_once_migrate_once,
    a_database_from_a_newer_hongyan_is_refused,
);

async fn messages_survive_closing_and_reopening(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let store = backend.open().await;
    let mut expiring = message("bob", "alice", "2");
    expiring.expires_at = Some(NOW + 1_000);
    store.put(message("bob", "alice", "1")).await.unwrap();
    store.put(expiring).await.unwrap();
    let delivered = store.put(message("bob", "alice", "3")).await.unwrap().id();
    store.put(message("eve", "alice", "1")).await.unwrap();
    store.remove(&"bob".into(), &[delivered]).await.unwrap();
    let before = store.pending(&"bob".into(), None, NOW, 100).await.unwrap();
    store.close().await;

    let reopened = backend.open().await;
    let after = reopened
        .pending(&"bob".into(), None, NOW, 100)
        .await
        .unwrap();
    assert_eq!(after, before);
    assert_eq!(after.len(), 2);
    assert_eq!(reopened.count(&"eve".into()).await.unwrap(), 1);
    // Idempotence holds across the reopen too.
    assert_eq!(
        reopened.put(message("bob", "alice", "1")).await.unwrap(),
        Put::AlreadyStored(before[0].id)
    );
    reopened.close().await;
}

async fn ids_are_never_reused_after_a_reopen(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let store = backend.open().await;
    let mut last = MessageId::new(0);
    for fp in ["1", "2", "3"] {
        last = store.put(message("bob", "alice", fp)).await.unwrap().id();
    }
    // The newest message is delivered and gone: a reader paging from it must still see the
    // next message, so its id may not come back.
    store.remove(&"bob".into(), &[last]).await.unwrap();
    store.close().await;

    let reopened = backend.open().await;
    let next = reopened
        .put(message("bob", "carol", "1"))
        .await
        .unwrap()
        .id();
    assert!(next > last, "{next:?} after {last:?}");
    let after_last = reopened
        .pending(&"bob".into(), Some(last), NOW, 10)
        .await
        .unwrap();
    assert_eq!(after_last.iter().map(|m| m.id).collect::<Vec<_>>(), [next]);
    reopened.close().await;
}

async fn stores_opening_at_once_migrate_once(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let (a, b) = tokio::join!(backend.open(), backend.open());
    a.put(message("bob", "alice", "1")).await.unwrap();
    assert!(matches!(
        b.put(message("bob", "alice", "1")).await,
        Ok(Put::AlreadyStored(_))
    ));
    a.close().await;
    b.close().await;
    // And a database already at the current version opens as it is.
    let again = backend.open().await;
    assert_eq!(again.count(&"bob".into()).await.unwrap(), 1);
    again.close().await;

    let versions = migrations(&backend).await;
    assert_eq!(versions, [1, 2, 3, 4, 5], "each migration recorded once");
}

async fn a_database_from_a_newer_hongyan_is_refused(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    backend.open().await.close().await;
    sql(
        &backend,
        "INSERT INTO hongyan_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .await;
    let error = backend
        .spec
        .open(&backend.config)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(&error, StoreError::Schema(text) if text.contains("999")),
        "{error}"
    );
}

/// Runs `statements` (several, separated by semicolons) on the backend's database directly.
pub(crate) async fn sql_batch(backend: &Backend, statements: &str) {
    match &backend.postgres {
        None => {
            let conn = rusqlite::Connection::open(&backend.config.default_sqlite_path).unwrap();
            conn.execute_batch(statements).unwrap();
        }
        Some(pg) => {
            let (client, connection) =
                tokio_postgres::connect(&pg.url("hongyan"), tokio_postgres::NoTls)
                    .await
                    .unwrap();
            let connection = tokio::spawn(connection);
            client.batch_execute(statements).await.unwrap();
            drop(client);
            connection.await.unwrap().unwrap();
        }
    }
}

/// The versions of the migrations `backend`'s database records, in order.
pub(crate) async fn migrations(backend: &Backend) -> Vec<i64> {
    sql(
        backend,
        "SELECT version FROM hongyan_migrations ORDER BY version",
    )
    .await
}

/// Runs `statement` on the backend's database directly, returning the first column of each
/// row as numbers.
pub(crate) async fn sql(backend: &Backend, statement: &str) -> Vec<i64> {
    match &backend.postgres {
        None => {
            let conn = rusqlite::Connection::open(&backend.config.default_sqlite_path).unwrap();
            let mut statement = conn.prepare(statement).unwrap();
            statement
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        Some(pg) => {
            let (client, connection) =
                tokio_postgres::connect(&pg.url("hongyan"), tokio_postgres::NoTls)
                    .await
                    .unwrap();
            let connection = tokio::spawn(connection);
            let rows = client.query(statement, &[]).await.unwrap();
            drop(client);
            connection.await.unwrap().unwrap();
            rows.iter().map(|row| row.get(0)).collect()
        }
    }
}
