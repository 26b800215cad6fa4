//! [`HistoryLink`]: numbering the messages of each conversation in memory, and the entries
//! waiting to be written behind delivery (issue 12).
//!
//! A conversation's next seq is a counter in memory, loaded from the store the first time the
//! conversation is seen (by the store chores, never by a session: a message that arrives
//! before its conversation's counter is loaded is delivered at once, without a seq, and
//! numbered when the counter arrives). Numbering and handing the message to its receiver's
//! queue happen under the conversation's lock, so seqs follow the order messages were
//! accepted, and a message the receiver's session refuses is not numbered (the seq goes to the
//! next one: no gap). Numbered entries wait in a buffer that the store chores write in batches
//! (one group commit each), the flush delay (20 ms on one server) after the first of them was
//! numbered; reads merge the buffer with the store.
//!
//! A crash loses the buffer: up to the flush delay and the write under way's worth of history
//! (never a delivery). The next server opens the store's history with a new epoch, and
//! clients that see it drop what they learned and sync again.
//!
//! The nodes of a cluster let the store number instead ([`by_store`]).

mod by_store;
mod recent;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hashlink::linked_hash_map::RawEntryMut;
use hashlink::{DefaultHashBuilder, LinkedHashMap};
use hongyan_shared::{Fingerprint, Instant, SeqTag, UserId};
use hongyan_store::{Conversation, HistoryEntry};

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
/// for long) new messages are delivered without being kept in history.
const MAX_WAITING: usize = 100_000;
/// The most bytes of content waiting to be numbered or written.
const MAX_WAITING_BYTES: usize = 64 * 1024 * 1024;
/// The fewest entries the buffer of numbered entries keeps room for between writes.
const KEPT_ROOM: usize = 1024;

/// A message accepted into a conversation (handed to its receiver, or stored for it), before
/// it is numbered.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) conversation: Conversation,
    pub(crate) sender: UserId,
    pub(crate) fp: Option<Fingerprint>,
    pub(crate) typeu: i32,
    pub(crate) content: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) at: i64,
}

impl Accepted {
    fn numbered(self, seq: u64) -> HistoryEntry {
        HistoryEntry {
            conversation: self.conversation,
            seq,
            sender: self.sender,
            fp: self.fp,
            typeu: self.typeu,
            content: self.content,
            accepted_at: self.at,
        }
    }

