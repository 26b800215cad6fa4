//! The history's work with the store (issue 12): the chores' part (opening the epoch, loading
//! counters, writing numbered entries, the retention sweep, the last write at shutdown) and
//! the reads, which merge the store's rows with what is not written yet, so a client reads
//! its own writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hongyan_shared::history::{ConversationInfo, HistoryRange};
use hongyan_shared::{Instant, Packet, SeqTag, UserId};
use hongyan_store::{Conversation, HistoryBatch, HistoryEntry, StoreError};

use super::history::{Accepted, HistoryLink};
use super::state::Core;
use super::store_link::{SWEEP_BATCH, StoreLink};
use crate::metrics::StoreOp;

/// How long after a failed history step the chores try again.
const RETRY: Duration = Duration::from_secs(1);

/// Writes `batches`, numbered here or, on a cluster's node, by the store (which takes the
/// entries one by one).
async fn write_history(
    link: &StoreLink,
    history: &HistoryLink,
    batches: Arc<[HistoryBatch]>,
) -> Result<(), StoreError> {
    if history.by_store() {
        let entries = batches.iter().flat_map(HistoryBatch::entries).collect();
        link.store.number_history(entries).await.map(drop)
    } else {
        link.store.append_history(batches).await
    }
}

/// A page of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The conversation's newest seq.
    pub newest: u64,
    /// The entries, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// More entries lie beyond the page in the direction asked.
    pub more: bool,
}

impl Core {
    /// The store and the history, when the server keeps history.
    pub(crate) fn history_link(&self) -> Option<(&StoreLink, &HistoryLink)> {
        Some((self.store.as_ref()?, self.history.as_ref()?))
    }

