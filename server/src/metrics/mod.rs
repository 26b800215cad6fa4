//! The server's counters and gauges, exported at `/metrics` and summarised by `/api/stats`.
//!
//! Each server owns its metrics (a `prometheus-client` [`Registry`]) rather than writing to a
//! process-wide recorder: two servers in one process, as in the tests, never mix their numbers,
//! and `/api/stats` reads the very counters `/metrics` exports.
//!
//! Every label value is known up front, so each labelled series is created once, here, and the
//! hot path only adds to an atomic: no lookup, no lock, no allocation per packet. Gauges that
//! mirror state owned elsewhere (online users, QoS in flight) are read from their owners when
//! scraped, so the hot path does not maintain them twice.
//!
//! All names carry the `hongyan_` prefix; counters get the `_total` suffix when encoded.

pub(crate) mod labels;
mod store;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use hongyan_shared::{Instant, PacketType, Transport};
use hongyan_store::MessageStore;
use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry, Unit};

use self::labels::{
    ByDirection, ByKickReason, ByReceivedType, ByRefusal, ByResult, BySentType, ByStored,
    ByTransport, LabelValue, PerValue, Received, Sent,
};
pub(crate) use self::labels::{Direction, KickReason, LoginResult, PerTransport, Refusal, StoreOp};
pub(crate) use self::store::StoreMetrics;
use crate::hooks::Hooks;
use crate::tls::metrics::TlsMetrics;

/// One labelled series per value of `V`, registered under `name` with label sets made by
/// `labels`.
fn family<V, S, M>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    labels: impl Fn(V) -> S,
) -> PerValue<V, M>
where
    V: LabelValue,
    S: EncodeLabelSet + Clone + Eq + Hash + Debug + Send + Sync + 'static,
    M: Default + Clone + TypedMetric,
    Family<S, M>: Metric,
{
    let family = Family::<S, M>::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    PerValue::new(|value| family.get_or_create(&labels(value)).clone())
}

/// One series per transport, registered under `name`.
fn per_transport(registry: &mut Registry, name: &str, help: &str) -> PerTransport<Gauge> {
    let family = Family::<ByTransport, Gauge>::default();
    registry.register(name, help, family.clone());
    PerTransport::from_fn(|transport| {
        family
            .get_or_create(&ByTransport {
                transport: transport.into(),
            })
            .clone()
    })
}

/// One unlabelled counter registered under `name`.
fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let counter = Counter::default();
    registry.register(name, help, counter.clone());
    counter
}

/// A server's metrics. Created with the core; cheap to update from any task.
pub(crate) struct Metrics {
    registry: Registry,
    started: Instant,
    connections: PerTransport<Gauge>,
    http_connections: Gauge,
    online: PerTransport<Gauge>,
    qos_in_flight: Gauge,
    queued_bytes: Gauge,
    logins: PerValue<LoginResult, Counter>,
    packets_in: PerValue<Received, Counter>,
    bytes_in: PerValue<Received, Counter>,
    packets_out: PerValue<Sent, Counter>,
    bytes_out: PerValue<Sent, Counter>,
    messages: PerValue<Direction, Counter>,
    offline: PerValue<bool, Counter>,
    retransmissions: Counter,
    qos_delivered: Counter,
    qos_lost: Counter,
    dedup_hits: Counter,
    kickouts: PerValue<KickReason, Counter>,
    refused: PerValue<Refusal, Counter>,
    /// The message store's series, when the server has a store.
    pub(crate) store: Option<StoreMetrics>,
    /// TLS handshakes and certificate reloads (all zero without TLS).
    pub(crate) tls: TlsMetrics,
}

