//! What the core keeps in memory, per user, about that user's stored messages: the puts still
//! in flight and the replay running to the user's session. The rules that read and change it
//! are in `keep` (puts) and `replay` (the pump); this module only holds the state and keeps it
//! consistent when a task is cancelled half-way (a session closed while it awaited the store).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hongyan_shared::{Instant, UserId};
use hongyan_store::{MessageId, StoredMessage};

use crate::hooks::SessionId;
use crate::session::SessionHandle;

/// Every user with store activity: a put in flight or a replay running. Users without any
/// have no entry, so the map stays as small as the activity.
#[derive(Default)]
pub(crate) struct Backlogs {
    map: Mutex<HashMap<UserId, Backlog>>,
    /// Whether a replay may be stalled: the store chores look through the map only then.
    maybe_stalled: AtomicBool,
}

/// One user's store activity.
#[derive(Default)]
pub(crate) struct Backlog {
    /// Puts for this user that have not finished. While one is in flight the replay is not
    /// done (its message may still commit), so new messages keep queueing behind it.
    pub(crate) puts: u32,
    /// Bumped by every committed put for this user: a replay that read the store to its end
    /// at one generation reads again once it changed.
    pub(crate) generation: u64,
    /// The replay to the user's online session, if one runs.
    pub(crate) replay: Option<Replay>,
}

/// Stored messages being replayed to one session, oldest first, with at most the replay
/// window of them unacknowledged.
pub(crate) struct Replay {
    /// The session replayed to.
    pub(crate) session: SessionId,
    /// How to reach it.
    pub(crate) handle: SessionHandle,
    /// The last id read from the store; the next read starts after it.
    pub(crate) after: Option<MessageId>,
    /// Read from the store, not yet sent.
    pub(crate) buffered: VecDeque<StoredMessage>,
    /// Sent and not yet acknowledged.
    pub(crate) in_flight: BTreeSet<MessageId>,
    /// The generation at which a read found nothing more; `None` until then (or after a full
    /// page, or a rewind).
    pub(crate) caught_up: Option<u64>,
    /// A task is reading or sending for this replay; others only change the state and leave
    /// the work to it.
    pub(crate) pumping: bool,
    /// Since when the replay cannot go on by itself (the store failed, the session's queue
    /// was full, a pump was cancelled): the store chores pump it again a moment later.
    pub(crate) stalled_at: Option<Instant>,
}

impl Replay {
    /// A replay to `handle`'s session, from the first stored message.
    pub(crate) fn new(handle: SessionHandle) -> Self {
        Self {
            session: handle.info.id,
            handle,
            after: None,
            buffered: VecDeque::new(),
            in_flight: BTreeSet::new(),
            caught_up: None,
            pumping: false,
            stalled_at: None,
        }
    }

    /// Goes back to just before `id` (a message whose retransmissions ran out, or the store
    /// changed under the replay): what was read but not sent is dropped and read again.
    pub(crate) fn rewind(&mut self, before: MessageId) {
        let to = MessageId::new(before.get() - 1);
        if self.after.is_none_or(|after| after > to) {
            self.after = Some(to);
        }
        self.buffered.clear();
        self.caught_up = None;
    }
}

