//! [`Core`]: what every protocol rule shares, and the small helpers they all use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hongyan_shared::{DedupWindow, Fingerprint, Instant, Packet, PacketType, UserId};

use hongyan_store::MessageStore;

use super::s2c::S2cQueue;
use super::store_link::StoreLink;
use crate::clock::Clock;
use crate::config::Config;
use crate::hooks::{Hooks, SessionId};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::session::SessionHandle;

/// Whether a session goes on after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep the session.
    Continue,
    /// Close the session.
    Close,
}

/// The server's protocol core: one per server, shared (behind an `Arc`) by every session.
///
/// It holds the configuration, the application's hooks, the online registry, the
/// retransmission queue, the C2S de-duplication window, the message store (if any), the
/// metrics and the clock. Shared state sits behind short `std::sync::Mutex` sections that
/// never span an `.await`.
pub struct Core {
    pub(crate) config: Config,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Registry,
    pub(crate) s2c: S2cQueue,
    pub(crate) metrics: Metrics,
    /// Where messages for users who cannot take them are kept; `None` with `store = off`.
    pub(crate) store: Option<StoreLink>,
    c2s_dedup: Mutex<DedupWindow<(UserId, Fingerprint)>>,
    next_session: AtomicU64,
}

impl Core {
    /// A core for `config` that calls `hooks` and reads the time from `clock`
    /// ([`SystemClock`](crate::clock::SystemClock) in a server,
    /// [`ManualClock`](crate::clock::ManualClock) in a test).
    pub fn new(config: Config, hooks: Arc<dyn Hooks>, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            c2s_dedup: Mutex::new(DedupWindow::new(config.dedup, now)),
            s2c: S2cQueue::new(config.s2c_schedule),
            registry: Registry::default(),
            next_session: AtomicU64::new(1),
            metrics: Metrics::new(&*hooks, now),
            store: None,
            hooks,
            clock,
            config,
        }
    }

    /// The same core keeping messages for users who cannot take them in `store` (opened from
    /// the `store` setting by [`Server::bind`](crate::Server::bind); a test may share one
    /// store between cores, as restarts of one server would). Without it the core keeps
    /// nothing, as with `store = off`.
    pub fn with_store(mut self, store: Arc<dyn MessageStore>) -> Self {
        self.metrics.add_store(store.clone());
        self.store = Some(StoreLink::new(
            store,
            self.config.store_expiry(),
            self.config.replay_window(),
            self.clock.now(),
        ));
        self
    }
    pub(crate) fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Where `user`'s online session is: the one place that answers it, for C2C routing,
    /// keepalive answers, retransmissions, pushes and kicks alike (a cluster will answer it
    /// with a route to another node).
    pub(crate) fn session_of(&self, user: &UserId) -> Option<SessionHandle> {
        self.registry.get(user)
    }

    /// Encodes a packet the server sends, stamping `sm` first when configured.
    pub(crate) fn encode(&self, packet: &mut Packet) -> Bytes {
        if self.config.server_timestamp {
            packet.sm = self.clock.unix_millis();
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

    /// Records a C2S fingerprint seen at `now`; true the first time it is seen.
    pub(crate) fn first_c2s(&self, user: &UserId, fp: &Fingerprint, now: Instant) -> bool {
        let mut dedup = self
            .c2s_dedup
            .lock()
            .expect("dedup lock is never held across a panic-prone section");
        dedup.handle_timeout(now);
        dedup.observe((user.clone(), fp.clone()), now)
    }
}
