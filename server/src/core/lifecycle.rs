//! A session's life: it opens unauthenticated, expires when it stays silent (§3.4, §5.2), and
//! closes, taking its user offline if it still is the user's online session (§4.4).

use std::net::SocketAddr;

use hongyan_shared::Instant;
use tokio_util::sync::CancellationToken;

use super::state::{Core, Flow};
use crate::hooks::SessionInfo;
use crate::pipe::PipeProperties;
use crate::session::{Outbox, Session, SessionLimits};

impl Core {
    /// Opens a session for a peer at `peer` reached through a pipe with `properties`,
    /// unauthenticated, at `now`. Returns its state, which the caller owns, and its outbox,
    /// which the caller drains into [`handle_outbound`](Self::handle_outbound).
    pub fn open_session(
        &self,
        properties: PipeProperties,
        peer: SocketAddr,
        now: Instant,
    ) -> (Session, Outbox) {
        self.open_session_closed_by(properties, peer, now, CancellationToken::new())
    }

    /// [`open_session`](Self::open_session) with a close token the caller chose (a child of
    /// the server's shutdown token).
    pub(crate) fn open_session_closed_by(
        &self,
        properties: PipeProperties,
        peer: SocketAddr,
        now: Instant,
        close: CancellationToken,
    ) -> (Session, Outbox) {
        let info = SessionInfo {
            id: self.next_session_id(),
            transport: properties.transport,
            peer,
        };
        let limits = SessionLimits {
            outbox_capacity: self.config.outbox_capacity,
            stall_limit: self.config.slow_consumer_stall,
            idle_expiry: self.config.idle_expiry(properties.transport),
        };
        Session::new(info, properties, limits, close, now)
    }

    /// When [`handle_session_timeout`](Self::handle_session_timeout) next has work for
    /// `session`: its idle expiry, counted from the last packet that arrived. Inbound packets
    /// move it later; the session loop needs to look again only when it passes.
    pub fn poll_session_timeout(&self, session: &Session) -> Instant {
        session.last_inbound + session.idle_expiry
    }

    /// The session's deadline may have passed at `now`: a session silent for its idle expiry
    /// is closed (§3.4); one that spoke since goes on until its new deadline.
    pub fn handle_session_timeout(&self, session: &mut Session, now: Instant) -> Flow {
        if now >= self.poll_session_timeout(session) {
            tracing::debug!(expiry = ?session.idle_expiry, "idle expiry");
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    /// The session has ended (for whatever reason): if it is its user's online session, the
    /// user goes offline and `on_logout` fires (§4.4); a replay of stored messages to it
    /// stops, the rest staying stored. Idempotent.
    pub fn close_session(&self, session: &mut Session) {
        if let Some(user) = session.user.take() {
            if self.registry.remove_if_current(&user, session.info().id) {
                self.hooks
                    .on_logout(&user, session.info(), session.kick_code);
            }
            self.stop_replay(&user, session.info().id);
        }
    }
}
