//! One simulated client: a [`ClientSession`] driven over a bare [`Conn`] by one task, with a
//! [`Role`] that reacts to its events (log in and wait, send messages, count receipts).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hongyan_shared::{
    ClientEvent, ClientSession, ConnectionState, DedupConfig, LoginInfo, Packet, SenseMode,
    SessionConfig, Transport,
};
use tokio_util::sync::CancellationToken;

use crate::conn::{Conn, ConnError, Tls};

/// Packets handled before the session's replies are written, when batching.
const READ_BATCH: usize = 64;
/// Fingerprints each simulated client remembers to filter duplicates (the default is 100,000).
/// A hundred clients in one process receiving at the same rate grow their windows' hash maps
/// in lockstep, which stalled the generator for up to 100 ms and put its stalls into the
/// latency it reports. A smaller window cannot hide a duplicate from the report: receivers
/// also count every sequence number themselves.
const DEDUP_WINDOW: usize = 1024;

/// How every simulated client of a run connects and behaves.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) transport: Transport,
    pub(crate) target: SocketAddr,
    pub(crate) sense: Option<SenseMode>,
    pub(crate) timeout: Duration,
    /// Handle everything already received before writing the replies (one write per burst);
    /// false writes after every packet, as the Java clients do.
    pub(crate) batch: bool,
    /// TLS (TCP and WebSocket), if the run asks for it.
    pub(crate) tls: Option<Tls>,
}

/// Why a simulated client failed; reports count failures by [`kind`](Self::kind).
#[derive(Debug)]
pub(crate) enum Failure {
    Conn(ConnError),
    LoginRefused(i32),
    LoginTimeout,
    Closed,
    Kicked(i32),
    Send(String),
}

impl Failure {
    pub(crate) fn kind(&self) -> String {
        match self {
            Self::Conn(e) => e.kind(),
            Self::LoginRefused(code) => format!("login refused ({code})"),
            Self::LoginTimeout => "login timeout".into(),
            Self::Closed => "closed by server".into(),
            Self::Kicked(code) => format!("kicked ({code})"),
            Self::Send(e) => format!("send refused: {e}"),
        }
    }
}

impl From<ConnError> for Failure {
    fn from(e: ConnError) -> Self {
        Self::Conn(e)
    }
}

/// What a simulated client does with its session's events.
pub(crate) trait Role {
    /// Handles one event; true ends [`Peer::pump`].
    fn on_event(
        &mut self,
        event: ClientEvent,
        session: &mut ClientSession,
        now: Instant,
    ) -> Result<bool, Failure>;

    /// When [`on_wake`](Self::on_wake) should run next.
    fn wake_at(&self) -> Option<Instant> {
        None
    }

    /// Runs at [`wake_at`](Self::wake_at).
    fn on_wake(&mut self, session: &mut ClientSession, now: Instant) {
        let _ = (session, now);
    }
}

pub(crate) struct Peer {
    conn: Conn,
    session: ClientSession,
    scratch: Vec<u8>,
    read_batch: usize,
    /// Messages that arrived while logging in (a server replays stored messages right after
    /// the login response), for the role that pumps the peer next.
    early: Vec<ClientEvent>,
}

/// Waits for the login's answer, keeping messages that arrive with it.
#[derive(Default)]
struct Login {
    early: Vec<ClientEvent>,
}

impl Role for Login {
    fn on_event(
        &mut self,
        event: ClientEvent,
        _session: &mut ClientSession,
        _now: Instant,
    ) -> Result<bool, Failure> {
        match event {
            ClientEvent::StateChanged(ConnectionState::Online) => Ok(true),
            ClientEvent::LoginResponse { code, .. } if code != 0 => {
                Err(Failure::LoginRefused(code))
            }
            message @ ClientEvent::MessageReceived(_) => {
                self.early.push(message);
                Ok(false)
            }
            other => no_surprise(other).map(|()| false),
        }
    }
}

/// Events every role treats alike: a kickout or lost link is a failure.
pub(crate) fn no_surprise(event: ClientEvent) -> Result<(), Failure> {
    match event {
        ClientEvent::Kickout(k) => Err(Failure::Kicked(k.code)),
        ClientEvent::LinkClosed => Err(Failure::Closed),
        _ => Ok(()),
    }
}

