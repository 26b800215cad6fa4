//! The UDP gateway (§3.2): one packet per datagram on one socket, and a pseudo-session per
//! remote address, each run by the same session loop as TCP and WebSocket.
//!
//! A source address is free to forge, so an address earns a lasting pseudo-session only by
//! logging in ([`table`]). Before that, a datagram from a new address gets a pseudo-session
//! only for as long as answering it takes: the core answers it (a 301, a login verified and
//! answered, never more bytes than the datagram had) and, unless it logged the address in,
//! the session ends with that answer. Those brief sessions have a small share of their own,
//! `max_udp_unauthenticated`, inside `max_udp_sessions`, so datagrams from forged addresses,
//! however many, never take the room of logged-in users. One IP address holds at most
//! `max_udp_sessions_per_ip` pseudo-sessions of either kind (one per source port).
//!
//! - [`table`]: the address → pseudo-session table, without the socket.
//! - `pipe`: one pseudo-session's pipe: its inbox, and its replies sent a batch per flush.
//! - `batch`: many datagrams per system call (`recvmmsg`, `sendmmsg`).

mod batch;
mod pipe;
mod sessions;
pub(crate) mod table;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hongyan_shared::Packet;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::pipe::UdpPipe;
use self::sessions::{Admitted, UdpSessions};
use self::table::{PseudoSessions, UdpLimits, Unopened, inbound_datagram};
use super::driver;
use crate::core::Core;
use crate::log_limit::LogLimit;
use crate::mailbox::{Mailbox, Refused};
use crate::metrics::Refusal;
use crate::pipe::PipeError;

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

/// Reads datagrams until shutdown, many per system call, and routes each to its address's
/// pseudo-session, opening one, for as long as answering it takes, for a new address that
/// sent a well-formed packet.
pub(crate) async fn serve(
    socket: UdpSocket,
    core: Arc<Core>,
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
    let sessions = Arc::new(UdpSessions {
        table: Mutex::new(PseudoSessions::new(UdpLimits {
            sessions: core.config.max_udp_sessions,
            unauthenticated: core.config.max_udp_unauthenticated,
        })),
    });
    let max_inbound = core.config.udp_max_inbound;
    // Buffers one byte larger than the limit, so a datagram just over it is seen to be.
    let mut received = batch::Received::new(max_inbound + 1);
    let gateway = Gateway {
        core,
        socket,
        sessions,
        shutdown,
        tracker,
    };
    loop {
        tokio::select! {
            () = gateway.shutdown.cancelled() => return,
            result = received.recv(&gateway.socket) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            }
        }
        for (peer, len, datagram) in received.datagrams() {
            gateway.route(peer, inbound_datagram(datagram, len, max_inbound));
        }
    }
}

/// What routing a datagram needs.
struct Gateway {
    core: Arc<Core>,
    socket: Arc<UdpSocket>,
    sessions: Arc<UdpSessions>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Gateway {
    /// Hands `item` to `peer`'s pseudo-session, opening one if `peer` has none.
    fn route(&self, peer: SocketAddr, item: Result<Bytes, PipeError>) {
        let existing = self
            .sessions
            .lock()
            .get(&peer)
            .map(|(id, admitted)| (id, admitted.inbox.clone()));
        let Some((id, inbox)) = existing else {
            return self.open(peer, item);
        };
        match inbox.push(item, || self.core.clock.now()) {
            Ok(()) => {}
            Err(Refused::Full { .. }) => {
                tracing::debug!(%peer, "udp pseudo-session inbox full; datagram dropped");
            }
            Err(Refused::Closed(item)) => {
                // The session ended between lookup and push: start afresh.
                self.sessions.lock().remove(&peer, id);
                self.open(peer, item);
            }
        }
    }

    fn open(&self, peer: SocketAddr, first: Result<Bytes, PipeError>) {
        let Ok(slot) = self.core.limits.udp_session(peer.ip()) else {
            // Garbage is dropped silently, as the table would; only a packet is refused.
            if first
                .as_ref()
                .is_ok_and(|body| Packet::decode(body).is_ok())
            {
                self.core.metrics.refused(Refusal::address_udp_sessions);
                if CROWDED.allow() {
                    tracing::warn!(%peer, "address holds max_udp_sessions_per_ip; datagram dropped");
                }
            }
            return;
        };
        let (tx, rx) = Mailbox::new(INBOX);
        let admitted = Admitted {
            inbox: tx.clone(),
            _slot: slot,
        };
        let opened = self.sessions.lock().open(peer, &first, admitted);
        let id = match opened {
            Ok(id) => id,
            // Garbage from an unknown address creates nothing and gets no reply.
            Err(Unopened::NotAPacket) => return,
            Err(Unopened::SessionLimit | Unopened::UnauthenticatedLimit) => {
                self.core.metrics.refused(Refusal::udp_session_limit);
                if REFUSED.allow() {
                    tracing::warn!(%peer, "udp pseudo-session limit reached; datagram dropped");
                }
                return;
            }
        };
        let _ = tx.push(first, || self.core.clock.now());
        let pipe = UdpPipe {
            socket: self.socket.clone(),
            peer,
            max_outbound: self.core.config.udp_max_outbound,
            inbox: rx,
            sessions: self.sessions.clone(),
            id,
            out: Vec::new(),
            answered: false,
            logged_in: false,
        };
        let core = self.core.clone();
        let shutdown = self.shutdown.clone();
        self.tracker
            .spawn(async move { driver::drive(core, pipe, peer, &shutdown).await });
    }
}
