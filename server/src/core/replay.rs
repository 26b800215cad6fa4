//! Replaying stored messages to their receiver (issue 11). At every login, and whenever a
//! message is stored for a user who is online, the user's stored messages are sent to their
//! session oldest first, as ordinary QoS packets through the retransmission queue, with at
//! most the replay window of them unacknowledged; each is removed once acknowledged.
//!
//! One task at a time pumps a replay (reads a page, sends what the window allows); any other
//! task that changes its state (an acknowledgement, a commit, a retransmission that ran out)
//! pumps it too, and finds the work already taken or does it. While a replay runs, the
//! registry marks the session as replaying, so new QoS messages for the user are stored behind
//! the replayed ones instead of overtaking them; the replay ends, and the mark with it, only
//! when every stored message was sent, the store has nothing more for the user, and no put
//! for the user is in flight (its message might commit behind the ones read).

use hongyan_shared::{Instant, UserId};
use hongyan_store::{MessageId, StoredMessage};

use super::backlog::{Backlogs, Replay};
use super::keep::replay_packet;
use super::s2c::Origin;
use super::state::Core;
use super::store_link::StoreLink;
use crate::hooks::SessionId;
use crate::log_limit::LogLimit;
use crate::log_text::Untrusted;
use crate::metrics::StoreOp;
use crate::session::{PushError, SessionHandle};

static TOO_LARGE: LogLimit =
    LogLimit::warn("stored message larger than the receiver's transport carries");

/// What a replay does next.
enum Step {
    /// Send these (already counted as in flight) to the session.
    Send(SessionHandle, Vec<StoredMessage>),
    /// Read the next page after `after`; the store was at `generation` when it was decided.
    Read {
        after: Option<MessageId>,
        generation: u64,
    },
    /// Nothing to do until something changes (the pump is released), or the replay ended.
    Stop,
}

/// Releases a replay's pump if the task pumping it is dropped half-way (its session closed
/// while it awaited the store), marking the replay stalled so the store chores take it up.
struct Pumping<'a> {
    backlogs: &'a Backlogs,
    user: &'a UserId,
    session: SessionId,
    now: Instant,
    armed: bool,
}

impl Drop for Pumping<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.backlogs
                .release(self.user, self.session, Some(self.now));
        }
    }
}

impl Core {
    /// `session` just logged in as `user` and was registered as replaying: starts its replay
    /// (or goes on with the one a commit already started for it).
    pub(super) async fn start_replay(&self, user: &UserId, session: &SessionHandle) {
        let Some(link) = &self.store else {
            return;
        };
        {
            let mut backlogs = link.backlogs.lock();
            let backlog = backlogs.entry(user.clone()).or_default();
            if backlog
                .replay
                .as_ref()
                .is_none_or(|r| r.session != session.info.id)
            {
                backlog.replay = Some(Replay::new(session.clone()));
                self.count_replay();
            }
        }
        self.pump(user).await;
    }

    /// `user`'s session `session` ended: its replay stops, and what it did not deliver stays
    /// stored for the next login.
    pub(super) fn stop_replay(&self, user: &UserId, session: SessionId) {
        let Some(link) = &self.store else {
            return;
        };
        let mut backlogs = link.backlogs.lock();
        if let Some(backlog) = backlogs.get_mut(user)
            && backlog
                .replay
                .as_ref()
                .is_some_and(|r| r.session == session)
        {
            backlog.replay = None;
        }
        Backlogs::tidy(&mut backlogs, user);
    }

    /// A put for `user` ended (`committed` if the message is stored): the replay running
    /// for them reads it, or, if the user is online without one, a replay starts, so a
    /// message stored for an online user never waits for the next login.
    pub(super) async fn after_put(&self, user: &UserId, committed: bool) {
        let Some(link) = &self.store else {
            return;
        };
        {
            let mut backlogs = link.backlogs.lock();
            let replaying = backlogs.get(user).is_some_and(|b| b.replay.is_some());
            if !replaying {
                if !committed {
                    return;
                }
                let Some((online, _)) = self.registry.route(user) else {
                    return;
                };
                if !self.registry.set_replaying(user, online.info.id, true) {
                    return;
                }
                backlogs.entry(user.clone()).or_default().replay = Some(Replay::new(online));
                self.count_replay();
            }
        }
        self.pump(user).await;
    }

