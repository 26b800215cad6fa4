//! History numbered by the store, for the nodes of a cluster (issue 14): two nodes accept
//! messages of one conversation side by side (alice on one writes to bob on another while bob
//! writes back), so neither can keep the conversation's counter. A node delivers a message at
//! once, without a seq, keeps it in the same buffer (in acceptance order, as on one node), and
//! the store chores hand the buffer to
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

use hongyan_shared::{Instant, SeqTag};

use super::{Accepted, Admitted, HistoryLink, Kept};

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
    /// message waits unnumbered (seq 0) in the buffer.
    pub(super) fn deliver_unnumbered<T, E>(
        &self,
        accepted: Accepted,
        now: Instant,
        deliver: impl FnOnce(Option<SeqTag>) -> Result<T, E>,
    ) -> (Result<T, E>, Kept) {
        let Admitted {
            shard: mut guard,
            probe,
            ..
        } = match self.admit(&accepted, now) {
            Ok(admitted) => admitted,
            Err(kept) => return (deliver(kept.tag()), kept),
        };
        let shard = &mut *guard;
        let result = deliver(None);
        if result.is_err() {
            return (result, Kept::Not);
        }
        // No counter here to share the conversation with.
        let key = probe.map(|p| p.key(&Arc::new(accepted.conversation.clone())));
        shard.remember(key, None, now);
        // Under the conversation's lock: the buffer keeps the order messages were accepted.
        self.numbered(std::iter::once(accepted.numbered(0)), false, now);
        (result, Kept::Later)
    }
}
