//! The logic core: every protocol decision the server makes, shared by all gateways.
//!
//! A gateway turns bytes into packet bodies and hands each to [`Core::on_packet`] together with
//! the session's state and its [`Link`](crate::gateway::Link); the core answers on the link,
//! reaches other sessions through the registry, and says whether the session goes on.
//!
//! - [`dispatch`]: the type table (§4.1), keepalive, echo, logout, 301 (§4.5), close (§4.4).
//! - [`login`]: login, verification, the duplicate-login rules (§4.2, §4.3).
//! - [`messages`]: C2S, C2C and acknowledgements (§6.4).
//! - [`s2c`]: the server's retransmission queue for QoS packets it sends (§6.2).

mod dispatch;
mod login;
mod messages;
pub(crate) mod s2c;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hongyan_shared::{DedupWindow, Fingerprint, Instant, Packet, PacketType, UserId};

use crate::config::Config;
use crate::hooks::{Hooks, SessionId};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::session::epoch_millis;

/// Whether a session goes on after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep the session.
    Continue,
    /// Close the session.
    Close,
}

/// Shared server state; one per server, behind an `Arc`.
pub(crate) struct Core {
    pub(crate) config: Config,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) registry: Registry,
    pub(crate) s2c: s2c::S2cQueue,
    pub(crate) metrics: Metrics,
    c2s_dedup: Mutex<DedupWindow<(UserId, Fingerprint)>>,
    next_session: AtomicU64,
}

impl Core {
    pub(crate) fn new(config: Config, hooks: Arc<dyn Hooks>) -> Self {
        let now = Instant::now();
        Self {
            c2s_dedup: Mutex::new(DedupWindow::new(config.dedup, now)),
            s2c: s2c::S2cQueue::new(config.s2c_schedule),
            registry: Registry::default(),
            next_session: AtomicU64::new(1),
            metrics: Metrics::new(&*hooks),
            hooks,
            config,
        }
    }

    pub(crate) fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Encodes a packet the server sends, stamping `sm` first when configured.
    pub(crate) fn encode(&self, packet: &mut Packet) -> Bytes {
        if self.config.server_timestamp {
            packet.sm = epoch_millis();
        }
        let mut out = Vec::new();
        packet.encode_into(&mut out);
        self.metrics.packet_out(packet.kind, out.len());
        Bytes::from(out)
    }

    /// A retransmission carries a fresh `sm` when stamping is on (§6.2); otherwise the very
    /// bytes of the first transmission. Counts the retransmission and the packet it sends (the
    /// retransmission queue holds data packets only).
    pub(crate) fn restamp(&self, body: Bytes) -> Bytes {
        self.metrics.retransmission();
        if self.config.server_timestamp
            && let Ok(mut packet) = Packet::decode(&body)
        {
            return self.encode(&mut packet);
        }
        self.metrics.packet_out(PacketType::CommonData, body.len());
        body
    }

    /// Records a C2S fingerprint; true the first time it is seen.
    fn first_c2s(&self, user: &UserId, fp: &Fingerprint) -> bool {
        let mut dedup = self
            .c2s_dedup
            .lock()
            .expect("dedup lock is never held across a panic-prone section");
        let now = Instant::now();
        dedup.handle_timeout(now);
        dedup.observe((user.clone(), fp.clone()), now)
    }
}
