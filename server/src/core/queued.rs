//! The server-wide bound on bytes held for delivery (`max_queued_bytes`): packet bodies in
//! sessions' queues and in the retransmission queue. Each such body carries its own share of
//! the bound and gives it back when its last copy is dropped, so the count is exact whichever
//! holds it longest (a queue, the retransmission queue, a pipe writing it), and a body shared
//! by a queue and the retransmission queue counts once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// Bytes held for delivery, and the most there may be.
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    held: Arc<AtomicUsize>,
    limit: usize,
}

impl QueuedBytes {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            held: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// `body` as a [`Bytes`] counted against the bound until its last copy is dropped; `None`
    /// if it does not fit.
    pub(crate) fn hold(&self, body: Vec<u8>) -> Option<Bytes> {
        let len = body.len();
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(len).filter(|&total| total <= self.limit)
            })
            .ok()?;
        Some(Bytes::from_owner(Held {
            body,
            held: self.held.clone(),
        }))
    }

    /// Bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// A body's bytes and its share of the bound, given back on drop.
struct Held {
    body: Vec<u8>,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.body.len(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_counted_until_its_last_copy_is_dropped() {
        let queued = QueuedBytes::new(10);
        let body = queued.hold(vec![b'x'; 6]).expect("fits");
        let copy = body.clone();
        assert_eq!(queued.bytes(), 6);
        assert!(queued.hold(vec![b'y'; 5]).is_none(), "6 + 5 > 10");
        drop(body);
        assert_eq!(queued.bytes(), 6, "a copy still holds it");
        drop(copy);
        assert_eq!(queued.bytes(), 0);
        assert!(queued.hold(vec![b'y'; 10]).is_some());
        assert_eq!(queued.bytes(), 0, "dropped at once");
    }
}
