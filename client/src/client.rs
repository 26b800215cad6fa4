//! The application's handle ([`Client`]), its event stream ([`Events`]) and the driver task
//! that runs the shared [`ClientSession`] against real connections.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use hongyan_shared::client::{
    ClientEvent, ClientSession, ConnectionState, SendError, TransportCommand,
};
use hongyan_shared::{Fingerprint, LoginInfo, Outgoing, UserId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::tls::TlsConnector;
use crate::transport::{self, Link, LinkEvent};

/// How long a closing connection may take to flush its last packets (the logout) when the
/// session ends.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(1);

/// Commands buffered from the application to the driver.
const COMMAND_CAPACITY: usize = 256;

/// Reports buffered from connection tasks to the driver.
const LINK_EVENT_CAPACITY: usize = 1024;

#[derive(Debug)]
enum Command {
    Send {
        message: Outgoing,
        reply: oneshot::Sender<Result<Fingerprint, SendError>>,
    },
    Logout {
        done: oneshot::Sender<()>,
    },
}

/// A logged-in (or logging-in) MobileIMSDK client. Cheap to clone; every clone drives the same
/// session. When the last clone is dropped the client logs out.
///
/// Each client owns its own session, connections and timers, so any number of independent
/// clients can live in one process.
#[derive(Debug, Clone)]
pub struct Client {
    user: UserId,
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
}

/// The events of one [`Client`], in order: login responses, state changes, received messages,
/// delivery and loss reports, errors, link loss and kickout. Ends after the session ends
/// (logout, kickout, refused login).
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event, or `None` once the session has ended and every event was read.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

impl Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Starts a client: spawns its driver on the current tokio runtime, which connects to
    /// `config.endpoint` and logs in as `login`'s user. Returns at once; watch [`Events`] for
    /// [`ClientEvent::LoginResponse`], or await [`Client::wait_for`] with
    /// [`ConnectionState::Online`].
    ///
    /// Fails at once on a bad user id, or when a `tls://` or `wss://` endpoint's TLS cannot be
    /// set up (unreadable CA file, no system roots); connection failures are reported as
    /// events and retried instead.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn connect(
        config: ClientConfig,
        login: LoginInfo,
    ) -> Result<(Client, Events), ClientError> {
        let tls = transport::tls_connector(&config)?;
        let now = now();
        let mut session = ClientSession::new(config.session.clone(), now);
        let user = login.login_user_id.clone().unwrap_or_default();
        session.login(login, now)?;
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (state_tx, state_rx) = watch::channel(session.state());
        let (link_tx, link_rx) = mpsc::channel(LINK_EVENT_CAPACITY);
        let span = tracing::info_span!(
            "client",
            user = %user,
            transport = %config.endpoint.transport(),
        );
        let driver = Driver {
            session,
            config,
            tls,
            link: None,
            next_link_id: 0,
            link_tx,
            closing: Vec::new(),
            events: events_tx,
            state: state_tx,
            logout_waiters: Vec::new(),
        };
        tokio::spawn(driver.run(command_rx, link_rx).instrument(span));
        Ok((
            Client {
                user,
                commands,
                state: state_rx,
            },
            Events { rx: events_rx },
        ))
    }

    /// The user this client logs in as.
    pub fn user_id(&self) -> &UserId {
        &self.user
    }

    /// The connection state right now.
    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// Waits until the connection state is `state`. Fails with [`ClientError::Closed`] when the
    /// session ends first (unless `state` is [`ConnectionState::Offline`]).
    pub async fn wait_for(&self, state: ConnectionState) -> Result<(), ClientError> {
        let mut watch = self.state.clone();
        let result = watch.wait_for(|s| *s == state).await.map(|_| ());
        match result {
            Ok(()) => Ok(()),
            Err(_) if state == ConnectionState::Offline => Ok(()),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// Sends `content` to user `to` with QoS, returning its fingerprint. The outcome arrives as
    /// [`ClientEvent::MessageDelivered`] or [`ClientEvent::MessagesLost`].
    pub async fn send_c2c(
        &self,
        to: &str,
        content: impl Into<String>,
        typeu: i32,
    ) -> Result<Fingerprint, ClientError> {
        self.send(Outgoing::new(to, content).with_typeu(typeu))
            .await
    }

    /// Sends `content` to the server (C2S, `to` = `"0"`) with QoS, returning its fingerprint.
    pub async fn send_c2s(
        &self,
        content: impl Into<String>,
        typeu: i32,
    ) -> Result<Fingerprint, ClientError> {
        self.send(Outgoing::new(UserId::SERVER, content).with_typeu(typeu))
            .await
    }

    /// Sends any message (QoS or not, any `typeu`, a fingerprint of the application's
    /// choosing), returning its fingerprint.
    pub async fn send(&self, message: Outgoing) -> Result<Fingerprint, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send { message, reply })
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(answer.await.map_err(|_| ClientError::Closed)??)
    }

    /// Logs out (type 3) and ends the session; returns once the connection is closed. Pending
    /// QoS messages are reported lost. Does nothing if the session has already ended.
    pub async fn logout(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Logout { done }).await.is_ok() {
            // An error means the driver already stopped, which is what was asked.
            let _ = finished.await;
        }
    }
}

