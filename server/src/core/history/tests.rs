//! [`HistoryLink`] on its own: what the chores take, write and write again.

use std::time::Duration;

use hongyan_shared::{Fingerprint, Instant, UserId};
use hongyan_store::{Conversation, HistoryBatch};

use super::{Accepted, HistoryLink, Kept, MAX_WAITING, MAX_WAITING_BYTES, SHARDS};

/// A message from `from` to `to`.
fn accepted<'a>(from: &'a UserId, to: &'a UserId, fp: &'a Fingerprint) -> Accepted<'a> {
    saying(from, to, fp, "hello")
}

/// A message from `from` to `to` with `content`.
fn saying<'a>(
    from: &'a UserId,
    to: &'a UserId,
    fp: &'a Fingerprint,
    content: &'a str,
) -> Accepted<'a> {
    Accepted::new(from, to, Some(fp), 0, content, 1_700_000_000_000)
}

/// A link with alice and bob's conversation loaded (it held nothing before).
fn loaded(now: Instant) -> HistoryLink {
    let link = HistoryLink::new(Duration::from_secs(86_400), Duration::ZERO, 1_000, now);
    link.opened(1);
    let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
    let first = Fingerprint::from("first");
    assert_eq!(
        link.record(&accepted(&alice, &bob, &first), now),
        Kept::Later
    );
    let loads = link.take_loads();
    link.loaded(loads, Some(vec![0]), now);
    link.written(link.take_writes(now).is_some(), now);
    assert_eq!(link.held(), 0);
    link
}

fn seqs(batches: &[HistoryBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(HistoryBatch::entries)
        .map(|e| e.seq)
        .collect()
}

#[test]
fn a_failed_write_is_written_again_as_it_was_before_what_came_after() {
    let now = Instant::now();
    let link = HistoryLink::new(Duration::from_secs(86_400), Duration::ZERO, 1_000, now);
    link.opened(1);
    let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
    let conversation = Conversation::between(&alice, &bob);
    let fps: Vec<Fingerprint> = (0..3).map(|i| format!("fp-{i}").into()).collect();
    let keep = |i: usize| link.record(&accepted(&alice, &bob, &fps[i]), now);

    assert_eq!(keep(0), Kept::Later, "the counter is not loaded yet");
    let loads = link.take_loads();
    link.loaded(loads, Some(vec![0]), now);
    assert!(matches!(keep(1), Kept::Numbered(tag) if tag.seq == 2));
    let first = link.take_writes(now).expect("a write is due");
    assert_eq!(seqs(&first), [1, 2]);
    assert!(link.take_writes(now).is_none(), "one write at a time");

    // Numbered while the write is out; then the write fails.
    assert!(matches!(keep(2), Kept::Numbered(tag) if tag.seq == 3));
    link.written(false, now);
    let again = link
        .take_writes(now)
        .expect("the failed write is tried again");
    assert_eq!(seqs(&again), [1, 2], "as it was, without what came after");
    let unwritten: Vec<u64> = link
        .unwritten(&conversation)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        unwritten,
        [1, 2, 3],
        "reads see every entry not yet written, once"
    );
    link.written(true, now);
    assert_eq!(link.held(), 1);

    let next = link
        .take_writes(now)
        .expect("what came after is written next");
    assert_eq!(seqs(&next), [3]);
    link.written(true, now);
    assert_eq!(link.held(), 0);
    assert!(link.take_writes(now).is_none());
    assert!(link.unwritten(&conversation).is_empty());
    assert_eq!(link.newest(&conversation), Some(3));
}

#[test]
fn a_conversation_keeps_at_most_its_shards_share_of_entries_waiting() {
    let now = Instant::now();
    let link = loaded(now);
    let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
    let share = MAX_WAITING / SHARDS;
    let fps: Vec<Fingerprint> = (0..=share).map(|i| format!("fp-{i}").into()).collect();
    for fp in &fps[..share] {
        assert!(matches!(
            link.record(&accepted(&alice, &bob, fp), now),
            Kept::Numbered(_)
        ));
    }
    let over = &fps[share];
    assert_eq!(link.record(&accepted(&alice, &bob, over), now), Kept::Not);
    assert_eq!(link.held(), share);
    link.written(link.take_writes(now).is_some(), now);
    assert_eq!(link.held(), 0);
    assert!(matches!(
        link.record(&accepted(&alice, &bob, over), now),
        Kept::Numbered(_)
    ));
}

/// The bytes bound counts content, as it is handed in: a write gives back what its entries
/// held, not their packed size, so what waits behind it stays counted.
#[test]
fn a_conversation_keeps_at_most_its_shards_share_of_content_waiting() {
    let now = Instant::now();
    let link = loaded(now);
    let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
    let share = MAX_WAITING_BYTES / SHARDS;
    let fps: Vec<Fingerprint> = (0..1_003).map(|i| format!("fp-{i}").into()).collect();
    let keep =
        |fp: &Fingerprint, content: &str| link.record(&saying(&alice, &bob, fp, content), now);
    // A thousand one-byte messages go out in a write...
    for fp in &fps[..1_000] {
        assert!(matches!(keep(fp, "x"), Kept::Numbered(_)));
    }
    let out = link.take_writes(now).expect("a write is due");
    // ...while one fills the share behind them.
    let big = "y".repeat(share - 1_000);
    assert!(matches!(keep(&fps[1_000], &big), Kept::Numbered(_)));
    assert_eq!(keep(&fps[1_001], "z"), Kept::Not, "the share is full");
    link.written(true, now);
    drop(out);
    // The write gave back 1,000 bytes: 2,000 more do not fit, 1,000 do.
    assert_eq!(keep(&fps[1_001], &"z".repeat(2_000)), Kept::Not);
    assert!(matches!(
        keep(&fps[1_002], &"z".repeat(1_000)),
        Kept::Numbered(_)
    ));
}
