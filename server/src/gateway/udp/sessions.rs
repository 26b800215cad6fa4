//! The gateway's table of pseudo-sessions by remote address, shared by the receive loop (which
//! opens them and routes datagrams to their inboxes) and each session's pipe (which marks it
//! logged in and removes it when it ends).

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::table::PseudoSessions;
use crate::limits::AddressSlot;
use crate::mailbox::Mailbox;
use crate::pipe::PipeError;

/// The datagrams waiting for one pseudo-session.
pub(super) type Inbox = Mailbox<Result<Bytes, PipeError>>;

/// What the table keeps for one pseudo-session.
pub(super) struct Admitted {
    /// Its datagrams, until its session reads them.
    pub(super) inbox: Inbox,
    /// Its place in its address's count (`max_udp_sessions_per_ip`), given back with it.
    pub(super) _slot: Option<AddressSlot>,
}

/// The pseudo-sessions by remote address, each with its inbox.
pub(crate) struct UdpSessions {
    pub(super) table: Mutex<PseudoSessions<Admitted>>,
}

impl UdpSessions {
    pub(super) fn lock(&self) -> MutexGuard<'_, PseudoSessions<Admitted>> {
        self.table
            .lock()
            .expect("udp session lock is never held across a panic-prone section")
    }
}
