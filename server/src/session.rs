//! A session's state (owned by the task that runs it), its handle (held by everybody else) and
//! its outbox between the two.

use std::time::Duration;

use bytes::Bytes;
use hongyan_shared::{Instant, Packet, UserId};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::hooks::SessionInfo;
use crate::lane::Lane;
use crate::limits::SessionRate;
use crate::mailbox::{Mailbox, MailboxReceiver, Refused};
use crate::pipe::PipeProperties;

/// Something another task asked a session to write: an encoded packet, or a kickout, which
/// the core carries out by the rules of the session's pipe.
#[derive(Debug)]
pub struct Outbound {
    pub(crate) kind: OutboundKind,
    /// The login of the session it was queued for, stamped by [`SessionHandle::push`]: a
    /// session that has since logged out, or in as somebody else, drops it unwritten.
    pub(crate) login: Login,
}

/// Which of a session's logins something was meant for. A session may log in as one user,
/// then as another (a UDP pseudo-session is its address, and an address can pass from one
/// client to another); what other tasks queued for the first user must never be written to
/// the second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Login(u32);

impl Login {
    /// The login after this one.
    fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

#[derive(Debug)]
pub(crate) enum OutboundKind {
    /// An encoded packet body.
    Packet(Bytes),
    /// An encoded kickout with its code.
    Kick { body: Bytes, code: i32 },
}

impl Outbound {
    pub(crate) fn packet(body: Bytes) -> Self {
        Self {
            kind: OutboundKind::Packet(body),
            login: Login::default(),
        }
    }

    pub(crate) fn kick(body: Bytes, code: i32) -> Self {
        Self {
            kind: OutboundKind::Kick { body, code },
            login: Login::default(),
        }
    }

    fn len(&self) -> usize {
        match &self.kind {
            OutboundKind::Packet(body) | OutboundKind::Kick { body, .. } => body.len(),
        }
    }
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
    /// whose queue stays full, with nothing taken, for the configured slow-consumer stall is
    /// disconnected.
    #[error("receiver is not keeping up: its queue is full")]
    SlowConsumer,
    /// The server already holds as much as it may for this receiver, or for all of them:
    /// QoS packets awaiting acknowledgement (`max_in_flight_per_user`,
    /// `max_in_flight_bytes_per_user`, `max_in_flight`) or bytes queued for delivery
    /// (`max_queued_bytes`). Nothing was queued.
    #[error("the server holds as much as it may for this receiver")]
    Overloaded,
    /// The receiver cannot take the message now and the server's message store refused it
    /// (the receiver's limit, the message's size, or the store is failing): it was not kept.
    #[error("receiver cannot take the message now, and the message store refused it")]
    NotStored,
}

/// A C2C message in a session's lane, with the handle of the login that sent it: its
/// pseudo-ACK is queued for that login only, whoever the session is by the time it comes.
#[derive(Debug)]
pub(crate) struct HandedOff {
    pub(crate) packet: Packet,
    pub(crate) sender: SessionHandle,
}

/// The cheap, cloneable way to reach a session from other tasks.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) info: SessionInfo,
    /// Whether the session's pipe is connection-less (a UDP pseudo-session).
    pub(crate) connectionless: bool,
    /// The session opted in to conversation sync (§9.4): what is sent to it may carry
    /// hongyan's history keys. A plain copy in each handle (it fits beside `connectionless`,
    /// so a session is no larger for it): the first sync request sets the session's own and
    /// the registry's together; a handle cloned just before misses a message's tag, and the
    /// client finds that message in the history.
    pub(crate) synced: bool,
    /// The session's login when this handle was cloned: what it queues is for that login only.
    login: Login,
    max_outbound: usize,
    outbox: Mailbox<Outbound>,
    /// How long the outbox may stay full, with nothing taken from it, before the session is
    /// closed as stuck.
    stall_limit: Duration,
    close: CancellationToken,
}

impl SessionHandle {
    /// Whether the session opted in to conversation sync (§9.4).
    pub(crate) fn is_synced(&self) -> bool {
        self.synced
    }

