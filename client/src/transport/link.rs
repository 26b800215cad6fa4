//! What connection tasks and the driver share: the reports a connection sends
//! ([`LinkEvent`], tagged by [`LinkReporter`]), why it ended ([`LinkError`]), and the driver's
//! handle on it ([`Link`]).

use std::io;
use std::time::Duration;

use hongyan_shared::{FrameError, Packet};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
    /// Reports of connection `id`, sent to the driver on `tx`.
    pub(super) fn new(id: u64, tx: mpsc::Sender<(u64, LinkEvent)>) -> Self {
        Self { id, tx }
    }

    /// Reports `event`; fails once the driver is gone.
    pub(super) async fn report(&self, event: LinkEvent) -> Result<(), LinkError> {
        self.tx
            .send((self.id, event))
            .await
            .map_err(|_| LinkError::DriverGone)
    }

    /// Decodes one packet body and reports it; malformed bodies are logged and dropped, as the
    /// Java clients do.
    pub(super) async fn packet(&self, body: &[u8]) -> Result<(), LinkError> {
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

/// Runs `fut` (a connect) for at most `limit`.
pub(super) async fn with_timeout<T, E>(
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
