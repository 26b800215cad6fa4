//! Conversation history (issue 12), the same tests against every backend, and what the
//! persistent ones add: the epoch across restarts, the migration from a version 1 database.

use std::sync::Arc;

use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;
use hongyan_store::{Conversation, HistoryBatch, HistoryEntry, Limits, MessageStore, StoreError};

use crate::backend::{Backend, Kind, NOW, message};

macro_rules! every_backend {
    ($($tests:tt)*) => {
        tests_for!(memory, Memory, [$($tests)*]);
        tests_for!(sqlite, Sqlite, [$($tests)*]);
        tests_for!(postgres, Postgres, [$($tests)*]);
    };
}

macro_rules! persistent_backends {
    ($($tests:tt)*) => {
        tests_for!(sqlite_durable, Sqlite, [$($tests)*]);
        tests_for!(postgres_durable, Postgres, [$($tests)*]);
    };
}

every_backend!(
    pages_come_back_in_seq_order_from_either_end,
    an_entry_comes_back_exactly_as_it_was_appended,
    appending_again_writes_nothing_twice,
    each_member_sees_the_newest_seq_and_its_own_read_position,
    a_read_position_never_moves_back,
    retention_removes_old_messages_but_never_the_numbering,
    retention_goes_by_acceptance_time_whatever_the_write_order,
    the_epoch_grows_only_when_the_last_writer_did_not_close,
    an_entry_with_a_nul_in_an_id_is_refused,
    the_store_numbers_entries_after_what_each_conversation_holds,
    a_shared_history_stays_closed_and_keeps_its_epoch,
);

tests_for!(
    postgres_cluster,
    Postgres,
    [concurrent_writers_number_one_conversation_gaplessly_and_each_message_once]
);

persistent_backends!(
    history_and_epoch_survive_a_reopen,
    a_version_1_database_migrates_and_keeps_its_messages,
    a_version_3_database_migrates_and_keeps_its_history,
);

fn user(id: &str) -> UserId {
    UserId::from(id)
}

fn between(a: &str, b: &str) -> Conversation {
    Conversation::between(&user(a), &user(b))
}

/// Entry `seq` of the conversation between `a` and `b`, sent by `sender`.
fn entry(a: &str, b: &str, seq: u64, sender: &str) -> HistoryEntry {
    HistoryEntry {
        conversation: between(a, b),
        seq,
        sender: user(sender),
        fp: Some(format!("{sender}-{seq}").into()),
        typeu: 7,
        content: format!("{sender} #{seq}"),
        accepted_at: NOW + i64::try_from(seq).unwrap(),
    }
}

/// `entries` as the server hands them in: a batch per conversation.
fn batched(entries: impl IntoIterator<Item = HistoryEntry>) -> Arc<[HistoryBatch]> {
    let entries: Vec<HistoryEntry> = entries.into_iter().collect();
    HistoryBatch::group(&entries)
        .expect("test entries fit a batch")
        .into()
}

async fn open(kind: Kind) -> (Backend, Arc<dyn MessageStore>) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let store = backend.open().await;
    (backend, store)
}

