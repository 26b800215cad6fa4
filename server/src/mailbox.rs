//! A small bounded queue from any number of tasks to one: a session's outbox, a UDP
//! pseudo-session's inbox.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hongyan_shared::Instant;
use tokio::sync::Notify;

/// A bounded queue from any number of tasks to one: a session's outbox, a UDP pseudo-session's
/// inbox. Unlike tokio's `mpsc`, which allocates a 32-slot block per channel up front, an idle
/// mailbox holds no buffer at all: with tens of thousands of idle sessions that is most of a
/// session's memory.
#[derive(Debug)]
pub(crate) struct Mailbox<T> {
    shared: Arc<MailboxShared<T>>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct MailboxShared<T> {
    state: Mutex<MailboxState<T>>,
    ready: Notify,
    capacity: usize,
}

#[derive(Debug)]
struct MailboxState<T> {
    items: VecDeque<T>,
    /// False once the receiver is gone.
    open: bool,
    /// When a push last found the mailbox full; cleared when the receiver takes an item.
    full_since: Option<Instant>,
}

/// Why an item was not queued; a closed mailbox gives the item back.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// The mailbox holds `capacity` items (the item is dropped).
    Full {
        /// How long the receiver has taken nothing from the full mailbox.
        full_for: Duration,
    },
    /// The receiver is gone.
    Closed(T),
}

/// The receiving end of a [`Mailbox`]; dropping it closes the mailbox.
#[derive(Debug)]
pub(crate) struct MailboxReceiver<T> {
    shared: Arc<MailboxShared<T>>,
}

impl<T> MailboxShared<T> {
    fn lock(&self) -> MutexGuard<'_, MailboxState<T>> {
        self.state
            .lock()
            .expect("mailbox lock is never held across a panic-prone section")
    }
}

impl<T> Mailbox<T> {
    /// A mailbox for at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> (Self, MailboxReceiver<T>) {
        let shared = Arc::new(MailboxShared {
            state: Mutex::new(MailboxState {
                items: VecDeque::new(),
                open: true,
                full_since: None,
            }),
            ready: Notify::new(),
            capacity,
        });
        (
            Self {
                shared: shared.clone(),
            },
            MailboxReceiver { shared },
        )
    }

    /// Queues `item` without waiting. `now` is asked for only when the mailbox is full, so a
    /// mailbox that keeps up costs no clock reading.
    pub(crate) fn push(&self, item: T, now: impl FnOnce() -> Instant) -> Result<(), Refused<T>> {
        {
            let mut state = self.shared.lock();
            if !state.open {
                return Err(Refused::Closed(item));
            }
            if state.items.len() >= self.shared.capacity {
                let now = now();
                let since = *state.full_since.get_or_insert(now);
                return Err(Refused::Full {
                    full_for: now.saturating_duration_since(since),
                });
            }
            state.items.push_back(item);
        }
        // Stores a permit when the receiver is not waiting, so no wakeup is lost.
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl<T> MailboxReceiver<T> {
    /// The next item, waiting for one. Cancel-safe: an item is only taken when it is returned.
    /// Returns `Some` always; the `Option` lets `select!` patterns read like a channel's.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            self.shared.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        let item = state.items.pop_front();
        if item.is_some() {
            state.full_since = None;
        }
        if state.items.is_empty() && state.items.capacity() > 64 {
            // A burst is over: give its memory back rather than keep it for an idle session.
            state.items = VecDeque::new();
        }
        item
    }
}

impl<T> Drop for MailboxReceiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.open = false;
        state.items.clear();
    }
}
