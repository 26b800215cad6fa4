//! What a [`ClientSession`](super::ClientSession) is tuned with.

use std::time::Duration;

use crate::codec::frame::DEFAULT_MAX_BODY;
use crate::qos::{DedupConfig, RetransmitSchedule};
use crate::sense::{KeepAliveTiming, SenseMode, Transport};

/// The Java clients' keepalive-timeout checker period (`NETWORK_CONNECTION_TIME_OUT_CHECK_INTERVAL`).
pub const TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_millis(2000);

/// The Java UDP client's receive buffer: datagrams longer than this are truncated (§3.2).
pub const JAVA_UDP_CLIENT_MAX_DATAGRAM: usize = 1024;

/// The reference server's UDP receive buffer: longer datagrams are truncated and end the
/// session (§3.2), so a UDP client never sends more.
pub const SERVER_UDP_MAX_DATAGRAM: usize = 2048;

/// The reference server's WebSocket frame limit (§3.3).
pub const SERVER_WS_MAX_FRAME: usize = 65_536;

/// Every knob of a client session. Start from [`SessionConfig::new`], which holds the Java
/// clients' defaults for the transport, and change fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The transport the driver speaks. It chooses the defaults below and nothing else.
    pub transport: Transport,
    /// Keepalive interval and link timeout (§5.2). The server's expiry must be paired with it.
    pub keep_alive: KeepAliveTiming,
    /// How often the link timeout is checked (Java: 2000 ms), so a dead link is noticed between
    /// `keep_alive.timeout` and `keep_alive.timeout + timeout_check_interval` after the last
    /// keepalive response.
    pub timeout_check_interval: Duration,
    /// Whether a lost link is re-established by logging in again (`ClientCoreSDK.autoReLogin`).
    pub auto_relogin: bool,
    /// The auto-relogin period (Java: TCP and WebSocket 3000 ms, UDP 2000 ms).
    pub relogin_interval: Duration,
    /// When QoS messages are sent again and when they are reported lost (§6.1).
    pub retransmit: RetransmitSchedule,
    /// How long received fingerprints are remembered to drop duplicates (§6.3).
    pub dedup: DedupConfig,
    /// The longest packet JSON the session will send; longer messages are refused by
    /// [`ClientSession::send`](super::ClientSession::send) (and
    /// [`Outgoing::check_size`](crate::Outgoing::check_size) tells before sending). Defaults:
    /// TCP 6144 (the frame body limit), UDP 2048 (the server's datagram buffer), WebSocket
    /// 65536.
    pub max_packet_len: usize,
    /// Seeds the generator that makes message fingerprints. The driver must draw it from a real
    /// entropy source: fingerprints of two clients must not collide, since servers key
    /// acknowledgements by fingerprint alone.
    pub seed: u64,
}

impl SessionConfig {
    /// The Java clients' defaults for `transport`, with fingerprints generated from `seed`.
    pub fn new(transport: Transport, seed: u64) -> Self {
        let (relogin_ms, max_packet_len) = match transport {
            Transport::Tcp => (3000, DEFAULT_MAX_BODY),
            Transport::Udp => (2000, SERVER_UDP_MAX_DATAGRAM),
            // No client speaks HTTP sessions; WebSocket's values keep the match total.
            Transport::WebSocket | Transport::Http => (3000, SERVER_WS_MAX_FRAME),
        };
        Self {
            transport,
            keep_alive: transport.default_timing(),
            timeout_check_interval: TIMEOUT_CHECK_INTERVAL,
            auto_relogin: true,
            relogin_interval: Duration::from_millis(relogin_ms),
            retransmit: RetransmitSchedule::CLIENT,
            dedup: DedupConfig::default(),
            max_packet_len,
            seed,
        }
    }

    /// Uses the keepalive timing of `mode` on this configuration's transport (§5.2).
    pub fn with_sense_mode(mut self, mode: SenseMode) -> Self {
        self.keep_alive = mode.timing(self.transport);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_java_jars() {
        let tcp = SessionConfig::new(Transport::Tcp, 1);
        assert_eq!(tcp.relogin_interval, Duration::from_millis(3000));
        assert_eq!(tcp.keep_alive.interval, Duration::from_millis(15000));
        let udp = SessionConfig::new(Transport::Udp, 1).with_sense_mode(SenseMode::S10);
        assert_eq!(udp.relogin_interval, Duration::from_millis(2000));
        assert_eq!(udp.keep_alive.timeout, Duration::from_millis(21000));
        assert!(udp.auto_relogin);
    }
}