impl Metrics {
    /// Creates every series and lets `hooks` add their own (see [`Hooks::register_metrics`]).
    pub(crate) fn new(hooks: &dyn Hooks, started: Instant) -> Self {
        let mut registry = Registry::with_prefix("hongyan");
        let r = &mut registry;
        let connections = per_transport(
            r,
            "connections",
            "Open sessions: TCP and WebSocket connections, UDP pseudo-sessions, HTTP sessions",
        );
        let http_connections = Gauge::default();
        r.register(
            "http_connections",
            "Open HTTP connections (a WebSocket counts under hongyan_connections once upgraded)",
            http_connections.clone(),
        );
        let online = per_transport(
            r,
            "online_users",
            "Users online, by the transport of their session",
        );
        let qos_in_flight = Gauge::default();
        r.register(
            "qos_in_flight",
            "Server-to-client QoS packets awaiting acknowledgement",
            qos_in_flight.clone(),
        );
        let queued_bytes = Gauge::default();
        r.register_with_unit(
            "queued",
            "Bytes of packets held for delivery: queued for sessions or awaiting a QoS \
             acknowledgement (bounded by max_queued_bytes)",
            Unit::Bytes,
            queued_bytes.clone(),
        );
        let logins = family(r, "logins", "Logins by result", None, |result| ByResult {
            result,
        });
        let packets_in = family(r, "packets_received", "Packets received", None, |r#type| {
            ByReceivedType { r#type }
        });
        let bytes_in = family(
            r,
            "received",
            "Packet body bytes received (framing excluded)",
            Some(Unit::Bytes),
            |r#type| ByReceivedType { r#type },
        );
        let packets_out = family(
            r,
            "packets_sent",
            "Packets the server encoded for sending (retransmissions included)",
            None,
            |r#type| BySentType { r#type },
        );
        let bytes_out = family(
            r,
            "sent",
            "Packet body bytes encoded for sending (framing excluded)",
            Some(Unit::Bytes),
            |r#type| BySentType { r#type },
        );
        let messages = family(
            r,
            "messages",
            "Application messages: c2s once per fingerprint, c2c per transmission received, \
             s2c pushed by the application",
            None,
            |direction| ByDirection { direction },
        );
        let offline = family(
            r,
            "offline_messages",
            "C2C messages their receiver could not take at once (offline, its queue full, or \
             stored messages replayed to it first), by whether they were kept (by the message \
             store, or without one by the application)",
            None,
            |stored| ByStored { stored },
        );
        let retransmissions = counter(
            r,
            "qos_retransmissions",
            "Server-to-client QoS packets sent again for want of an acknowledgement",
        );
        let qos_delivered = counter(
            r,
            "qos_delivered",
            "Server-to-client QoS packets acknowledged by their receiver",
        );
        let qos_lost = counter(
            r,
            "qos_lost",
            "Server-to-client QoS packets not acknowledged after the last retransmission",
        );
        let dedup_hits = counter(
            r,
            "dedup_hits",
            "Client-to-server QoS messages seen again (acknowledged, not delivered twice)",
        );
        let kickouts = family(
            r,
            "kickouts",
            "Sessions kicked out, by reason",
            None,
            |reason| ByKickReason { reason },
        );
        let refused = family(
            r,
            "refused",
            "Connections, upgrades, logins, datagrams and packets the server turned away or refused, by reason",
            None,
            |reason| ByRefusal { reason },
        );
        let tls = TlsMetrics::default();
        tls.register(r);
        hooks.register_metrics(&mut registry);
        Self {
            registry,
            started,
            connections,
            http_connections,
            online,
            qos_in_flight,
            queued_bytes,
            logins,
            packets_in,
            bytes_in,
            packets_out,
            bytes_out,
            messages,
            offline,
            retransmissions,
            qos_delivered,
            qos_lost,
            dedup_hits,
            kickouts,
            refused,
            store: None,
            tls,
        }
    }

    /// Adds the message store's series (`hongyan_store_*`), reading `store`'s own counters
    /// when scraped.
    pub(crate) fn add_store(&mut self, store: Arc<dyn MessageStore>) {
        self.store = Some(StoreMetrics::new(&mut self.registry, store));
    }

