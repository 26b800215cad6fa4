//! The client session state machine: login, keepalive, link loss, auto-relogin, kickout,
//! logout, QoS sending and duplicate-free receiving (§4.7, §5, §6.1, §6.3).

use std::collections::VecDeque;

use super::config::SessionConfig;
use super::event::{ClientEvent, ConnectionState, ReceivedMessage, TransportCommand};
use super::rng::SplitMix64;
use web_time::Instant;

use crate::packet::{
    ErrorResponse, Fingerprint, Kickout, LoginInfo, LoginResponse, Outgoing, Packet,
    PacketTooLarge, PacketType, UserId, codes,
};
use crate::qos::{DedupWindow, Retransmit, SendQueue};

/// Why a login could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The session already has a login under way or done; log out first.
    #[error("already logged in or logging in; log out first")]
    AlreadyActive,
    /// The user id is empty, `"0"` (the server) or `"-1"` (unset).
    #[error("{0:?} cannot log in: user ids must not be empty, \"0\" or \"-1\"")]
    InvalidUserId(String),
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No login is under way: call [`ClientSession::login`] first.
    #[error("not logged in")]
    NotLoggedIn,
    /// A message without QoS cannot wait for the link, and the session is not online.
    #[error("not online, and a message without QoS cannot be retried")]
    NotOnline,
    /// The fingerprint is already awaiting acknowledgement.
    #[error("fingerprint {0} is already pending")]
    DuplicateFingerprint(Fingerprint),
    /// The packet would exceed the transport's limit ([`SessionConfig::max_packet_len`]);
    /// [`Outgoing::check_size`] tells before sending.
    #[error(transparent)]
    TooLarge(#[from] PacketTooLarge),
}

/// Whether the session's transport is up, as far as the session knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    Opening,
    Up,
}

/// One client's protocol state, with no IO: the same code drives the native client and the
/// browser client.
///
/// Inputs are the application's commands ([`login`](Self::login), [`send`](Self::send),
/// [`logout`](Self::logout)), the transport's news ([`handle_connected`](Self::handle_connected),
/// [`handle_disconnected`](Self::handle_disconnected), [`handle_packet`](Self::handle_packet))
/// and the clock ([`handle_timeout`](Self::handle_timeout)). After every input the driver drains
/// the outputs in this order: [`poll_transmit`](Self::poll_transmit) (packets for the current
/// connection), [`poll_transport`](Self::poll_transport) (open or close the connection),
/// [`poll_event`](Self::poll_event) (for the application), and finally
/// [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout` next).
///
/// # Behaviour
/// It follows the Java clients: keepalives every interval after a login, the link declared
/// lost when no keepalive response came for the timeout (checked every 2000 ms), then an
/// immediate re-login with the `firstLoginTime` saved from the first successful login, repeated
/// every relogin interval on a new connection. QoS messages are retransmitted on the client
/// schedule even while offline and reported lost when the retries run out. Every received QoS
/// packet is acknowledged, duplicates included, and delivered once. A 301 error starts the
/// relogin timer; a kickout ends the session without relogin; a logout sends type 3 and ends it.
///
/// Deliberate differences from the Java clients, each to keep the guarantee "every QoS message
/// is reported delivered or lost exactly once":
/// - a QoS message sent while not online is queued and sent as soon as the login succeeds
///   (Java drops the first copy and waits for a retransmission tick); a message without QoS is
///   refused with [`SendError::NotOnline`];
/// - messages still pending when the session ends (logout, kickout, refused first login) are
///   reported in [`ClientEvent::MessagesLost`] (Java forgets them silently);
/// - an acknowledgement is reported once, and not at all after the message was reported lost
///   (Java reports every acknowledgement);
/// - with auto-relogin on, the first login is also retried every relogin interval until a
///   response arrives (Java leaves a lost first login to the application).
#[derive(Debug)]
pub struct ClientSession {
    config: SessionConfig,
    state: ConnectionState,
    link: Link,
    login: Option<LoginInfo>,
    first_login_saved: bool,
    relogin_at: Option<Instant>,
    keep_alive_at: Option<Instant>,
    check_at: Option<Instant>,
    last_keep_alive_response: Option<Instant>,
    send_queue: SendQueue<Fingerprint, Packet>,
    unsent: Vec<Packet>,
    dedup: DedupWindow<Fingerprint>,
    rng: SplitMix64,
    transmits: VecDeque<Packet>,
    transport: VecDeque<TransportCommand>,
    events: VecDeque<ClientEvent>,
}

