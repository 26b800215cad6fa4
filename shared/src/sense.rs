//! Keepalive "sense modes" (§5.2): paired client keepalive timings and server idle expiry.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How a session reaches the server: the three transports MobileIMSDK speaks, and hongyan's
/// HTTP sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Length-prefixed frames over TCP.
    Tcp,
    /// One packet per datagram.
    Udp,
    /// One packet per WebSocket text frame.
    WebSocket,
    /// hongyan's HTTP API acting as a user: an HTTP session (what the user receives streamed
    /// as Server-Sent Events, acknowledged by HTTP requests), or a message sent in a user's
    /// name. No MobileIMSDK client speaks it; the server gives it an idle expiry of its own.
    Http,
}

impl Transport {
    /// Lowercase name for logs, metrics and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::WebSocket => "ws",
            Self::Http => "http",
        }
    }

    /// The timings when no sense mode is chosen: the Java jars' defaults (TCP and WebSocket
    /// 15 s keepalive, 20 s timeout, 20 s server expiry; UDP 3 s, 10 s, 10 s). HTTP takes
    /// TCP's, which no client uses: an HTTP session's expiry is a server setting.
    pub fn default_timing(self) -> KeepAliveTiming {
        match self {
            Self::Tcp | Self::WebSocket | Self::Http => SenseMode::S15.timing(Self::Tcp),
            Self::Udp => SenseMode::S3.timing(Self::Udp),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sense mode: how often clients send keepalives and how fast a dead link is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenseMode {
    /// `MODE_3S`.
    S3,
    /// `MODE_5S` (TCP and WebSocket only).
    S5,
    /// `MODE_10S`.
    S10,
    /// `MODE_15S` (TCP and WebSocket only).
    S15,
    /// `MODE_30S`.
    S30,
    /// `MODE_60S`.
    S60,
    /// `MODE_120S`.
    S120,
}

/// Client and server timings of one sense mode on one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveTiming {
    /// The client sends a keepalive this often.
    pub interval: Duration,
    /// The client declares the link lost when no keepalive response came for this long.
    pub timeout: Duration,
    /// The server closes a session that sent nothing for this long.
    pub server_expire: Duration,
}

impl SenseMode {
    /// Every mode, shortest first.
    pub const ALL: [Self; 7] = [
        Self::S3,
        Self::S5,
        Self::S10,
        Self::S15,
        Self::S30,
        Self::S60,
        Self::S120,
    ];

    /// The reference's name, e.g. `MODE_3S`.
    pub fn name(self) -> &'static str {
        match self {
            Self::S3 => "MODE_3S",
            Self::S5 => "MODE_5S",
            Self::S10 => "MODE_10S",
            Self::S15 => "MODE_15S",
            Self::S30 => "MODE_30S",
            Self::S60 => "MODE_60S",
            Self::S120 => "MODE_120S",
        }
    }

    fn interval_ms(self) -> u64 {
        match self {
            Self::S3 => 3_000,
            Self::S5 => 5_000,
            Self::S10 => 10_000,
            Self::S15 => 15_000,
            Self::S30 => 30_000,
            Self::S60 => 60_000,
            Self::S120 => 120_000,
        }
    }

    /// Whether the mode exists on `transport` (UDP has no 5 s and 15 s modes).
    pub fn supports(self, transport: Transport) -> bool {
        transport != Transport::Udp || !matches!(self, Self::S5 | Self::S15)
    }

    /// The timings on `transport`, from the reference's tables. For the UDP-less modes on UDP
    /// the TCP values are used.
    pub fn timing(self, transport: Transport) -> KeepAliveTiming {
        let interval = self.interval_ms();
        let (timeout, expire) = match (transport, self) {
            (Transport::Udp, Self::S3) => (10_000, 10_000),
            (Transport::Udp, Self::S10) => (21_000, 21_000),
            (Transport::Udp, Self::S30 | Self::S60 | Self::S120) => {
                (interval * 2 + 1_000, interval * 2 + 2_000)
            }
            (_, Self::S3) => (5_000, 7_000),
            (_, Self::S5) => (8_000, 11_000),
            _ => (interval + 5_000, interval + 5_000),
        };
        KeepAliveTiming {
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
            server_expire: Duration::from_millis(expire),
        }
    }
}

impl fmt::Display for SenseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown sense-mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown sense mode {0:?}: use one of MODE_3S, MODE_5S, MODE_10S, MODE_15S, MODE_30S, MODE_60S, MODE_120S (or 3s, 5s, …)"
)]
pub struct UnknownSenseMode(pub String);

impl FromStr for SenseMode {
    type Err = UnknownSenseMode;

    /// Accepts `MODE_3S`, `mode_3s`, `3S` and `3s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let short = upper.strip_prefix("MODE_").unwrap_or(&upper);
        Self::ALL
            .into_iter()
            .find(|mode| &mode.name()[5..] == short)
            .ok_or_else(|| UnknownSenseMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: KeepAliveTiming) -> (u128, u128, u128) {
        (
            t.interval.as_millis(),
            t.timeout.as_millis(),
            t.server_expire.as_millis(),
        )
    }

    #[test]
    fn tcp_table_matches_the_reference() {
        let expected = [
            (3000, 5000, 7000),
            (5000, 8000, 11000),
            (10000, 15000, 15000),
            (15000, 20000, 20000),
            (30000, 35000, 35000),
            (60000, 65000, 65000),
            (120000, 125000, 125000),
        ];
        for (mode, want) in SenseMode::ALL.into_iter().zip(expected) {
            assert_eq!(ms(mode.timing(Transport::Tcp)), want, "{mode}");
            assert_eq!(ms(mode.timing(Transport::WebSocket)), want, "{mode}");
        }
    }

    #[test]
    fn udp_table_matches_the_reference() {
        let expected = [
            (SenseMode::S3, (3000, 10000, 10000)),
            (SenseMode::S10, (10000, 21000, 21000)),
            (SenseMode::S30, (30000, 61000, 62000)),
            (SenseMode::S60, (60000, 121000, 122000)),
            (SenseMode::S120, (120000, 241000, 242000)),
        ];
        for (mode, want) in expected {
            assert!(mode.supports(Transport::Udp));
            assert_eq!(ms(mode.timing(Transport::Udp)), want, "{mode}");
        }
        assert!(!SenseMode::S5.supports(Transport::Udp));
    }

    #[test]
    fn defaults_are_the_jar_defaults() {
        assert_eq!(ms(Transport::Tcp.default_timing()), (15000, 20000, 20000));
        assert_eq!(ms(Transport::Udp.default_timing()), (3000, 10000, 10000));
        assert_eq!(ms(Transport::WebSocket.default_timing()).2, 20000);
    }

    #[test]
    fn names_parse_in_several_spellings() {
        assert_eq!("MODE_3S".parse(), Ok(SenseMode::S3));
        assert_eq!("mode_120s".parse(), Ok(SenseMode::S120));
        assert_eq!("15s".parse(), Ok(SenseMode::S15));
        assert!("4s".parse::<SenseMode>().is_err());
    }
}
