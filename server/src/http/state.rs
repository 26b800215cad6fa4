//! What every HTTP handler shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Core;
use crate::gateway::sse::table::HttpSessions;
use crate::handle::ServerHandle;

/// What HTTP handlers share: the core, the send API, the live HTTP sessions, and the shutdown
/// token and task tracker of sessions. (The connection limit reaches the WebSocket gateway as
/// the permit of the connection it upgrades, `listen::ConnectionPermit`.)
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) core: Arc<Core>,
    pub(crate) handle: ServerHandle,
    pub(crate) sessions: Arc<HttpSessions>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}
