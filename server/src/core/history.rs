//! [`HistoryLink`]: numbering the messages of each conversation in memory, and the batches
//! waiting to be written behind delivery (issue 12).
//!
//! A conversation's next seq is a counter in memory, loaded from the store the first time the
//! conversation is seen (by the store chores, never by a session: a message that arrives
//! before its conversation's counter is loaded is delivered at once, without a seq, and
//! numbered when the counter arrives). Numbering and handing the message to its receiver's
//! queue happen under the conversation's lock, so seqs follow the order messages were
//! accepted, and a message the receiver's session refuses is not numbered (the seq goes to the
//! next one: no gap).
//!
//! A numbered message is packed at once into its conversation's [`HistoryBatch`] for the next
//! write, in its shard: one copy of its fields into a growing buffer, no allocation of its
//! own, no lock but its conversation's. The store chores take every shard's batches in one
//! write (one group commit), the flush delay (20 ms on one server) after the first message
//! since the last; SQLite keeps each batch as one row. Reads merge the batches not yet
//! written with the store.
//!
//! A crash loses what is not written: up to the flush delay and the write under way's worth of
//! history (never a delivery). The next server opens the store's history with a new epoch,
//! and clients that see it drop what they learned and sync again.
//!
//! The nodes of a cluster let the store number instead ([`by_store`]).

mod by_store;
mod members;
mod recent;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hashlink::linked_hash_map::RawEntryMut;
use hashlink::{DefaultHashBuilder, LinkedHashMap};
use hongyan_shared::{Fingerprint, Instant, SeqTag, UserId};
use hongyan_store::{Conversation, HistoryBatch, HistoryEntry};

use self::members::Members;
use self::recent::{RecentKey, RecentMessages, RecentProbe};

/// Locks over the conversations: a message takes one, for its conversation only.
const SHARDS: usize = 16;
/// Numbered conversations kept in memory (a shard's share); the least recently used one
/// with nothing left to write goes when a shard is full. Loading it again costs one read.
const COUNTERS: usize = 100_000;
/// How long a message's seq is remembered, so that a sender's retransmission (after 5 and 10
/// s, §6.1) is recognised and not numbered twice.
const RECENT_LIFETIME: Duration = Duration::from_secs(60);
/// The most entries waiting to be numbered or written; beyond it (the store has been failing
/// for long) new messages are delivered without being kept in history. Each shard holds its
/// share.
const MAX_WAITING: usize = 100_000;
/// The most bytes of content waiting to be numbered or written (each shard its share).
const MAX_WAITING_BYTES: usize = 64 * 1024 * 1024;

/// A message accepted into a conversation (handed to its receiver, or stored for it), as the
/// history keeps it: borrowed from its packet until it is packed into a batch.
#[derive(Clone, Copy)]
pub(crate) struct Accepted<'a> {
    members: Members<'a>,
    /// Sent by the member whose id sorts first.
    from_low: bool,
    fp: Option<&'a Fingerprint>,
    typeu: i32,
    content: &'a str,
    /// Milliseconds since the Unix epoch.
    at: i64,
}

impl<'a> Accepted<'a> {
    /// A message from `sender` to `receiver`, accepted `at` (milliseconds since the Unix epoch).
    pub(crate) fn new(
        sender: &'a UserId,
        receiver: &'a UserId,
        fp: Option<&'a Fingerprint>,
        typeu: i32,
        content: &'a str,
        at: i64,
    ) -> Self {
        let members = Members::between(sender, receiver);
        Accepted {
            members,
            from_low: members.is_low(sender),
            fp,
            typeu,
            content,
            at,
        }
    }

    /// Packs it into `batch` as `seq` (0: not numbered yet).
    fn pack(&self, batch: &mut HistoryBatch, seq: u64) {
        let fp = self.fp.map(Fingerprint::as_str);
        batch
            .push(seq, self.from_low, fp, self.typeu, self.at, self.content)
            .expect("a kept message's ids were checked (`keepable`) before it was packed");
    }

