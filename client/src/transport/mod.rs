//! Connection tasks: one per transport connection, turning bytes into
//! [`Packet`](hongyan_shared::Packet)s and back. They know nothing of the protocol; the driver
//! tags their reports with the connection id and ignores reports from connections it has
//! replaced.
//!
//! - `link.rs`: what the tasks and the driver share (reports, errors, the driver's handle).
//! - `tcp.rs`, `udp.rs`, `ws.rs`: one task per transport (TCP and WebSocket plain or TLS).

mod link;
mod tcp;
mod udp;
mod ws;

use tokio::sync::mpsc;
use tracing::Instrument;

use link::LinkReporter;
pub(crate) use link::{Link, LinkEvent};

use crate::config::{ClientConfig, Endpoint};
use crate::tls::{TlsConnector, TlsSetupError};

/// Packets buffered towards one connection; beyond this the driver drops packets (QoS
/// retransmits the ones that matter) rather than stall.
const OUTBOUND_CAPACITY: usize = 256;

/// The TLS connector for `config.endpoint` if it is `tls://` or `wss://`.
pub(crate) fn tls_connector(config: &ClientConfig) -> Result<Option<TlsConnector>, TlsSetupError> {
    let host = match &config.endpoint {
        Endpoint::TcpTls(addr) => tcp::host(addr).to_owned(),
        Endpoint::WebSocket(url) if config.endpoint.uses_tls() => ws::host(url)?,
        _ => return Ok(None),
    };
    TlsConnector::new(&config.tls, &host).map(Some)
}

/// Spawns the connection task for `config.endpoint`, over `tls` for `tls://` and `wss://`
/// endpoints (see [`tls_connector`]).
pub(crate) fn open(
    id: u64,
    config: &ClientConfig,
    tls: Option<&TlsConnector>,
    tx: mpsc::Sender<(u64, LinkEvent)>,
) -> Link {
    let (outbound, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let reporter = LinkReporter::new(id, tx);
    let config = config.clone();
    let tls = tls.cloned();
    let span = tracing::debug_span!("link", id, endpoint = %config.endpoint);
    let task = tokio::spawn(
        async move {
            let tls = tls.as_ref();
            let result = match &config.endpoint {
                Endpoint::Tcp(addr) => tcp::run(addr, &config, None, rx, &reporter).await,
                Endpoint::TcpTls(addr) => tcp::run(addr, &config, tls, rx, &reporter).await,
                Endpoint::Udp(addr) => udp::run(addr, &config, rx, &reporter).await,
                Endpoint::WebSocket(url) => ws::run(url, &config, tls, rx, &reporter).await,
            };
            match result {
                Ok(()) => tracing::debug!("connection closed"),
                Err(error) => tracing::debug!(%error, "connection ended"),
            }
            // The driver may be gone already; nothing is left to tell then.
            let _ = reporter.report(LinkEvent::Closed).await;
        }
        .instrument(span),
    );
    Link { id, outbound, task }
}
