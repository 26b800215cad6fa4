//! Server statistics: the headline numbers of `/metrics` as one JSON object.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use crate::http::state::HttpState;
use crate::metrics::{self, Direction, LoginResult};

/// A count per transport.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PerTransport {
    /// Over TCP.
    tcp: u64,
    /// Over UDP.
    udp: u64,
    /// Over WebSocket.
    ws: u64,
    /// HTTP sessions (the API receiving as a user).
    http: u64,
    /// All transports.
    total: u64,
}

impl PerTransport {
    fn new(counts: metrics::PerTransport<u64>) -> Self {
        let metrics::PerTransport { tcp, udp, ws, http } = counts;
        Self {
            tcp,
            udp,
            ws,
            http,
            total: tcp + udp + ws + http,
        }
    }
}

/// Application messages since start.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Messages {
    /// Client to server, once per fingerprint.
    c2s: u64,
    /// Client to client, per transmission received.
    c2c: u64,
    /// Server to client, pushed by the application.
    s2c: u64,
}

/// The server's QoS for packets it sends (pushed messages and forwarded C2C messages).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Qos {
    /// Awaiting acknowledgement now.
    in_flight: u64,
    /// Sent again for want of an acknowledgement, since start.
    retransmissions: u64,
    /// Acknowledged, since start.
    delivered: u64,
    /// Given up on after the last retransmission, since start.
    lost: u64,
}

/// Logins since start.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Logins {
    /// Accepted and registered.
    accepted: u64,
    /// Refused by verification.
    refused: u64,
    /// Refused as an older instance of a client already online.
    stale: u64,
}

/// Server statistics.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    /// Seconds since the server started.
    uptime_seconds: u64,
    /// Open sessions: TCP and WebSocket connections, UDP pseudo-sessions (logged in or not).
    connections: PerTransport,
    /// Users online, by the transport of their session.
    online_users: PerTransport,
    /// Application messages by direction.
    messages: Messages,
    /// Server-to-client QoS.
    qos: Qos,
    /// Logins by result.
    logins: Logins,
}

/// Server statistics.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "server",
    responses(
        (status = 200, description = "Counters since start and current gauges", body = Stats),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn stats(State(state): State<HttpState>) -> axum::Json<Stats> {
    let core = &state.core;
    let s = core.metrics.snapshot(
        core.clock.now(),
        core.registry.count_by_transport(),
        core.s2c.len(),
    );
    axum::Json(Stats {
        uptime_seconds: s.uptime_seconds,
        connections: PerTransport::new(s.connections),
        online_users: PerTransport::new(s.online),
        messages: Messages {
            c2s: *s.messages.get(Direction::c2s),
            c2c: *s.messages.get(Direction::c2c),
            s2c: *s.messages.get(Direction::s2c),
        },
        qos: Qos {
            in_flight: s.in_flight as u64,
            retransmissions: s.retransmissions,
            delivered: s.qos_delivered,
            lost: s.qos_lost,
        },
        logins: Logins {
            accepted: *s.logins.get(LoginResult::accepted),
            refused: *s.logins.get(LoginResult::refused),
            stale: *s.logins.get(LoginResult::stale),
        },
    })
}
