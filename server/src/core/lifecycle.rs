//! A session's life: it opens unauthenticated and must log in before its login deadline,
//! expires when it stays silent (§3.4, §5.2), and closes, taking its user offline if it still
//! is the user's online session (§4.4).

use std::net::SocketAddr;

use hongyan_shared::Instant;
use tokio_util::sync::CancellationToken;

use super::state::{Core, Flow};
use crate::hooks::SessionInfo;
use crate::metrics::Refusal;
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
            login_timeout: self.config.login_timeout,
        };
        Session::new(info, properties, limits, close, now)
    }

    /// When [`handle_session_timeout`](Self::handle_session_timeout) next has work for
    /// `session`: its idle expiry, counted from the last packet that arrived, or, while it
    /// has not logged in, its login deadline if that is earlier. Inbound packets move the
    /// idle expiry later, nothing moves the login deadline; the session loop needs to look
    /// again only when the earlier one passes. Nothing the session waits for (a write to a
    /// peer that does not read, a hook) may outlast it either.
    pub fn poll_session_timeout(&self, session: &Session) -> Instant {
        Self::deadline(session, session.last_inbound)
    }

    /// Until when the session's loop should read nothing more from its pipe: a message of it
    /// went over its rate (§8.1 item 18), and reading on would only cost a refusal per
    /// message. The loop wakes then and calls
    /// [`handle_session_timeout`](Self::handle_session_timeout), which ends the pause; `None`
    /// while it may read.
    pub fn poll_read(&self, session: &Session) -> Option<Instant> {
        session.rate.as_ref()?.pause()
    }

    /// The deadline `session` has while packets that arrived at `now` are handled: handling
    /// them counts as traffic ([`handle_packet`](Self::handle_packet)).
    pub(crate) fn deadline_after_inbound(&self, session: &Session, now: Instant) -> Instant {
        Self::deadline(session, now.max(session.last_inbound))
    }

    fn deadline(session: &Session, last_inbound: Instant) -> Instant {
        let idle = last_inbound + session.idle_expiry;
        session.login_deadline.map_or(idle, |login| login.min(idle))
    }

    /// The session's deadline may have passed at `now`: a session that has not logged in by
    /// its login deadline is closed, whatever it sent meanwhile (§4.2), and a session silent
    /// for its idle expiry is closed (§3.4); one that spoke since goes on until its new
    /// deadline.
    pub fn handle_session_timeout(&self, session: &mut Session, now: Instant) -> Flow {
        if let Some(rate) = &mut session.rate
            && rate.pause().is_some_and(|pause| now >= pause)
        {
            rate.pause_until(None);
        }
        if session.login_deadline.is_some_and(|login| now >= login) {
            self.metrics.refused(Refusal::login_timeout);
            tracing::debug!(timeout = ?self.config.login_timeout, "no login in time");
            Flow::Close
        } else if now >= session.last_inbound + session.idle_expiry {
            tracing::debug!(expiry = ?session.idle_expiry, "idle expiry");
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    /// The session has ended (for whatever reason), or has lost its user and goes on
    /// unauthenticated (a UDP pseudo-session kicked by an administrator, a session logging in
    /// as somebody else): if it is its user's online session, the user goes offline and
    /// `on_logout` fires (§4.4); a replay of stored messages to it stops, the rest staying
    /// stored. A session that goes on must log in again within the login timeout. Idempotent.
    pub fn close_session(&self, session: &mut Session) {
        let Some(user) = session.user.take() else {
            return;
        };
        session.end_login();
        session.login_deadline = Some(self.clock.now() + self.config.login_timeout);
        if self.registry.remove_if_current(&user, session.info().id) {
            self.hooks
                .on_logout(&user, session.info(), session.kick_code);
            self.cluster.left(&user);
        }
        self.stop_replay(&user, session.info().id);
    }
}
