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

use std::time::Instant;

use hongyan_shared::{PacketType, Transport};
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::hooks::Hooks;

/// A one-label series key with a fixed label name and value.
type Label = [(&'static str, &'static str); 1];

/// The three transports, in the index order of every per-transport array.
pub(crate) const TRANSPORTS: [Transport; 3] =
    [Transport::Tcp, Transport::Udp, Transport::WebSocket];

/// Label values of packets received, in the order of [`in_index`]: what clients send, `other`
/// for any other type, `invalid` for a body that did not decode.
const KINDS_IN: [&str; 8] = [
    "login",
    "keepalive",
    "data",
    "logout",
    "ack",
    "echo",
    "other",
    "invalid",
];
const INVALID: usize = KINDS_IN.len() - 1;

/// Label values of packets sent, in the order of [`out_index`]: what the server sends.
const KINDS_OUT: [&str; 8] = [
    "data",
    "ack",
    "login_response",
    "keepalive_response",
    "error",
    "echo_response",
    "kickout",
    "other",
];

/// Index of a transport in the per-transport arrays.
pub(crate) fn transport_index(transport: Transport) -> usize {
    match transport {
        Transport::Tcp => 0,
        Transport::Udp => 1,
        Transport::WebSocket => 2,
    }
}

fn in_index(kind: PacketType) -> usize {
    match kind {
        PacketType::Login => 0,
        PacketType::KeepAlive => 1,
        PacketType::CommonData => 2,
        PacketType::Logout => 3,
        PacketType::Ack => 4,
        PacketType::Echo => 5,
        _ => 6,
    }
}

fn out_index(kind: PacketType) -> usize {
    match kind {
        PacketType::CommonData => 0,
        PacketType::Ack => 1,
        PacketType::LoginResponse => 2,
        PacketType::KeepAliveResponse => 3,
        PacketType::Error => 4,
        PacketType::EchoResponse => 5,
        PacketType::Kickout => 6,
        _ => 7,
    }
}

/// Which way an application message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client to server (`to "0"`), counted once per fingerprint.
    C2s,
    /// Client to client, counted per transmission received (retransmissions included).
    C2c,
    /// Server to client, pushed by the application.
    S2c,
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginResult {
    /// Verified (or a re-login of the same session) and registered.
    Accepted,
    /// Refused by `verify_login`.
    Refused,
    /// An older client instance, refused with a duplicate-login kickout (§4.3).
    Stale,
}

/// Why a session was kicked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KickReason {
    /// Another login of the same user (code 1).
    DuplicateLogin,
    /// An administrator, through the API or [`ServerHandle::kick`](crate::ServerHandle::kick)
    /// (code 2).
    Admin,
    /// An application-defined code.
    Application,
}

/// One labelled series per value of `values`, registered under `name`.
fn family<M: Default + Clone + prometheus_client::metrics::TypedMetric, const N: usize>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    label: &'static str,
    values: [&'static str; N],
) -> [M; N]
where
    Family<Label, M>: prometheus_client::registry::Metric,
{
    let family = Family::<Label, M>::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    values.map(|value| family.get_or_create(&[(label, value)]).clone())
}

/// One unlabelled counter registered under `name`.
fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let counter = Counter::default();
    registry.register(name, help, counter.clone());
    counter
}

/// A server's metrics. Created with the [`Core`](crate::core::Core); cheap to update from any
/// task.
pub(crate) struct Metrics {
    registry: Registry,
    started: Instant,
    connections: [Gauge; 3],
    online: [Gauge; 3],
    qos_in_flight: Gauge,
    logins: [Counter; 3],
    packets_in: [Counter; KINDS_IN.len()],
    bytes_in: [Counter; KINDS_IN.len()],
    packets_out: [Counter; KINDS_OUT.len()],
    bytes_out: [Counter; KINDS_OUT.len()],
    messages: [Counter; 3],
    offline: [Counter; 2],
    retransmissions: Counter,
    qos_delivered: Counter,
    qos_lost: Counter,
    dedup_hits: Counter,
    kickouts: [Counter; 3],
}

