//! The labels of the server's series, as types: each label value is an enum variant encoded
//! by prometheus-client's derive (so a variant's name *is* the value `/metrics` shows, and
//! variants are lower case), each label set a struct. Every value is known up front, so
//! [`PerValue`] creates one series per value when the server starts and the hot path only
//! indexes an array: no lookup, no lock, no allocation per packet.

use std::marker::PhantomData;

use hongyan_shared::{PacketType, Transport};
use prometheus_client::encoding::EncodeLabelSet;

/// A label value with every possible value known up front.
pub(crate) trait LabelValue: Copy + 'static {
    /// Every value; `ALL[v.index()] == v`.
    const ALL: &'static [Self];

    /// The value's position in [`ALL`](Self::ALL).
    fn index(self) -> usize;
}

/// Declares a label value enum whose variants are its values, and its [`LabelValue`] impl
/// (`ALL` in declaration order, so it is complete and ordered by construction).
macro_rules! label_values {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$doc:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        #[allow(non_camel_case_types)]
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            ::prometheus_client::encoding::EncodeLabelValue,
        )]
        $vis enum $name {
            $($(#[$doc])* $variant,)+
        }

        impl $crate::metrics::labels::LabelValue for $name {
            const ALL: &'static [Self] = &[$(Self::$variant,)+];

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use label_values;

/// `stored="true"` and `stored="false"`.
impl LabelValue for bool {
    const ALL: &'static [Self] = &[true, false];

    fn index(self) -> usize {
        usize::from(!self)
    }
}

/// One metric per value of label `V`, created up front.
#[derive(Debug, Clone)]
pub(crate) struct PerValue<V, M> {
    metrics: Box<[M]>,
    value: PhantomData<fn(V)>,
}

impl<V: LabelValue, M> PerValue<V, M> {
    /// Makes the metric of every value.
    pub(crate) fn new(make: impl FnMut(V) -> M) -> Self {
        Self {
            metrics: V::ALL.iter().copied().map(make).collect(),
            value: PhantomData,
        }
    }

    /// The metric of `value`.
    pub(crate) fn get(&self, value: V) -> &M {
        &self.metrics[value.index()]
    }
}

/// One value per transport, by name rather than by position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PerTransport<T> {
    pub(crate) tcp: T,
    pub(crate) udp: T,
    pub(crate) ws: T,
    pub(crate) http: T,
}

impl<T> PerTransport<T> {
    /// Makes the value of every transport.
    pub(crate) fn from_fn(mut make: impl FnMut(Transport) -> T) -> Self {
        Self {
            tcp: make(Transport::Tcp),
            udp: make(Transport::Udp),
            ws: make(Transport::WebSocket),
            http: make(Transport::Http),
        }
    }

    /// The value of `transport`.
    pub(crate) fn get(&self, transport: Transport) -> &T {
        match transport {
            Transport::Tcp => &self.tcp,
            Transport::Udp => &self.udp,
            Transport::WebSocket => &self.ws,
            Transport::Http => &self.http,
        }
    }

    /// Every transport's value, transformed.
    pub(crate) fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerTransport<U> {
        PerTransport {
            tcp: f(&self.tcp),
            udp: f(&self.udp),
            ws: f(&self.ws),
            http: f(&self.http),
        }
    }
}

label_values! {
    /// `transport`: how a session is connected.
    pub(crate) enum TransportLabel {
        /// TCP.
        tcp,
        /// UDP.
        udp,
        /// WebSocket.
        ws,
        /// An HTTP session (the API acting as a user).
        http,
    }
}

impl From<Transport> for TransportLabel {
    fn from(transport: Transport) -> Self {
        match transport {
            Transport::Tcp => Self::tcp,
            Transport::Udp => Self::udp,
            Transport::WebSocket => Self::ws,
            Transport::Http => Self::http,
        }
    }
}

label_values! {
    /// `type` of a packet received: what clients send, `other` for any other type,
    /// `invalid` for a body that did not decode.
    pub(crate) enum Received {
        /// Type 0.
        login,
        /// Type 1.
        keepalive,
        /// Type 2.
        data,
        /// Type 3.
        logout,
        /// Type 4.
        ack,
        /// Type 5.
        echo,
        /// Any other type.
        other,
        /// Not a packet.
        invalid,
    }
}

impl From<Option<PacketType>> for Received {
    fn from(kind: Option<PacketType>) -> Self {
        match kind {
            None => Self::invalid,
            Some(PacketType::Login) => Self::login,
            Some(PacketType::KeepAlive) => Self::keepalive,
            Some(PacketType::CommonData) => Self::data,
            Some(PacketType::Logout) => Self::logout,
            Some(PacketType::Ack) => Self::ack,
            Some(PacketType::Echo) => Self::echo,
            Some(_) => Self::other,
        }
    }
}

label_values! {
    /// `type` of a packet sent: what the server sends.
    pub(crate) enum Sent {
        /// Type 2.
        data,
        /// Type 4.
        ack,
        /// Type 50.
        login_response,
        /// Type 51.
        keepalive_response,
        /// Type 52.
        error,
        /// Type 53.
        echo_response,
        /// Type 54.
        kickout,
        /// Any other type.
        other,
    }
}

impl From<PacketType> for Sent {
    fn from(kind: PacketType) -> Self {
        match kind {
            PacketType::CommonData => Self::data,
            PacketType::Ack => Self::ack,
            PacketType::LoginResponse => Self::login_response,
            PacketType::KeepAliveResponse => Self::keepalive_response,
            PacketType::Error => Self::error,
            PacketType::EchoResponse => Self::echo_response,
            PacketType::Kickout => Self::kickout,
            _ => Self::other,
        }
    }
}

label_values! {
    /// `direction`: which way an application message went.
    pub(crate) enum Direction {
        /// Client to server (`to "0"`), counted once per fingerprint.
        c2s,
        /// Client to client, counted per transmission received (retransmissions included).
        c2c,
        /// Server to client, pushed by the application.
        s2c,
    }
}

label_values! {
    /// `result`: how a login ended.
    pub(crate) enum LoginResult {
        /// Verified (or a re-login of the same session) and registered.
        accepted,
        /// Refused by `verify_login`.
        refused,
        /// An older client instance, refused with a duplicate-login kickout (§4.3).
        stale,
    }
}

label_values! {
    /// `reason`: why a session was kicked out.
    pub(crate) enum KickReason {
        /// Another login of the same user (code 1).
        duplicate_login,
        /// An administrator, through the API or `ServerHandle::kick` (code 2).
        admin,
        /// An application-defined code.
        application,
    }
}

label_values! {
    /// `reason`: what the server turned away or refused because a bound was reached or a
    /// rule was broken (§8.1), each a counted event rather than a log line.
    pub(crate) enum Refusal {
        /// A TCP or HTTP connection beyond `max_connections` (an HTTP one is answered from
        /// the probe reserve: probes as usual, anything else 503; or closed if that is full).
        connection_limit,
        /// An HTTP connection that did not complete a request head within
        /// `http_header_timeout_secs` of being accepted, closed.
        header_timeout,
        /// A WebSocket upgrade from an Origin `ws_allowed_origins` does not list: 403.
        ws_origin,
        /// A UDP datagram from an address without a pseudo-session, dropped: the table (or
        /// its share for unauthenticated addresses) is full.
        udp_session_limit,
        /// An answer to an unauthenticated UDP datagram that was not sent because even its
        /// compact form is larger than the datagram (a login is then ignored).
        udp_amplification,
        /// A login whose user id is longer than 256 bytes (ignored like one without an id),
        /// or a message to such a user id (no such user can log in; not acknowledged).
        user_id_too_long,
        /// A session closed for not logging in within `login_timeout_secs`.
        login_timeout,
        /// A session closed because a write to it (or a hook it waited for) was still
        /// unfinished at its idle expiry or login deadline.
        write_timeout,
        /// A QoS data packet whose fingerprint is longer than 128 bytes (not acknowledged).
        fingerprint_too_long,
        /// A packet for a session whose queue was full (`outbox_capacity`).
        outbox_full,
        /// A QoS packet for a user with `max_in_flight_per_user` packets or
        /// `max_in_flight_bytes_per_user` bytes awaiting acknowledgement.
        user_in_flight,
        /// A QoS packet while `max_in_flight` packets awaited acknowledgement server-wide.
        in_flight,
        /// A packet while `max_queued_bytes` were held for delivery server-wide.
        queued_bytes,
        /// A data message over its session's `max_messages_per_sec` (not acknowledged;
        /// error 1000).
        message_rate,
        /// A login over its address's `max_logins_per_sec_per_ip` (refused with code 1000).
        address_login_rate,
        /// A login over the server's `max_logins_per_sec` (refused with code 1000).
        login_rate,
        /// A TCP or HTTP connection beyond its address's `max_connections_per_ip` (TCP:
        /// closed; HTTP: 429).
        address_connections,
        /// A UDP datagram from a new port of an address that holds `max_udp_sessions_per_ip`
        /// pseudo-sessions, dropped.
        address_udp_sessions,
        /// An API request over its address's `api_requests_per_sec_per_ip`: 429.
        api_rate,
        /// An API request whose body is larger than `api_max_body_bytes`: 413.
        api_body,
    }
}

label_values! {
    /// `result` of handing a message to the message store.
    pub(crate) enum PutResult {
        /// Committed: the sender may be acknowledged.
        stored,
        /// Already stored (a retransmission): acknowledged again, not stored twice.
        duplicate,
        /// Refused: the receiver has as many stored messages as allowed.
        quota,
        /// Refused: larger than the store keeps.
        too_large,
        /// Refused: an id the store cannot keep.
        invalid,
        /// Refused: the store's write queue was full.
        overloaded,
        /// Failed: the store could not commit (database down, disk full, timeout).
        unavailable,
    }
}

label_values! {
    /// `op`: a call the server made to the message store.
    pub(crate) enum StoreOp {
        /// Storing a message.
        put,
        /// Reading a page of a user's stored messages, to replay them.
        read,
        /// Removing acknowledged messages.
        remove,
        /// Counting a user's stored messages.
        count,
        /// Erasing a user's stored messages.
        erase,
        /// Sweeping expired messages.
        expire,
        /// The readiness probe's write.
        health,
    }
}

/// The label set `{transport}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByTransport {
    pub(crate) transport: TransportLabel,
}

/// The label set `{type}` of packets received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByReceivedType {
    pub(crate) r#type: Received,
}