    /// `user` acknowledged stored message `id`: it is removed (by the store chores) and the
    /// replay window moves on.
    pub(super) async fn acknowledged_stored(&self, user: &UserId, id: MessageId) {
        let Some(link) = &self.store else {
            return;
        };
        link.acked.add(user, id);
        if let Some(replay) = link
            .backlogs
            .lock()
            .get_mut(user)
            .and_then(|b| b.replay.as_mut())
        {
            replay.in_flight.remove(&id);
        }
        self.pump(user).await;
    }

    /// The retransmissions of replayed message `id` ran out: it is still stored (it is never
    /// stored twice), so the replay goes back to it and sends it again while the user's
    /// session lives; otherwise it waits for the next login.
    pub(super) async fn replayed_unacknowledged(&self, user: &UserId, id: MessageId) {
        let Some(link) = &self.store else {
            return;
        };
        let current = self.session_of(user).map(|online| online.info.id);
        let has_replay = {
            let mut backlogs = link.backlogs.lock();
            match backlogs.get_mut(user).and_then(|b| b.replay.as_mut()) {
                Some(replay) => {
                    replay.in_flight.remove(&id);
                    if Some(replay.session) == current {
                        replay.rewind(id);
                    }
                    true
                }
                None => false,
            }
        };
        if has_replay {
            self.pump(user).await;
        } else if current.is_some() {
            // Its replay was done already; a new one starts from the first stored message.
            self.after_put(user, true).await;
        }
    }

    /// `user`'s stored messages were erased: a running replay drops what it read and reads
    /// again (finding nothing erased).
    pub(crate) fn forget_replayed(&self, user: &UserId) {
        let Some(link) = &self.store else {
            return;
        };
        if let Some(replay) = link
            .backlogs
            .lock()
            .get_mut(user)
            .and_then(|b| b.replay.as_mut())
        {
            replay.buffered.clear();
            replay.caught_up = None;
        }
    }

    /// Sends what `user`'s replay may send now, reading the store as needed, until the window
    /// is full, the replay is done, or it stalls. Returns at once if another task pumps it.
    pub(super) async fn pump(&self, user: &UserId) {
        let Some(link) = &self.store else {
            return;
        };
        let session = {
            let mut backlogs = link.backlogs.lock();
            let Some(replay) = backlogs.get_mut(user).and_then(|b| b.replay.as_mut()) else {
                return;
            };
            if replay.pumping {
                return;
            }
            replay.pumping = true;
            replay.stalled_at = None;
            replay.session
        };
        let mut pumping = Pumping {
            backlogs: &link.backlogs,
            user,
            session,
            now: self.clock.now(),
            armed: true,
        };
        loop {
            match self.next_step(link, user, session) {
                Step::Send(handle, messages) => {
                    let now = self.clock.now();
                    if !self.send_replayed(link, user, session, &handle, messages, now) {
                        link.backlogs.release(user, session, Some(now));
                        break;
                    }
                }
                Step::Read { after, generation } => {
                    if !self.read_page(link, user, session, after, generation).await {
                        link.backlogs.release(user, session, Some(self.clock.now()));
                        break;
                    }
                }
                Step::Stop => break,
            }
        }
        pumping.armed = false;
    }

    /// Decides the next step under the backlog lock; a decision to stop releases the pump in
    /// the same critical section, so no change made meanwhile goes unseen.
    fn next_step(&self, link: &StoreLink, user: &UserId, session: SessionId) -> Step {
        let mut backlogs = link.backlogs.lock();
        let Some(backlog) = backlogs.get_mut(user) else {
            return Step::Stop;
        };
        let (generation, puts) = (backlog.generation, backlog.puts);
        let Some(replay) = backlog.replay.as_mut().filter(|r| r.session == session) else {
            // Replaced by a newer login's replay (which has its own pump), or stopped.
            return Step::Stop;
        };
        let room = link.window.saturating_sub(replay.in_flight.len());
        if room > 0 && !replay.buffered.is_empty() {
            let count = room.min(replay.buffered.len());
            let messages: Vec<StoredMessage> = replay.buffered.drain(..count).collect();
            // In flight before they are sent: an acknowledgement may race the push.
            replay.in_flight.extend(messages.iter().map(|m| m.id));
            return Step::Send(replay.handle.clone(), messages);
        }
        let caught_up = replay.buffered.is_empty() && replay.caught_up == Some(generation);
        if room > 0 && !caught_up && replay.buffered.is_empty() {
            return Step::Read {
                after: replay.after,
                generation,
            };
        }
        if caught_up && puts == 0 {
            // Done: every stored message was sent, so new ones may go straight to the session
            // again. What is still unacknowledged is retransmitted like any QoS packet (and,
            // should its retransmissions run out, replayed again by a new replay).
            self.registry.set_replaying(user, session, false);
            backlog.replay = None;
            Backlogs::tidy(&mut backlogs, user);
            return Step::Stop;
        }
        replay.pumping = false;
        Step::Stop
    }