impl ClientSession {
    /// An offline session.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Self {
            rng: SplitMix64::new(config.seed),
            send_queue: SendQueue::new(config.retransmit),
            dedup: DedupWindow::new(config.dedup, now),
            config,
            state: ConnectionState::Offline,
            link: Link::Down,
            login: None,
            first_login_saved: false,
            relogin_at: None,
            keep_alive_at: None,
            check_at: None,
            last_keep_alive_response: None,
            unsent: Vec::new(),
            transmits: VecDeque::new(),
            transport: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The login the session uses, with the saved `firstLoginTime` once the first login
    /// succeeded; `None` while offline.
    pub fn login_info(&self) -> Option<&LoginInfo> {
        self.login.as_ref()
    }

    /// The logged-in (or logging-in) user.
    pub fn user_id(&self) -> Option<&UserId> {
        self.login.as_ref()?.login_user_id.as_ref()
    }

    /// QoS messages awaiting acknowledgement.
    pub fn pending(&self) -> usize {
        self.send_queue.len()
    }

    /// Starts logging in as `info`'s user: asks the driver to open a connection and sends the
    /// login once it is up. `info.first_login_time` is normally 0; the session saves the
    /// server's answer to its first successful login and sends it on every re-login.
    pub fn login(&mut self, info: LoginInfo, now: Instant) -> Result<(), LoginError> {
        if self.state != ConnectionState::Offline {
            return Err(LoginError::AlreadyActive);
        }
        let user = info.login_user_id.clone().unwrap_or_default();
        if !user.is_valid_login() {
            return Err(LoginError::InvalidUserId(user.to_string()));
        }
        self.login = Some(info);
        self.first_login_saved = false;
        self.set_state(ConnectionState::Connecting);
        self.relogin_at = self
            .config
            .auto_relogin
            .then(|| now + self.config.relogin_interval);
        self.open_transport();
        Ok(())
    }

    /// Sends `message`, returning its fingerprint: the one the message carries, or a fresh
    /// UUIDv4 when it has none.
    ///
    /// With QoS the message is retransmitted until acknowledged and ends with exactly one
    /// [`ClientEvent::MessageDelivered`] or [`ClientEvent::MessagesLost`]; it may be sent while
    /// the session is connecting or reconnecting, and leaves as soon as it is online. Without
    /// QoS the packet still carries the fingerprint (for the application's bookkeeping) but
    /// nobody acknowledges it, and it is refused unless the session is online. A fingerprint
    /// chosen by the application lets it send a message again under its first one (e.g. after
    /// a restart), so that a receiver that has it already drops the copy; it is refused while
    /// a QoS message with the same fingerprint is still pending.
    pub fn send(&mut self, mut message: Outgoing, now: Instant) -> Result<Fingerprint, SendError> {
        let fp = message
            .fp
            .get_or_insert_with(|| Fingerprint::from_random(self.rng.next_u128()))
            .clone();
        let Some(from) = self.user_id() else {
            return Err(SendError::NotLoggedIn);
        };
        if !message.qos && !self.is_online() {
            return Err(SendError::NotOnline);
        }
        if message.qos && self.send_queue.contains(&fp) {
            return Err(SendError::DuplicateFingerprint(fp));
        }
        message.check_size(from, self.config.max_packet_len)?;
        let qos = message.qos;
        let packet = message.into_packet(from);
        if qos {
            self.send_queue.insert(fp.clone(), packet.clone(), now);
        }
        if self.is_online() {
            self.transmit(packet);
        } else {
            self.unsent.push(packet);
            debug_assert!(
                self.unsent.len() <= self.send_queue.len(),
                "only pending QoS messages wait for the login"
            );
        }
        Ok(fp)
    }

    /// Logs out: sends a logout (type 3) when online, then ends the session as a kickout does,
    /// without relogin. Messages still pending are reported lost. Does nothing while offline.
    pub fn logout(&mut self, _now: Instant) {
        if self.state == ConnectionState::Offline {
            return;
        }
        if self.is_online() {
            let from = self.user_id().expect("online implies a login").to_string();
            self.transmit(Packet::logout(&from));
        }
        self.release();
    }

    /// The connection requested by [`TransportCommand::Open`] is up.
    pub fn handle_connected(&mut self, _now: Instant) {
        if self.link != Link::Opening {
            return;
        }
        self.link = Link::Up;
        if let Some(info) = &self.login {
            let login = Packet::login(info);
            self.transmit(login);
        }
    }