/// The label set `{type}` of packets sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BySentType {
    pub(crate) r#type: Sent,
}

/// The label set `{direction}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByDirection {
    pub(crate) direction: Direction,
}

/// The label set `{result}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByResult {
    pub(crate) result: LoginResult,
}

/// The label set `{stored}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByStored {
    pub(crate) stored: bool,
}

/// The label set `{reason}` of refusals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByRefusal {
    pub(crate) reason: Refusal,
}

/// The label set `{result}` of store puts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByPutResult {
    pub(crate) result: PutResult,
}

/// The label set `{op}` of store calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByStoreOp {
    pub(crate) op: StoreOp,
}

/// The label set `{reason}` of kickouts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ByKickReason {
    pub(crate) reason: KickReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_sits_at_its_own_index() {
        fn check<V: LabelValue + PartialEq + std::fmt::Debug>() {
            for (i, v) in V::ALL.iter().enumerate() {
                assert_eq!(v.index(), i, "{v:?}");
            }
        }
        check::<TransportLabel>();
        check::<Received>();
        check::<Sent>();
        check::<Direction>();
        check::<LoginResult>();
        check::<KickReason>();
        check::<PutResult>();
        check::<StoreOp>();
        check::<Refusal>();
        check::<bool>();
    }
}