impl Metrics {
    /// Creates every series and lets `hooks` add their own (see [`Hooks::register_metrics`]).
    pub(crate) fn new(hooks: &dyn Hooks) -> Self {
        let mut registry = Registry::with_prefix("hongyan");
        let transports = TRANSPORTS.map(Transport::as_str);
        let r = &mut registry;
        let connections = family(
            r,
            "connections",
            "Open sessions: TCP and WebSocket connections, UDP pseudo-sessions",
            None,
            "transport",
            transports,
        );
        let online = family(
            r,
            "online_users",
            "Users online, by the transport of their session",
            None,
            "transport",
            transports,
        );
        let qos_in_flight = Gauge::default();
        r.register(
            "qos_in_flight",
            "Server-to-client QoS packets awaiting acknowledgement",
            qos_in_flight.clone(),
        );
        let logins = family(
            r,
            "logins",
            "Logins by result",
            None,
            "result",
            ["accepted", "refused", "stale"],
        );
        let packets_in = family(
            r,
            "packets_received",
            "Packets received",
            None,
            "type",
            KINDS_IN,
        );
        let bytes_in = family(
            r,
            "received",
            "Packet body bytes received (framing excluded)",
            Some(Unit::Bytes),
            "type",
            KINDS_IN,
        );
        let packets_out = family(
            r,
            "packets_sent",
            "Packets the server encoded for sending (retransmissions included)",
            None,
            "type",
            KINDS_OUT,
        );
        let bytes_out = family(
            r,
            "sent",
            "Packet body bytes encoded for sending (framing excluded)",
            Some(Unit::Bytes),
            "type",
            KINDS_OUT,
        );
        let messages = family(
            r,
            "messages",
            "Application messages: c2s once per fingerprint, c2c per transmission received, \
             s2c pushed by the application",
            None,
            "direction",
            ["c2s", "c2c", "s2c"],
        );
        let offline = family(
            r,
            "offline_messages",
            "C2C messages whose receiver was offline, by whether the application stored them",
            None,
            "stored",
            ["true", "false"],
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
            "reason",
            ["duplicate_login", "admin", "application"],
        );
        hooks.register_metrics(&mut registry);
        Self {
            registry,
            started: Instant::now(),
            connections,
            online,
            qos_in_flight,
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
        }
    }

    /// Counts an open session until the returned guard is dropped.
    pub(crate) fn connection(&self, transport: Transport) -> ConnectionGuard {
        let gauge = self.connections[transport_index(transport)].clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// A packet body of `len` bytes arrived; `kind` is `None` if it did not decode.
    pub(crate) fn packet_in(&self, kind: Option<PacketType>, len: usize) {
        let i = kind.map_or(INVALID, in_index);
        self.packets_in[i].inc();
        self.bytes_in[i].inc_by(len as u64);
    }

    /// The server encoded a packet body of `len` bytes to send.
    pub(crate) fn packet_out(&self, kind: PacketType, len: usize) {
        let i = out_index(kind);
        self.packets_out[i].inc();
        self.bytes_out[i].inc_by(len as u64);
    }

    /// An application message went `direction`.
    pub(crate) fn message(&self, direction: Direction) {
        self.messages[direction as usize].inc();
    }

    /// A C2C message found its receiver offline; the application `stored` it or not.
    pub(crate) fn offline(&self, stored: bool) {
        self.offline[usize::from(!stored)].inc();
    }

    /// A login ended with `result`.
    pub(crate) fn login(&self, result: LoginResult) {
        self.logins[result as usize].inc();
    }

    /// A session was kicked out.
    pub(crate) fn kickout(&self, reason: KickReason) {
        self.kickouts[reason as usize].inc();
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

    /// A snapshot for `/api/stats`; `online` and `in_flight` come from their owners.
    pub(crate) fn snapshot(&self, online: [usize; 3], in_flight: usize) -> Snapshot {
        let count = |c: &Counter| c.get();
        Snapshot {
            uptime_seconds: self.started.elapsed().as_secs(),
            connections: self
                .connections
                .each_ref()
                .map(|g| g.get().max(0).unsigned_abs()),
            online,
            messages: self.messages.each_ref().map(count),
            in_flight,
            retransmissions: count(&self.retransmissions),
            qos_delivered: count(&self.qos_delivered),
            qos_lost: count(&self.qos_lost),
            logins: self.logins.each_ref().map(count),
        }
    }

    /// Encodes every series in the OpenMetrics text format, after refreshing the gauges that
    /// mirror state owned elsewhere.
    pub(crate) fn render(&self, online: [usize; 3], in_flight: usize) -> String {
        for (gauge, n) in self.online.iter().zip(online) {
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.qos_in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(8192);
        text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Keeps a session counted in `hongyan_connections` while it lives.
pub(crate) struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counter values at one moment, for `/api/stats`. Arrays are indexed like [`TRANSPORTS`],
/// [`Direction`] and [`LoginResult`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) uptime_seconds: u64,
    pub(crate) connections: [u64; 3],
    pub(crate) online: [usize; 3],
    pub(crate) messages: [u64; 3],
    pub(crate) in_flight: usize,
    pub(crate) retransmissions: u64,
    pub(crate) qos_delivered: u64,
    pub(crate) qos_lost: u64,
    pub(crate) logins: [u64; 3],
}
