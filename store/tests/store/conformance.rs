//! The same tests against every backend: what the server may rely on, whichever it uses.

use std::collections::HashSet;
use std::sync::Arc;

use hongyan_shared::UserId;
use hongyan_store::{Limits, MessageId, MessageStore, Put, StoreError};

use crate::backend::{Backend, Kind, NOW, message};

/// Runs each test against every backend.
macro_rules! every_backend {
    ($($tests:tt)*) => {
        tests_for!(memory, Memory, [$($tests)*]);
        tests_for!(sqlite, Sqlite, [$($tests)*]);
        tests_for!(postgres, Postgres, [$($tests)*]);
    };
}

every_backend!(
    messages_come_back_in_acceptance_order,
    a_retransmission_is_stored_once,
    a_message_comes_back_exactly_as_it_was_put,
    removed_messages_are_gone_and_count_once,
    count_and_erase_concern_one_receiver,
    the_quota_refuses_beyond_the_limit_until_messages_are_removed,
    messages_above_the_size_limit_are_refused,
    ids_with_a_nul_are_refused_before_storing,
    expired_messages_are_not_replayed_and_are_removed_once,
    pending_pages_neither_skip_nor_repeat,
    concurrent_puts_are_all_acknowledged_and_all_stored,
    a_healthy_store_says_so_and_a_closed_one_refuses_calls,
    stats_count_what_happened,
);

/// Keeps the backend (its files or server) alive as long as the store.
async fn open(kind: Kind, limits: Limits) -> (Backend, Arc<dyn MessageStore>) {
    let backend = Backend::new(kind, limits).await;
    let store = backend.open().await;
    (backend, store)
}

fn bob() -> UserId {
    "bob".into()
}

async fn messages_come_back_in_acceptance_order(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let mut ids = Vec::new();
    for (sender, fp) in [
        ("carol", "3"),
        ("alice", "1"),
        ("alice", "2"),
        ("dave", "0"),
    ] {
        ids.push(store.put(message("bob", sender, fp)).await.unwrap().id());
    }
    store.put(message("eve", "alice", "1")).await.unwrap();

    let pending = store.pending(&bob(), None, NOW, 100).await.unwrap();
    let order: Vec<(&str, &str)> = pending
        .iter()
        .map(|m| (m.sender.as_str(), m.fp.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("carol", "3"),
            ("alice", "1"),
            ("alice", "2"),
            ("dave", "0")
        ]
    );
    assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
}

async fn a_retransmission_is_stored_once(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let first = store.put(message("bob", "alice", "fp-1")).await.unwrap();
    let again = store.put(message("bob", "alice", "fp-1")).await.unwrap();
    assert!(matches!(first, Put::Stored(_)), "{first:?}");
    assert_eq!(again, Put::AlreadyStored(first.id()));

    // The key is (receiver, sender, fp): the same fp from someone else, or to someone else,
    // is another message.
    let other_sender = store.put(message("bob", "carol", "fp-1")).await.unwrap();
    let other_receiver = store.put(message("eve", "alice", "fp-1")).await.unwrap();
    assert!(matches!(other_sender, Put::Stored(_)));
    assert!(matches!(other_receiver, Put::Stored(_)));
    assert_eq!(store.count(&bob()).await.unwrap(), 2);

    // Retransmissions racing each other (in one batch, for the SQL backends) still make one.
    let racing = futures(&store, (0..8).map(|_| message("bob", "dave", "fp-2"))).await;
    let stored = racing
        .iter()
        .filter(|p| matches!(p, Ok(Put::Stored(_))))
        .count();
    let ids: HashSet<MessageId> = racing.iter().map(|p| p.clone().unwrap().id()).collect();
    assert_eq!((stored, ids.len()), (1, 1), "{racing:?}");
    assert_eq!(store.count(&bob()).await.unwrap(), 3);
}

