//! Connection tasks: one per transport connection, turning bytes into [`Packet`]s and back.
//! They know nothing of the protocol; the driver tags their reports with the connection id and
//! ignores reports from connections it has replaced.

mod tcp;
mod udp;
mod ws;

use std::io;
use std::time::Duration;

use hongyan_shared::{FrameError, Packet};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{ClientConfig, Endpoint};
use crate::tls::{TlsConnector, TlsSetupError};

/// Packets buffered towards one connection; beyond this the driver drops packets (QoS
/// retransmits the ones that matter) rather than stall.
const OUTBOUND_CAPACITY: usize = 256;

/// What a connection task reports to the driver.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The connection is up.
    Connected,
    /// A packet arrived.
    Packet(Packet),
    /// The connection closed or could not be opened.
    Closed,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// Connecting took longer than the configured timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The address resolved to nothing.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// A `tls://` or `wss://` endpoint without its TLS connector (a bug in the driver).
    #[error("no TLS connector for a TLS endpoint")]
    NoTls,
    /// A socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server sent a frame the codec refuses.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A WebSocket error.
    #[error(transparent)]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The driver is gone.
    #[error("client driver stopped")]
    DriverGone,
}

/// Reports of one connection, tagged with its id.
#[derive(Debug, Clone)]
pub(crate) struct LinkReporter {
    id: u64,
    tx: mpsc::Sender<(u64, LinkEvent)>,
}

impl LinkReporter {
    async fn report(&self, event: LinkEvent) -> Result<(), LinkError> {
        self.tx
            .send((self.id, event))
            .await
            .map_err(|_| LinkError::DriverGone)
    }

    /// Decodes one packet body and reports it; malformed bodies are logged and dropped, as the
    /// Java clients do.
    async fn packet(&self, body: &[u8]) -> Result<(), LinkError> {
        match Packet::decode(body) {
            Ok(packet) => self.report(LinkEvent::Packet(packet)).await,
            Err(error) => {
                tracing::warn!(%error, len = body.len(), "dropping malformed packet");
                Ok(())
            }
        }
    }
}

/// The driver's handle on one connection: dropping `outbound` asks the task to flush what is
/// queued and close.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) id: u64,
    pub(crate) outbound: mpsc::Sender<Packet>,
    pub(crate) task: JoinHandle<()>,
}

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
    let reporter = LinkReporter { id, tx };
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

async fn with_timeout<T, E>(
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, LinkError>
where
    LinkError: From<E>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::ConnectTimeout(limit)),
    }
}
