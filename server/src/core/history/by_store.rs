//! History numbered by the store, for the nodes of a cluster (issue 14): two nodes accept
//! messages of one conversation side by side (alice on one writes to bob on another while bob
//! writes back), so neither can keep the conversation's counter. A node delivers a message at
//! once, without a seq, packs it into its conversation's batch (in acceptance order, as on one
//! node), and the store chores hand the batches, unpacked, to
//! [`MessageStore::number_history`](hongyan_store::MessageStore::number_history), which
//! numbers each conversation's entries after its newest seq in the transaction that writes
//! them. Nothing is numbered in memory, so a read sees what is written; a client finds a
//! message that arrived without a seq through sync (§9.4).
//!
//! A retransmission is recognised twice: in this node's recent messages (the same memory as
//! on one node) while the first is not written yet, and by the store, which leaves out an
//! entry whose (conversation, sender, fp) it holds already (a sender that moved to another
//! node and sent again, or a batch retried after an ambiguous failure).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hashlink::linked_hash_map::RawEntryMut;
use hongyan_shared::{Instant, SeqTag};

use super::{Accepted, Admitted, BatchSlot, COUNTERS, Counter, HistoryLink, Kept, SHARDS, Shard};

impl HistoryLink {
    /// The same history, numbered by the store as it writes the entries.
    pub(crate) fn numbered_by_store(mut self) -> Self {
        self.by_store = true;
        self
    }

    /// Whether the store numbers the entries (a cluster's node).
    pub(crate) fn by_store(&self) -> bool {
        self.by_store
    }

    /// [`deliver`](Self::deliver) when the store numbers: `deliver` gets no tag, and the
    /// message waits unnumbered (seq 0) in its conversation's batch (the counter holds only
    /// where that batch is).
    pub(super) fn deliver_unnumbered<T, E>(
        &self,
        accepted: &Accepted<'_>,
        now: Instant,
        deliver: impl FnOnce(Option<SeqTag>) -> Result<T, E>,
    ) -> (Result<T, E>, Kept) {
        let Admitted {
            hash,
            shard: mut guard,
            probe,
        } = match self.admit(accepted, now) {
            Ok(admitted) => admitted,
            Err(kept) => return (deliver(kept.tag()), kept),
        };
        let shard = &mut *guard;
        let result = deliver(None);
        if result.is_err() {
            return (result, Kept::Not);
        }
        let take = shard.take;
        let members = accepted.members;
        let (conversation, counter) = match shard
            .counters
            .raw_entry_mut()
            .from_hash(hash, |conversation| members.is(conversation))
        {
            RawEntryMut::Occupied(mut entry) => {
                entry.to_back();
                entry.into_key_value()
            }
            RawEntryMut::Vacant(entry) => {
                let slot = BatchSlot {
                    take,
                    index: usize::MAX,
                };
                let conversation = Arc::new(members.conversation());
                entry.insert_hashed_nocheck(hash, conversation, Counter::Ready { next: 0, slot })
            }
        };
        let key = probe.map(|p| p.key(conversation));
        // Under the conversation's lock: its batch keeps the order messages were accepted.
        match counter {
            Counter::Ready { slot, .. } => {
                let batch = Shard::batch(&mut shard.batches, take, slot, conversation);
                accepted.pack(batch, 0);
            }
            Counter::Loading(waiting) => accepted.pack(waiting, 0),
        }
        shard.kept(key, None, accepted, now);
        let written = self.written_takes.load(Ordering::Acquire);
        shard.trim(COUNTERS / SHARDS, written);
        self.arm(now);
        (result, Kept::Later)
    }
}