fn seqs(entries: &[HistoryEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

async fn pages_come_back_in_seq_order_from_either_end(kind: Kind) {
    let (_backend, store) = open(kind).await;
    let alice_bob: Vec<HistoryEntry> = (1..=10)
        .map(|seq| {
            entry(
                "bob",
                "alice",
                seq,
                if seq % 2 == 0 { "bob" } else { "alice" },
            )
        })
        .collect();
    // Two appends, as the server hands history in batches.
    store
        .append_history(batched(alice_bob[..6].to_vec()))
        .await
        .unwrap();
    store
        .append_history(batched(alice_bob[6..].to_vec()))
        .await
        .unwrap();
    store
        .append_history(batched((1..=3).map(|seq| entry("0", "bob", seq, "0"))))
        .await
        .unwrap();

    let c = between("alice", "bob");
    let page = |range, limit| {
        let store = Arc::clone(&store);
        let c = c.clone();
        async move { seqs(&store.history(&c, range, limit).await.unwrap()) }
    };
    assert_eq!(page(HistoryRange::After(0), 4).await, [1, 2, 3, 4]);
    assert_eq!(page(HistoryRange::After(4), 4).await, [5, 6, 7, 8]);
    assert_eq!(page(HistoryRange::After(8), 4).await, [9, 10]);
    assert!(page(HistoryRange::After(10), 4).await.is_empty());
    assert_eq!(page(HistoryRange::Before(None), 3).await, [8, 9, 10]);
    assert_eq!(page(HistoryRange::Before(Some(5)), 10).await, [1, 2, 3, 4]);
    assert!(page(HistoryRange::Before(Some(1)), 10).await.is_empty());

    let pushes = store
        .history(&between("bob", "0"), HistoryRange::After(0), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&pushes), [1, 2, 3]);
    assert!(pushes.iter().all(|e| e.sender.is_server()));
}

async fn an_entry_comes_back_exactly_as_it_was_appended(kind: Kind) {
    let (_backend, store) = open(kind).await;
    let mut sent = entry("ali\"ce'", "bob", 1, "ali\"ce'");
    sent.content = "你好 🌏\n\"quoted\" 'single' \\ \u{0}nul ".repeat(50);
    sent.typeu = -1;
    let mut unfingerprinted = entry("ali\"ce'", "bob", 2, "bob");
    unfingerprinted.fp = None;
    unfingerprinted.content = String::new();
    store
        .append_history(batched([sent.clone(), unfingerprinted.clone()]))
        .await
        .unwrap();
    let back = store
        .history(&sent.conversation, HistoryRange::After(0), 10)
        .await
        .unwrap();
    assert_eq!(back, [sent, unfingerprinted]);
}

async fn appending_again_writes_nothing_twice(kind: Kind) {
    let (_backend, store) = open(kind).await;
    let batch: Vec<HistoryEntry> = (1..=3).map(|s| entry("alice", "bob", s, "alice")).collect();
    store.append_history(batched(batch.clone())).await.unwrap();
    // A retry after an ambiguous failure, with more behind it.
    let mut retry = batch.clone();
    retry.push(entry("alice", "bob", 4, "bob"));
    store.append_history(batched(retry)).await.unwrap();
    let back = store
        .history(&between("alice", "bob"), HistoryRange::After(0), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&back), [1, 2, 3, 4]);
    assert_eq!(back[..3], batch[..]);
    assert_eq!(store.stats().history_written, 4);
}

