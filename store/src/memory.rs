//! [`MemoryStore`]: the store's semantics without a disk, for tests and benchmarks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use hongyan_shared::history::HistoryRange;
use hongyan_shared::{Fingerprint, UserId};

use crate::history;
use crate::queue::{check_history, check_message};
use crate::stats::Counters;
use crate::{
    BackendKind, Conversation, ConversationSummary, HistoryBatch, HistoryEntry, Limits, MessageId,
    MessageStore, NewMessage, Put, StoreError, StoreStats, StoredMessage,
};

/// Messages kept in memory: every rule of the SQL backends (idempotent puts, quotas, expiry,
/// acceptance order), nothing survives the process. Each call is one short critical section.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    limits: Limits,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    last_id: i64,
    by_receiver: HashMap<UserId, BTreeMap<MessageId, StoredMessage>>,
    by_key: HashMap<(UserId, UserId, Fingerprint), MessageId>,
    /// `(expires_at, id)` of every message that expires, soonest first.
    by_expiry: BTreeSet<(i64, MessageId)>,
    receiver_of: HashMap<MessageId, UserId>,
    /// Each conversation's history, by seq.
    history: BTreeMap<Conversation, BTreeMap<u64, HistoryEntry>>,
    /// `(accepted_at, conversation, seq)` of every history entry, oldest first.
    history_by_time: BTreeSet<(i64, Conversation, u64)>,
    /// Each member's summary of each conversation, by `(user, peer)`.
    members: BTreeMap<(UserId, UserId), ConversationSummary>,
    /// The history epoch, and whether a server writes history now (not closed).
    epoch: u64,
    history_open: bool,
}

impl MemoryStore {
    /// An empty store enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            limits,
            counters: Arc::default(),
        }
    }

    fn open_state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        // Every critical section leaves the state consistent before it can panic, so a
        // poisoned lock still guards consistent data.
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            return Err(StoreError::Closed);
        }
        Ok(state)
    }
}

impl State {
    fn member(&mut self, user: &UserId, peer: &UserId) -> &mut ConversationSummary {
        self.members
            .entry((user.clone(), peer.clone()))
            .or_insert_with(|| ConversationSummary {
                peer: peer.clone(),
                newest: 0,
                newest_at: 0,
                read: 0,
            })
    }

    /// Writes `entries`, skipping any already written; returns how many were new.
    fn append(&mut self, entries: impl IntoIterator<Item = HistoryEntry>) -> u64 {
        let mut written = 0;
        for entry in entries {
            let conversation = entry.conversation.clone();
            let rows = self.history.entry(conversation.clone()).or_default();
            if rows.contains_key(&entry.seq) {
                continue;
            }
            let (seq, at) = (entry.seq, entry.accepted_at);
            let sender = entry.sender.clone();
            rows.insert(seq, entry);
            self.history_by_time.insert((at, conversation.clone(), seq));
            written += 1;
            for user in conversation.users() {
                let peer = conversation.peer_of(user).expect("a member").clone();
                let member = self.member(user, &peer);
                if seq > member.newest {
                    member.newest = seq;
                    member.newest_at = at;
                }
                if user == &sender {
                    member.read = member.read.max(seq);
                }
            }
        }
        written
    }

