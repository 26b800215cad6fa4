//! [`MemoryStore`]: the store's semantics without a disk, for tests and benchmarks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use hongyan_shared::{Fingerprint, UserId};

use crate::queue::check_message;
use crate::stats::Counters;
use crate::{
    BackendKind, Limits, MessageId, MessageStore, NewMessage, Put, StoreError, StoreStats,
    StoredMessage,
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
