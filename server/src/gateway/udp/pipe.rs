//! One pseudo-session's pipe: datagrams routed to its address arrive in its inbox; what the
//! core writes is sent, a batch per flush, to that address.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hongyan_shared::Transport;
use tokio::net::UdpSocket;

use super::batch;
use super::sessions::UdpSessions;
use super::table::PseudoSessionId;
use crate::mailbox::MailboxReceiver;
use crate::pipe::{Pipe, PipeError, PipeProperties};

/// Datagrams held for one flush before a send writes through.
const SEND_BATCH: usize = 64;

pub(crate) struct UdpPipe {
    pub(super) socket: Arc<UdpSocket>,
    pub(super) peer: SocketAddr,
    pub(super) max_outbound: usize,
    pub(super) inbox: MailboxReceiver<Result<Bytes, PipeError>>,
    pub(super) sessions: Arc<UdpSessions>,
    pub(super) id: PseudoSessionId,
    /// Written, not yet sent: sent together at the next flush.
    pub(super) out: Vec<Bytes>,
    /// Whether the first datagram has been handed to the core.
    pub(super) answered: bool,
    /// Whether the address logged in; until then the session lasts one datagram.
    pub(super) logged_in: bool,
}

impl Pipe for UdpPipe {
    fn properties(&self) -> PipeProperties {
        PipeProperties::of(Transport::Udp, self.max_outbound)
    }

    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        if self.answered && !self.logged_in {
            // The first datagram was answered and did not log the address in: forget it.
            return None;
        }
        // Marked once a datagram is handed over, not before: this future may be cancelled.
        let datagram = self.inbox.recv().await;
        self.answered = true;
        datagram
    }

    async fn send(&mut self, body: Bytes) -> Result<(), PipeError> {
        self.out.push(body);
        if self.out.len() >= SEND_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let sent = batch::send_all(&self.socket, self.peer, &self.out).await;
        if self.out.capacity() > SEND_BATCH {
            // A burst is over: an idle pseudo-session keeps no large queue.
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        Ok(sent?)
    }

    async fn close(mut self, _error: Option<PipeError>) {
        // What the core wrote is sent (the answer to a datagram that did not log in comes
        // here); closing a pseudo-session otherwise only forgets it, nothing else is sent
        // (§3.2).
        let _ = self.flush().await;
        self.sessions.lock().remove(&self.peer, self.id);
    }

    fn logged_in(&mut self) {
        if !self.logged_in {
            self.logged_in = true;
            self.sessions.lock().logged_in(&self.peer, self.id);
        }
    }
}
