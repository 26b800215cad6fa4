//! The operations that drive the UDP path (`udp_datagram`): datagrams from a few addresses
//! or any, carrying packets from hostile clients, raw bytes, or more than the inbound limit;
//! the application's pushes and kicks; and the passing of time.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;
use hongyan_server::engine::UdpLimits;
use hongyan_shared::UserId;

use crate::server_input::{ClientPacket, FpChoice, Seen, ServerConfigInput};
use crate::session_input::Who;

/// One run: the server's configuration, the UDP gateway's limits, then operations.
#[derive(Arbitrary, Debug)]
pub struct UdpRun {
    /// How the server core is tuned.
    pub config: ServerConfigInput,
    max_sessions: u8,
    max_unauthenticated: u8,
    max_inbound: Option<u16>,
    /// What happens, in order.
    pub ops: Vec<UdpOp>,
}

impl UdpRun {
    /// The pseudo-session limits: small, so they are reached (`max_udp_unauthenticated` is
    /// positive, as the configuration file requires; `max_udp_sessions` may be 0).
    pub fn limits(&self) -> UdpLimits {
        UdpLimits {
            sessions: usize::from(self.max_sessions % 8),
            unauthenticated: usize::from(self.max_unauthenticated % 4).max(1),
        }
    }

    /// The largest datagram a pseudo-session is handed (`udp_max_inbound`): the default, or
    /// a small one so that real packets exceed it.
    pub fn max_inbound(&self) -> usize {
        self.max_inbound.map_or(2048, |max| usize::from(max % 512))
    }
}

/// One thing that happens.
#[derive(Arbitrary, Debug)]
pub enum UdpOp {
    /// A datagram arrives.
    Datagram {
        /// From where.
        from: Source,
        /// What it holds.
        payload: Payload,
    },
    /// The pseudo-session of an address takes up to `items` of what was queued for it.
    Drain {
        /// Whose.
        from: Source,
        /// How many items at most.
        items: u8,
    },
    /// The application pushes a message.
    Push {
        /// To whom.
        to: Who,
        /// With QoS.
        qos: bool,
        /// Its fingerprint.
        fp: FpChoice,
        /// Its content.
        content: String,
    },
    /// The application kicks a user.
    Kick {
        /// Whom.
        user: Who,
        /// An application code instead of the administrator's 2.
        code: Option<i32>,
    },
    /// Time passes by this many milliseconds, then every deadline due is handled.
    Wait(u16),
    /// Time moves to the earliest deadline, which is then handled.
    WaitForTimeout,
}

/// A source address: one of eight, so that addresses come back, or any (IPv4 or IPv6).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Source {
    /// `127.0.0.1:40000` … `127.0.0.1:40007`.
    Known(u8),
    /// Any IPv4 address and port.
    V4(u32, u16),
    /// Any IPv6 address and port.
    V6(u128, u16),
}

impl Source {
    /// The address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Self::Known(n) => SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000 + u16::from(n % 8))),
            Self::V4(ip, port) => SocketAddr::from((Ipv4Addr::from(ip), port)),
            Self::V6(ip, port) => SocketAddr::from((Ipv6Addr::from(ip), port)),
        }
    }
}

/// What a datagram holds.
#[derive(Arbitrary, Debug)]
pub enum Payload {
    /// A packet.
    Packet(ClientPacket),
    /// A packet followed by `extra` more bytes, so the datagram may exceed the limit although
    /// the bytes the gateway keeps are a packet.
    Padded(ClientPacket, u16),
}

impl Payload {
    /// The datagram's bytes. `me` is the user the address's session logged in as, if any.
    pub fn to_bytes(&self, me: Option<&UserId>, seen: &Seen) -> Vec<u8> {
        match self {
            Self::Packet(packet) => packet.to_bytes(me, seen),
            Self::Padded(packet, extra) => {
                let mut bytes = packet.to_bytes(me, seen);
                bytes.resize(bytes.len() + usize::from(*extra), b' ');
                bytes
            }
        }
    }
}
