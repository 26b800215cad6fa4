//! The live HTTP sessions, by token, and opening one: a session task on an [`SsePipe`], logged
//! in like any client, whose token is the capability its requests present.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hongyan_shared::{LoginInfo, Packet, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::{Limits, Link};
use super::pipe::{LoginOutcome, SsePipe};
use crate::core::Core;
use crate::gateway::driver;

/// Packets the requests may have waiting for a session's loop.
const INBOUND: usize = 64;
/// Events waiting for a session's stream before its loop waits.
const QUEUED: usize = 64;
/// Bytes of them.
const QUEUED_BYTES: usize = 1024 * 1024;

/// An HTTP session just opened.
#[derive(Debug)]
pub(crate) struct Opened {
    /// What its requests present.
    pub(crate) token: String,
    /// The `firstLoginTime` its login was answered with.
    pub(crate) first_login_time: i64,
}

/// Why an HTTP session could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// `max_http_sessions` are open.
    Full,
    /// Verification refused the login with this code.
    Refused(i32),
    /// The session ended before its login completed: verification did not answer within
    /// the login timeout, or the server is shutting down.
    Ended,
}

/// The live HTTP sessions of one server.
#[derive(Debug, Default)]
pub(crate) struct HttpSessions {
    links: Mutex<HashMap<String, Arc<Link>>>,
}

impl HttpSessions {
    fn links(&self) -> MutexGuard<'_, HashMap<String, Arc<Link>>> {
        self.links
            .lock()
            .expect("the session table lock is never held across a panic-prone section")
    }

    /// The session `token` names, while it lives.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Link>> {
        self.links().get(token).cloned()
    }

    /// Opens a session for `login`'s user, on behalf of a caller at `peer`, and logs it in as
    /// a client's would be: verified by the hooks, registered by the duplicate-login rules
    /// (so it kicks the user's other session, and a later login kicks it), then sent the
    /// user's stored messages. It runs on `tracker` until it ends (logout, kick, idle expiry,
    /// `shutdown`).
    pub(crate) async fn open(
        self: &Arc<Self>,
        core: &Arc<Core>,
        login: &LoginInfo,
        peer: SocketAddr,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Opened, OpenError> {
        let user = login.login_user_id.clone().unwrap_or_else(UserId::unset);
        let (tx, rx) = mpsc::channel(INBOUND);
        let config = &core.config;
        let limits = Limits {
            queued: QUEUED,
            queued_bytes: QUEUED_BYTES,
            unacked: config.max_in_flight_per_user,
            unacked_bytes: config.max_in_flight_bytes_per_user,
        };
        let link = Arc::new(Link::new(user, tx, limits));
        let token = uuid::Uuid::new_v4().simple().to_string();
        {
            let mut links = self.links();
            if links.len() >= config.max_http_sessions {
                return Err(OpenError::Full);
            }
            links.insert(token.clone(), link.clone());
        }
        let (told, answer) = oneshot::channel();
        let pipe = SsePipe::new(link.clone(), rx, told, shutdown.clone());
        let session = driver::drive(core.clone(), pipe, peer, shutdown);
        let sessions = self.clone();
        let ended = token.clone();
        tracker.spawn(async move {
            session.await;
            sessions.links().remove(&ended);
        });
        if !link.deliver(&Packet::login(login)).await {
            return Err(OpenError::Ended);
        }
        match answer.await {
            Ok(LoginOutcome::LoggedIn { first_login_time }) => Ok(Opened {
                token,
                first_login_time,
            }),
            Ok(LoginOutcome::Refused(code)) => Err(OpenError::Refused(code)),
            Ok(LoginOutcome::Ended) | Err(_) => Err(OpenError::Ended),
        }
    }
}
