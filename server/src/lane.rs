//! A session's lane: C2C messages it handed off so that its loop reads on while another node
//! answers for their receivers, run one at a time in the order they arrived.
//!
//! In a cluster, the node that holds a message's receiver answers with the outcome of its QoS
//! with the client (delivered, stored or lost), and only then may the sender hear its
//! pseudo-ACK: that is what makes a node's death lose nothing acknowledged. Waiting for it in
//! the session's loop would stop the loop reading, acknowledgements included, for a client
//! round trip; two users on two nodes writing to each other at once would each wait for the
//! other's unread acknowledgement (until the cluster's deliver timeout). So the loop hands such
//! a message to its lane and reads on; the lane relays one message at a time, which keeps a
//! sender's messages in order, and the pseudo-ACK reaches the sender through its outbox. Each
//! message goes with the handle of the login that sent it (`HandedOff`), so a UDP address that
//! logs in as somebody else meanwhile is never told about the previous user's messages.
//!
//! The lane holds data, not a task: the session's loop drives it (`Core::drive_lane`) beside
//! reading, and it dies with the session. A message it held unfinished was never acknowledged,
//! so its QoS sender sends it again.

use std::collections::VecDeque;
use std::fmt;

use futures_util::future::BoxFuture;
use sync_wrapper::SyncWrapper;

/// How many messages one session's lane holds, the one under way included. A sender that
/// reaches it waits for the oldest to finish before its loop reads on: a node that does not
/// answer holds up its senders within this bound, not their memory without one.
pub(crate) const LANE_CAPACITY: usize = 32;

/// Messages (`T`: what relaying one needs) a session handed off, oldest first, and the one
/// under way.
pub(crate) struct Lane<T> {
    /// Not yet started, oldest first.
    waiting: VecDeque<T>,
    /// The message being relayed: kept here between polls, so a loop that stops polling the
    /// lane for a while (to read, to write) resumes it rather than starts it again. Wrapped
    /// so that the session stays `Sync`: it is shared by reference across its loop's awaits,
    /// and only `&mut` ever reaches the future.
    current: Option<SyncWrapper<BoxFuture<'static, ()>>>,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            current: None,
        }
    }
}

impl<T> Lane<T> {
    /// Adds `message` behind the messages already in the lane.
    pub(crate) fn push(&mut self, message: T) {
        self.waiting.push_back(message);
    }

    /// Whether the lane holds [`LANE_CAPACITY`] messages.
    pub(crate) fn is_full(&self) -> bool {
        self.waiting.len() + usize::from(self.current.is_some()) >= LANE_CAPACITY
    }

    /// Runs the oldest message to its end, starting it with `start` if it has not started:
    /// whether more are left. Cancel-safe: dropped before the end, the message stays in the
    /// lane, under way.
    pub(crate) async fn step(&mut self, start: impl FnOnce(T) -> BoxFuture<'static, ()>) -> bool {
        let current = match &mut self.current {
            Some(current) => current,
            None => match self.waiting.pop_front() {
                Some(next) => self.current.insert(SyncWrapper::new(start(next))),
                None => return false,
            },
        };
        current.get_mut().await;
        self.current = None;
        !self.waiting.is_empty()
    }
}

impl<T> fmt::Debug for Lane<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("waiting", &self.waiting.len())
            .field("under_way", &self.current.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::FutureExt;
    use hongyan_shared::Packet;
    use tokio::sync::oneshot;

    use super::*;

    fn message(fp: &str) -> Packet {
        Packet::common_data("alice", "bob", "hi", Some(fp.into()), -1)
    }

    #[test]
    fn messages_run_one_at_a_time_in_order_and_survive_a_cancelled_poll() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = oneshot::channel::<()>();
        let mut released = Some(released);
        let mut lane = Lane::<Packet>::default();
        lane.push(message("m-1"));
        lane.push(message("m-2"));
        let start = |started: &Arc<Mutex<Vec<String>>>, gate: Option<oneshot::Receiver<()>>| {
            let started = started.clone();
            move |packet: Packet| -> BoxFuture<'static, ()> {
                let fp = packet
                    .fp
                    .map(|fp| fp.as_str().to_owned())
                    .unwrap_or_default();
                started.lock().unwrap().push(fp);
                Box::pin(async move {
                    if let Some(gate) = gate {
                        let _ = gate.await;
                    }
                })
            }
        };
        // The first waits at its gate: the poll is dropped, the message stays under way.
        assert!(
            lane.step(start(&started, released.take()))
                .now_or_never()
                .is_none()
        );
        assert!(lane.step(start(&started, None)).now_or_never().is_none());
        assert_eq!(*started.lock().unwrap(), ["m-1"], "started once, m-2 waits");
        release.send(()).unwrap();
        assert_eq!(lane.step(start(&started, None)).now_or_never(), Some(true));
        assert_eq!(lane.step(start(&started, None)).now_or_never(), Some(false));
        assert_eq!(lane.step(start(&started, None)).now_or_never(), Some(false));
        assert_eq!(*started.lock().unwrap(), ["m-1", "m-2"]);
    }

    #[test]
    fn a_lane_is_full_at_its_capacity_counting_the_message_under_way() {
        let mut lane = Lane::<Packet>::default();
        for n in 0..LANE_CAPACITY {
            assert!(!lane.is_full());
            lane.push(message(&format!("m-{n}")));
        }
        assert!(lane.is_full());
        let pending = lane
            .step(|_| Box::pin(std::future::pending()))
            .now_or_never();
        assert!(pending.is_none());
        assert!(lane.is_full(), "one under way and the rest waiting");
    }
}