    /// What finds it among the recent messages, if it has a fingerprint; `hash` is its
    /// conversation's (`hasher`'s).
    fn probe(&self, hash: u64, hasher: &DefaultHashBuilder) -> Option<RecentProbe<'_>> {
        RecentProbe::of(self.from_low, self.fp, hash, hasher)
    }

    /// Whether the store can keep it: no NUL in an id, which no backend keeps faithfully.
    fn keepable(&self) -> bool {
        let ids = [
            self.members.low.as_str(),
            self.members.high.as_str(),
            self.fp.map_or("", Fingerprint::as_str),
        ];
        !ids.iter().any(|id| id.contains('\0'))
    }
}

/// What the history did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Numbered now.
    Numbered(SeqTag),
    /// Kept, numbered once its conversation's counter is loaded (or by the store).
    Later,
    /// Seen before (a retransmission): its first tag, if it had one; not kept again.
    Again(Option<SeqTag>),
    /// Not kept: too much waits to be written already, or an id the store cannot keep.
    Not,
}

impl Kept {
    /// The message's place, if it has one now.
    pub(crate) fn tag(self) -> Option<SeqTag> {
        match self {
            Kept::Numbered(tag) | Kept::Again(Some(tag)) => Some(tag),
            _ => None,
        }
    }
}

/// Where a conversation's batch for the next write is in its shard: valid while the shard's
/// take is still `take`.
#[derive(Clone, Copy)]
struct BatchSlot {
    take: u64,
    index: usize,
}

/// A conversation's numbering.
enum Counter {
    /// Its newest seq is being read; these messages wait for their seqs, in order, packed
    /// unnumbered.
    Loading(HistoryBatch),
    /// `next` is the next seq (unused where the store numbers); `slot` is the conversation's
    /// batch in the take its newest message went into (a counter is forgotten only once that
    /// take is written: the store's newest seq is then its own).
    Ready { next: u64, slot: BatchSlot },
}

/// A message [`HistoryLink::admit`] let through: its conversation's hash, the conversation's
/// shard (held until the message is kept), and what finds it among the recent messages, if it
/// has a fingerprint.
struct Admitted<'a, 'm> {
    hash: u64,
    shard: MutexGuard<'a, Shard>,
    probe: Option<RecentProbe<'m>>,
}

/// The conversations of one lock.
struct Shard {
    /// Least recently used first; hashed with the link's hasher, so the hash that chose the
    /// shard finds the counter too. The key is shared with the recent messages' keys.
    counters: LinkedHashMap<Arc<Conversation>, Counter, DefaultHashBuilder>,
    /// Recently kept messages, oldest first.
    recent: RecentMessages,
    /// The batches of the next write, a conversation's at most once.
    batches: Vec<HistoryBatch>,
    /// How many writes took this shard's batches so far: the take `batches` go into.
    take: u64,
    /// Entries (and their content bytes) kept here and not yet written: numbered, or waiting
    /// for their seqs.
    held: usize,
    held_bytes: usize,
}

impl Shard {
    fn new(hasher: &DefaultHashBuilder) -> Self {
        Self {
            counters: LinkedHashMap::with_hasher(hasher.clone()),
            recent: RecentMessages::default(),
            batches: Vec::new(),
            take: 0,
            held: 0,
            held_bytes: 0,
        }
    }

    fn forget_recent(&mut self, now: Instant, capacity: usize) {
        while let Some(recent) = self.recent.oldest() {
            let expired = now.saturating_duration_since(recent.at) >= RECENT_LIFETIME;
            if !expired && self.recent.len() <= capacity {
                break;
            }
            self.recent.forget_oldest();
        }
    }

    /// The tag of a recently kept message, if `probe` finds one in `members`' conversation.
    fn recalled(&self, probe: &RecentProbe<'_>, members: Members<'_>) -> Option<Option<SeqTag>> {
        Some(self.recent.find(probe, members)?.tag)
    }

    /// Counts `accepted`, just kept, as held until written, and remembers its `key` (if it has
    /// a fingerprint) with its `tag`, so that a retransmission is recognised.
    fn kept(
        &mut self,
        key: Option<RecentKey>,
        tag: Option<SeqTag>,
        accepted: &Accepted<'_>,
        now: Instant,
    ) {
        if let Some(key) = key {
            self.recent.remember(key, tag, now);
        }
        self.held += 1;
        self.held_bytes += accepted.content.len();
    }

