//! What an HTTP session's pipe shares with the requests that feed it and the stream that
//! carries its events: the events not yet streamed, the QoS events streamed but not yet
//! acknowledged, which stream is attached, and whether the session has ended.
//!
//! The session's loop writes events in (waiting for room, as a socket's writer waits for its
//! peer); the attached stream takes them out. What a stream took and the user has not
//! acknowledged is kept, bounded, and sent again to the next stream (after a reconnect), less
//! what its `Last-Event-ID` says the user already has; the server's own retransmission and
//! store guard it besides, as for a socket client.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use hongyan_shared::{Fingerprint, Packet, UserId};
use tokio::sync::{Notify, mpsc};

use super::event::Event;
use crate::pipe::PipeError;

/// How much a session holds for its user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Events not yet streamed: the pipe waits beyond this many.
    pub(crate) queued: usize,
    /// Bytes of them (one event is always let in).
    pub(crate) queued_bytes: usize,
    /// Events streamed and awaiting acknowledgement, kept to be sent again after a
    /// reconnect; beyond this many, the oldest is forgotten (the server's retransmission and
    /// store still guard it).
    pub(crate) unacked: usize,
    /// Bytes of them.
    pub(crate) unacked_bytes: usize,
}

/// Events in order, with their total weight.
#[derive(Debug, Default)]
struct Events {
    events: VecDeque<Event>,
    bytes: usize,
}

impl Events {
    fn push_back(&mut self, event: Event) {
        self.bytes += event.len();
        self.events.push_back(event);
    }

    fn pop_front(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.bytes -= event.len();
        Some(event)
    }

    fn len(&self) -> usize {
        self.events.len()
    }

    fn retain(&mut self, mut keep: impl FnMut(&Event) -> bool) {
        let bytes = &mut self.bytes;
        self.events.retain(|event| {
            let kept = keep(event);
            if !kept {
                *bytes -= event.len();
            }
            kept
        });
    }
}

#[derive(Debug, Default)]
struct State {
    /// Not yet taken by a stream, oldest first.
    queued: Events,
    /// QoS events a stream took, not yet acknowledged, oldest first.
    unacked: Events,
    /// The attached stream; 0 for none.
    stream: u64,
    /// The last stream id handed out.
    streams: u64,
    /// The session has ended: nothing more is queued.
    ended: bool,
    /// Its logout was requested: a pipe waiting for room gives up.
    logout: bool,
}

/// What a stream finds when it looks.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The next event.
    Event(Event),
    /// Nothing yet.
    Nothing,
    /// The stream is done: the session ended and everything was streamed, or another stream
    /// replaced this one.
    Done,
}

/// The shared half of one HTTP session.
#[derive(Debug)]
pub(crate) struct Link {
    user: UserId,
    /// Packets for the session's loop: its login, acknowledgements, keepalives, logout.
    inbound: mpsc::Sender<Bytes>,
    state: Mutex<State>,
    /// Wakes streams: an event was queued, the session ended, a stream was replaced.
    readable: Notify,
    /// Wakes the pipe waiting for room.
    writable: Notify,
    limits: Limits,
}

impl Link {
    /// The link of a session for `user` whose loop reads `inbound`'s other end.
    pub(crate) fn new(user: UserId, inbound: mpsc::Sender<Bytes>, limits: Limits) -> Self {
        Self {
            user,
            inbound,
            state: Mutex::default(),
            readable: Notify::new(),
            writable: Notify::new(),
            limits,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("the link lock is never held across a panic-prone section")
    }

    /// The user the session is for.
    pub(crate) fn user(&self) -> &UserId {
        &self.user
    }

    /// Hands `packet` to the session's loop, waiting for room; false if the session is gone.
    pub(crate) async fn deliver(&self, packet: &Packet) -> bool {
        let body = Bytes::from(packet.to_json());
        self.inbound.send(body).await.is_ok()
    }

    /// A keepalive for the session's loop (an open stream counts as traffic), unless its
    /// queue is full, which is traffic already.
    pub(crate) fn keep_alive(&self) {
        let body = Bytes::from(Packet::keep_alive(self.user.as_str()).to_json());
        let _ = self.inbound.try_send(body);
    }

    /// Queues `event` for the stream, waiting while the queue is full (as a socket's writer
    /// waits for a peer that reads slowly: the session's loop bounds the wait by its
    /// deadline). Fails once the session has ended or its logout was requested.
    pub(crate) async fn queue(&self, event: Event) -> Result<(), PipeError> {
        let mut event = Some(event);
        loop {
            let writable = self.writable.notified();
            tokio::pin!(writable);
            writable.as_mut().enable();
            {
                let mut state = self.state();
                if state.ended || state.logout {
                    return Err(PipeError::Closed);
                }
                let queued = &state.queued;
                let len = event.as_ref().map_or(0, Event::len);
                if queued.len() == 0
                    || (queued.len() < self.limits.queued
                        && queued.bytes + len <= self.limits.queued_bytes)
                {
                    state
                        .queued
                        .push_back(event.take().expect("queued at most once"));
                    drop(state);
                    self.readable.notify_waiters();
                    return Ok(());
                }
            }
            writable.await;
        }
    }

    /// Queues the kickout that ends the session, room or not: it is the last event, and the
    /// user must hear why. Ignored once the session has ended.
    pub(crate) fn queue_last(&self, event: Event) {
        let mut state = self.state();
        if !state.ended {
            state.queued.push_back(event);
        }
        drop(state);
        self.readable.notify_waiters();
    }

    /// The session has ended; `last` (its `logout` event, unless a kickout said why) is
    /// streamed after what is queued, and then every stream ends.
    pub(crate) fn end(&self, last: Option<Event>) {
        let mut state = self.state();
        state.ended = true;
        if let Some(last) = last {
            state.queued.push_back(last);
        }
        drop(state);
        self.readable.notify_waiters();
        self.writable.notify_waiters();
    }

    /// Resolves when a stream may find something new (enable it before looking).
    pub(crate) fn readable(&self) -> tokio::sync::futures::Notified<'_> {
        self.readable.notified()
    }