    /// Queues `out` for the session without waiting. A full queue refuses it, so the caller
    /// neither acknowledges nor counts it as sent: one slow consumer must not hold memory or
    /// stall its senders. A brief backlog (a receiver descheduled for a moment) costs only
    /// what does not fit, which QoS senders retransmit; a queue that stays full, with nothing
    /// taken, for `stall_limit` means a receiver that stopped reading, and closes it. `clock`
    /// is read only when the queue is full.
    pub(crate) fn push(&self, mut out: Outbound, clock: &dyn Clock) -> Result<(), PushError> {
        out.login = self.login;
        let len = out.len();
        if len > self.max_outbound {
            return Err(PushError::TooLarge {
                len,
                max: self.max_outbound,
            });
        }
        match self.outbox.push(out, || clock.now()) {
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

/// The receiving end of a session's outbox: what other tasks queued for it, to hand to
/// [`Core::handle_outbound`](crate::engine::Core::handle_outbound).
#[derive(Debug)]
pub struct Outbox(MailboxReceiver<Outbound>);

impl Outbox {
    /// The next item, waiting for one. Cancel-safe. Returns `Some` always; the `Option` lets
    /// `select!` patterns read like a channel's.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.0.recv().await
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.0.try_recv()
    }
}

/// One session's protocol state, owned by the task that runs it. Opened by
/// [`Core::open_session`](crate::engine::Core::open_session).
#[derive(Debug)]
pub struct Session {
    pub(crate) properties: PipeProperties,
    /// The user this session logged in as (the reference's session attribute); it may no
    /// longer be the user's mapped session (§4.1 "displaced").
    pub(crate) user: Option<UserId>,
    /// The `firstLoginTime` answered to this session's login.
    pub(crate) first_login_time: i64,
    /// Set when the server kicked this session while it was the user's online session.
    pub(crate) kick_code: Option<i32>,
    /// When a packet last arrived: idle expiry counts from here.
    pub(crate) last_inbound: Instant,
    /// While the session has no user: when it must have logged in. Nothing moves it.
    pub(crate) login_deadline: Option<Instant>,
    /// How long the session may stay silent.
    pub(crate) idle_expiry: Duration,
    /// Its message budget, from its login on (`max_messages_per_sec`), and its read pause;
    /// `None` before a login and without a limit. Boxed: an idle session carries 8 bytes.
    pub(crate) rate: Option<SessionRate>,
    /// C2C messages handed off to be relayed in order while the loop reads on (in a cluster,
    /// for receivers on other nodes); `None` while there are none. Boxed: 8 bytes otherwise.
    pub(crate) lane: Option<Box<Lane<HandedOff>>>,
    pub(crate) handle: SessionHandle,
}

/// How a session is opened: everything [`Session::new`] needs besides its own id and pipe.
pub(crate) struct SessionLimits {
    pub(crate) outbox_capacity: usize,
    pub(crate) stall_limit: Duration,
    pub(crate) idle_expiry: Duration,
    pub(crate) login_timeout: Duration,
}

impl Session {
    /// A new, unauthenticated session and the receiving end of its outbox.
    pub(crate) fn new(
        info: SessionInfo,
        properties: PipeProperties,
        limits: SessionLimits,
        close: CancellationToken,
        now: Instant,
    ) -> (Self, Outbox) {
        let (tx, rx) = Mailbox::new(limits.outbox_capacity);
        let handle = SessionHandle {
            info,
            connectionless: properties.connectionless,
            max_outbound: properties.max_outbound,
            outbox: tx,
            stall_limit: limits.stall_limit,
            close,
            synced: false,
            login: Login::default(),
        };
        let session = Self {
            properties,
            user: None,
            first_login_time: -1,
            kick_code: None,
            last_inbound: now,
            login_deadline: Some(now + limits.login_timeout),
            idle_expiry: limits.idle_expiry,
            rate: None,
            lane: None,
            handle,
        };
        (session, Outbox(rx))
    }

    /// What hooks are told about this session.
    pub fn info(&self) -> SessionInfo {
        self.handle.info
    }

    /// The user this session logged in as, if it did (it may since have been displaced).
    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    /// Whether somebody asked the session to close (a duplicate login that could not tell it,
    /// an outbox stalled for too long, shutdown): its loop should end it.
    pub fn is_closing(&self) -> bool {
        self.handle.close.is_cancelled()
    }

    /// The session's user is gone (logged out, kicked, or logging in as somebody else):
    /// whatever was queued for it, or is queued by handles cloned before now, is dropped
    /// unwritten ([`Outbound::login`]).
    pub(crate) fn end_login(&mut self) {
        self.handle.login = self.handle.login.next();
    }

    /// Whether `out` was queued for the session's current login.
    pub(crate) fn is_for_this_login(&self, out: &Outbound) -> bool {
        out.login == self.handle.login
    }

    /// Whether the session handed messages off that are not relayed yet: its loop runs
    /// [`Core::drive_lane`](crate::engine::Core::drive_lane) until this is false.
    pub fn has_handed_off(&self) -> bool {
        self.lane.is_some()
    }

    /// The token that closes the session (cancelled by [`SessionHandle::close`]).
    pub(crate) fn close_token(&self) -> &CancellationToken {
        &self.handle.close
    }
}
