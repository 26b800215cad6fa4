//! [`Core`]: what every protocol rule shares, and the small helpers they all use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hongyan_shared::{DedupWindow, Fingerprint, Instant, Packet, PacketType, UserId};

use hongyan_store::MessageStore;

use super::history::HistoryLink;
use super::queued::QueuedBytes;
use super::s2c::{InFlightLimits, S2cQueue};
use super::store_link::StoreLink;
use crate::clock::Clock;
use crate::cluster::{Cluster, SingleNode};
use crate::config::{Config, HISTORY_FLUSH_DELAY};
use crate::hooks::{Hooks, SessionId};
use crate::limits::Limits;
use crate::metrics::{Metrics, Refusal};
use crate::registry::Registry;
use crate::session::{Outbound, PushError, SessionHandle};

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
/// retransmission queue, the count of bytes held for delivery, the C2S de-duplication window,
/// the message store (if any), the metrics and the clock. Shared state sits behind short
/// `std::sync::Mutex` sections that never span an `.await`.
pub struct Core {
    pub(crate) config: Config,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Registry,
    pub(crate) s2c: S2cQueue,
    pub(crate) queued: QueuedBytes,
    pub(crate) metrics: Metrics,
    /// Where messages for users who cannot take them are kept; `None` with `store = off`.
    pub(crate) store: Option<StoreLink>,
    /// Conversation history; `None` without a store, or with `history_retention` 0.
    pub(crate) history: Option<HistoryLink>,
    /// The abuse limits: per session, per address, server-wide.
    pub(crate) limits: Limits,
    /// How users on other nodes are reached ([`SingleNode`] without a cluster).
    pub(crate) cluster: Arc<dyn Cluster>,
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
            s2c: S2cQueue::new(
                config.s2c_schedule,
                InFlightLimits {
                    total: config.max_in_flight,
                    per_user: config.max_in_flight_per_user,
                    bytes_per_user: config.max_in_flight_bytes_per_user,
                },
            ),
            queued: QueuedBytes::new(config.max_queued_bytes),
            registry: Registry::default(),
            next_session: AtomicU64::new(1),
            metrics: Metrics::new(&*hooks, now),
            limits: Limits::new(config.limits(), clock.clone()),
            store: None,
            cluster: Arc::new(SingleNode),
            history: None,
            hooks,
            clock,
            config,
        }
    }

    /// The same core keeping messages for users who cannot take them in `store` (opened from
    /// the `store` setting by [`Server::bind`](crate::Server::bind); a test may share one
    /// store between cores, as restarts of one server would), and conversation history there
    /// unless `history_retention` is 0. Without it the core keeps nothing, as with
    /// `store = off`.
    pub fn with_store(mut self, store: Arc<dyn MessageStore>) -> Self {
        self.metrics.add_store(store.clone());
        let now = self.clock.now();
        self.store = Some(StoreLink::new(
            store,
            self.config.store_expiry(),
            self.config.replay_window(),
            now,
        ));
        if !self.config.history_retention.is_zero() {
            let clustered = self.config.cluster.is_some();
            let flush_delay = self.config.history_flush_delay.unwrap_or(if clustered {
                Duration::ZERO
            } else {
                HISTORY_FLUSH_DELAY
            });
            let history = HistoryLink::new(
                self.config.history_retention,
                flush_delay,
                self.config.dedup.capacity,
                now,
            );
            // Two nodes of a cluster accept messages of one conversation side by side: the
            // shared store numbers them, not a counter in one node's memory.
            self.history = Some(if clustered {
                history.numbered_by_store()
            } else {
                history
            });
        }
        self
    }

    /// The same core as one node of a cluster: users it does not hold are reached through
    /// `cluster` (which the server attaches this core to once it is shared).
    pub fn with_cluster(mut self, cluster: Arc<dyn Cluster>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Whether other nodes may hold users (a cluster); false for one node.
    pub(crate) fn clustered(&self) -> bool {
        self.cluster.node_name().is_some()
    }

    pub(crate) fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Where `user`'s online session is on this node: the one place that answers it, for C2C
    /// routing, keepalive answers, retransmissions, pushes and kicks alike. A user it does not
    /// hold may be on another node of a cluster, which the cluster seam is asked about.
    pub(crate) fn session_of(&self, user: &UserId) -> Option<SessionHandle> {
        self.registry.get(user)
    }

    /// Encodes a packet the server sends, stamping `sm` first when configured.
    pub(crate) fn encode(&self, packet: &mut Packet) -> Bytes {
        Bytes::from(self.encode_vec(packet))
    }

    /// [`encode`](Self::encode) as a vector, for a body to [`hold`](Self::hold).
    pub(crate) fn encode_vec(&self, packet: &mut Packet) -> Vec<u8> {
        if self.config.server_timestamp {
            packet.sm = self.clock.unix_millis();
        }
        let mut out = Vec::new();
        packet.encode_into(&mut out);
        self.metrics.packet_out(packet.kind, out.len());
        out
    }

    /// A body for other sessions' queues and the retransmission queue, counted against
    /// `max_queued_bytes` for as long as any of them holds it; refused (and counted) if it
    /// does not fit. Messages are; kickouts and keepalive answers, small and few, are not.
    pub(crate) fn hold(&self, body: Vec<u8>) -> Result<Bytes, PushError> {
        self.queued.hold(body).ok_or_else(|| {
            self.metrics.refused(Refusal::queued_bytes);
            PushError::Overloaded
        })
    }

    /// Queues `out` for another session, counting a refusal for a full queue.
    pub(crate) fn push(&self, to: &SessionHandle, out: Outbound) -> Result<(), PushError> {
        let pushed = to.push(out, &*self.clock);
        if pushed == Err(PushError::SlowConsumer) {
            self.metrics.refused(Refusal::outbox_full);
        }
        pushed
    }

    /// A retransmission carries a fresh `sm` when stamping is on (§6.2); otherwise the very
    /// bytes of the first transmission. Counts the retransmission and the packet it sends (the
    /// retransmission queue holds data packets only). `None` if a fresh body does not fit in
    /// `max_queued_bytes`: that retransmission is skipped.
    pub(crate) fn restamp(&self, body: Bytes) -> Option<Bytes> {
        self.metrics.retransmission();
        if self.config.server_timestamp
            && let Ok(mut packet) = Packet::decode(&body)
        {
            let fresh = self.encode_vec(&mut packet);
            return self.hold(fresh).ok();
        }
        self.metrics.packet_out(PacketType::CommonData, body.len());
        Some(body)
    }

    fn c2s_dedup(&self) -> MutexGuard<'_, DedupWindow<(UserId, Fingerprint)>> {
        self.c2s_dedup
            .lock()
            .expect("dedup lock is never held across a panic-prone section")
    }

    /// Records a C2S fingerprint seen at `now`; true the first time it is seen. The window
    /// counts the key's bytes towards its byte bound.
    pub(crate) fn first_c2s(&self, user: &UserId, fp: &Fingerprint, now: Instant) -> bool {
        let mut dedup = self.c2s_dedup();
        dedup.handle_timeout(now);
        let key_bytes = user.as_str().len() + fp.as_str().len();
        dedup.observe_sized((user.clone(), fp.clone()), key_bytes, now)
    }

    /// The C2S window's next sweep, `None` while it is empty.
    pub(crate) fn poll_c2s_sweep(&self) -> Option<Instant> {
        let dedup = self.c2s_dedup();
        (!dedup.is_empty()).then(|| dedup.poll_timeout())
    }

    /// Sweeps the C2S window if its sweep is due at `now`.
    pub(crate) fn sweep_c2s(&self, now: Instant) {
        self.c2s_dedup().handle_timeout(now);
    }

    /// Fingerprints in the C2S window, and what they cost.
    pub(crate) fn c2s_window(&self) -> (usize, usize) {
        let dedup = self.c2s_dedup();
        (dedup.len(), dedup.bytes())
    }
}