    /// Sends replayed messages (already in flight) to the session; false if it could not
    /// take them all (its queue is full, it is gone), which stalls the replay.
    fn send_replayed(
        &self,
        link: &StoreLink,
        user: &UserId,
        session: SessionId,
        handle: &SessionHandle,
        messages: Vec<StoredMessage>,
        now: Instant,
    ) -> bool {
        let mut sent = 0;
        let mut skipped = Vec::new();
        let mut unsent = Vec::new();
        let mut messages = messages.into_iter();
        for message in messages.by_ref() {
            let mut packet = replay_packet(&message);
            let origin = Origin::Stored(message.id);
            let pushed = self
                .hold(self.encode_vec(&mut packet))
                .and_then(|body| self.push_qos(handle, user, &message.fp, body, None, now, origin));
            match pushed {
                Ok(()) => sent += 1,
                Err(PushError::TooLarge { len, max }) => {
                    if TOO_LARGE.allow() {
                        tracing::warn!(to = %Untrusted(user.as_str()), fp = %Untrusted(message.fp.as_str()), len, max,
                        "stored message larger than the receiver's transport carries; it waits \
                         for a login over another transport, or its expiry");
                    }
                    skipped.push(message.id);
                }
                Err(error) => {
                    // Its queue is full, it is gone, or the server holds as much as it may
                    // for it: the chores try again a moment later.
                    tracing::debug!(to = %Untrusted(user.as_str()), %error, "replay paused: the session cannot take more");
                    unsent.push(message);
                    break;
                }
            }
        }
        unsent.extend(messages);
        if let Some(metrics) = &self.metrics.store {
            metrics.replayed(sent);
        }
        if skipped.is_empty() && unsent.is_empty() {
            return true;
        }
        let stalled = !unsent.is_empty();
        let mut backlogs = link.backlogs.lock();
        if let Some(replay) = backlogs
            .get_mut(user)
            .and_then(|b| b.replay.as_mut())
            .filter(|r| r.session == session)
        {
            for id in &skipped {
                replay.in_flight.remove(id);
            }
            for message in unsent.into_iter().rev() {
                replay.in_flight.remove(&message.id);
                replay.buffered.push_front(message);
            }
        }
        !stalled
    }

    /// Reads the page after `after` into the replay's buffer; false if the store failed,
    /// which stalls the replay.
    async fn read_page(
        &self,
        link: &StoreLink,
        user: &UserId,
        session: SessionId,
        after: Option<MessageId>,
        generation: u64,
    ) -> bool {
        let read = link
            .store
            .pending(user, after, self.clock.unix_millis(), link.window);
        let Ok(page) = link.call(&self.metrics, StoreOp::read, read).await else {
            return false;
        };
        let full = page.len() >= link.window;
        let mut backlogs = link.backlogs.lock();
        let Some(replay) = backlogs
            .get_mut(user)
            .and_then(|b| b.replay.as_mut())
            .filter(|r| r.session == session && r.after == after)
        else {
            // Stopped, replaced or rewound meanwhile: this page is stale.
            return true;
        };
        if let Some(last) = page.last() {
            replay.after = Some(last.id);
        }
        for message in page {
            if !replay.in_flight.contains(&message.id) && !link.acked.contains(user, message.id) {
                replay.buffered.push_back(message);
            }
        }
        replay.caught_up = (!full).then_some(generation);
        true
    }

    fn count_replay(&self) {
        if let Some(metrics) = &self.metrics.store {
            metrics.replay();
        }
    }
}