    fn take(&mut self, receiver: &UserId, id: MessageId) -> Option<StoredMessage> {
        let messages = self.by_receiver.get_mut(receiver)?;
        let message = messages.remove(&id)?;
        if messages.is_empty() {
            self.by_receiver.remove(receiver);
        }
        self.by_key.remove(&(
            message.receiver.clone(),
            message.sender.clone(),
            message.fp.clone(),
        ));
        if let Some(at) = message.expires_at {
            self.by_expiry.remove(&(at, id));
        }
        self.receiver_of.remove(&id);
        Some(message)
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn put(&self, message: NewMessage) -> Result<Put, StoreError> {
        check_message(&self.limits, &message)?;
        let mut state = self.open_state()?;
        let key = (
            message.receiver.clone(),
            message.sender.clone(),
            message.fp.clone(),
        );
        if let Some(&id) = state.by_key.get(&key) {
            Counters::add(&self.counters.duplicates, 1);
            return Ok(Put::AlreadyStored(id));
        }
        let held = state
            .by_receiver
            .get(&message.receiver)
            .map_or(0, BTreeMap::len) as u64;
        if let Some(limit) = self.limits.max_per_receiver
            && held >= limit
        {
            Counters::add(&self.counters.quota_refusals, 1);
            return Err(StoreError::QuotaExceeded {
                receiver: message.receiver,
                limit,
            });
        }
        state.last_id += 1;
        let id = MessageId::new(state.last_id);
        state.by_key.insert(key, id);
        if let Some(at) = message.expires_at {
            state.by_expiry.insert((at, id));
        }
        state.receiver_of.insert(id, message.receiver.clone());
        let receiver = message.receiver.clone();
        let stored = StoredMessage::new(id, message);
        state
            .by_receiver
            .entry(receiver)
            .or_default()
            .insert(id, stored);
        Counters::add(&self.counters.stored, 1);
        Ok(Put::Stored(id))
    }

    async fn pending(
        &self,
        receiver: &UserId,
        after: Option<MessageId>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let state = self.open_state()?;
        let Some(messages) = state.by_receiver.get(receiver) else {
            return Ok(Vec::new());
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(messages
            .range((from, Bound::Unbounded))
            .map(|(_, m)| m)
            .filter(|m| !m.is_expired(now_ms))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn remove(&self, receiver: &UserId, ids: &[MessageId]) -> Result<u64, StoreError> {
        let mut state = self.open_state()?;
        let removed = ids
            .iter()
            .filter(|&&id| state.take(receiver, id).is_some())
            .count() as u64;
        Counters::add(&self.counters.removed, removed);
        Ok(removed)
    }

    async fn count(&self, receiver: &UserId) -> Result<u64, StoreError> {
        let state = self.open_state()?;
        Ok(state.by_receiver.get(receiver).map_or(0, BTreeMap::len) as u64)
    }

    async fn erase(&self, receiver: &UserId) -> Result<u64, StoreError> {
        let mut state = self.open_state()?;
        let ids: Vec<MessageId> = state
            .by_receiver
            .get(receiver)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        for &id in &ids {
            state.take(receiver, id);
        }
        Counters::add(&self.counters.erased, ids.len() as u64);
        Ok(ids.len() as u64)
    }

    async fn expire(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let mut state = self.open_state()?;
        let due: Vec<MessageId> = state
            .by_expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|&(_, id)| id)
            .collect();
        let mut expired: Vec<StoredMessage> = due
            .into_iter()
            .filter_map(|id| {
                let receiver = state.receiver_of.get(&id)?.clone();
                state.take(&receiver, id)
            })
            .collect();
        expired.sort_by_key(|m| m.id);
        Counters::add(&self.counters.expired, expired.len() as u64);
        Ok(expired)
    }

    async fn open_history(&self) -> Result<u64, StoreError> {
        let mut state = self.open_state()?;
        if state.epoch == 0 || state.history_open {
            state.epoch += 1;
        }
        state.history_open = true;
        Ok(state.epoch)
    }

    async fn open_shared_history(&self) -> Result<u64, StoreError> {
        let mut state = self.open_state()?;
        if state.epoch == 0 || state.history_open {
            state.epoch += 1;
        }
        state.history_open = false;
        Ok(state.epoch)
    }

    async fn close_history(&self) -> Result<(), StoreError> {
        self.open_state()?.history_open = false;
        Ok(())
    }

    async fn append_history(&self, batches: Arc<[HistoryBatch]>) -> Result<(), StoreError> {
        let entries = batches.iter().flat_map(HistoryBatch::entries);
        let written = self.open_state()?.append(entries);
        Counters::add(&self.counters.history_written, written);
        Ok(())
    }

    async fn number_history(&self, entries: Vec<HistoryEntry>) -> Result<Vec<u64>, StoreError> {
        for entry in &entries {
            check_history(entry)?;
        }
        let mut state = self.open_state()?;
        let (seqs, numbered) = {
            let state = &*state;
            history::number(
                entries,
                |conversation| {
                    let (user, peer) = conversation.some_user();
                    state
                        .members
                        .get(&(user.clone(), peer.clone()))
                        .map_or(0, |m| m.newest)
                },
                |(conversation, sender, fp)| {
                    state.history.get(conversation).is_some_and(|rows| {
                        rows.values()
                            .any(|e| &e.sender == sender && e.fp.as_ref() == Some(fp))
                    })
                },
            )
        };
        let written = state.append(numbered);
        Counters::add(&self.counters.history_written, written);
        Ok(seqs)
    }

    async fn newest_seqs(&self, conversations: &[Conversation]) -> Result<Vec<u64>, StoreError> {
        let state = self.open_state()?;
        Ok(conversations
            .iter()
            .map(|c| {
                let (user, peer) = c.some_user();
                state
                    .members
                    .get(&(user.clone(), peer.clone()))
                    .map_or(0, |m| m.newest)
            })
            .collect())
    }

    async fn history(
        &self,
        conversation: &Conversation,
        range: HistoryRange,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let state = self.open_state()?;
        let Some(rows) = state.history.get(conversation) else {
            return Ok(Vec::new());
        };
        Ok(match range {
            HistoryRange::After(after) => rows
                .range((Bound::Excluded(after), Bound::Unbounded))
                .take(limit)
                .map(|(_, e)| e.clone())
                .collect(),
            HistoryRange::Before(before) => {
                let to = before.map_or(Bound::Unbounded, Bound::Excluded);
                let mut page: Vec<HistoryEntry> = rows
                    .range((Bound::Unbounded, to))
                    .rev()
                    .take(limit)
                    .map(|(_, e)| e.clone())
                    .collect();
                page.reverse();
                page
            }
        })
    }

    async fn conversations(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let state = self.open_state()?;
        let from = match after {
            Some(after) => Bound::Excluded((user.clone(), after.clone())),
            None => Bound::Included((user.clone(), UserId::default())),
        };
        Ok(state
            .members
            .range((from, Bound::Unbounded))
            .take_while(|((u, _), _)| u == user)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect())
    }

    async fn conversation(
        &self,
        user: &UserId,
        peer: &UserId,
    ) -> Result<Option<ConversationSummary>, StoreError> {
        let state = self.open_state()?;
        Ok(state.members.get(&(user.clone(), peer.clone())).cloned())
    }

    async fn mark_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<u64, StoreError> {
        let mut state = self.open_state()?;
        let member = state.member(user, peer);
        member.read = member.read.max(seq);
        Ok(member.read)
    }

    async fn expire_history(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let mut state = self.open_state()?;
        let due: Vec<(i64, Conversation, u64)> = state
            .history_by_time
            .iter()
            .take_while(|(at, _, _)| *at < before_ms)
            .take(limit)
            .cloned()
            .collect();
        for key in &due {
            state.history_by_time.remove(key);
            let (_, conversation, seq) = key;
            if let Some(rows) = state.history.get_mut(conversation) {
                rows.remove(seq);
                if rows.is_empty() {
                    state.history.remove(conversation);
                }
            }
        }
        Counters::add(&self.counters.history_expired, due.len() as u64);
        Ok(due.len() as u64)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.open_state().map(drop)
    }

    async fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = State {
            closed: true,
            ..State::default()
        };
    }

    fn stats(&self) -> StoreStats {
        self.counters.snapshot(0)
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Memory
    }
}
