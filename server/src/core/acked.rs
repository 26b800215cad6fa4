//! Stored messages their receivers acknowledged, waiting to be removed from the store.
//!
//! Removal is batched by the store chores instead of being awaited where the acknowledgement
//! arrives: the receiver's session goes on reading acknowledgements (and replaying the next
//! messages) while the disk commits, and many receivers' removals share one commit. Until a
//! removal commits, replays skip these ids, so the receiver is not sent them again. A crash
//! before the commit replays them once more at the next login, where the client's
//! de-duplication window drops them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use hongyan_shared::UserId;
use hongyan_store::MessageId;
use tokio::sync::Notify;

/// Acknowledged stored messages not yet removed, per receiver.
#[derive(Default)]
pub(crate) struct Acked {
    map: Mutex<HashMap<UserId, BTreeSet<MessageId>>>,
    /// Wakes the store chores when there is something to remove.
    pub(crate) wake: Notify,
}

impl Acked {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, BTreeSet<MessageId>>> {
        self.map
            .lock()
            .expect("acked lock is never held across a panic-prone section")
    }

    /// `user` acknowledged stored message `id`.
    pub(crate) fn add(&self, user: &UserId, id: MessageId) {
        self.lock().entry(user.clone()).or_default().insert(id);
        self.wake.notify_one();
    }

    /// Whether `user`'s message `id` was acknowledged and awaits removal.
    pub(crate) fn contains(&self, user: &UserId, id: MessageId) -> bool {
        self.lock().get(user).is_some_and(|ids| ids.contains(&id))
    }

    /// True when nothing awaits removal.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Everything awaiting removal, by receiver; it stays listed until [`removed`](Self::removed).
    pub(crate) fn snapshot(&self) -> Vec<(UserId, Vec<MessageId>)> {
        self.lock()
            .iter()
            .map(|(user, ids)| (user.clone(), ids.iter().copied().collect()))
            .collect()
    }

    /// `user`'s messages `ids` are no longer in the store.
    pub(crate) fn removed(&self, user: &UserId, ids: &[MessageId]) {
        let mut map = self.lock();
        if let Some(set) = map.get_mut(user) {
            for id in ids {
                set.remove(id);
            }
            if set.is_empty() {
                map.remove(user);
            }
        }
    }

    /// Forgets everything listed for `user` (their messages were erased).
    pub(crate) fn forget(&self, user: &UserId) {
        self.lock().remove(user);
    }
}