    /// What finds it among the recent messages, if it has a fingerprint; `hash` is its
    /// conversation's (`hasher`'s).
    fn probe(&self, hash: u64, hasher: &DefaultHashBuilder) -> Option<RecentProbe<'_>> {
        RecentProbe::of(
            &self.conversation,
            &self.sender,
            self.fp.as_ref(),
            hash,
            hasher,
        )
    }

    /// Whether the store can keep it: no NUL in an id, which no backend keeps faithfully.
    fn keepable(&self) -> bool {
        let ids = [
            self.conversation.low().as_str(),
            self.conversation.high().as_str(),
            self.fp.as_ref().map_or("", Fingerprint::as_str),
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

/// A conversation's numbering.
enum Counter {
    /// Its newest seq is being read; these messages wait for their seqs, in order.
    Loading(Vec<Accepted>),
    /// `next` is the next seq; `unwritten` entries of it are not written yet (a counter is
    /// forgotten only when none are: the store's newest seq is then its own).
    Ready { next: u64, unwritten: usize },
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
}

impl Shard {
    fn new(hasher: &DefaultHashBuilder) -> Self {
        Self {
            counters: LinkedHashMap::with_hasher(hasher.clone()),
            recent: RecentMessages::default(),
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

    /// The tag of a recently kept message, if `probe` finds one in `conversation`.
    fn recalled(
        &self,
        probe: &RecentProbe<'_>,
        conversation: &Conversation,
    ) -> Option<Option<SeqTag>> {
        Some(self.recent.find(probe, conversation)?.tag)
    }

    /// Remembers a kept message's tag by its `key`; one remembered already keeps its place
    /// and time.
    fn remember(&mut self, key: Option<RecentKey>, tag: Option<SeqTag>, now: Instant) {
        if let Some(key) = key {
            self.recent.remember(key, tag, now);
        }
    }

    /// Forgets least recently used counters with nothing left to write while over `limit`.
    fn trim(&mut self, limit: usize) {
        while self.counters.len() > limit {
            let idle = self
                .counters
                .iter()
                .find(|(_, c)| matches!(c, Counter::Ready { unwritten: 0, .. }))
                .map(|(k, _)| k.clone());
            match idle {
                Some(conversation) => {
                    self.counters.remove(&conversation);
                }
                None => break,
            }
        }
    }
}

/// Entries waiting for the store.
#[derive(Default)]
struct Buffer {
    /// Numbered, not yet handed to the store, in numbering order.
    numbered: Vec<HistoryEntry>,
    /// Handed to the store (shared with it, not copied), not yet committed.
    writing: Arc<[HistoryEntry]>,
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
    /// Entries (and their content bytes) numbered or waiting to be, not yet committed: read
    /// for every message, so outside the buffer's lock (the bound they keep need not be exact
    /// to the entry).
    held: AtomicUsize,
    held_bytes: AtomicUsize,
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
            held: AtomicUsize::new(0),
            held_bytes: AtomicUsize::new(0),
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
        let i = ((hash >> 32) % SHARDS as u64) as usize;
        self.shards[i]
            .lock()
            .expect("history shard lock is never held across a panic-prone section")
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
    fn admit<'m>(&self, accepted: &'m Accepted, now: Instant) -> Result<Admitted<'_, 'm>, Kept> {
        let hash = self.hasher.hash_one(&accepted.conversation);
        let mut shard = self.shard_of(hash);
        shard.forget_recent(now, self.recent_capacity);
        let probe = accepted.probe(hash, &self.hasher);
        if let Some(tag) = probe
            .as_ref()
            .and_then(|p| shard.recalled(p, &accepted.conversation))
        {
            return Err(Kept::Again(tag));
        }
        let room = self.held.load(Ordering::Relaxed) < MAX_WAITING
            && self.held_bytes.load(Ordering::Relaxed) + accepted.content.len()
                <= MAX_WAITING_BYTES;
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
        accepted: Accepted,
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
        } = match self.admit(&accepted, now) {
            Ok(admitted) => admitted,
            Err(kept) => return (deliver(kept.tag()), kept),
        };
        let shard = &mut *guard;
        let bytes = accepted.content.len();
        let epoch = self.epoch.load(Ordering::Acquire);
        let counter = shard
            .counters
            .raw_entry_mut()
            .from_key_hashed_nocheck(hash, &accepted.conversation);
        let (result, kept, key) = match counter {
            RawEntryMut::Occupied(mut entry) => {
                entry.to_back();
                let key = probe.map(|p| p.key(entry.key()));
                match entry.into_mut() {
                    Counter::Ready { next, unwritten } => {
                        let tag = SeqTag {
                            seq: *next,
                            epoch,
                            at: accepted.at,
                        };
                        let result = deliver(Some(tag));
                        if result.is_err() {
                            return (result, Kept::Not);
                        }
                        *next += 1;
                        *unwritten += 1;
                        shard.remember(key, Some(tag), now);
                        self.numbered(std::iter::once(accepted.numbered(tag.seq)), false, now);
                        return (result, Kept::Numbered(tag));
                    }
                    Counter::Loading(waiting) => {
                        let result = deliver(None);
                        if result.is_err() {
                            return (result, Kept::Not);
                        }
                        waiting.push(accepted);
                        (result, Kept::Later, key)
                    }
                }
            }
            RawEntryMut::Vacant(entry) => {
                let result = deliver(None);
                if result.is_err() {
                    return (result, Kept::Not);
                }
                let conversation = Arc::new(accepted.conversation.clone());
                let key = probe.map(|p| p.key(&conversation));
                entry.insert_hashed_nocheck(
                    hash,
                    Arc::clone(&conversation),
                    Counter::Loading(vec![accepted]),
                );
                shard.trim(COUNTERS / SHARDS);
                self.lock_buffer().loads.push((*conversation).clone());
                self.wake.notify_one();
                (result, Kept::Later, key)
            }
        };
        shard.remember(key, None, now);
        self.hold(1, bytes);
        (result, kept)
    }

    /// The tag `accepted` got when it was kept, if that was recently (within a minute) and it
    /// has one: a stored message sent again.
    pub(crate) fn recall(&self, accepted: &Accepted) -> Option<SeqTag> {
        let hash = self.hasher.hash_one(&accepted.conversation);
        let probe = accepted.probe(hash, &self.hasher)?;
        self.shard_of(hash)
            .recalled(&probe, &accepted.conversation)?
    }

    /// Keeps `accepted`, already kept for its receiver (stored): numbered now if its
    /// conversation's counter is loaded.
    pub(crate) fn record(&self, accepted: Accepted, now: Instant) -> Kept {
        self.deliver(accepted, now, |_| Ok::<(), ()>(())).1
    }

    /// Adds numbered `entries` to the buffer, counting them unless they were counted while
    /// they waited for their seqs. Called with the entries' shard locked, so the buffer keeps
    /// each conversation's seq order.
    fn numbered(
        &self,
        entries: impl IntoIterator<Item = HistoryEntry>,
        counted: bool,
        now: Instant,
    ) {
        let mut buffer = self.lock_buffer();
        if buffer.write_at.is_none() {
            buffer.write_at = Some(now + self.flush_delay);
            self.wake.notify_one();
        }
        buffer.forget_at.get_or_insert(now + RECENT_LIFETIME);
        let (mut count, mut bytes) = (0, 0);
        for entry in entries {
            count += 1;
            bytes += entry.content.len();
            buffer.numbered.push(entry);
        }
        if !counted {
            self.hold(count, bytes);
        }
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
            .filter(|_| buffer.writing.is_empty())
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
            .map(|shard| shard.lock().expect("test lock").recent.len())
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
            let mut shard = shard
                .lock()
                .expect("history shard lock is never held across a panic-prone section");
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
            let mut shard = self.shard_of(hash);
            let Some(counter) = shard.counters.get_mut(&conversation) else {
                continue;
            };
            let Counter::Loading(waiting) = counter else {
                continue;
            };
            let waiting = std::mem::take(waiting);
            let first = newest + 1;
            let count = waiting.len();
            *counter = Counter::Ready {
                next: first + count as u64,
                unwritten: count,
            };
            let mut entries = Vec::with_capacity(count);
            for (accepted, seq) in waiting.into_iter().zip(first..) {
                if let Some(probe) = accepted.probe(hash, &self.hasher)
                    && let Some(recent) = shard.recent.find_mut(&probe, &conversation)
                {
                    recent.tag = Some(SeqTag {
                        seq,
                        epoch,
                        at: accepted.at,
                    });
                }
                entries.push(accepted.numbered(seq));
            }
            if !entries.is_empty() {
                self.numbered(entries, true, now);
            }
        }
        self.lock_buffer().loading = false;
    }

    /// What is due to be written at `now`, handed over to the writing: `None` if nothing is,
    /// or a write is under way.
    pub(crate) fn take_writes(&self, now: Instant) -> Option<Arc<[HistoryEntry]>> {
        let mut buffer = self.lock_buffer();
        if !buffer.writing.is_empty() || buffer.write_at.is_none_or(|at| at > now) {
            return None;
        }
        buffer.write_at = None;
        if buffer.numbered.is_empty() {
            return None;
        }
        buffer.writing = buffer.numbered.drain(..).collect();
        // The buffer is reused: room for twice this write, so a steady flow allocates nothing
        // for it, and a burst's room is given back at the next write.
        let room = (2 * buffer.writing.len()).max(KEPT_ROOM);
        buffer.numbered.shrink_to(room);
        Some(buffer.writing.clone())
    }

    /// The write handed over by [`take_writes`](Self::take_writes) committed (`ok`), or
    /// failed and is tried again later, before anything numbered since.
    pub(crate) fn written(&self, ok: bool, now: Instant) {
        let done = {
            let mut buffer = self.lock_buffer();
            let writing = std::mem::take(&mut buffer.writing);
            if !ok {
                // Rare: the write is tried again, so copying it back costs little.
                buffer.numbered.splice(0..0, writing.iter().cloned());
                buffer.write_at = Some(now);
                return;
            }
            let bytes: usize = writing.iter().map(|e| e.content.len()).sum();
            self.release(writing.len(), bytes);
            if !buffer.numbered.is_empty() && buffer.write_at.is_none() {
                buffer.write_at = Some(now + self.flush_delay);
            }
            writing
        };
        let mut written: HashMap<&Conversation, usize, DefaultHashBuilder> =
            HashMap::with_hasher(self.hasher.clone());
        for entry in done.iter() {
            *written.entry(&entry.conversation).or_default() += 1;
        }
        for (conversation, n) in written {
            if let Some(Counter::Ready { unwritten, .. }) =
                self.shard(conversation).counters.get_mut(conversation)
            {
                *unwritten = unwritten.saturating_sub(n);
            }
        }
    }

    // ---- Reads ------------------------------------------------------------------------------

    /// `conversation`'s entries not yet committed, in seq order.
    pub(crate) fn unwritten(&self, conversation: &Conversation) -> Vec<HistoryEntry> {
        if self.by_store {
            return Vec::new(); // Not numbered yet.
        }
        let buffer = self.lock_buffer();
        buffer
            .writing
            .iter()
            .chain(&buffer.numbered)
            .filter(|e| &e.conversation == conversation)
            .cloned()
            .collect()
    }

    /// Every conversation of `user` with entries not yet committed: the newest seq and its
    /// time, and the newest seq `user` sent (which `user` has read).
    pub(crate) fn unwritten_of(&self, user: &UserId) -> HashMap<UserId, (u64, i64, u64)> {
        if self.by_store {
            return HashMap::new(); // Not numbered yet.
        }
        let buffer = self.lock_buffer();
        let mut found: HashMap<UserId, (u64, i64, u64)> = HashMap::new();
        for entry in buffer.writing.iter().chain(&buffer.numbered) {
            let Some(peer) = entry.conversation.peer_of(user) else {
                continue;
            };
            let summary = found.entry(peer.clone()).or_default();
            if entry.seq > summary.0 {
                summary.0 = entry.seq;
                summary.1 = entry.accepted_at;
            }
            if &entry.sender == user {
                summary.2 = summary.2.max(entry.seq);
            }
        }
        found
    }

    /// `conversation`'s newest seq, if its counter is in memory (then it is authoritative,
    /// written or not).
    pub(crate) fn newest(&self, conversation: &Conversation) -> Option<u64> {
        match self.shard(conversation).counters.get(conversation)? {
            Counter::Ready { next, .. } => Some(next - 1),
            Counter::Loading(_) => None,
        }
    }

    /// Entries numbered or waiting to be, not yet committed.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// `count` more entries of `bytes` content wait to be numbered or written.
    fn hold(&self, count: usize, bytes: usize) {
        self.held.fetch_add(count, Ordering::Relaxed);
        self.held_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `count` entries of `bytes` content were committed.
    fn release(&self, count: usize, bytes: usize) {
        let less = |n| move |held: usize| Some(held.saturating_sub(n));
        // `fetch_update` with a closure that always answers `Some` cannot fail.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(count));
        let _ = self
            .held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(bytes));
    }
}