/// The current time as the session sees it. Taken from tokio's clock so that tests with a
/// paused clock move the session's timers too.
fn now() -> hongyan_shared::Instant {
    tokio::time::Instant::now().into_std()
}

/// Owns one [`ClientSession`] and carries out what it asks.
struct Driver {
    session: ClientSession,
    config: ClientConfig,
    /// Built once, so every reconnection can resume the last TLS session.
    tls: Option<TlsConnector>,
    link: Option<Link>,
    next_link_id: u64,
    link_tx: mpsc::Sender<(u64, LinkEvent)>,
    closing: Vec<JoinHandle<()>>,
    events: mpsc::Sender<ClientEvent>,
    state: watch::Sender<ConnectionState>,
    logout_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut link_events: mpsc::Receiver<(u64, LinkEvent)>,
    ) {
        loop {
            self.drain().await;
            if self.session.state() == ConnectionState::Offline {
                break;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => {
                        tracing::debug!("every handle dropped; logging out");
                        self.session.logout(now());
                    }
                },
                Some((id, event)) = link_events.recv() => self.link_event(id, event),
                () = sleep_until(deadline) => self.session.handle_timeout(now()),
            }
        }
        for task in self.closing.drain(..) {
            // A connection that cannot flush within the limit is abandoned.
            let _ = tokio::time::timeout(FLUSH_ON_CLOSE, task).await;
        }
        for waiter in self.logout_waiters.drain(..) {
            let _ = waiter.send(());
        }
        tracing::debug!("client session ended");
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Send { message, reply } => {
                let result = self.session.send(message, now());
                // The caller may have given up waiting; the message is sent regardless.
                let _ = reply.send(result);
            }
            Command::Logout { done } => {
                self.logout_waiters.push(done);
                self.session.logout(now());
            }
        }
    }

    fn link_event(&mut self, id: u64, event: LinkEvent) {
        if self.link.as_ref().map(|link| link.id) != Some(id) {
            return;
        }
        let now = now();
        match event {
            LinkEvent::Connected => self.session.handle_connected(now),
            LinkEvent::Packet(packet) => self.session.handle_packet(packet, now),
            LinkEvent::Closed => {
                self.link = None;
                self.session.handle_disconnected(now);
            }
        }
    }

    /// Carries out every output of the session: packets, then transport commands, then events.
    async fn drain(&mut self) {
        while let Some(packet) = self.session.poll_transmit() {
            let Some(link) = &self.link else { continue };
            if let Err(error) = link.outbound.try_send(packet) {
                tracing::warn!(%error, "connection buffer full; packet dropped");
            }
        }
        while let Some(command) = self.session.poll_transport() {
            if let Some(old) = self.link.take() {
                self.closing.push(old.task);
            }
            self.closing.retain(|task| !task.is_finished());
            if command == TransportCommand::Open {
                self.next_link_id += 1;
                let link = transport::open(
                    self.next_link_id,
                    &self.config,
                    self.tls.as_ref(),
                    self.link_tx.clone(),
                );
                self.link = Some(link);
            }
        }
        while let Some(event) = self.session.poll_event() {
            log_event(&event);
            if let ClientEvent::StateChanged(state) = event {
                self.state.send_replace(state);
            }
            // The application may have dropped its `Events`; the session runs on regardless.
            let _ = self.events.send(event).await;
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn log_event(event: &ClientEvent) {
    match event {
        ClientEvent::StateChanged(state) => tracing::info!(%state, "connection state"),
        ClientEvent::LoginResponse {
            code,
            first_login_time,
        } => tracing::info!(code, first_login_time, "login response"),
        ClientEvent::LinkClosed => tracing::info!("link closed"),
        ClientEvent::Kickout(kickout) => {
            tracing::info!(code = kickout.code, reason = ?kickout.reason, "kicked out");
        }
        ClientEvent::ErrorResponse { code, .. } => tracing::info!(code, "error response"),
        ClientEvent::RateLimited { fp } => tracing::info!(?fp, "message refused: sending too fast"),
        ClientEvent::MessagesLost(lost) => tracing::info!(count = lost.len(), "messages lost"),
        ClientEvent::MessageReceived(m) => {
            tracing::debug!(from = %m.from, fp = ?m.fp, "message received");
        }
        ClientEvent::MessageDelivered(fp) => tracing::debug!(%fp, "message delivered"),
    }
}