async fn a_message_comes_back_exactly_as_it_was_put(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let mut sent = message("bob", "ali\"ce'", "e1f0c3a2-5d6b-4c7e-9f8a-0b1c2d3e4f50");
    sent.typeu = -1;
    sent.content = "你好 🌏\n\"quoted\" 'single' \\ \u{0}nul ".repeat(100);
    sent.accepted_at = NOW - 5;
    sent.expires_at = Some(NOW + 86_400_000);
    let id = store.put(sent.clone()).await.unwrap().id();

    let back = store.pending(&bob(), None, NOW, 10).await.unwrap();
    assert_eq!(back.len(), 1);
    let back = &back[0];
    assert_eq!(back.id, id);
    assert_eq!(
        (&back.receiver, &back.sender, &back.fp, back.typeu),
        (&sent.receiver, &sent.sender, &sent.fp, sent.typeu)
    );
    assert_eq!(back.content, sent.content);
    assert_eq!(
        (back.accepted_at, back.expires_at),
        (sent.accepted_at, sent.expires_at)
    );
}

async fn removed_messages_are_gone_and_count_once(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let a = store.put(message("bob", "alice", "a")).await.unwrap().id();
    let b = store.put(message("bob", "alice", "b")).await.unwrap().id();
    let c = store.put(message("bob", "alice", "c")).await.unwrap().id();
    let eves = store.put(message("eve", "alice", "a")).await.unwrap().id();

    assert_eq!(store.remove(&bob(), &[a, c]).await.unwrap(), 2);
    let left: Vec<MessageId> = ids(&store, "bob").await;
    assert_eq!(left, [b]);

    // Removing again, or removing another receiver's message, removes nothing.
    assert_eq!(store.remove(&bob(), &[a, c, eves]).await.unwrap(), 0);
    assert_eq!(ids(&store, "eve").await, [eves]);
    assert_eq!(store.remove(&bob(), &[]).await.unwrap(), 0);

    // A removed message's key is free again (the server's duplicate window covers that).
    let resent = store.put(message("bob", "alice", "a")).await.unwrap();
    assert!(matches!(resent, Put::Stored(id) if id > c), "{resent:?}");
}