    /// Forgets least recently used counters whose messages are all written (in a take before
    /// `written`) while over `limit`.
    fn trim(&mut self, limit: usize, written: u64) {
        while self.counters.len() > limit {
            let idle = self
                .counters
                .iter()
                .find(|(_, c)| matches!(c, Counter::Ready { slot, .. } if slot.take < written))
                .map(|(k, _)| k.clone());
            match idle {
                Some(conversation) => {
                    self.counters.remove(&conversation);
                }
                None => break,
            }
        }
    }

    /// The batch of `conversation` that `slot` points at in this take, started if there is
    /// none yet.
    fn batch<'s>(
        batches: &'s mut Vec<HistoryBatch>,
        take: u64,
        slot: &mut BatchSlot,
        conversation: &Conversation,
    ) -> &'s mut HistoryBatch {
        if slot.take != take || slot.index >= batches.len() {
            let batch = HistoryBatch::new(conversation.clone())
                .expect("a kept message's ids were checked (`keepable`) before it was packed");
            *slot = BatchSlot {
                take,
                index: batches.len(),
            };
            batches.push(batch);
        }
        &mut batches[slot.index]
    }

    /// The batch of `conversation` in this take, if it has one.
    fn current_batch(&self, conversation: &Conversation) -> Option<&HistoryBatch> {
        match self.counters.get(conversation)? {
            Counter::Ready { slot, .. } if slot.take == self.take => self.batches.get(slot.index),
            _ => None,
        }
    }
}

/// The write's side: what the chores take, write and schedule.
#[derive(Default)]
struct Buffer {
    /// Handed to the store (shared with it, not copied), not yet committed.
    writing: Arc<[HistoryBatch]>,
    /// The take `writing` is, and the entries and bytes it took from each shard.
    writing_take: u64,
    taken: Vec<(usize, usize)>,
    /// `writing` failed and is written again before anything taken after it.
    rewrite: bool,
    /// Conversations whose counters the chores load.
    loads: Vec<Conversation>,
    loading: bool,
    /// When recently numbered messages are next looked through, so that they are forgotten
    /// after their lifetime even when their shards see no more traffic.
    forget_at: Option<Instant>,
    /// When the next write is due, and when a failed step may be tried again.
    write_at: Option<Instant>,
    retry_at: Option<Instant>,
}

/// The core's conversation history: present with a store and a retention above 0.
pub(crate) struct HistoryLink {
    /// How long history is kept.
    pub(crate) retention: Duration,
    /// How long numbered entries may wait before they are written (0: at the next chore).
    flush_delay: Duration,
    recent_capacity: usize,
    /// The store's history epoch; 0 until opened.
    epoch: AtomicU64,
    /// Wakes the store chores: something waits to be loaded or written.
    pub(crate) wake: tokio::sync::Notify,
    /// Hashes a conversation once per message: the hash picks its shard and finds its
    /// counter there.
    hasher: DefaultHashBuilder,
    shards: Box<[Mutex<Shard>]>,
    buffer: Mutex<Buffer>,
    /// A write is scheduled: set by the first message after a take, so the others read it
    /// and take no lock but their conversation's.
    armed: AtomicBool,
    /// Takes written so far: a counter whose newest message went into an earlier take has
    /// nothing left to write.
    written_takes: AtomicU64,
    /// When the retention sweep next runs.
    next_sweep: Mutex<Option<Instant>>,
    /// The store numbers the entries as it writes them (the nodes of a cluster).
    by_store: bool,
}

