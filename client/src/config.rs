//! Where a [`Client`](crate::Client) connects and how it behaves.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use hongyan_shared::client::SessionConfig;
use hongyan_shared::codec::frame::DEFAULT_MAX_BODY;
use hongyan_shared::{SenseMode, Transport};

use crate::tls::TlsOptions;

/// The server to talk to, and over which transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `host:port` of a TCP gateway (MobileIMSDK default port 8901).
    Tcp(String),
    /// `host:port` of a TCP gateway that speaks TLS (MobileIMSDK v6.3+ with `sslContext`):
    /// TLS from the first byte, the same frames inside. Written `tls://host:port`.
    TcpTls(String),
    /// `host:port` of a UDP gateway (default port 7901).
    Udp(String),
    /// A `ws://` or `wss://` URL of a WebSocket gateway, e.g.
    /// `ws://127.0.0.1:3000/websocket`.
    WebSocket(String),
}

impl Endpoint {
    /// The transport this endpoint uses.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Tcp(_) | Self::TcpTls(_) => Transport::Tcp,
            Self::Udp(_) => Transport::Udp,
            Self::WebSocket(_) => Transport::WebSocket,
        }
    }

    /// The address or URL.
    pub fn address(&self) -> &str {
        match self {
            Self::Tcp(a) | Self::TcpTls(a) | Self::Udp(a) | Self::WebSocket(a) => a,
        }
    }

    /// Whether the connection is TLS (`tls://` or `wss://`).
    pub fn uses_tls(&self) -> bool {
        match self {
            Self::TcpTls(_) => true,
            Self::WebSocket(url) => url.starts_with("wss://"),
            Self::Tcp(_) | Self::Udp(_) => false,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "tcp://{a}"),
            Self::TcpTls(a) => write!(f, "tls://{a}"),
            Self::Udp(a) => write!(f, "udp://{a}"),
            Self::WebSocket(a) => f.write_str(a),
        }
    }
}

/// A string that is not `tcp://host:port`, `tls://host:port`, `udp://host:port`, `ws://…` or
/// `wss://…`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an endpoint: use tcp://host:port, tls://host:port, udp://host:port, \
     ws://host:port/path or wss://host:port/path"
)]
pub struct BadEndpoint(pub String);

impl FromStr for Endpoint {
    type Err = BadEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(addr) = s.strip_prefix("tcp://") {
            Ok(Self::Tcp(addr.to_owned()))
        } else if let Some(addr) = s.strip_prefix("tls://") {
            Ok(Self::TcpTls(addr.to_owned()))
        } else if let Some(addr) = s.strip_prefix("udp://") {
            Ok(Self::Udp(addr.to_owned()))
        } else if s.starts_with("ws://") || s.starts_with("wss://") {
            Ok(Self::WebSocket(s.to_owned()))
        } else {
            Err(BadEndpoint(s.to_owned()))
        }
    }
}

/// Everything a [`Client`](crate::Client) needs besides the login.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server.
    pub endpoint: Endpoint,
    /// The protocol session's knobs: sense mode, relogin interval, retransmit schedule,
    /// outgoing packet limit, fingerprint seed. [`ClientConfig::new`] seeds it from the OS.
    pub session: SessionConfig,
    /// The largest TCP frame body accepted from the server (Java client: 6144). A larger frame
    /// closes the connection, and the session reconnects.
    pub max_tcp_frame: usize,
    /// The UDP receive buffer. The Java UDP client uses 1024
    /// ([`JAVA_UDP_CLIENT_MAX_DATAGRAM`](hongyan_shared::client::JAVA_UDP_CLIENT_MAX_DATAGRAM));
    /// hongyan accepts any datagram up to 65 535 bytes by default. Longer datagrams are
    /// truncated and dropped as malformed.
    pub max_udp_datagram: usize,
    /// The largest WebSocket message accepted from the server (the reference server's limit is
    /// 65 536).
    pub max_ws_message: usize,
    /// How long opening a connection may take, TLS handshake included (Java TCP client:
    /// 5000 ms).
    pub connect_timeout: Duration,
    /// How a `tls://` or `wss://` endpoint's certificate is checked (default: against the
    /// system's root certificates). Unused by plain endpoints.
    pub tls: TlsOptions,
    /// Capacity of the event channel. When the application falls this far behind, the client
    /// waits for it (keepalives wait too), so read events promptly.
    pub event_capacity: usize,
}

impl ClientConfig {
    /// The Java clients' defaults for `endpoint`'s transport, with a fingerprint seed drawn from
    /// the operating system's randomness.
    pub fn new(endpoint: Endpoint) -> Self {
        let session = SessionConfig::new(endpoint.transport(), random_seed());
        Self {
            endpoint,
            session,
            max_tcp_frame: DEFAULT_MAX_BODY,
            max_udp_datagram: 65_535,
            max_ws_message: 65_536,
            connect_timeout: Duration::from_millis(5000),
            tls: TlsOptions::default(),
            event_capacity: 1024,
        }
    }

    /// Uses `mode`'s keepalive timing (§5.2); the server's expiry must match.
    pub fn with_sense_mode(mut self, mode: SenseMode) -> Self {
        self.session = self.session.with_sense_mode(mode);
        self
    }
}

/// 64 bits from the standard library's per-process random hash keys (which come from the OS),
/// mixed with the time so two clients created in one process differ.
fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_from_urls() {
        assert_eq!(
            "tcp://127.0.0.1:8901".parse(),
            Ok(Endpoint::Tcp("127.0.0.1:8901".into()))
        );
        assert_eq!(
            "ws://h:3000/websocket".parse(),
            Ok(Endpoint::WebSocket("ws://h:3000/websocket".into()))
        );
        assert_eq!(
            "tls://h:8901".parse(),
            Ok(Endpoint::TcpTls("h:8901".into()))
        );
        assert!("http://h".parse::<Endpoint>().is_err());
    }

    #[test]
    fn tls_endpoints_say_so() {
        for (url, tls) in [
            ("tcp://h:1", false),
            ("tls://h:1", true),
            ("udp://h:1", false),
            ("ws://h/websocket", false),
            ("wss://h/websocket", true),
        ] {
            let endpoint: Endpoint = url.parse().unwrap();
            assert_eq!(endpoint.uses_tls(), tls, "{url}");
            assert_eq!(endpoint.to_string(), url);
        }
    }

    #[test]
    fn two_configs_get_different_seeds() {
        let a = ClientConfig::new(Endpoint::Tcp("h:1".into()));
        let b = ClientConfig::new(Endpoint::Tcp("h:1".into()));
        assert_ne!(a.session.seed, b.session.seed);
    }
}
