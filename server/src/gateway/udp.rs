//! The UDP gateway (§3.2): one packet per datagram on one socket, and a pseudo-session per
//! remote address, each run by the same session loop as TCP and WebSocket.
//!
//! A source address is free to forge, so an address earns a lasting pseudo-session only by
//! logging in. Before that, a datagram from a new address gets a pseudo-session only for as
//! long as answering it takes: the core answers it (a 301, a login verified and answered,
//! never more bytes than the datagram had) and, unless it logged the address in, the session
//! ends with that answer. Those brief sessions have a small table of their own,
//! `max_udp_unauthenticated`, inside `max_udp_sessions`, so datagrams from forged addresses,
//! however many, never take the room of logged-in users. One IP address holds at most
//! `max_udp_sessions_per_ip` pseudo-sessions of either kind (one per source port).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hongyan_shared::{Packet, Transport};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver;
use crate::core::Core;
use crate::limits::AddressSlot;
use crate::log_limit::LogLimit;
use crate::mailbox::{Mailbox, MailboxReceiver, Refused};
use crate::metrics::Refusal;
use crate::pipe::{Pipe, PipeError, PipeProperties};

static REFUSED: LogLimit = LogLimit::warn("udp pseudo-session limit reached; datagram dropped");
static CROWDED: LogLimit =
    LogLimit::warn("address holds max_udp_sessions_per_ip; datagram dropped");

/// Datagrams buffered for one pseudo-session; more are dropped, as a full socket buffer would.
/// Room for a client's whole QoS window and then some (the channel allocates as it fills).
const INBOX: usize = 256;
/// Kernel receive and send buffers of the one gateway socket. Every client shares them, so
/// the defaults (~208 KiB, a few hundred datagrams) overflow under a burst from many clients
/// and silently drop datagrams. Linux caps the request at `net.core.rmem_max`/`wmem_max`.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

type Inbox = Mailbox<Result<Bytes, PipeError>>;

/// The pseudo-sessions by remote address.
#[derive(Default)]
pub(crate) struct UdpSessions {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<SocketAddr, Entry>,
    /// Entries whose address has not logged in.
    unauthenticated: usize,
}

struct Entry {
    inbox: Inbox,
    logged_in: bool,
    /// Its place in its address's count (`max_udp_sessions_per_ip`), given back with it.
    _slot: Option<AddressSlot>,
}

impl UdpSessions {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .expect("udp session lock is never held across a panic-prone section")
    }
}

impl Table {
    /// Forgets `peer`'s entry if it is still `inbox`'s.
    fn remove(&mut self, peer: &SocketAddr, inbox: &Inbox) {
        let current = self
            .entries
            .get(peer)
            .is_some_and(|e| e.inbox.same_mailbox(inbox));
        if current
            && let Some(entry) = self.entries.remove(peer)
            && !entry.logged_in
        {
            self.unauthenticated -= 1;
        }
    }
}

pub(crate) struct UdpPipe {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    max_outbound: usize,
    inbox: MailboxReceiver<Result<Bytes, PipeError>>,
    sessions: Arc<UdpSessions>,
    me: Inbox,
    /// Whether the first datagram has been handed to the core.
    answered: bool,
    /// Whether the address logged in; until then the session lasts one datagram.
    logged_in: bool,
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
        self.socket.send_to(&body, self.peer).await?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        Ok(())
    }

    async fn close(self, _error: Option<PipeError>) {
        // Closing a pseudo-session only forgets it; nothing is sent (§3.2).
        self.sessions.lock().remove(&self.peer, &self.me);
    }

    fn logged_in(&mut self) {
        if self.logged_in {
            return;
        }
        self.logged_in = true;
        let mut table = self.sessions.lock();
        let table = &mut *table;
        if let Some(entry) = table.entries.get_mut(&self.peer)
            && entry.inbox.same_mailbox(&self.me)
            && !entry.logged_in
        {
            entry.logged_in = true;
            table.unauthenticated -= 1;
        }
    }
}

