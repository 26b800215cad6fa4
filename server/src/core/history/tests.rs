//! [`HistoryLink`] on its own: what the chores take, write and write again.

use std::time::Duration;

use hongyan_shared::{Fingerprint, Instant, UserId};
use hongyan_store::{Conversation, HistoryBatch};

use super::{Accepted, HistoryLink, Kept, Members};

/// A message from `from` to `to`, accepted at `at` (ms).
fn accepted<'a>(from: &'a UserId, to: &'a UserId, fp: &'a Fingerprint) -> Accepted<'a> {
    let members = Members::between(from, to);
    Accepted {
        members,
        from_low: members.is_low(from),
        fp: Some(fp),
        typeu: 0,
        content: "hello",
        at: 1_700_000_000_000,
    }
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