    /// Counts an open session until the returned guard is dropped.
    pub(crate) fn connection(&self, transport: Transport) -> ConnectionGuard {
        let gauge = self.connections.get(transport).clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// Counts an open HTTP connection until the returned guard is dropped.
    pub(crate) fn http_connection(&self) -> ConnectionGuard {
        self.http_connections.inc();
        ConnectionGuard(self.http_connections.clone())
    }

    /// The server turned something away for `reason`.
    pub(crate) fn refused(&self, reason: Refusal) {
        self.refused.get(reason).inc();
    }

    /// A packet body of `len` bytes arrived; `kind` is `None` if it did not decode.
    pub(crate) fn packet_in(&self, kind: Option<PacketType>, len: usize) {
        let kind = Received::from(kind);
        self.packets_in.get(kind).inc();
        self.bytes_in.get(kind).inc_by(len as u64);
    }

    /// The server encoded a packet body of `len` bytes to send.
    pub(crate) fn packet_out(&self, kind: PacketType, len: usize) {
        let kind = Sent::from(kind);
        self.packets_out.get(kind).inc();
        self.bytes_out.get(kind).inc_by(len as u64);
    }

    /// An application message went `direction`.
    pub(crate) fn message(&self, direction: Direction) {
        self.messages.get(direction).inc();
    }

    /// A C2C message could not be handed to its receiver at once; it was `stored` or not.
    pub(crate) fn offline(&self, stored: bool) {
        self.offline.get(stored).inc();
    }

    /// A login ended with `result`.
    pub(crate) fn login(&self, result: LoginResult) {
        self.logins.get(result).inc();
    }

    /// A session was kicked out.
    pub(crate) fn kickout(&self, reason: KickReason) {
        self.kickouts.get(reason).inc();
    }

    /// The retransmission queue sent a packet again.
    pub(crate) fn retransmission(&self) {
        self.retransmissions.inc();
    }

    /// A server-to-client QoS packet was acknowledged.
    pub(crate) fn qos_delivered(&self) {
        self.qos_delivered.inc();
    }

    /// Server-to-client QoS packets were given up on.
    pub(crate) fn qos_lost(&self, count: usize) {
        self.qos_lost.inc_by(count as u64);
    }

    /// A client-to-server QoS message was a duplicate.
    pub(crate) fn dedup_hit(&self) {
        self.dedup_hits.inc();
    }

    /// A snapshot at `now` for `/api/stats`; `online` and `in_flight` come from their owners.
    pub(crate) fn snapshot(
        &self,
        now: Instant,
        online: PerTransport<usize>,
        in_flight: usize,
    ) -> Snapshot {
        let count = |c: &Counter| c.get();
        Snapshot {
            uptime_seconds: now.saturating_duration_since(self.started).as_secs(),
            connections: self.connections.map(|g| g.get().max(0).unsigned_abs()),
            online: online.map(|&n| n as u64),
            messages: PerValue::new(|d| count(self.messages.get(d))),
            in_flight,
            retransmissions: count(&self.retransmissions),
            qos_delivered: count(&self.qos_delivered),
            qos_lost: count(&self.qos_lost),
            logins: PerValue::new(|r| count(self.logins.get(r))),
        }
    }

    /// Encodes every series in the OpenMetrics text format, after refreshing the gauges that
    /// mirror state owned elsewhere.
    pub(crate) fn render(
        &self,
        online: PerTransport<usize>,
        in_flight: usize,
        queued_bytes: usize,
    ) -> String {
        let set = |gauge: &Gauge, n: usize| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        set(&self.online.tcp, online.tcp);
        set(&self.online.udp, online.udp);
        set(&self.online.ws, online.ws);
        set(&self.online.http, online.http);
        set(&self.qos_in_flight, in_flight);
        set(&self.queued_bytes, queued_bytes);
        let mut out = String::with_capacity(8192);
        text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Keeps a session counted in `hongyan_connections` (or an HTTP connection in
/// `hongyan_http_connections`) while it lives.
pub(crate) struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counter values at one moment, for `/api/stats`.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) uptime_seconds: u64,
    pub(crate) connections: PerTransport<u64>,
    pub(crate) online: PerTransport<u64>,
    pub(crate) messages: PerValue<Direction, u64>,
    pub(crate) in_flight: usize,
    pub(crate) retransmissions: u64,
    pub(crate) qos_delivered: u64,
    pub(crate) qos_lost: u64,
    pub(crate) logins: PerValue<LoginResult, u64>,
}
