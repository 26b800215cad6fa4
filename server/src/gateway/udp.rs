//! The UDP gateway (§3.2): one packet per datagram on one socket, and a pseudo-session per
//! remote address, each run by the same session loop as TCP and WebSocket.

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
use crate::log_limit::LogLimit;
use crate::mailbox::{Mailbox, MailboxReceiver, Refused};
use crate::metrics::Refusal;
use crate::pipe::{Pipe, PipeError, PipeProperties};

static REFUSED: LogLimit = LogLimit::warn("udp pseudo-session limit reached; datagram dropped");

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
    map: Mutex<HashMap<SocketAddr, Inbox>>,
}

impl UdpSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Inbox>> {
        self.map
            .lock()
            .expect("udp session lock is never held across a panic-prone section")
    }
}

pub(crate) struct UdpPipe {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    max_outbound: usize,
    inbox: MailboxReceiver<Result<Bytes, PipeError>>,
    sessions: Arc<UdpSessions>,
    me: Inbox,
}

impl Pipe for UdpPipe {
    fn properties(&self) -> PipeProperties {
        PipeProperties::of(Transport::Udp, self.max_outbound)
    }

    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        self.inbox.recv().await
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
        let mut map = self.sessions.lock();
        if map
            .get(&self.peer)
            .is_some_and(|tx| tx.same_mailbox(&self.me))
        {
            map.remove(&self.peer);
        }
    }
}

/// Reads datagrams until shutdown and routes each to its address's pseudo-session, creating
/// one for a new address that sent a well-formed packet.
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
        let existing = sessions.lock().get(&peer).cloned();
        if let Some(inbox) = existing {
            match inbox.push(item, || core.clock.now()) {
                Ok(()) => continue,
                Err(Refused::Full { .. }) => {
                    tracing::debug!(%peer, "udp pseudo-session inbox full; datagram dropped");
                    continue;
                }
                Err(Refused::Closed(item)) => {
                    // The session ended between lookup and send: start afresh below.
                    sessions.lock().remove(&peer);
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
        let mut map = sessions.lock();
        if map.len() >= core.config.max_udp_sessions {
            core.metrics.refused(Refusal::udp_session_limit);
            if REFUSED.allow() {
                tracing::warn!(%peer, "udp pseudo-session limit reached; datagram dropped");
            }
            return;
        }
        map.insert(peer, tx.clone());
    }
    let _ = tx.push(Ok(body), || core.clock.now());
    let pipe = UdpPipe {
        socket: socket.clone(),
        peer,
        max_outbound: core.config.udp_max_outbound,
        inbox: rx,
        sessions: sessions.clone(),
        me: tx,
    };
    let core = core.clone();
    let shutdown = shutdown.clone();
    tracker.spawn(async move { driver::drive(core, pipe, peer, &shutdown).await });
}