    /// The current connection closed, or could not be opened.
    pub fn handle_disconnected(&mut self, now: Instant) {
        if self.link == Link::Down {
            return;
        }
        self.link = Link::Down;
        match self.state {
            ConnectionState::Online => self.link_lost(now),
            ConnectionState::Connecting if !self.config.auto_relogin => self.release(),
            _ => {}
        }
    }

    /// A packet arrived on the current connection.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) {
        if self.link != Link::Up || self.state == ConnectionState::Offline {
            return;
        }
        if packet.qos {
            let Some(fp) = packet.qos_fingerprint().cloned() else {
                // The Java clients fail on a QoS packet without a fingerprint: neither
                // acknowledged nor delivered (§6.3).
                return;
            };
            if !self.is_refused_login(&packet) {
                let ack = Packet::ack(packet.to_str(), packet.from_str(), &fp, packet.bridge);
                self.transmit(ack);
                let key_bytes = fp.as_str().len();
                if !self.dedup.observe_sized(fp, key_bytes, now) {
                    return;
                }
            }
        }
        match packet.kind {
            PacketType::LoginResponse => {
                let response = packet
                    .data_content
                    .as_deref()
                    .and_then(|d| LoginResponse::decode(d).ok());
                if let Some(response) = response {
                    self.on_login_response(response, now);
                }
            }
            PacketType::KeepAliveResponse if self.state == ConnectionState::Online => {
                self.last_keep_alive_response = Some(now);
            }
            PacketType::CommonData => {
                self.events
                    .push_back(ClientEvent::MessageReceived(ReceivedMessage::from_packet(
                        packet,
                    )));
            }
            PacketType::Ack => {
                let fp = Fingerprint::new(packet.data_content.unwrap_or_default());
                if self.send_queue.acknowledge(&fp).is_some() {
                    self.unsent.retain(|p| p.fp.as_ref() != Some(&fp));
                    self.events.push_back(ClientEvent::MessageDelivered(fp));
                }
            }
            PacketType::Error => {
                let error = packet
                    .data_content
                    .as_deref()
                    .and_then(|d| ErrorResponse::decode(d).ok())
                    .unwrap_or_default();
                let code = error.error_code;
                if code == codes::RATE_LIMITED {
                    self.events.push_back(ClientEvent::RateLimited {
                        fp: error.error_msg.map(Fingerprint::new),
                    });
                    return;
                }
                self.events.push_back(ClientEvent::ErrorResponse {
                    code,
                    message: error.error_msg,
                });
                if code == codes::RESPONSE_FOR_UNLOGIN {
                    self.not_logged_in(now);
                }
            }
            PacketType::Kickout => {
                let kickout = packet
                    .data_content
                    .as_deref()
                    .and_then(|d| Kickout::decode(d).ok())
                    .unwrap_or_default();
                self.events.push_back(ClientEvent::Kickout(kickout));
                self.events.push_back(ClientEvent::LinkClosed);
                self.release();
            }
            _ => {}
        }
    }

    /// Runs every timer that is due at `now`: relogin, keepalive, link timeout, QoS
    /// retransmission and the dedup sweep.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ConnectionState::Offline {
            return;
        }
        if self.state == ConnectionState::Online && self.check_at.is_some_and(|t| t <= now) {
            self.check_at = Some(now + self.config.timeout_check_interval);
            let timeout = self.config.keep_alive.timeout;
            if self
                .last_keep_alive_response
                .is_some_and(|last| now.saturating_duration_since(last) >= timeout)
            {
                self.link_lost(now);
            }
        }
        if self.state == ConnectionState::Online && self.keep_alive_at.is_some_and(|t| t <= now) {
            self.keep_alive_at = Some(now + self.config.keep_alive.interval);
            self.last_keep_alive_response.get_or_insert(now);
            let from = self.user_id().expect("online implies a login").to_string();
            self.transmit(Packet::keep_alive(&from));
        }
        if self.relogin_at.is_some_and(|t| t <= now) {
            self.relogin_at = Some(now + self.config.relogin_interval);
            self.open_transport();
        }
        let online = self.is_online();
        let mut resend = Vec::new();
        let mut lost = Vec::new();
        self.send_queue.handle_timeout(now, |r| match r {
            Retransmit::Resend(_, packet) if online => resend.push(packet.clone()),
            Retransmit::Resend(..) => {}
            Retransmit::Lost(_, packet) => lost.push(packet),
        });
        for packet in resend {
            self.transmit(packet);
        }
        self.report_lost(lost);
        if self.state == ConnectionState::Online {
            self.dedup.handle_timeout(now);
        }
    }

    /// The next packet to send on the current connection.
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.transmits.pop_front()
    }

    /// The next thing to do with the transport, after the packets from
    /// [`poll_transmit`](Self::poll_transmit) were sent.
    pub fn poll_transport(&mut self) -> Option<TransportCommand> {
        self.transport.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, or `None` when no timer
    /// runs (offline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == ConnectionState::Offline {
            return None;
        }
        let online = self.state == ConnectionState::Online;
        [
            self.relogin_at,
            self.keep_alive_at.filter(|_| online),
            self.check_at.filter(|_| online),
            self.send_queue.poll_timeout(),
            online.then(|| self.dedup.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_online(&self) -> bool {
        self.state == ConnectionState::Online && self.link == Link::Up
    }

    /// A QoS login response with a non-zero code is the one QoS packet the Java clients do not
    /// acknowledge (§2).
    fn is_refused_login(&self, packet: &Packet) -> bool {
        packet.kind == PacketType::LoginResponse
            && packet
                .data_content
                .as_deref()
                .and_then(|d| LoginResponse::decode(d).ok())
                .is_some_and(|r| r.code != codes::OK)
    }

    fn on_login_response(&mut self, response: LoginResponse, now: Instant) {
        if self.state == ConnectionState::Online {
            return;
        }
        self.events.push_back(ClientEvent::LoginResponse {
            code: response.code,
            first_login_time: response.first_login_time,
        });
        if response.code != codes::OK {
            if self.state == ConnectionState::Connecting {
                self.release();
            } else {
                self.close_transport();
            }
            return;
        }
        if !self.first_login_saved {
            self.first_login_saved = true;
            if let Some(info) = &mut self.login {
                info.first_login_time = response.first_login_time;
            }
        }
        self.set_state(ConnectionState::Online);
        self.relogin_at = None;
        self.keep_alive_at = Some(now + self.config.keep_alive.interval);
        self.check_at = Some(now + self.config.timeout_check_interval);
        self.last_keep_alive_response = None;
        self.dedup.restart(now);
        for packet in std::mem::take(&mut self.unsent) {
            self.transmit(packet);
        }
    }

    /// The link is gone (keepalive timeout or transport closed) while online.
    fn link_lost(&mut self, now: Instant) {
        self.transmits.clear();
        self.close_transport();
        self.stop_keep_alive();
        self.events.push_back(ClientEvent::LinkClosed);
        if self.config.auto_relogin {
            self.set_state(ConnectionState::Reconnecting);
            self.relogin_at = Some(now);
        } else {
            self.release();
        }
    }

    /// A 301: the server does not know this session as logged in.
    fn not_logged_in(&mut self, now: Instant) {
        if self.state != ConnectionState::Online {
            return;
        }
        self.stop_keep_alive();
        if self.config.auto_relogin {
            self.set_state(ConnectionState::Reconnecting);
            self.relogin_at = Some(now + self.config.relogin_interval);
        } else {
            self.events.push_back(ClientEvent::LinkClosed);
            self.release();
        }
    }

    /// Ends the session: closes the transport, stops every timer, reports pending messages
    /// lost and forgets the login (Java's `release()`).
    fn release(&mut self) {
        self.close_transport();
        self.stop_keep_alive();
        self.relogin_at = None;
        self.login = None;
        self.first_login_saved = false;
        self.unsent.clear();
        self.dedup.clear();
        let mut lost: Vec<(Fingerprint, Packet)> = self.send_queue.drain().collect();
        lost.sort_by(|a, b| a.0.cmp(&b.0));
        self.report_lost(lost.into_iter().map(|(_, p)| p).collect());
        self.set_state(ConnectionState::Offline);
    }

    fn report_lost(&mut self, lost: Vec<Packet>) {
        if lost.is_empty() {
            return;
        }
        self.unsent
            .retain(|p| !lost.iter().any(|l| l.fp.is_some() && l.fp == p.fp));
        self.events.push_back(ClientEvent::MessagesLost(lost));
    }

    fn stop_keep_alive(&mut self) {
        self.keep_alive_at = None;
        self.check_at = None;
        self.last_keep_alive_response = None;
    }

    fn open_transport(&mut self) {
        self.link = Link::Opening;
        self.transport.push_back(TransportCommand::Open);
    }

    fn close_transport(&mut self) {
        if self.link != Link::Down {
            self.link = Link::Down;
            self.transport.push_back(TransportCommand::Close);
        }
    }

    fn transmit(&mut self, packet: Packet) {
        if self.link == Link::Up {
            self.transmits.push_back(packet);
        }
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(ClientEvent::StateChanged(state));
        }
    }
}
