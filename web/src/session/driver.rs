//! The task that owns the [`ClientSession`] and its WebSocket: every input (a UI command, a
//! frame, the socket opening or closing, a timer) is handed to the session, and after each
//! one every output is drained — packets to the socket, transport commands to gloo-net, events
//! to the [`ChatState`] signal — before the next input is awaited (the str0m run loop).

use std::future::pending;
use std::pin::Pin;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, Sink, SinkExt, StreamExt, pin_mut, select_biased};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State};
use hongyan_shared::client::{ClientSession, TransportCommand};
use hongyan_shared::{Instant, Packet};
use leptos::prelude::*;

use super::config::session_config;
use super::entropy::random_u64;
use super::events::updates_for;
use super::handle::{Command, SessionHandle};
use crate::state::{ChatState, EARLIER_PAGE, SessionUpdate};

/// Starts the driver on the browser's event loop and returns the handle that commands it.
/// The driver stops on [`SessionHandle::shutdown`], when every handle is gone, or when
/// `state` is disposed.
pub fn spawn(state: RwSignal<ChatState>) -> SessionHandle {
    let (handle, commands) = SessionHandle::detached();
    leptos::task::spawn_local(Driver::new(state).run(commands));
    handle
}

/// The socket the session asked for.
struct Link {
    ws: WebSocket,
    /// The `open` event has been seen and reported with `handle_connected`.
    open: bool,
}

/// What woke the driver.
enum Input {
    Command(Option<Command>),
    Opened,
    Frame(String),
    Closed,
    Timer,
}

struct Driver {
    state: RwSignal<ChatState>,
    session: Option<ClientSession>,
    server: String,
    link: Option<Link>,
}

impl Driver {
    fn new(state: RwSignal<ChatState>) -> Self {
        Self {
            state,
            session: None,
            server: String::new(),
            link: None,
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            if !self.drain().await {
                break;
            }
            let deadline = self.session.as_ref().and_then(ClientSession::poll_timeout);
            let input = next_input(&mut commands, &mut self.link, deadline).await;
            let now = Instant::now();
            match input {
                Input::Command(None | Some(Command::Shutdown)) => {
                    if let Some(session) = &mut self.session {
                        session.logout(now);
                    }
                    self.drain().await;
                    break;
                }
                Input::Command(Some(command)) => self.command(command, now),
                Input::Opened => self.with_session(|s| s.handle_connected(now)),
                Input::Frame(text) => match Packet::decode(text.as_bytes()) {
                    Ok(packet) => self.with_session(|s| s.handle_packet(packet, now)),
                    Err(error) => log::warn!("undecodable frame from the server: {error}"),
                },
                Input::Closed => {
                    self.link = None;
                    self.with_session(|s| s.handle_disconnected(now));
                }
                Input::Timer => self.with_session(|s| s.handle_timeout(now)),
            }
        }
        self.link = None;
        log::debug!("session driver stopped");
    }

    fn with_session(&mut self, f: impl FnOnce(&mut ClientSession)) {
        if let Some(session) = &mut self.session {
            f(session);
        }
    }

    fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Login(request) => {
                self.link = None;
                self.server = request.server;
                let mut session = ClientSession::new(session_config(random_u64()), now);
                match session.login(request.info, now) {
                    Ok(()) => self.session = Some(session),
                    Err(error) => {
                        log::warn!("login refused locally: {error}");
                        self.update(SessionUpdate::Ended);
                    }
                }
            }
            Command::Send(outgoing) => {
                let fp = outgoing.fp.clone();
                let result = match &mut self.session {
                    Some(session) => session
                        .send(outgoing, now)
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    None => Err("not logged in".to_owned()),
                };
                if let Err(error) = result {
                    log::warn!("message {fp:?} not sent: {error}");
                    // Never drop a message silently: the UI shows it lost, with a retry.
                    if let Some(fp) = fp {
                        self.update(SessionUpdate::Lost(fp));
                    }
                }
            }
            Command::MarkRead { peer, seq } => {
                if let Some(session) = &mut self.session
                    && let Err(error) = session.mark_read(peer, seq, now)
                {
                    // The read position is asked again once online (`ChatState::read_due`).
                    log::debug!("read position not sent: {error}");
                }
            }
            Command::FetchEarlier { peer, before } => {
                let result = match &mut self.session {
                    Some(session) => session
                        .fetch_older(peer.clone(), Some(before), EARLIER_PAGE, now)
                        .map_err(|e| e.to_string()),
                    None => Err("not logged in".to_owned()),
                };
                if let Err(error) = result {
                    log::info!("earlier messages not loaded: {error}");
                    self.update(SessionUpdate::EarlierUnavailable(peer));
                }
            }
            Command::Logout => match &mut self.session {
                Some(session) => session.logout(now),
                None => self.update(SessionUpdate::Ended),
            },
            Command::Shutdown => unreachable!("handled by the run loop"),
        }
    }

    /// Carries out everything the session has queued. Returns false when the UI is gone.
    async fn drain(&mut self) -> bool {
        let Some(session) = &mut self.session else {
            return true;
        };
        loop {
            let mut progress = false;
            while let Some(packet) = session.poll_transmit() {
                progress = true;
                let Some(link) = self.link.as_mut().filter(|link| link.open) else {
                    continue;
                };
                if let Err(error) = link.ws.send(Message::Text(packet.to_json())).await {
                    // The close event follows and reports the link down.
                    log::warn!("send failed: {error}");
                }
            }
            while let Some(command) = session.poll_transport() {
                progress = true;
                // Dropping a gloo-net socket closes it and detaches its listeners, so nothing
                // from a replaced connection reaches the session.
                self.link = None;
                if command == TransportCommand::Open {
                    match WebSocket::open(&self.server) {
                        Ok(ws) => self.link = Some(Link { ws, open: false }),
                        Err(error) => {
                            log::warn!("cannot open {}: {error}", self.server);
                            session.handle_disconnected(Instant::now());
                        }
                    }
                }
            }
            while let Some(event) = session.poll_event() {
                progress = true;
                for update in updates_for(event) {
                    if self.state.try_update(|s| s.apply(update)).is_none() {
                        return false;
                    }
                }
            }
            if !progress {
                return true;
            }
        }
    }

    fn update(&self, update: SessionUpdate) {
        self.state.try_update(|s| s.apply(update));
    }
}

/// Waits for the next thing the session must hear about. UI commands win ties, so a logout
/// is never starved by a chatty socket.
async fn next_input(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    link: &mut Option<Link>,
    deadline: Option<Instant>,
) -> Input {
    let timer = async move {
        match deadline {
            // One extra millisecond: setTimeout rounds, and waking a hair early would only
            // spin once more.
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                gloo_timers::future::sleep(wait + Duration::from_millis(1)).await;
            }
            None => pending::<()>().await,
        }
    }
    .fuse();
    let link_event = link_event(link).fuse();
    pin_mut!(timer, link_event);
    select_biased! {
        command = commands.next() => Input::Command(command),
        input = link_event => input,
        () = timer => Input::Timer,
    }
}

async fn link_event(link: &mut Option<Link>) -> Input {
    let Some(link) = link else {
        return pending().await;
    };
    if !link.open {
        // gloo-net's sink becomes ready when the socket leaves CONNECTING (opened or failed).
        let ws = &mut link.ws;
        let _ = std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx)).await;
        return if matches!(link.ws.state(), State::Open) {
            link.open = true;
            Input::Opened
        } else {
            Input::Closed
        };
    }
    loop {
        match link.ws.next().await {
            Some(Ok(Message::Text(text))) => return Input::Frame(text),
            Some(Ok(Message::Bytes(bytes))) => {
                log::warn!("ignoring a {}-byte binary frame", bytes.len());
            }
            Some(Err(error)) => {
                log::info!("connection closed: {error}");
                return Input::Closed;
            }
            None => return Input::Closed,
        }
    }
}