async fn each_member_sees_the_newest_seq_and_its_own_read_position(kind: Kind) {
    let (_backend, store) = open(kind).await;
    store
        .append_history(batched([
            entry("alice", "bob", 1, "alice"),
            entry("alice", "bob", 2, "bob"),
            entry("alice", "bob", 3, "bob"),
            entry("alice", "carol", 1, "carol"),
            entry("0", "alice", 1, "0"),
            entry("alice", "alice", 1, "alice"),
        ]))
        .await
        .unwrap();
    let alice = store.conversations(&user("alice"), None, 10).await.unwrap();
    let summary: Vec<(&str, u64, u64, i64)> = alice
        .iter()
        .map(|c| (c.peer.as_str(), c.newest, c.read, c.newest_at))
        .collect();
    assert_eq!(
        summary,
        [
            ("0", 1, 0, NOW + 1),
            ("alice", 1, 1, NOW + 1),
            ("bob", 3, 1, NOW + 3),
            ("carol", 1, 0, NOW + 1)
        ],
        "in peer order; a sender has read what it sent"
    );
    // Paging by peer.
    let page: Vec<String> = store
        .conversations(&user("alice"), Some(&user("alice")), 2)
        .await
        .unwrap()
        .iter()
        .map(|c| c.peer.to_string())
        .collect();
    assert_eq!(page, ["bob", "carol"]);
    let bob = store
        .conversation(&user("bob"), &user("alice"))
        .await
        .unwrap()
        .expect("bob is in it");
    assert_eq!((bob.newest, bob.read), (3, 3));
    assert_eq!(
        store
            .conversation(&user("bob"), &user("carol"))
            .await
            .unwrap(),
        None
    );
    // The server is no user: it has no conversations list.
    assert!(
        store
            .conversations(&user("0"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .newest_seqs(&[
                between("bob", "alice"),
                between("0", "alice"),
                between("bob", "carol")
            ])
            .await
            .unwrap(),
        [3, 1, 0]
    );
}

async fn a_read_position_never_moves_back(kind: Kind) {
    let (_backend, store) = open(kind).await;
    store
        .append_history(batched((1..=5).map(|s| entry("alice", "bob", s, "bob"))))
        .await
        .unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(store.mark_read(&alice, &bob, 3).await.unwrap(), 3);
    assert_eq!(store.mark_read(&alice, &bob, 2).await.unwrap(), 3);
    assert_eq!(store.mark_read(&alice, &bob, 5).await.unwrap(), 5);
    // A later message does not move it; sending one does.
    store
        .append_history(batched([entry("alice", "bob", 6, "bob")]))
        .await
        .unwrap();
    let mine = store.conversation(&alice, &bob).await.unwrap().unwrap();
    assert_eq!((mine.newest, mine.read), (6, 5));
    store
        .append_history(batched([entry("alice", "bob", 7, "alice")]))
        .await
        .unwrap();
    let mine = store.conversation(&alice, &bob).await.unwrap().unwrap();
    assert_eq!((mine.newest, mine.read), (7, 7));
    // Read before the messages were written (they are written behind delivery).
    assert_eq!(store.mark_read(&alice, &user("dave"), 2).await.unwrap(), 2);
    store
        .append_history(batched([
            entry("alice", "dave", 1, "dave"),
            entry("alice", "dave", 2, "dave"),
        ]))
        .await
        .unwrap();
    let dave = store
        .conversation(&alice, &user("dave"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((dave.newest, dave.read), (2, 2));
}

async fn retention_removes_old_messages_but_never_the_numbering(kind: Kind) {
    let (_backend, store) = open(kind).await;
    store
        .append_history(batched((1..=6).map(|s| entry("alice", "bob", s, "bob"))))
        .await
        .unwrap();
    store
        .append_history(batched([entry("carol", "dave", 1, "dave")]))
        .await
        .unwrap();
    // Accepted at NOW + seq: everything before NOW + 4 goes, two at a time.
    assert_eq!(store.expire_history(NOW + 4, 2).await.unwrap(), 2);
    assert_eq!(store.expire_history(NOW + 4, 10).await.unwrap(), 2);
    assert_eq!(store.expire_history(NOW + 4, 10).await.unwrap(), 0);
    let left = store
        .history(&between("alice", "bob"), HistoryRange::After(0), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&left), [4, 5, 6]);
    assert_eq!(
        store
            .newest_seqs(&[between("alice", "bob"), between("carol", "dave")])
            .await
            .unwrap(),
        [6, 1],
        "the numbering goes on where it was"
    );
    assert_eq!(
        store.stats().history_expired,
        4,
        "three of alice and bob's, carol's one"
    );
}

async fn retention_goes_by_acceptance_time_whatever_the_write_order(kind: Kind) {
    let (_backend, store) = open(kind).await;
    // Written young first, then old: the server's clock went back in between.
    let mut young = entry("alice", "bob", 1, "bob");
    young.accepted_at = NOW + 10;
    let mut old = entry("carol", "dave", 1, "dave");
    old.accepted_at = NOW + 1;
    store.append_history(batched([young])).await.unwrap();
    store.append_history(batched([old])).await.unwrap();
    assert_eq!(store.expire_history(NOW + 5, 10).await.unwrap(), 1);
    let kept = |a: &'static str, b: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let conversation = between(a, b);
            let page = store.history(&conversation, HistoryRange::After(0), 10);
            seqs(&page.await.unwrap())
        }
    };
    assert_eq!(kept("alice", "bob").await, [1], "the younger one stays");
    assert!(kept("carol", "dave").await.is_empty());
}

async fn the_epoch_grows_only_when_the_last_writer_did_not_close(kind: Kind) {
    let (_backend, store) = open(kind).await;
    assert_eq!(store.open_history().await.unwrap(), 1, "a fresh database");
    store.close_history().await.unwrap();
    assert_eq!(store.open_history().await.unwrap(), 1, "closed cleanly");
    // Opened again without a close: the writer before crashed.
    assert_eq!(store.open_history().await.unwrap(), 2);
    store.close_history().await.unwrap();
    assert_eq!(store.open_history().await.unwrap(), 2);
}

async fn an_entry_with_a_nul_in_an_id_is_refused(kind: Kind) {
    let (_backend, store) = open(kind).await;
    let mut bad = entry("alice", "bob", 1, "alice");
    bad.fp = Some("f\u{0}p".into());
    // No batch takes it, and the store does not number it.
    assert!(matches!(
        HistoryBatch::group(std::slice::from_ref(&bad)),
        Err(StoreError::InvalidMessage(_))
    ));
    assert!(matches!(
        store.number_history(vec![bad]).await,
        Err(StoreError::InvalidMessage(_))
    ));
    assert!(
        store
            .history(&between("alice", "bob"), HistoryRange::After(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn history_and_epoch_survive_a_reopen(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let store = backend.open().await;
    assert_eq!(store.open_history().await.unwrap(), 1);
    let written: Vec<HistoryEntry> = (1..=3).map(|s| entry("alice", "bob", s, "alice")).collect();
    store
        .append_history(batched(written.clone()))
        .await
        .unwrap();
    store
        .mark_read(&user("bob"), &user("alice"), 2)
        .await
        .unwrap();
    store.close_history().await.unwrap();
    store.close().await;

    let reopened = backend.open().await;
    assert_eq!(reopened.open_history().await.unwrap(), 1, "closed cleanly");
    let back = reopened
        .history(&between("alice", "bob"), HistoryRange::After(0), 10)
        .await
        .unwrap();
    assert_eq!(back, written);
    let bob = reopened
        .conversation(&user("bob"), &user("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bob.newest, bob.read), (3, 2));
    // This one "crashes": closed without closing its history.
    reopened.close().await;
    let after_crash = backend.open().await;
    assert_eq!(after_crash.open_history().await.unwrap(), 2);
    after_crash.close().await;
}

async fn a_version_1_database_migrates_and_keeps_its_messages(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let store = backend.open().await;
    store.put(message("bob", "alice", "1")).await.unwrap();
    store.close().await;
    // Back to version 1, as the store issue's hongyan left it.
    crate::durability::sql_batch(
        &backend,
        "DROP TABLE IF EXISTS hongyan_history; DROP TABLE IF EXISTS hongyan_history_batches;
         DROP TABLE hongyan_conversations; DROP TABLE hongyan_meta;
         DELETE FROM hongyan_migrations WHERE version >= 2",
    )
    .await;

    let migrated = backend.open().await;
    assert_eq!(migrated.count(&user("bob")).await.unwrap(), 1);
    assert_eq!(migrated.open_history().await.unwrap(), 1);
    migrated
        .append_history(batched([entry("alice", "bob", 1, "alice")]))
        .await
        .unwrap();
    migrated.close().await;
    let versions = crate::durability::migrations(&backend).await;
    assert_eq!(versions, [1, 2, 3, 4, 5]);
}

async fn a_version_3_database_migrates_and_keeps_its_history(kind: Kind) {
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    let store = backend.open().await;
    let written: Vec<HistoryEntry> = (1..=6).map(|s| entry("alice", "bob", s, "alice")).collect();
    store
        .append_history(batched(written.clone()))
        .await
        .unwrap();
    store.close().await;
    // Back to version 3: SQLite's history a row per entry again (version 5 packs them), with
    // the index by time that its version 4 drops.
    if backend.postgres.is_none() {
        write_history_rows(&backend, &written);
    }
    crate::durability::sql_batch(
        &backend,
        "CREATE INDEX IF NOT EXISTS hongyan_history_by_time ON hongyan_history (accepted_at);
         DELETE FROM hongyan_migrations WHERE version >= 4",
    )
    .await;

    let migrated = backend.open().await;
    let c = between("alice", "bob");
    let all = migrated.history(&c, HistoryRange::After(0), 10).await;
    assert_eq!(all.unwrap(), written);
    // Accepted at NOW + seq: the sweep still goes oldest first.
    assert_eq!(migrated.expire_history(NOW + 3, 10).await.unwrap(), 2);
    let left = migrated.history(&c, HistoryRange::After(0), 10).await;
    assert_eq!(seqs(&left.unwrap()), [3, 4, 5, 6]);
    migrated
        .append_history(batched([entry("alice", "bob", 7, "bob")]))
        .await
        .unwrap();
    assert_eq!(migrated.newest_seqs(&[c]).await.unwrap(), [7]);
    migrated.close().await;
    let versions = crate::durability::migrations(&backend).await;
    assert_eq!(versions, [1, 2, 3, 4, 5]);
}

/// Puts `entries` back into SQLite as history was kept before version 5: a row each in
/// `hongyan_history` (version 2's table), and no batches.
fn write_history_rows(backend: &Backend, entries: &[HistoryEntry]) {
    let conn = rusqlite::Connection::open(&backend.config.default_sqlite_path).unwrap();
    conn.execute_batch(
        "DROP TABLE hongyan_history_batches;
         CREATE TABLE hongyan_history (
             low         TEXT    NOT NULL,
             high        TEXT    NOT NULL,
             seq         INTEGER NOT NULL,
             sender      TEXT    NOT NULL,
             fp          TEXT,
             typeu       INTEGER NOT NULL,
             content     BLOB    NOT NULL,
             accepted_at INTEGER NOT NULL,
             PRIMARY KEY (low, high, seq)
         );",
    )
    .unwrap();
    for e in entries {
        conn.execute(
            "INSERT INTO hongyan_history VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            (
                e.conversation.low().as_str(),
                e.conversation.high().as_str(),
                i64::try_from(e.seq).unwrap(),
                e.sender.as_str(),
                e.fp.as_ref().map(|fp| fp.as_str()),
                e.typeu,
                e.content.as_bytes(),
                e.accepted_at,
            ),
        )
        .unwrap();
    }
}

/// Entry `n` from `sender` to the other member of `a`–`b`, not numbered yet.
fn unnumbered(a: &str, b: &str, sender: &str, n: u64) -> HistoryEntry {
    let mut entry = entry(a, b, 0, sender);
    entry.fp = Some(format!("{sender}-{n}").into());
    entry.content = format!("{sender} #{n}");
    entry
}

async fn the_store_numbers_entries_after_what_each_conversation_holds(kind: Kind) {
    let (_backend, store) = open(kind).await;
    // Numbered by a single server before, then by the store.
    store
        .append_history(batched((1..=2).map(|s| entry("alice", "bob", s, "alice"))))
        .await
        .unwrap();
    let mut unfingerprinted = unnumbered("alice", "bob", "bob", 9);
    unfingerprinted.fp = None;
    let first = vec![
        unnumbered("alice", "bob", "bob", 1),
        unnumbered("0", "carol", "0", 1),
        unnumbered("alice", "bob", "alice", 3),
        unnumbered("alice", "bob", "bob", 1),
        unfingerprinted.clone(),
    ];
    let got = store.number_history(first).await.unwrap();
    assert_eq!(
        got,
        [3, 1, 4, 0, 5],
        "in order, after seq 2; a repeat is left out"
    );
    // A retransmission (the same sender and fp) is left out; new ones go on from the newest.
    let again = vec![
        unnumbered("alice", "bob", "alice", 3),
        unfingerprinted,
        unnumbered("alice", "bob", "bob", 2),
    ];
    assert_eq!(store.number_history(again).await.unwrap(), [0, 6, 7]);
    let back = store
        .history(&between("alice", "bob"), HistoryRange::After(0), 20)
        .await
        .unwrap();
    assert_eq!(seqs(&back), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(back[2].content, "bob #1");
    assert_eq!(back[3].content, "alice #3");
    assert_eq!(
        store.newest_seqs(&[between("carol", "0")]).await.unwrap(),
        [1]
    );
    let bob = store
        .conversation(&user("bob"), &user("alice"))
        .await
        .unwrap()
        .expect("bob is in it");
    assert_eq!((bob.newest, bob.read), (7, 7), "bob sent the newest");
}

async fn a_shared_history_stays_closed_and_keeps_its_epoch(kind: Kind) {
    let (_backend, store) = open(kind).await;
    let first = store.open_shared_history().await.unwrap();
    assert_eq!(first, 1, "a fresh database starts at 1");
    assert_eq!(
        store.open_shared_history().await.unwrap(),
        first,
        "another node, or a node after a crash: nothing to lose, the epoch stays"
    );
    // A single server that crashed while numbering history itself: the epoch grows.
    let single = store.open_history().await.unwrap();
    assert_eq!(single, first);
    assert_eq!(store.open_shared_history().await.unwrap(), first + 1);
    assert_eq!(store.open_history().await.unwrap(), first + 1);
}

async fn concurrent_writers_number_one_conversation_gaplessly_and_each_message_once(kind: Kind) {
    const WRITERS: usize = 4;
    const BATCHES: u64 = 15;
    const PER_BATCH: u64 = 4;
    let backend = Backend::new(kind, Limits::UNLIMITED).await;
    // One store per node, on the same database: each has its own writer and connections.
    let mut nodes = Vec::new();
    for _ in 0..WRITERS {
        nodes.push(backend.open().await);
    }
    let mut tasks = Vec::new();
    for (w, store) in nodes.iter().enumerate() {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let sender = if w % 2 == 0 { "alice" } else { "bob" };
            for batch in 0..BATCHES {
                let entries: Vec<HistoryEntry> = (0..PER_BATCH)
                    .map(|i| {
                        let n = batch * PER_BATCH + i;
                        let mut e = unnumbered("alice", "bob", sender, n);
                        e.fp = Some(format!("w{w}-{n}").into());
                        e.content = format!("w{w} #{n}");
                        e
                    })
                    .collect();
                // Every batch is sent twice, as a node retries after an ambiguous failure.
                let seqs = store.number_history(entries.clone()).await.unwrap();
                assert!(seqs.iter().all(|&s| s > 0), "{seqs:?}");
                assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
                let again = store.number_history(entries).await.unwrap();
                assert!(again.iter().all(|&s| s == 0), "{again:?}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = WRITERS as u64 * BATCHES * PER_BATCH;
    let back = nodes[0]
        .history(
            &between("alice", "bob"),
            HistoryRange::After(0),
            total as usize + 10,
        )
        .await
        .unwrap();
    assert_eq!(seqs(&back), (1..=total).collect::<Vec<u64>>(), "gapless");
    for w in 0..WRITERS {
        let order: Vec<u64> = back
            .iter()
            .filter_map(|e| e.content.strip_prefix(&format!("w{w} #")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(
            order,
            (0..BATCHES * PER_BATCH).collect::<Vec<u64>>(),
            "writer {w}'s messages, each once, in its order"
        );
    }
    assert_eq!(
        nodes[1]
            .newest_seqs(&[between("bob", "alice")])
            .await
            .unwrap(),
        [total]
    );
}