/// Reads datagrams until shutdown and routes each to its address's pseudo-session, opening
/// one, for as long as answering it takes, for a new address that sent a well-formed packet.
pub(crate) async fn serve(
    socket: UdpSocket,
    core: Arc<Core>,
    sessions: Arc<UdpSessions>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let sock = socket2::SockRef::from(&socket);
    if let Err(e) = sock
        .set_recv_buffer_size(SOCKET_BUFFER)
        .and_then(|()| sock.set_send_buffer_size(SOCKET_BUFFER))
    {
        tracing::warn!(error = %e, "cannot size the udp socket buffers");
    }
    tracing::debug!(
        recv = ?sock.recv_buffer_size().ok(),
        send = ?sock.send_buffer_size().ok(),
        "udp socket buffers"
    );
    let socket = Arc::new(socket);
    // One receive buffer for the whole gateway, large enough to see any datagram whole, so an
    // oversized one is recognised instead of silently truncated.
    let mut buf = vec![0u8; 65536];
    let max_inbound = core.config.udp_max_inbound;
    loop {
        let (len, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        let item = if len > max_inbound {
            Err(PipeError::TooLarge {
                len,
                max: max_inbound,
            })
        } else {
            Ok(Bytes::copy_from_slice(&buf[..len]))
        };
        let existing = sessions.lock().entries.get(&peer).map(|e| e.inbox.clone());
        if let Some(inbox) = existing {
            match inbox.push(item, || core.clock.now()) {
                Ok(()) => continue,
                Err(Refused::Full { .. }) => {
                    tracing::debug!(%peer, "udp pseudo-session inbox full; datagram dropped");
                    continue;
                }
                Err(Refused::Closed(item)) => {
                    // The session ended between lookup and send: start afresh below.
                    sessions.lock().remove(&peer, &inbox);
                    open(&core, &socket, &sessions, &shutdown, &tracker, peer, item);
                }
            }
        } else {
            open(&core, &socket, &sessions, &shutdown, &tracker, peer, item);
        }
    }
}

fn open(
    core: &Arc<Core>,
    socket: &Arc<UdpSocket>,
    sessions: &Arc<UdpSessions>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    peer: SocketAddr,
    first: Result<Bytes, PipeError>,
) {
    // Garbage from an unknown address creates nothing and gets no reply.
    let Ok(body) = first else { return };
    if Packet::decode(&body).is_err() {
        return;
    }
    let (tx, rx) = Mailbox::new(INBOX);
    {
        let mut table = sessions.lock();
        let config = &core.config;
        if table.entries.len() >= config.max_udp_sessions
            || table.unauthenticated >= config.max_udp_unauthenticated
        {
            drop(table);
            core.metrics.refused(Refusal::udp_session_limit);
            if REFUSED.allow() {
                tracing::warn!(%peer, "udp pseudo-session limit reached; datagram dropped");
            }
            return;
        }
        let Ok(slot) = core.limits.udp_session(peer.ip()) else {
            drop(table);
            core.metrics.refused(Refusal::address_udp_sessions);
            if CROWDED.allow() {
                tracing::warn!(%peer, "address holds max_udp_sessions_per_ip; datagram dropped");
            }
            return;
        };
        table.entries.insert(
            peer,
            Entry {
                inbox: tx.clone(),
                logged_in: false,
                _slot: slot,
            },
        );
        table.unauthenticated += 1;
    }
    let _ = tx.push(Ok(body), || core.clock.now());
    let pipe = UdpPipe {
        socket: socket.clone(),
        peer,
        max_outbound: core.config.udp_max_outbound,
        inbox: rx,
        sessions: sessions.clone(),
        me: tx,
        answered: false,
        logged_in: false,
    };
    let core = core.clone();
    let shutdown = shutdown.clone();
    tracker.spawn(async move { driver::drive(core, pipe, peer, &shutdown).await });
}
