//! [`SsePipe`]: the pipe of an HTTP session. Its inbound side yields the packets the API's
//! requests deliver (the login at creation, acknowledgements, keepalives, logout); its
//! outbound side turns what the core writes into events for the session's stream. Like every
//! gateway it decides nothing: login, duplicate logins, kicks, QoS and idle expiry are the
//! core's.

use std::sync::Arc;

use bytes::Bytes;
use hongyan_shared::{LoginResponse, Packet, PacketType, Transport, codes};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::event::{Event, LogoutReason};
use super::link::Link;
use crate::config::HTTP_SESSION_MAX_OUTBOUND;
use crate::pipe::{Pipe, PipeError, PipeProperties};

/// How the login that opens an HTTP session turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginOutcome {
    /// Answered and registered: the session is its user's online session.
    LoggedIn {
        /// The `firstLoginTime` it was answered with.
        first_login_time: i64,
    },
    /// Verification refused it with this code.
    Refused(i32),
    /// The session ended first (its login deadline passed, or the server shut down).
    Ended,
}

/// The pipe of one HTTP session.
pub(crate) struct SsePipe {
    link: Arc<Link>,
    inbound: mpsc::Receiver<Bytes>,
    /// Told how the login turned out, once.
    login: Option<oneshot::Sender<LoginOutcome>>,
    /// The `firstLoginTime` of an accepted login's answer, until the core says the session is
    /// registered.
    answered: Option<i64>,
    /// A kickout was streamed: it says why the session ends.
    kicked: bool,
    shutdown: CancellationToken,
}

impl SsePipe {
    /// A pipe for the session `link` shares, reading `inbound`; `login` hears how its login
    /// turned out. `shutdown` tells a server shutdown from other ends.
    pub(crate) fn new(
        link: Arc<Link>,
        inbound: mpsc::Receiver<Bytes>,
        login: oneshot::Sender<LoginOutcome>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            link,
            inbound,
            login: Some(login),
            answered: None,
            kicked: false,
            shutdown,
        }
    }

    fn login_answered(&mut self, packet: &Packet) {
        let answer = packet
            .data_content
            .as_deref()
            .and_then(|data| LoginResponse::decode(data).ok());
        match answer {
            Some(answer) if answer.code == codes::OK => {
                self.answered = Some(answer.first_login_time);
            }
            Some(answer) => self.tell(LoginOutcome::Refused(answer.code)),
            None => {}
        }
    }

    fn tell(&mut self, outcome: LoginOutcome) {
        if let Some(login) = self.login.take() {
            let _ = login.send(outcome);
        }
    }
}

impl Pipe for SsePipe {
    /// A connection (a kickout ends it), never spoofed (the API authenticated its creator),
    /// carrying packets larger than any client transport does.
    fn properties(&self) -> PipeProperties {
        PipeProperties::of(Transport::Http, HTTP_SESSION_MAX_OUTBOUND)
    }

    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        self.inbound.recv().await.map(Ok)
    }

    /// A message or a kickout becomes an event, waiting for room in the session's queue; the
    /// login's answer goes to whoever created the session; keepalive answers and the like are
    /// nothing the user receives.
    async fn send(&mut self, body: Bytes) -> Result<(), PipeError> {
        let Ok(packet) = Packet::decode(&body) else {
            tracing::error!("a packet the server encoded did not decode");
            return Ok(());
        };
        match packet.kind {
            PacketType::CommonData => self.link.queue(Event::message(&packet)).await,
            PacketType::Kickout => {
                self.kicked = true;
                self.link.queue_last(Event::kickout(&packet));
                Ok(())
            }
            PacketType::LoginResponse => {
                self.login_answered(&packet);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Events are the stream's as soon as they are queued.
    async fn flush(&mut self) -> Result<(), PipeError> {
        Ok(())
    }

    /// Ends the session's stream, after what is queued and a `logout` event unless a kickout
    /// said why.
    async fn close(mut self, _error: Option<PipeError>) {
        self.tell(LoginOutcome::Ended);
        let reason = if self.link.logout_requested() {
            LogoutReason::Logout
        } else if self.shutdown.is_cancelled() {
            LogoutReason::Shutdown
        } else {
            LogoutReason::Closed
        };
        self.link.end((!self.kicked).then(|| Event::logout(reason)));
    }

    fn logged_in(&mut self) {
        if let Some(first_login_time) = self.answered.take() {
            self.tell(LoginOutcome::LoggedIn { first_login_time });
        }
    }
}
