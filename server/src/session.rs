//! A session's state (owned by its task) and its handle (held by everybody else).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hongyan_shared::{Transport, UserId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hooks::{SessionId, SessionInfo};

/// What other tasks ask a session to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// An encoded packet body.
    Packet(Bytes),
    /// An encoded kickout; TCP and WebSocket sessions close after writing it.
    Kick { body: Bytes, code: i32 },
}

/// Why a packet could not be handed to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The user is not online.
    #[error("user is offline")]
    Offline,
    /// The packet is larger than the receiver's transport allows.
    #[error("packet of {len} bytes exceeds the receiver's {max}-byte limit")]
    TooLarge {
        /// The packet size.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// The receiver's queue is full: it is not keeping up. Nothing was queued; a receiver
    /// whose queue stays full is disconnected (see `SessionHandle::push`).
    #[error("receiver is not keeping up: its queue is full")]
    SlowConsumer,
}

/// The cheap, cloneable way to reach a session from other tasks.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) info: SessionInfo,
    pub(crate) max_outbound: usize,
    outbox: Mailbox<Outbound>,
    /// How long the outbox may stay full, with nothing taken from it, before the session is
    /// closed as stuck.
    stall_limit: Duration,
    close: CancellationToken,
}

impl SessionHandle {
    /// Queues `body` for the session without waiting. A full queue refuses it, so the caller
    /// neither acknowledges nor counts it as sent: one slow consumer must not hold memory or
    /// stall its senders. A brief backlog (a receiver descheduled for a moment) costs only
    /// what does not fit, which QoS senders retransmit; a queue that stays full, with nothing
    /// taken, for `stall_limit` means a receiver that stopped reading, and closes it.
    pub(crate) fn push(&self, out: Outbound) -> Result<(), PushError> {
        let len = match &out {
            Outbound::Packet(b) | Outbound::Kick { body: b, .. } => b.len(),
        };
        if len > self.max_outbound {
            return Err(PushError::TooLarge {
                len,
                max: self.max_outbound,
            });
        }
        match self.outbox.push(out) {
            Ok(()) => Ok(()),
            Err(Refused::Full { full_for, .. }) => {
                if full_for >= self.stall_limit {
                    self.close.cancel();
                }
                Err(PushError::SlowConsumer)
            }
            Err(Refused::Closed(_)) => Err(PushError::Offline),
        }
    }

    /// Asks the session to close.
    pub(crate) fn close(&self) {
        self.close.cancel();
    }
}

/// A session's own state, owned by the task that runs it.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) info: SessionInfo,
    /// The user this session logged in as (the reference's session attribute); it may no
    /// longer be the user's mapped session (§4.1 "displaced").
    pub(crate) user: Option<UserId>,
    /// The `firstLoginTime` answered to this session's login.
    pub(crate) first_login_time: i64,
    /// Set when the server kicked this session while it was the user's online session.
    pub(crate) kick_code: Option<i32>,
    pub(crate) handle: SessionHandle,
}

impl Session {
    /// A new, unauthenticated session and the receiving end of its outbox.
    pub(crate) fn new(
        id: SessionId,
        transport: Transport,
        peer: SocketAddr,
        max_outbound: usize,
        outbox_capacity: usize,
        stall_limit: Duration,
        close: CancellationToken,
    ) -> (Self, MailboxReceiver<Outbound>) {
        let (tx, rx) = Mailbox::new(outbox_capacity);
        let info = SessionInfo {
            id,
            transport,
            peer,
        };
        let handle = SessionHandle {
            info,
            max_outbound,
            outbox: tx,
            stall_limit,
            close,
        };
        (
            Self {
                info,
                user: None,
                first_login_time: -1,
                kick_code: None,
                handle,
            },
            rx,
        )
    }
}

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

    /// Queues `item` without waiting.
    pub(crate) fn push(&self, item: T) -> Result<(), Refused<T>> {
        {
            let mut state = self.shared.lock();
            if !state.open {
                return Err(Refused::Closed(item));
            }
            if state.items.len() >= self.shared.capacity {
                // The clock is read only here, off the path of a mailbox that keeps up.
                let now = Instant::now();
                let since = *state.full_since.get_or_insert(now);
                return Err(Refused::Full {
                    full_for: now - since,
                });
            }
            state.items.push_back(item);
        }
        // Stores a permit when the receiver is not waiting, so no wakeup is lost.
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Whether both are the same mailbox.
    pub(crate) fn same_mailbox(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
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

/// Epoch milliseconds now, for `firstLoginTime` and `sm`.
pub(crate) fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