async fn count_and_erase_concern_one_receiver(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    for fp in ["1", "2", "3"] {
        store.put(message("bob", "alice", fp)).await.unwrap();
    }
    store.put(message("eve", "alice", "1")).await.unwrap();
    assert_eq!(store.count(&bob()).await.unwrap(), 3);
    assert_eq!(store.count(&"nobody".into()).await.unwrap(), 0);

    assert_eq!(store.erase(&bob()).await.unwrap(), 3);
    assert_eq!(store.count(&bob()).await.unwrap(), 0);
    assert!(
        store
            .pending(&bob(), None, NOW, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count(&"eve".into()).await.unwrap(), 1);
    assert_eq!(store.erase(&bob()).await.unwrap(), 0);
}

async fn the_quota_refuses_beyond_the_limit_until_messages_are_removed(kind: Kind) {
    let limits = Limits {
        max_per_receiver: Some(3),
        max_content_bytes: None,
    };
    let (_backend, store) = open(kind, limits).await;
    let mut ids = Vec::new();
    for fp in ["1", "2", "3"] {
        ids.push(store.put(message("bob", "alice", fp)).await.unwrap().id());
    }
    let refused = store.put(message("bob", "alice", "4")).await;
    assert_eq!(
        refused,
        Err(StoreError::QuotaExceeded {
            receiver: bob(),
            limit: 3
        })
    );
    // A retransmission of a stored message is still acknowledged at the limit…
    assert_eq!(
        store.put(message("bob", "alice", "2")).await,
        Ok(Put::AlreadyStored(ids[1]))
    );
    // …other receivers have limits of their own…
    store.put(message("eve", "alice", "4")).await.unwrap();
    assert_eq!(store.count(&bob()).await.unwrap(), 3);

    // …and room made by delivery is room again.
    store.remove(&bob(), &ids[..1]).await.unwrap();
    assert!(matches!(
        store.put(message("bob", "alice", "4")).await,
        Ok(Put::Stored(_))
    ));
    assert!(store.put(message("bob", "alice", "5")).await.is_err());

    // Many puts at once (one batch, for the SQL backends) stop at the limit exactly.
    let racing = futures(
        &store,
        (0..10).map(|i| message("zoe", "alice", &i.to_string())),
    )
    .await;
    let stored = racing.iter().filter(|p| p.is_ok()).count();
    assert_eq!(stored, 3, "{racing:?}");
    assert_eq!(store.count(&"zoe".into()).await.unwrap(), 3);
}

async fn messages_above_the_size_limit_are_refused(kind: Kind) {
    let limits = Limits {
        max_per_receiver: None,
        max_content_bytes: Some(16),
    };
    let (_backend, store) = open(kind, limits).await;
    let mut big = message("bob", "alice", "big");
    big.content = "x".repeat(17);
    assert_eq!(
        store.put(big).await,
        Err(StoreError::TooLarge {
            size: 17,
            limit: 16
        })
    );
    let mut fits = message("bob", "alice", "fits");
    fits.content = "x".repeat(16);
    store.put(fits).await.unwrap();
    assert_eq!(store.count(&bob()).await.unwrap(), 1);
}

async fn ids_with_a_nul_are_refused_before_storing(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    for m in [
        message("b\0b", "alice", "1"),
        message("bob", "al\0ce", "1"),
        message("bob", "alice", "\0"),
    ] {
        let refused = store.put(m).await;
        assert!(
            matches!(refused, Err(StoreError::InvalidMessage(_))),
            "{refused:?}"
        );
    }
    // Refused alone: the store is as good as before.
    store.put(message("bob", "alice", "1")).await.unwrap();
    assert_eq!(store.count(&bob()).await.unwrap(), 1);
}

async fn expired_messages_are_not_replayed_and_are_removed_once(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let expiring = |receiver: &str, fp: &str, at: i64| {
        let mut m = message(receiver, "alice", fp);
        m.expires_at = Some(at);
        m
    };
    let late = store
        .put(expiring("bob", "late", NOW + 20))
        .await
        .unwrap()
        .id();
    let soon = store
        .put(expiring("eve", "soon", NOW + 10))
        .await
        .unwrap()
        .id();
    let forever = store
        .put(message("bob", "alice", "forever"))
        .await
        .unwrap()
        .id();
    let sooner = store
        .put(expiring("bob", "sooner", NOW + 5))
        .await
        .unwrap()
        .id();

    // Not yet expired: replayed, not swept.
    assert_eq!(ids(&store, "bob").await, [late, forever, sooner]);
    assert!(store.expire(NOW, 100).await.unwrap().is_empty());

    // Expired but not yet swept: no longer replayed, still counted.
    let at = NOW + 10;
    let replay: Vec<MessageId> = store
        .pending(&bob(), None, at, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(replay, [late, forever]);
    assert_eq!(store.count(&bob()).await.unwrap(), 3);

    // Swept once, soonest expiry first within the limit, reported in id order.
    let first = store.expire(at, 1).await.unwrap();
    assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), [sooner]);
    assert_eq!(first[0].fp.as_str(), "sooner");
    let rest = store.expire(at, 100).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), [soon]);
    assert!(store.expire(at, 100).await.unwrap().is_empty());
    assert_eq!(store.count(&bob()).await.unwrap(), 2);

    // A message the sweeper took cannot also be removed as delivered.
    assert_eq!(store.remove(&bob(), &[sooner]).await.unwrap(), 0);
    let all = store.expire(i64::MAX, 100).await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [late]);
}