    /// `packet`, from `sender` to `receiver`, as a message of their conversation, accepted now.
    fn accepted<'a>(
        &self,
        packet: &'a Packet,
        sender: &'a UserId,
        receiver: &'a UserId,
    ) -> Accepted<'a> {
        Accepted::new(
            sender,
            receiver,
            packet.fp.as_ref(),
            packet.typeu,
            packet.data_content.as_deref().unwrap_or_default(),
            self.clock.unix_millis(),
        )
    }

    /// Hands `packet` (from `sender` to `receiver`) over with `deliver`, which gets the
    /// message's place in its conversation, if it has one now, to tell a session that syncs
    /// history; the message is kept in history only if `deliver` succeeds. Its place is
    /// returned with the outcome. Without history, `deliver` gets `None`.
    pub(crate) fn deliver_kept<T, E>(
        &self,
        packet: &Packet,
        sender: &UserId,
        receiver: &UserId,
        now: Instant,
        deliver: impl FnOnce(Option<SeqTag>) -> Result<T, E>,
    ) -> (Result<T, E>, Option<SeqTag>) {
        match &self.history {
            None => (deliver(None), None),
            Some(history) => {
                let accepted = self.accepted(packet, sender, receiver);
                let (result, kept) = history.deliver(&accepted, now, deliver);
                (result, kept.tag())
            }
        }
    }

    /// Keeps `packet` (from `sender` to `receiver`), which was just stored for its receiver
    /// (`fresh`) or had been already: its place in its conversation, if it has one now.
    pub(crate) fn keep_stored(
        &self,
        packet: &Packet,
        sender: &UserId,
        receiver: &UserId,
        fresh: bool,
        now: Instant,
    ) -> Option<SeqTag> {
        let history = self.history.as_ref()?;
        let accepted = self.accepted(packet, sender, receiver);
        if fresh {
            history.record(&accepted, now).tag()
        } else {
            history.recall(&accepted)
        }
    }

    /// The history's chores due at `now`: open the epoch, load counters, write what is
    /// numbered, sweep what outlived the retention.
    pub(super) async fn history_chores(&self, now: Instant) {
        let Some((link, history)) = self.history_link() else {
            return;
        };
        if !history.may_retry(now) {
            return;
        }
        if history.epoch().is_none() {
            let open = if history.by_store() {
                link.store.open_shared_history()
            } else {
                link.store.open_history()
            };
            let opened = link.call(&self.metrics, StoreOp::history_write, open).await;
            match opened {
                Ok(epoch) => {
                    tracing::info!(epoch, "conversation history open");
                    history.opened(epoch);
                }
                Err(_) => {
                    history.failed(now, RETRY);
                    return;
                }
            }
        }
        let loads = history.take_loads();
        if !loads.is_empty() {
            let read = link
                .call(
                    &self.metrics,
                    StoreOp::history_read,
                    link.store.newest_seqs(&loads),
                )
                .await;
            let failed = read.is_err();
            history.loaded(loads, read.ok(), now);
            if failed {
                history.failed(now, RETRY);
                return;
            }
        }
        if let Some(entries) = history.take_writes(now) {
            let written = link
                .call(
                    &self.metrics,
                    StoreOp::history_write,
                    write_history(link, history, entries),
                )
                .await;
            history.written(written.is_ok(), now);
            if written.is_err() {
                history.failed(now, RETRY);
                return;
            }
        }
        history.forget_recent(now);
        let due = history.lock_sweep().is_some_and(|at| at <= now);
        if due {
            self.sweep_history(link, history).await;
            *history.lock_sweep() = Some(now + history.sweep_interval());
        }
    }

    /// Removes what outlived the retention, a batch at a time.
    async fn sweep_history(&self, link: &StoreLink, history: &HistoryLink) {
        let retention = i64::try_from(history.retention.as_millis()).unwrap_or(i64::MAX);
        let before = self.clock.unix_millis().saturating_sub(retention);
        loop {
            let expire = link.store.expire_history(before, SWEEP_BATCH);
            match link
                .call(&self.metrics, StoreOp::history_expire, expire)
                .await
            {
                Ok(n) if n as usize >= SWEEP_BATCH => {}
                _ => return,
            }
        }
    }

    /// At shutdown, once every session is gone: writes everything numbered, then closes the
    /// history, so the next start keeps the epoch. If a write fails, the history is left
    /// open: the next start counts it as a crash.
    pub(crate) async fn finish_history(&self) {
        let Some((link, history)) = self.history_link() else {
            return;
        };
        if history.epoch().is_none() {
            return;
        }
        loop {
            let now = self.clock.now();
            let Some(entries) = history.take_writes(now + Duration::from_secs(3600)) else {
                break;
            };
            let written = write_history(link, history, entries).await;
            history.written(written.is_ok(), now);
            if let Err(error) = written {
                tracing::warn!(%error, "the last conversation history could not be written");
                return;
            }
        }
        if history.held() > 0 {
            // Messages still waiting for their conversation's counter: never numbered.
            tracing::warn!(
                waiting = history.held(),
                "conversation history ends with messages not yet numbered"
            );
            return;
        }
        if history.by_store() {
            // Never marked open: a node of a cluster hands out no seq.
            return;
        }
        if let Err(error) = link.store.close_history().await {
            tracing::warn!(%error, "conversation history not closed; the next start begins a new epoch");
        }
    }

    /// `user`'s conversations after `after` (by peer id), at most `limit`, and whether more
    /// follow: the store's, with what is not written yet.
    pub(crate) async fn conversations_of(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<(Vec<ConversationInfo>, bool), StoreError> {
        let Some((link, history)) = self.history_link() else {
            return Ok((Vec::new(), false));
        };
        let unwritten = history.unwritten_of(user);
        let read = link.store.conversations(user, after, limit + 1);
        let stored = link
            .call(&self.metrics, StoreOp::history_read, read)
            .await?;
        let mut merged: BTreeMap<UserId, ConversationInfo> = stored
            .into_iter()
            .map(|s| {
                let info = ConversationInfo {
                    peer: s.peer.clone(),
                    newest: s.newest,
                    read: s.read,
                    unread: 0,
                    at: s.newest_at,
                };
                (s.peer, info)
            })
            .collect();
        // The store's page ends at its last peer when it is full; what is not written yet
        // joins it within those bounds.
        let last = (merged.len() > limit)
            .then(|| merged.keys().next_back().cloned())
            .flatten();
        for (peer, (newest, at, sent)) in unwritten {
            if after.is_some_and(|a| &peer <= a) || last.as_ref().is_some_and(|l| &peer > l) {
                continue;
            }
            let info = merged
                .entry(peer.clone())
                .or_insert_with(|| ConversationInfo {
                    peer,
                    newest: 0,
                    read: 0,
                    unread: 0,
                    at: 0,
                });
            if newest > info.newest {
                info.newest = newest;
                info.at = at;
            }
            info.read = info.read.max(sent);
        }
        let more = merged.len() > limit;
        let items = merged
            .into_values()
            .take(limit)
            .map(|mut info| {
                info.read = info.read.min(info.newest);
                info.unread = info.newest - info.read;
                info
            })
            .collect();
        Ok((items, more))
    }

    /// Up to `limit` entries of the conversation between `user` and `peer` in `range`, oldest
    /// first: the store's, with what is not written yet.
    pub(crate) async fn history_of(
        &self,
        user: &UserId,
        peer: &UserId,
        range: HistoryRange,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let Some((link, history)) = self.history_link() else {
            return Ok(HistoryPage {
                newest: 0,
                entries: Vec::new(),
                more: false,
            });
        };
        let conversation = Conversation::between(user, peer);
        // The newest seq first: an entry numbered after it may be among what is read next,
        // but none up to it is missing (the page says it covers every seq up to the newest,
        // and one it did not hold would be taken for gone). A cluster's node reads it from
        // the store, where a write adds the entries and moves the newest seq at once.
        let newest = match history.newest(&conversation) {
            Some(newest) => newest,
            None => {
                let read = link.store.newest_seqs(std::slice::from_ref(&conversation));
                let newest = link
                    .call(&self.metrics, StoreOp::history_read, read)
                    .await?;
                newest.first().copied().unwrap_or(0)
            }
        };
        // Taken before the store is read: an entry written meanwhile is in one or the other.
        let unwritten = history.unwritten(&conversation);
        let read = link.store.history(&conversation, range, limit + 1);
        let stored = link
            .call(&self.metrics, StoreOp::history_read, read)
            .await?;
        let mut merged: BTreeMap<u64, HistoryEntry> = BTreeMap::new();
        for entry in stored.into_iter().chain(unwritten) {
            merged.insert(entry.seq, entry);
        }
        let newest = newest.max(merged.keys().next_back().copied().unwrap_or(0));
        let mut entries: Vec<HistoryEntry> = match range {
            HistoryRange::After(after) => merged
                .into_values()
                .filter(|e| e.seq > after)
                .take(limit + 1)
                .collect(),
            HistoryRange::Before(before) => {
                let mut newest_first: Vec<HistoryEntry> = merged
                    .into_values()
                    .rev()
                    .filter(|e| before.is_none_or(|b| e.seq < b))
                    .take(limit + 1)
                    .collect();
                newest_first.reverse();
                newest_first
            }
        };
        let more = entries.len() > limit;
        if more {
            match range {
                HistoryRange::After(_) => {
                    entries.pop();
                }
                HistoryRange::Before(_) => {
                    entries.remove(0);
                }
            }
        }
        Ok(HistoryPage {
            newest,
            entries,
            more,
        })
    }

    /// Moves `user`'s read position with `peer` to `seq` (at most the newest seq); returns
    /// the read position and the newest seq.
    pub(crate) async fn mark_read(
        &self,
        user: &UserId,
        peer: &UserId,
        seq: u64,
    ) -> Result<(u64, u64), StoreError> {
        let Some((link, history)) = self.history_link() else {
            return Ok((0, 0));
        };
        let conversation = Conversation::between(user, peer);
        let newest = match history.newest(&conversation) {
            Some(newest) => newest,
            None => {
                let read = link.store.conversation(user, peer);
                let stored = link
                    .call(&self.metrics, StoreOp::history_read, read)
                    .await?;
                stored.map_or(0, |s| s.newest)
            }
        };
        let write = link.store.mark_read(user, peer, seq.min(newest));
        let read = link
            .call(&self.metrics, StoreOp::history_write, write)
            .await?;
        Ok((read.min(newest), newest))
    }
}
