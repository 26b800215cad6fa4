//! A session's state (owned by its task) and its handle (held by everybody else).

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use hongyan_shared::{Transport, UserId};
use tokio::sync::mpsc;
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
    /// The receiver's queue was full; it is being disconnected.
    #[error("receiver cannot keep up and is being disconnected")]
    SlowConsumer,
}

/// The cheap, cloneable way to reach a session from other tasks.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) info: SessionInfo,
    pub(crate) max_outbound: usize,
    outbox: mpsc::Sender<Outbound>,
    close: CancellationToken,
}

impl SessionHandle {
    /// Queues `body` for the session without waiting. A full queue disconnects the session:
    /// one slow consumer must not hold memory or stall its senders.
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
        match self.outbox.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close.cancel();
                Err(PushError::SlowConsumer)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PushError::Offline),
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
        close: CancellationToken,
    ) -> (Self, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(outbox_capacity);
        let info = SessionInfo {
            id,
            transport,
            peer,
        };
        let handle = SessionHandle {
            info,
            max_outbound,
            outbox: tx,
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

/// Epoch milliseconds now, for `firstLoginTime` and `sm`.
pub(crate) fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