impl Peer {
    /// Connects from `source` and logs in as `user`, within the dial's timeout.
    pub(crate) async fn login(
        dial: Dial,
        source: Ipv4Addr,
        user: &str,
        seed: u64,
    ) -> Result<Self, Failure> {
        let deadline = Instant::now() + dial.timeout;
        let mut config = SessionConfig::new(dial.transport, seed);
        if let Some(mode) = dial.sense {
            config = config.with_sense_mode(mode);
        }
        // A lost link is a failure to report, not something to hide by reconnecting.
        config.auto_relogin = false;
        config.dedup = DedupConfig::with_capacity(DEDUP_WINDOW);
        let now = Instant::now();
        let mut session = ClientSession::new(config, now);
        session
            .login(LoginInfo::new(user, Some("bench"), None), now)
            .expect("a fresh session with a valid user id can log in");
        while session.poll_transport().is_some() {}
        let conn = tokio::time::timeout_at(
            deadline.into(),
            Conn::open(dial.transport, source, dial.target, dial.tls.as_ref()),
        )
        .await
        .map_err(|_| Failure::LoginTimeout)??;
        session.handle_connected(Instant::now());
        let mut peer = Self {
            conn,
            session,
            scratch: Vec::with_capacity(512),
            read_batch: if dial.batch { READ_BATCH } else { 1 },
            early: Vec::new(),
        };
        let mut login = Login::default();
        peer.pump(&mut login, &CancellationToken::new(), Some(deadline))
            .await?;
        peer.early = login.early;
        if peer.session.state() == ConnectionState::Online {
            Ok(peer)
        } else {
            Err(Failure::LoginTimeout)
        }
    }

    /// Feeds the session until `role` is done, `stop` is cancelled or `deadline` passes;
    /// after every input it drains the session's packets, transport commands and events.
    pub(crate) async fn pump<R: Role>(
        &mut self,
        role: &mut R,
        stop: &CancellationToken,
        deadline: Option<Instant>,
    ) -> Result<(), Failure> {
        let now = Instant::now();
        for event in std::mem::take(&mut self.early) {
            if role.on_event(event, &mut self.session, now)? {
                return Ok(());
            }
        }
        let far = now + Duration::from_secs(3600);
        let timer = tokio::time::sleep_until(far.into());
        tokio::pin!(timer);
        let mut armed = far;
        loop {
            if self.drain(role, Instant::now()).await? {
                return Ok(());
            }
            let next = [self.session.poll_timeout(), role.wake_at(), deadline]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(far);
            if next != armed {
                timer.as_mut().reset(next.into());
                armed = next;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                received = self.conn.recv() => {
                    // Everything already received is handled before the replies go out, so
                    // the generator, like the server, answers a burst with one write.
                    let now = Instant::now();
                    let mut next = Some(received);
                    let mut handled = 0;
                    while let Some(received) = next.take() {
                        let Some(body) = received? else {
                            return Err(Failure::Closed);
                        };
                        match Packet::decode(&body) {
                            Ok(packet) => self.session.handle_packet(packet, now),
                            Err(e) => return Err(Failure::Conn(ConnError::Protocol(e.to_string()))),
                        }
                        handled += 1;
                        if handled < self.read_batch {
                            next = self.conn.recv().now_or_never();
                        }
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| d <= now) {
                        return Ok(());
                    }
                    self.session.handle_timeout(now);
                    if role.wake_at().is_some_and(|w| w <= now) {
                        role.on_wake(&mut self.session, now);
                    }
                    armed = far;
                }
            }
        }
    }

    /// Hands the session's events to `role`, then sends what the session (and `role`) queued;
    /// true when `role` is done.
    async fn drain<R: Role>(&mut self, role: &mut R, now: Instant) -> Result<bool, Failure> {
        let mut done = false;
        while let Some(event) = self.session.poll_event() {
            done |= role.on_event(event, &mut self.session, now)?;
        }
        let mut sent = false;
        while let Some(packet) = self.session.poll_transmit() {
            self.scratch.clear();
            packet.encode_into(&mut self.scratch);
            self.conn.send(&self.scratch).await?;
            sent = true;
        }
        if sent {
            self.conn.flush().await?;
        }
        // Without auto-relogin the session only asks for the transport after a login, which
        // `login` already answered: anything now means the link is gone.
        if self.session.poll_transport().is_some() {
            return Err(Failure::Closed);
        }
        Ok(done)
    }

    /// Logs out (type 3) and closes the connection.
    pub(crate) async fn logout(mut self) {
        self.session.logout(Instant::now());
        while let Some(packet) = self.session.poll_transmit() {
            self.scratch.clear();
            packet.encode_into(&mut self.scratch);
            if self.conn.send(&self.scratch).await.is_err() {
                return;
            }
        }
        let _ = self.conn.flush().await;
    }
}