impl HistoryLink {
    /// History kept for `retention`, written `flush_delay` after numbering, remembering up to
    /// `recent_capacity` numbered messages to recognise retransmissions.
    pub(crate) fn new(
        retention: Duration,
        flush_delay: Duration,
        recent_capacity: usize,
        now: Instant,
    ) -> Self {
        let hasher = DefaultHashBuilder::default();
        let link = Self {
            retention,
            flush_delay,
            recent_capacity: recent_capacity.div_ceil(SHARDS).max(1),
            epoch: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(&hasher)))
                .collect(),
            hasher,
            buffer: Mutex::default(),
            armed: AtomicBool::new(false),
            written_takes: AtomicU64::new(0),
            next_sweep: Mutex::new(None),
            by_store: false,
        };
        *link.lock_sweep() = Some(now + link.sweep_interval());
        link
    }

    fn shard(&self, conversation: &Conversation) -> MutexGuard<'_, Shard> {
        self.shard_of(self.hasher.hash_one(conversation))
    }

    /// The shard of the conversation with `hash`. Picked by bits the maps' tables do not use
    /// (they index by the low bits and tag by the top ones), so a shard's conversations still
    /// spread over its table.
    fn shard_of(&self, hash: u64) -> MutexGuard<'_, Shard> {
        lock_shard(&self.shards[shard_index(hash)])
    }

    fn lock_buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .expect("history buffer lock is never held across a panic-prone section")
    }

    pub(crate) fn lock_sweep(&self) -> MutexGuard<'_, Option<Instant>> {
        self.next_sweep
            .lock()
            .expect("history sweep lock is never held across a panic-prone section")
    }

    /// How often the retention sweep runs: a hundredth of the retention, between a minute and
    /// an hour.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.retention / 100).clamp(Duration::from_secs(60), Duration::from_secs(3600))
    }

    /// The store's history epoch, once opened.
    pub(crate) fn epoch(&self) -> Option<u64> {
        match self.epoch.load(Ordering::Acquire) {
            0 => None,
            epoch => Some(epoch),
        }
    }

    /// The first steps of keeping `accepted` at `now`, whoever numbers it: its conversation's
    /// shard, locked, with the recent messages that outlived their lifetime forgotten. A
    /// message seen before is [`Kept::Again`], one that cannot be kept (too much waits to be
    /// written, or an id the store cannot keep) [`Kept::Not`].
    fn admit<'m>(
        &self,
        accepted: &'m Accepted<'m>,
        now: Instant,
    ) -> Result<Admitted<'_, 'm>, Kept> {
        let hash = accepted.members.hash(&self.hasher);
        let mut shard = self.shard_of(hash);
        shard.forget_recent(now, self.recent_capacity);
        let probe = accepted.probe(hash, &self.hasher);
        if let Some(tag) = probe
            .as_ref()
            .and_then(|p| shard.recalled(p, accepted.members))
        {
            return Err(Kept::Again(tag));
        }
        let room = shard.held < MAX_WAITING / SHARDS
            && shard.held_bytes + accepted.content.len() <= MAX_WAITING_BYTES / SHARDS;
        if !room || !accepted.keepable() {
            return Err(Kept::Not);
        }
        Ok(Admitted { hash, shard, probe })
    }

    /// Keeps `accepted`, handing it to its receiver with `deliver` under its conversation's
    /// lock: `deliver` gets the message's tag (`None` when it cannot be numbered now), and
    /// only if it succeeds is the message kept. A message seen before (a sender's
    /// retransmission) is delivered with its first tag and not kept again.
    pub(crate) fn deliver<T, E>(
        &self,
        accepted: &Accepted<'_>,
        now: Instant,
        deliver: impl FnOnce(Option<SeqTag>) -> Result<T, E>,
    ) -> (Result<T, E>, Kept) {
        if self.by_store {
            return self.deliver_unnumbered(accepted, now, deliver);
        }
        let Admitted {
            hash,
            shard: mut guard,
            probe,
        } = match self.admit(accepted, now) {
            Ok(admitted) => admitted,
            Err(kept) => return (deliver(kept.tag()), kept),
        };
        let shard = &mut *guard;
        let take = shard.take;
        let members = accepted.members;
        let counter = shard
            .counters
            .raw_entry_mut()
            .from_hash(hash, |conversation| members.is(conversation));
        let (result, kept, key) = match counter {
            RawEntryMut::Occupied(mut entry) => {
                entry.to_back();
                let (conversation, counter) = entry.into_key_value();
                let key = probe.map(|p| p.key(conversation));
                match counter {
                    Counter::Ready { next, slot } => {
                        let tag = SeqTag {
                            seq: *next,
                            epoch: self.epoch.load(Ordering::Acquire),
                            at: accepted.at,
                        };
                        let result = deliver(Some(tag));
                        if result.is_err() {
                            return (result, Kept::Not);
                        }
                        *next += 1;
                        let batch = Shard::batch(&mut shard.batches, take, slot, conversation);
                        accepted.pack(batch, tag.seq);
                        self.arm(now);
                        (result, Kept::Numbered(tag), key)
                    }
                    Counter::Loading(waiting) => {
                        let result = deliver(None);
                        if result.is_err() {
                            return (result, Kept::Not);
                        }
                        accepted.pack(waiting, 0);
                        (result, Kept::Later, key)
                    }
                }
            }
            RawEntryMut::Vacant(entry) => {
                let result = deliver(None);
                if result.is_err() {
                    return (result, Kept::Not);
                }
                let conversation = Arc::new(members.conversation());
                let key = probe.map(|p| p.key(&conversation));
                let mut waiting = HistoryBatch::new((*conversation).clone())
                    .expect("a kept message's ids were checked (`keepable`) before it was packed");
                accepted.pack(&mut waiting, 0);
                entry.insert_hashed_nocheck(
                    hash,
                    Arc::clone(&conversation),
                    Counter::Loading(waiting),
                );
                let written = self.written_takes.load(Ordering::Acquire);
                shard.trim(COUNTERS / SHARDS, written);
                self.lock_buffer().loads.push((*conversation).clone());
                self.wake.notify_one();
                (result, Kept::Later, key)
            }
        };
        shard.kept(key, kept.tag(), accepted, now);
        (result, kept)
    }

    /// The tag `accepted` got when it was kept, if that was recently (within a minute) and it
    /// has one: a stored message sent again.
    pub(crate) fn recall(&self, accepted: &Accepted<'_>) -> Option<SeqTag> {
        let hash = accepted.members.hash(&self.hasher);
        let probe = accepted.probe(hash, &self.hasher)?;
        self.shard_of(hash).recalled(&probe, accepted.members)?
    }

    /// Keeps `accepted`, already kept for its receiver (stored): numbered now if its
    /// conversation's counter is loaded.
    pub(crate) fn record(&self, accepted: &Accepted<'_>, now: Instant) -> Kept {
        self.deliver(accepted, now, |_| Ok::<(), ()>(())).1
    }

    /// Schedules the next write, if the first message since the last take just went into a
    /// batch (called with its shard locked: the chores take no shard while they hold the
    /// buffer).
    fn arm(&self, now: Instant) {
        if self.armed.load(Ordering::Acquire) || self.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut buffer = self.lock_buffer();
        buffer.write_at.get_or_insert(now + self.flush_delay);
        buffer.forget_at.get_or_insert(now + RECENT_LIFETIME);
        drop(buffer);
        self.wake.notify_one();
    }

    // ---- The store chores' side -------------------------------------------------------------

    /// When the chores have history work: opening the epoch, loading counters, writing, a
    /// retry, the retention sweep.
    pub(crate) fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let buffer = self.lock_buffer();
        let retry = buffer.retry_at;
        let opening = (self.epoch().is_none()).then(|| retry.unwrap_or(now));
        let loads =
            (!buffer.loads.is_empty() && self.epoch().is_some()).then(|| retry.unwrap_or(now));
        let write = buffer
            .write_at
            .filter(|_| buffer.writing.is_empty() || buffer.rewrite)
            .map(|at| retry.map_or(at, |r| r.max(at)));
        let sweep = *self.lock_sweep();
        [opening, loads, write, sweep, buffer.forget_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// How many recently numbered messages are remembered, in every shard.
    #[cfg(test)]
    pub(crate) fn recent_len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock_shard(shard).recent.len())
            .sum()
    }

    /// Forgets the recently numbered messages that outlived their lifetime in every shard,
    /// if that is due at `now`, and gives back the memory of shards left mostly empty: after
    /// a busy spell the table holds up to `dedup_capacity` keys, and a shard that sees no more
    /// messages would otherwise keep them.
    pub(crate) fn forget_recent(&self, now: Instant) {
        if self.lock_buffer().forget_at.is_none_or(|at| at > now) {
            return;
        }
        let mut oldest = None;
        for shard in &self.shards {
            let mut shard = lock_shard(shard);
            shard.forget_recent(now, self.recent_capacity);
            shard.recent.shrink();
            if let Some(recent) = shard.recent.oldest() {
                oldest = Some(oldest.map_or(recent.at, |at: Instant| at.min(recent.at)));
            }
        }
        self.lock_buffer().forget_at = oldest.map(|at| at + RECENT_LIFETIME);
    }

    /// Whether a step that failed may be tried again at `now`.
    pub(crate) fn may_retry(&self, now: Instant) -> bool {
        self.lock_buffer().retry_at.is_none_or(|at| at <= now)
    }

    /// A step failed: the chores try again after `delay`.
    pub(crate) fn failed(&self, now: Instant, delay: Duration) {
        self.lock_buffer().retry_at = Some(now + delay);
    }

    /// The epoch was read.
    pub(crate) fn opened(&self, epoch: u64) {
        self.epoch.store(epoch.max(1), Ordering::Release);
        self.lock_buffer().retry_at = None;
    }

    /// The conversations whose counters are to be loaded now.
    pub(crate) fn take_loads(&self) -> Vec<Conversation> {
        let mut buffer = self.lock_buffer();
        if buffer.loading || buffer.loads.is_empty() {
            return Vec::new();
        }
        buffer.loading = true;
        std::mem::take(&mut buffer.loads)
    }

    /// The newest seqs of `conversations` were read (`None`: the read failed, they are loaded
    /// again later): their counters start after them, and what waited is numbered, in order.
    pub(crate) fn loaded(
        &self,
        conversations: Vec<Conversation>,
        newest: Option<Vec<u64>>,
        now: Instant,
    ) {
        let Some(newest) = newest else {
            let mut buffer = self.lock_buffer();
            buffer.loading = false;
            buffer.loads.extend(conversations);
            return;
        };
        let epoch = self.epoch.load(Ordering::Acquire);
        for (conversation, newest) in conversations.into_iter().zip(newest) {
            let hash = self.hasher.hash_one(&conversation);
            let mut guard = self.shard_of(hash);
            let shard = &mut *guard;
            let take = shard.take;
            let (key, counter) = match shard
                .counters
                .raw_entry_mut()
                .from_key_hashed_nocheck(hash, &conversation)
            {
                RawEntryMut::Occupied(entry) => entry.into_key_value(),
                RawEntryMut::Vacant(_) => continue,
            };
            let mut slot = BatchSlot {
                take,
                index: usize::MAX,
            };
            let mut next = newest + 1;
            let old = std::mem::replace(counter, Counter::Ready { next, slot });
            let Counter::Loading(waiting) = old else {
                *counter = old;
                continue;
            };
            if waiting.is_empty() {
                continue;
            }
            let members = Members::between(conversation.low(), conversation.high());
            let batch = Shard::batch(&mut shard.batches, take, &mut slot, key);
            for mut entry in waiting.entries() {
                entry.seq = next;
                batch
                    .push_entry(&entry)
                    .expect("an entry of the conversation's batch fits its next batch");
                let from_low = &entry.sender == conversation.low();
                if let Some(probe) =
                    RecentProbe::of(from_low, entry.fp.as_ref(), hash, &self.hasher)
                    && let Some(recent) = shard.recent.find_mut(&probe, members)
                {
                    recent.tag = Some(SeqTag {
                        seq: next,
                        epoch,
                        at: entry.accepted_at,
                    });
                }
                next += 1;
            }
            *counter = Counter::Ready { next, slot };
            self.arm(now);
        }
        self.lock_buffer().loading = false;
    }

    /// What is due to be written at `now`, handed over to the writing: every shard's batches
    /// (or, after a failure, the same write again). `None` if nothing is, or a write is under
    /// way.
    pub(crate) fn take_writes(&self, now: Instant) -> Option<Arc<[HistoryBatch]>> {
        let take = {
            let mut buffer = self.lock_buffer();
            if buffer.rewrite {
                if buffer.write_at.is_none_or(|at| at > now) {
                    return None;
                }
                buffer.rewrite = false;
                buffer.write_at = None;
                return Some(buffer.writing.clone());
            }
            if !buffer.writing.is_empty() || buffer.write_at.is_none_or(|at| at > now) {
                return None;
            }
            buffer.write_at = None;
            buffer.writing_take
        };
        // Messages from here on schedule the next write; those already in a batch are taken
        // now (each shard's batches are taken under its lock).
        self.armed.store(false, Ordering::Release);
        let mut writing = Vec::new();
        let mut taken = Vec::with_capacity(SHARDS);
        for shard in &self.shards {
            let mut shard = lock_shard(shard);
            shard.take = take + 1;
            let batches = std::mem::take(&mut shard.batches);
            let entries = batches.iter().map(HistoryBatch::len).sum();
            let bytes = batches.iter().map(HistoryBatch::content_len).sum();
            taken.push((entries, bytes));
            writing.extend(batches);
        }
        let mut buffer = self.lock_buffer();
        buffer.writing_take = take + 1;
        if writing.is_empty() {
            self.written_takes.store(take + 1, Ordering::Release);
            return None;
        }
        buffer.writing = writing.into();
        buffer.taken = taken;
        Some(buffer.writing.clone())
    }

    /// The write handed over by [`take_writes`](Self::take_writes) committed (`ok`), or
    /// failed and is tried again (as it was) before anything taken since.
    pub(crate) fn written(&self, ok: bool, now: Instant) {
        let (taken, take) = {
            let mut buffer = self.lock_buffer();
            if !ok {
                buffer.rewrite = true;
                buffer.write_at = Some(now);
                return;
            }
            buffer.writing = Arc::from([]);
            (std::mem::take(&mut buffer.taken), buffer.writing_take)
        };
        self.written_takes.store(take, Ordering::Release);
        for (shard, (entries, bytes)) in self.shards.iter().zip(taken) {
            let mut shard = lock_shard(shard);
            shard.held = shard.held.saturating_sub(entries);
            shard.held_bytes = shard.held_bytes.saturating_sub(bytes);
        }
        let pending = self
            .shards
            .iter()
            .any(|shard| !lock_shard(shard).batches.is_empty());
        if pending {
            self.lock_buffer()
                .write_at
                .get_or_insert(now + self.flush_delay);
        }
    }

    // ---- Reads ------------------------------------------------------------------------------

    /// `conversation`'s entries not yet committed, in seq order.
    pub(crate) fn unwritten(&self, conversation: &Conversation) -> Vec<HistoryEntry> {
        if self.by_store {
            return Vec::new(); // Not numbered yet.
        }
        // The shard before the write under way: a batch taken in between is in the write,
        // and one written before the write is read is in the store, which is read after.
        let mut entries: Vec<HistoryEntry> = self
            .shard(conversation)
            .current_batch(conversation)
            .map(|batch| batch.entries().collect())
            .unwrap_or_default();
        let writing = self.lock_buffer().writing.clone();
        let earlier = writing
            .iter()
            .filter(|b| b.conversation() == conversation)
            .flat_map(HistoryBatch::entries);
        entries.splice(0..0, earlier);
        entries
    }

    /// Every conversation of `user` with entries not yet committed: the newest seq and its
    /// time, and the newest seq `user` sent (which `user` has read).
    pub(crate) fn unwritten_of(&self, user: &UserId) -> HashMap<UserId, (u64, i64, u64)> {
        if self.by_store {
            return HashMap::new(); // Not numbered yet.
        }
        let mut found: HashMap<UserId, (u64, i64, u64)> = HashMap::new();
        let mut note = |batch: &HistoryBatch| {
            let conversation = batch.conversation();
            let Some(peer) = conversation.peer_of(user) else {
                return;
            };
            let summary = batch.summary();
            let entry = found.entry(peer.clone()).or_default();
            if summary.newest > entry.0 {
                entry.0 = summary.newest;
                entry.1 = summary.newest_at;
            }
            let sent = if user == conversation.low() {
                summary.sent_by_low
            } else {
                summary.sent_by_high
            };
            entry.2 = entry.2.max(sent);
        };
        // The shards before the write under way, as in `unwritten`.
        for shard in &self.shards {
            lock_shard(shard).batches.iter().for_each(&mut note);
        }
        let writing = self.lock_buffer().writing.clone();
        writing.iter().for_each(&mut note);
        found
    }

    /// `conversation`'s newest seq, if its counter is in memory (then it is authoritative,
    /// written or not).
    pub(crate) fn newest(&self, conversation: &Conversation) -> Option<u64> {
        if self.by_store {
            return None; // The store numbers: its newest seq is the one.
        }
        match self.shard(conversation).counters.get(conversation)? {
            Counter::Ready { next, .. } => Some(next - 1),
            Counter::Loading(_) => None,
        }
    }

    /// Entries numbered or waiting to be, not yet committed.
    pub(crate) fn held(&self) -> usize {
        self.shards.iter().map(|shard| lock_shard(shard).held).sum()
    }
}

/// The shard a conversation with `hash` is in.
fn shard_index(hash: u64) -> usize {
    ((hash >> 32) % SHARDS as u64) as usize
}

fn lock_shard(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .expect("history shard lock is never held across a panic-prone section")
}
