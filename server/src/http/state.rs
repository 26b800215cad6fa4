//! What every HTTP handler shares.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Core;
use crate::handle::ServerHandle;

/// What HTTP handlers share: the core, the send API, the connection limit the WebSocket
/// gateway shares with TCP, and the shutdown token and task tracker of sessions.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) core: Arc<Core>,
    pub(crate) handle: ServerHandle,
    pub(crate) limiter: Arc<Semaphore>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}