    /// Whether the session has ended.
    pub(crate) fn has_ended(&self) -> bool {
        self.state().ended
    }

    /// Waits until the session has ended.
    pub(crate) async fn ended(&self) {
        loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            if self.has_ended() {
                return;
            }
            readable.await;
        }
    }

    /// Asks the session to end: a pipe waiting for room gives up at once, and the logout
    /// packet the caller then delivers ends it otherwise.
    pub(crate) fn request_logout(&self) {
        self.state().logout = true;
        self.writable.notify_waiters();
    }

    /// Whether the logout was requested.
    pub(crate) fn logout_requested(&self) -> bool {
        self.state().logout
    }

    /// Attaches a new stream, which replaces any other (that one ends), and returns its id.
    /// Events an earlier stream took and the user has not acknowledged are sent again first,
    /// in their order, except those up to and including `last_event_id` (the user has them:
    /// they stay awaiting acknowledgement).
    pub(crate) fn attach(&self, last_event_id: Option<&str>) -> u64 {
        let mut state = self.state();
        state.streams += 1;
        state.stream = state.streams;
        let id = state.stream;
        let seen = last_event_id
            .and_then(|last| state.unacked.events.iter().rposition(|e| e.has_id(last)))
            .map_or(0, |at| at + 1);
        let mut resend = Events::default();
        while state.unacked.len() > seen {
            let event = state.unacked.events.pop_back().expect("len > seen");
            state.unacked.bytes -= event.len();
            resend.events.push_front(event);
        }
        resend.bytes = resend.events.iter().map(Event::len).sum();
        while let Some(event) = state.queued.pop_front() {
            resend.push_back(event);
        }
        state.queued = resend;
        drop(state);
        self.readable.notify_waiters();
        id
    }

    /// Stream `stream` is gone (its client disconnected, or it was replaced).
    pub(crate) fn detach(&self, stream: u64) {
        let mut state = self.state();
        if state.stream == stream {
            state.stream = 0;
        }
    }

    /// The next event for stream `stream`; a QoS event is kept until acknowledged, to be
    /// sent again to a later stream.
    pub(crate) fn take(&self, stream: u64) -> Taken {
        let mut state = self.state();
        if state.stream != stream {
            return Taken::Done;
        }
        let Some(event) = state.queued.pop_front() else {
            return if state.ended {
                Taken::Done
            } else {
                Taken::Nothing
            };
        };
        if let Some(fp) = event.awaits_ack() {
            let unacked = &mut state.unacked;
            if !unacked.events.iter().any(|e| e.awaits_ack() == Some(fp)) {
                unacked.push_back(event.clone());
                while unacked.len() > self.limits.unacked
                    || (unacked.len() > 1 && unacked.bytes > self.limits.unacked_bytes)
                {
                    unacked.pop_front();
                }
            }
        }
        drop(state);
        self.writable.notify_waiters();
        Taken::Event(event)
    }

    /// The user acknowledged `fps`: they are not sent again to a later stream.
    pub(crate) fn acknowledge(&self, fps: &[Fingerprint]) {
        let fps: HashSet<&Fingerprint> = fps.iter().collect();
        self.state()
            .unacked
            .retain(|event| event.awaits_ack().is_none_or(|fp| !fps.contains(fp)));
    }

    /// Events streamed and awaiting acknowledgement.
    #[cfg(test)]
    pub(crate) fn unacknowledged(&self) -> usize {
        self.state().unacked.len()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use hongyan_shared::Kickout;

    use super::*;
    use crate::gateway::sse::event::LogoutReason;
    use std::sync::Arc;

    fn link(limits: Limits) -> Link {
        let (tx, _rx) = mpsc::channel(1);
        Link::new(UserId::from("alice"), tx, limits)
    }

    const ROOMY: Limits = Limits {
        queued: 64,
        queued_bytes: 1 << 20,
        unacked: 64,
        unacked_bytes: 1 << 20,
    };

    fn qos(fp: &str) -> Event {
        let mut packet = Packet::common_data("bob", "alice", "hi", Some(Fingerprint::from(fp)), -1);
        packet.qos = true;
        Event::message(&packet)
    }

    fn queued(link: &Link, event: Event) {
        link.queue(event)
            .now_or_never()
            .expect("room in the queue")
            .expect("the session lives");
    }

    fn next_fp(link: &Link, stream: u64) -> Option<String> {
        match link.take(stream) {
            Taken::Event(event) => Some(event.awaits_ack()?.as_str().to_owned()),
            Taken::Nothing | Taken::Done => None,
        }
    }

    #[test]
    fn a_new_stream_gets_again_what_the_user_did_not_acknowledge_after_its_last_event_id() {
        let link = link(ROOMY);
        for fp in ["m1", "m2", "m3"] {
            queued(&link, qos(fp));
        }
        let first = link.attach(None);
        for fp in ["m1", "m2", "m3"] {
            assert_eq!(next_fp(&link, first).as_deref(), Some(fp));
        }
        assert!(matches!(link.take(first), Taken::Nothing));

        queued(&link, qos("m4"));
        let second = link.attach(Some("m1"));
        assert!(matches!(link.take(first), Taken::Done), "replaced");
        for fp in ["m2", "m3", "m4"] {
            assert_eq!(next_fp(&link, second).as_deref(), Some(fp));
        }
        assert_eq!(
            link.unacknowledged(),
            4,
            "m1 still awaits its acknowledgement"
        );

        link.acknowledge(&[Fingerprint::from("m1"), Fingerprint::from("m3")]);
        let third = link.attach(Some("unknown id"));
        assert_eq!(next_fp(&link, third).as_deref(), Some("m2"));
        assert_eq!(next_fp(&link, third).as_deref(), Some("m4"));
        assert!(matches!(link.take(third), Taken::Nothing));
    }

    #[test]
    fn copies_of_a_message_and_messages_without_qos_are_not_kept_twice_or_at_all() {
        let link = link(ROOMY);
        let plain = Event::message(&Packet::common_data("bob", "alice", "x", None, -1));
        for event in [qos("m1"), qos("m1"), plain] {
            queued(&link, event);
        }
        let stream = link.attach(None);
        while let Taken::Event(_) = link.take(stream) {}
        assert_eq!(link.unacknowledged(), 1);
    }

    #[test]
    fn only_the_newest_unacknowledged_are_kept_within_the_bound() {
        let link = link(Limits {
            unacked: 2,
            ..ROOMY
        });
        for fp in ["m1", "m2", "m3"] {
            queued(&link, qos(fp));
        }
        let first = link.attach(None);
        while let Taken::Event(_) = link.take(first) {}
        assert_eq!(link.unacknowledged(), 2);
        let second = link.attach(None);
        assert_eq!(next_fp(&link, second).as_deref(), Some("m2"));
    }

    #[tokio::test]
    async fn the_pipe_waits_for_room_until_the_stream_takes_or_the_logout_is_requested() {
        let link = Arc::new(link(Limits { queued: 2, ..ROOMY }));
        queued(&link, qos("m1"));
        queued(&link, qos("m2"));
        let waiting = tokio::spawn({
            let link = link.clone();
            async move { link.queue(qos("m3")).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the queue is full");
        let stream = link.attach(None);
        assert_eq!(next_fp(&link, stream).as_deref(), Some("m1"));
        waiting.await.unwrap().expect("room once one was taken");

        let waiting = tokio::spawn({
            let link = link.clone();
            async move { link.queue(qos("m4")).await }
        });
        tokio::task::yield_now().await;
        link.request_logout();
        assert!(matches!(waiting.await.unwrap(), Err(PipeError::Closed)));
    }

    #[test]
    fn a_kickout_gets_in_past_the_bound_and_the_stream_ends_after_the_last_event() {
        let link = link(Limits { queued: 1, ..ROOMY });
        queued(&link, qos("m1"));
        let kick = Packet::kickout(
            "alice",
            &Kickout {
                code: 1,
                reason: None,
            },
        );
        link.queue_last(Event::kickout(&kick));
        link.end(None);
        assert!(link.queue(qos("late")).now_or_never().unwrap().is_err());
        let stream = link.attach(None);
        assert_eq!(next_fp(&link, stream).as_deref(), Some("m1"));
        assert!(matches!(link.take(stream), Taken::Event(e) if e.awaits_ack().is_none()));
        assert!(matches!(link.take(stream), Taken::Done));
        assert!(link.ended().now_or_never().is_some());
    }

    #[test]
    fn the_logout_event_comes_after_what_is_queued() {
        let link = link(ROOMY);
        queued(&link, qos("m1"));
        link.end(Some(Event::logout(LogoutReason::Logout)));
        let stream = link.attach(None);
        assert_eq!(next_fp(&link, stream).as_deref(), Some("m1"));
        assert!(matches!(link.take(stream), Taken::Event(e) if e.awaits_ack().is_none()));
        assert!(matches!(link.take(stream), Taken::Done));
    }
}