impl Backlogs {
    /// The map, locked. Never held across an `.await`; the registry's lock may be taken
    /// inside it, never the other way round.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Backlog>> {
        self.map
            .lock()
            .expect("backlog lock is never held across a panic-prone section")
    }

    /// Counts a put for `user` that is about to start at `now`; the ticket ends it.
    pub(crate) fn begin_put(&self, user: &UserId, now: Instant) -> PutTicket<'_> {
        let mut map = self.lock();
        self.begin_put_locked(&mut map, user, now)
    }

    /// [`begin_put`](Self::begin_put) for a caller that already holds the lock.
    pub(crate) fn begin_put_locked(
        &self,
        map: &mut HashMap<UserId, Backlog>,
        user: &UserId,
        now: Instant,
    ) -> PutTicket<'_> {
        map.entry(user.clone()).or_default().puts += 1;
        PutTicket {
            backlogs: self,
            user: Some(user.clone()),
            began: now,
        }
    }

    /// Forgets `user`'s entry if nothing is left in it.
    pub(crate) fn tidy(map: &mut HashMap<UserId, Backlog>, user: &UserId) {
        if map
            .get(user)
            .is_some_and(|b| b.puts == 0 && b.replay.is_none())
        {
            map.remove(user);
        }
    }

    /// Marks `user`'s replay to `session` as no longer pumped by anybody, and as stalled
    /// if it still has work: what a pump does when it stops, also when it is cancelled.
    pub(crate) fn release(&self, user: &UserId, session: SessionId, stalled_at: Option<Instant>) {
        let mut map = self.lock();
        if let Some(replay) = map
            .get_mut(user)
            .and_then(|b| b.replay.as_mut())
            .filter(|r| r.session == session)
        {
            replay.pumping = false;
            if stalled_at.is_some() {
                replay.stalled_at = stalled_at;
                self.maybe_stalled.store(true, Ordering::Release);
            }
        }
    }

    /// Users whose replay stalled at least `wait` before `now`.
    pub(crate) fn stalled(&self, now: Instant, wait: Duration) -> Vec<UserId> {
        if !self.maybe_stalled.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.lock()
            .iter()
            .filter(|(_, b)| {
                b.replay
                    .as_ref()
                    .and_then(|r| r.stalled_at)
                    .is_some_and(|at| at + wait <= now)
            })
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// The earliest time a replay stalled, if one did.
    pub(crate) fn first_stall(&self) -> Option<Instant> {
        // Cleared before the look, so a stall marked meanwhile sets it again.
        if !self.maybe_stalled.swap(false, Ordering::AcqRel) {
            return None;
        }
        let first = self
            .lock()
            .values()
            .filter_map(|b| b.replay.as_ref()?.stalled_at)
            .min();
        if first.is_some() {
            self.maybe_stalled.store(true, Ordering::Release);
        }
        first
    }
}

/// A put in flight for one user, counted in its [`Backlog`] until it ends: explicitly with
/// [`finish`](Self::finish) once the store answered, or when dropped (its task was cancelled:
/// the put may still commit, so the user's replay is marked stalled and looks again).
pub(crate) struct PutTicket<'a> {
    backlogs: &'a Backlogs,
    user: Option<UserId>,
    began: Instant,
}

impl PutTicket<'_> {
    /// The user the put is for.
    pub(crate) fn user(&self) -> &UserId {
        self.user
            .as_ref()
            .expect("a ticket has its user until it is finished")
    }

    /// The put ended; `committed` if the message is now stored (or already was). Returns the
    /// user.
    pub(crate) fn finish(mut self, committed: bool) -> UserId {
        let user = self.user.take().expect("a ticket is finished once");
        self.end(&user, committed, false);
        user
    }

    fn end(&self, user: &UserId, committed: bool, cancelled: bool) {
        let mut map = self.backlogs.lock();
        if let Some(backlog) = map.get_mut(user) {
            backlog.puts = backlog.puts.saturating_sub(1);
            if committed {
                backlog.generation += 1;
            }
            if let Some(replay) = backlog.replay.as_mut()
                && cancelled
            {
                replay.stalled_at = Some(self.began);
                self.backlogs.maybe_stalled.store(true, Ordering::Release);
            }
        }
        Backlogs::tidy(&mut map, user);
    }
}

impl Drop for PutTicket<'_> {
    fn drop(&mut self) {
        if let Some(user) = self.user.take() {
            // Cancelled: whether the put committed is unknown, so assume it did, and let the
            // chores pump the replay, which nobody else may wake.
            self.end(&user, true, true);
        }
    }
}