async fn pending_pages_neither_skip_nor_repeat(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(
            store
                .put(message("bob", "alice", &i.to_string()))
                .await
                .unwrap()
                .id(),
        );
        store
            .put(message("eve", "alice", &i.to_string()))
            .await
            .unwrap();
    }
    // Delivered from the middle while paging.
    store.remove(&bob(), &all[12..14]).await.unwrap();
    let mut expected = all.clone();
    expected.drain(12..14);

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.pending(&bob(), after, NOW, 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|m| m.id));
        // Messages accepted during the replay come after it, not before.
        if seen.len() == 10 {
            let id = store
                .put(message("bob", "carol", "late"))
                .await
                .unwrap()
                .id();
            expected.push(id);
        }
    }
    assert_eq!(seen, expected);
    let beyond = Some(MessageId::new(i64::MAX));
    assert!(
        store
            .pending(&bob(), beyond, NOW, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .pending(&bob(), None, NOW, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_puts_are_all_acknowledged_and_all_stored(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    let tasks = 40;
    let per_task = 50;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..per_task {
                    let receiver = format!("user-{}", (t + i) % 7);
                    let m = message(&receiver, &format!("sender-{t}"), &i.to_string());
                    ids.push(store.put(m).await.expect("every put is acknowledged"));
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for handle in handles {
        for put in handle.await.unwrap() {
            assert!(matches!(put, Put::Stored(_)), "{put:?}");
            assert!(ids.insert(put.id()), "ids are unique");
        }
    }
    let mut stored = 0;
    for r in 0..7 {
        let receiver: UserId = format!("user-{r}").into();
        let pending = store.pending(&receiver, None, NOW, 10_000).await.unwrap();
        assert!(pending.iter().all(|m| ids.contains(&m.id)));
        assert!(pending.windows(2).all(|w| w[0].id < w[1].id));
        stored += pending.len();
    }
    assert_eq!(stored, tasks * per_task);
    assert_eq!(store.stats().stored, (tasks * per_task) as u64);
}

async fn a_healthy_store_says_so_and_a_closed_one_refuses_calls(kind: Kind) {
    let (_backend, store) = open(kind, Limits::UNLIMITED).await;
    store.health().await.unwrap();
    store.health().await.unwrap();
    store.put(message("bob", "alice", "1")).await.unwrap();
    store.close().await;
    assert_eq!(
        store.put(message("bob", "alice", "2")).await,
        Err(StoreError::Closed)
    );
    assert_eq!(store.health().await, Err(StoreError::Closed));
    assert!(store.pending(&bob(), None, NOW, 10).await.is_err());
    // Closing twice is harmless.
    store.close().await;
}

async fn stats_count_what_happened(kind: Kind) {
    let limits = Limits {
        max_per_receiver: Some(2),
        max_content_bytes: None,
    };
    let (_backend, store) = open(kind, limits).await;
    let a = store.put(message("bob", "alice", "a")).await.unwrap().id();
    store.put(message("bob", "alice", "a")).await.unwrap();
    store.put(message("bob", "alice", "b")).await.unwrap();
    store.put(message("bob", "alice", "c")).await.unwrap_err();
    store.remove(&bob(), &[a]).await.unwrap();
    let mut expiring = message("eve", "alice", "x");
    expiring.expires_at = Some(NOW);
    store.put(expiring).await.unwrap();
    store.expire(NOW, 10).await.unwrap();
    store.erase(&bob()).await.unwrap();

    let stats = store.stats();
    assert_eq!(
        (
            stats.stored,
            stats.duplicates,
            stats.quota_refusals,
            stats.removed,
            stats.expired,
            stats.erased,
            stats.queued
        ),
        (3, 1, 1, 1, 1, 1, 0),
        "{stats:?}"
    );
    if kind != Kind::Memory {
        assert!(
            stats.commits >= 1 && stats.commit_ops >= stats.commits,
            "{stats:?}"
        );
        assert_eq!(stats.commit_failures, 0);
    }
}

/// The ids of `receiver`'s pending messages.
async fn ids(store: &Arc<dyn MessageStore>, receiver: &str) -> Vec<MessageId> {
    store
        .pending(&receiver.into(), None, NOW, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect()
}

/// Puts every message at once, from tasks of their own, and returns the outcomes in order.
async fn futures(
    store: &Arc<dyn MessageStore>,
    messages: impl Iterator<Item = hongyan_store::NewMessage>,
) -> Vec<Result<Put, StoreError>> {
    let handles: Vec<_> = messages
        .map(|m| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.put(m).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("a put task does not panic"));
    }
    outcomes
}
