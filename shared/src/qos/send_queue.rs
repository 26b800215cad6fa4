//! The sender side of QoS (§6.1, §6.2): remember what was sent until it is acknowledged,
//! retransmit on a fixed tick, and give up after a number of retries.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use web_time::Instant;

/// When a [`SendQueue`] retransmits and when it gives up.
///
/// The reference checks its queue on a fixed tick: each tick, a message that has already been
/// retried `max_retries` times is reported lost, a message younger than `just_sent` is left
/// alone, and any other message is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitSchedule {
    /// The tick period.
    pub check_interval: Duration,
    /// Messages queued this recently are not retransmitted on a tick.
    pub just_sent: Duration,
    /// Retransmissions before the message is reported lost.
    pub max_retries: u32,
}

impl RetransmitSchedule {
    /// The Java clients' schedule: 5000 ms tick, 3000 ms window, 2 retries, so three
    /// transmissions and a loss report 13–18 s after the first send.
    pub const CLIENT: Self = Self {
        check_interval: Duration::from_millis(5000),
        just_sent: Duration::from_millis(3000),
        max_retries: 2,
    };

    /// The reference server's schedule: 5000 ms tick, 2000 ms window, 1 retry, so two
    /// transmissions and a loss report 7–12 s after the first send.
    pub const SERVER: Self = Self {
        check_interval: Duration::from_millis(5000),
        just_sent: Duration::from_millis(2000),
        max_retries: 1,
    };
}

/// What a tick asks the owner of a [`SendQueue`] to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Retransmit<'a, K, V> {
    /// Send this message again.
    Resend(&'a K, &'a V),
    /// Retries are used up: the message is reported lost and leaves the queue.
    Lost(K, V),
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    queued_at: Instant,
    retries: u32,
    seq: u64,
}

/// Messages awaiting acknowledgement, keyed by `K` (a fingerprint, or a user and fingerprint
/// pair on the server), driven entirely by the `now` its owner passes in.
#[derive(Debug)]
pub struct SendQueue<K, V> {
    schedule: RetransmitSchedule,
    entries: HashMap<K, Entry<V>>,
    next_tick: Option<Instant>,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone, V> SendQueue<K, V> {
    /// An empty queue following `schedule`.
    pub fn new(schedule: RetransmitSchedule) -> Self {
        Self {
            schedule,
            entries: HashMap::new(),
            next_tick: None,
            next_seq: 0,
        }
    }

    /// The schedule in force.
    pub fn schedule(&self) -> RetransmitSchedule {
        self.schedule
    }

    /// Queues a message that was just sent. Returns false, and keeps the first copy, when the key
    /// is already queued (a resend of the same fingerprint is not queued twice).
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> bool {
        if self.entries.contains_key(&key) {
            return false;
        }
        self.entries.insert(
            key,
            Entry {
                value,
                queued_at: now,
                retries: 0,
                seq: self.next_seq,
            },
        );
        self.next_seq += 1;
        if self.next_tick.is_none() {
            self.next_tick = Some(now + self.schedule.check_interval);
        }
        true
    }

    /// Removes an acknowledged message, returning it if it was still queued.
    pub fn acknowledge(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        if self.entries.is_empty() {
            self.next_tick = None;
        }
        Some(entry.value)
    }

    /// The message queued under `key`, to change what it carries (not its schedule).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|e| &mut e.value)
    }

    /// Whether `key` is awaiting acknowledgement.
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Messages awaiting acknowledgement.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing awaits acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the queue (the client's `release()`), returning what was pending.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.next_tick = None;
        self.entries.drain().map(|(k, e)| (k, e.value))
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: the next tick, or `None`
    /// while the queue is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Runs the tick that is due at `now`, if any, reporting each resend and loss to `on`
    /// in the order the messages were queued.
    pub fn handle_timeout(&mut self, now: Instant, mut on: impl FnMut(Retransmit<'_, K, V>)) {
        let Some(tick) = self.next_tick.filter(|tick| *tick <= now) else {
            return;
        };
        let max_retries = self.schedule.max_retries;
        let mut lost: Vec<(K, Entry<V>)> = self
            .entries
            .extract_if(|_, e| e.retries >= max_retries)
            .collect();
        lost.sort_unstable_by_key(|(_, e)| e.seq);

        let mut due: Vec<(u64, &K, &mut Entry<V>)> = self
            .entries
            .iter_mut()
            .filter(|(_, e)| now.saturating_duration_since(e.queued_at) > self.schedule.just_sent)
            .map(|(k, e)| (e.seq, k, e))
            .collect();
        due.sort_unstable_by_key(|(seq, _, _)| *seq);
        for (_, key, entry) in due {
            entry.retries += 1;
            on(Retransmit::Resend(key, &entry.value));
        }
        for (key, entry) in lost {
            on(Retransmit::Lost(key, entry.value));
        }

        self.next_tick = if self.entries.is_empty() {
            None
        } else {
            let next = tick + self.schedule.check_interval;
            Some(if next <= now {
                now + self.schedule.check_interval
            } else {
                next
            })
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(queue: &mut SendQueue<&'static str, u32>, now: Instant) -> Vec<String> {
        let mut seen = Vec::new();
        queue.handle_timeout(now, |r| match r {
            Retransmit::Resend(k, _) => seen.push(format!("resend {k}")),
            Retransmit::Lost(k, _) => seen.push(format!("lost {k}")),
        });
        seen
    }

    #[test]
    fn client_schedule_sends_three_times_then_reports_lost_at_fifteen_seconds() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(RetransmitSchedule::CLIENT);
        assert!(q.insert("fp", 1, t0));
        let s = Duration::from_secs;
        assert_eq!(q.poll_timeout(), Some(t0 + s(5)));
        assert_eq!(run(&mut q, t0 + s(5)), ["resend fp"]);
        assert_eq!(run(&mut q, t0 + s(10)), ["resend fp"]);
        assert_eq!(run(&mut q, t0 + s(15)), ["lost fp"]);
        assert!(q.is_empty());
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn server_schedule_sends_twice_then_reports_lost_at_ten_seconds() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(RetransmitSchedule::SERVER);
        q.insert("fp", 1, t0);
        let s = Duration::from_secs;
        assert_eq!(run(&mut q, t0 + s(5)), ["resend fp"]);
        assert_eq!(run(&mut q, t0 + s(10)), ["lost fp"]);
    }

    #[test]
    fn a_message_queued_just_before_a_tick_waits_for_the_next_one() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut q = SendQueue::new(RetransmitSchedule::CLIENT);
        q.insert("old", 1, t0);
        q.insert("new", 2, t0 + s(4));
        assert_eq!(run(&mut q, t0 + s(5)), ["resend old"]);
        assert_eq!(run(&mut q, t0 + s(10)), ["resend old", "resend new"]);
    }

    #[test]
    fn acknowledged_messages_are_never_resent_and_requeueing_is_ignored() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(RetransmitSchedule::CLIENT);
        assert!(q.insert("fp", 1, t0));
        assert!(!q.insert("fp", 2, t0));
        assert_eq!(q.acknowledge(&"fp"), Some(1));
        assert_eq!(q.acknowledge(&"fp"), None);
        assert!(run(&mut q, t0 + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn nothing_happens_before_the_tick() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(RetransmitSchedule::CLIENT);
        q.insert("fp", 1, t0);
        assert!(run(&mut q, t0 + Duration::from_millis(4999)).is_empty());
    }
}
