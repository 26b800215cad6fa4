//! A harness that runs the server's protocol core (`hongyan_server::engine::Core`) as the
//! gateways' session loop does (`gateway/driver.rs`), on in-memory pipes and a manual clock,
//! and checks the core's invariants as it goes: what the `server_core` and `udp_datagram`
//! targets share.
//!
//! It closes a session when the core says so, when somebody asked it to close, when its pipe
//! yields an error, and a UDP pseudo-session after its first datagram unless it logged in.
//! What it checks is listed on [`Harness`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use hongyan_server::engine::{
    Clock, Core, Flow, ManualClock, MemoryPipe, Outbox, Pipe, PipeError, PipeProperties, Session,
};
use hongyan_server::{Config, Hooks, LoginRequest, Sent, ServerHandle, SessionInfo};
use hongyan_shared::{
    Fingerprint, Instant, LoginResponse, Outgoing, Packet, PacketType, Transport, UserId, codes,
};

use crate::server_input::{FpChoice, Seen};

/// Most fingerprints and login times remembered for inputs to refer back to.
const MAX_SEEN: usize = 64;

/// Polls a future the core returned: with in-memory pipes and immediate hooks it never waits.
fn at_once<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("with in-memory pipes and immediate hooks, the core never waits")
}

/// What the application was told, and the checks it can make on the spot.
#[derive(Default)]
struct Record {
    /// `(user, fp)` of every QoS message handed to the application (`on_c2s`).
    c2s: HashSet<(String, String)>,
    /// `(receiver, fp)` of every QoS C2C message relayed to its receiver or stored for it.
    relayed: HashSet<(String, String)>,
    /// `(user, fp)` of every QoS packet sent to a user (pushed or relayed), so tracked.
    tracked: HashSet<(String, String)>,
    /// The session each online user is on, as `on_login` and `on_logout` tell it.
    online: HashMap<String, u64>,
}

struct FuzzHooks {
    record: Mutex<Record>,
    store_offline: bool,
}

impl FuzzHooks {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record
            .lock()
            .expect("a failed check ends the process, so the lock is never poisoned in use")
    }
}

fn key(user: &str, fp: &Fingerprint) -> (String, String) {
    (user.to_owned(), fp.as_str().to_owned())
}

#[async_trait]
impl Hooks for FuzzHooks {
    async fn verify_login(&self, login: LoginRequest<'_>) -> i32 {
        if login.token == Some("refuse") {
            1025
        } else {
            codes::OK
        }
    }

    fn on_login(&self, user: &UserId, _extra: Option<&str>, session: SessionInfo) {
        self.record()
            .online
            .insert(user.as_str().to_owned(), session.id.0);
    }

    fn on_logout(&self, user: &UserId, session: SessionInfo, _kick_code: Option<i32>) {
        let was = self.record().online.remove(user.as_str());
        assert_eq!(
            was,
            Some(session.id.0),
            "on_logout for a session that was not the user's online one"
        );
    }

    fn on_c2s(&self, packet: &Packet, _session: SessionInfo) {
        if let Some(fp) = packet.qos_fingerprint() {
            self.record().c2s.insert(key(packet.from_str(), fp));
        }
    }

    fn on_c2c_delivered(&self, packet: &Packet) {
        if let Some(fp) = packet.qos_fingerprint() {
            let mut record = self.record();
            record.relayed.insert(key(packet.to_str(), fp));
            record.tracked.insert(key(packet.to_str(), fp));
        }
    }

    async fn on_offline(&self, packet: &Packet) -> bool {
        if self.store_offline
            && let Some(fp) = packet.qos_fingerprint()
        {
            self.record().relayed.insert(key(packet.to_str(), fp));
        }
        self.store_offline
    }

    fn on_s2c_lost(&self, lost: &[Packet]) {
        let record = self.record();
        for packet in lost {
            let fp = packet.fp.as_ref().expect("a QoS packet has a fingerprint");
            assert!(
                record.tracked.contains(&key(packet.to_str(), fp)),
                "a loss reported for a packet never sent to {}",
                packet.to_str()
            );
        }
    }

    fn on_s2c_received(&self, user: &UserId, fp: &Fingerprint) {
        assert!(
            self.record().tracked.contains(&key(user.as_str(), fp)),
            "an acknowledgement settled a packet never sent to its user"
        );
    }
}

/// A [`MemoryPipe`] that also remembers whether its session logged in (the UDP gateway keeps a
/// pseudo-session from then on) and how many bytes it wrote.
struct FuzzPipe {
    inner: MemoryPipe,
    logged_in: bool,
    bytes_sent: usize,
}

impl Pipe for FuzzPipe {
    fn properties(&self) -> PipeProperties {
        self.inner.properties()
    }

    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        self.inner.recv().await
    }

    async fn send(&mut self, body: Bytes) -> Result<(), PipeError> {
        let len = body.len();
        self.inner.send(body).await?;
        self.bytes_sent += len;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        self.inner.flush().await
    }

    async fn close(self, error: Option<PipeError>) {
        self.inner.close(error).await;
    }

    fn logged_in(&mut self) {
        self.logged_in = true;
    }
}

/// One session, as a gateway's session loop holds it.
struct Conn {
    session: Session,
    outbox: Outbox,
    pipe: FuzzPipe,
    properties: PipeProperties,
    peer: SocketAddr,
}

/// The server core, its sessions and its application, with the checks of the core's
/// invariants. After every operation the caller runs [`after_op`](Self::after_op) and
/// [`check`](Self::check), and at the end [`finish`](Self::finish).
///
/// Checked as it goes:
/// - every future the core returns completes at once (in-memory pipes, hooks that answer at
///   once);
/// - every packet the server writes decodes, and is within its pipe's outbound limit;
/// - a spoofable peer that has not logged in (UDP) is never answered with more bytes than it
///   sent;
/// - a connection (TCP, WebSocket) that was written a kickout is closed;
/// - "acknowledged" is never a lie: a client → server acknowledgement is written only for a
///   message the application was given (`on_c2s`), a pseudo-acknowledgement in a receiver's
///   name only for a message relayed to that receiver or stored for it;
/// - an acknowledgement from a client settles (`on_s2c_received`), and a loss is reported
///   (`on_s2c_lost`), only for a QoS packet that was sent to that very user;
/// - after a session's deadline or the server's tick is handled at `now`, the next one is
///   later than `now`.
///
/// [`check`](Self::check): `on_login` and `on_logout` pair up, and the registry holds exactly
/// the users the application was told are online, each on an open session; the bounds hold
/// (QoS packets in flight, bytes held for delivery, the C2S de-duplication window).
///
/// [`finish`](Self::finish): once every peer has left and time has run past every retry and
/// lifetime, nothing is left (no user online, nothing in flight, no byte held, an empty
/// de-duplication window, no timer), and every QoS push has its outcome.
pub struct Harness {
    clock: Arc<ManualClock>,
    hooks: Arc<FuzzHooks>,
    core: Arc<Core>,
    handle: ServerHandle,
    config: Config,
    conns: Vec<Conn>,
    /// What inputs may refer back to.
    pub seen: Seen,
    /// The outcome of every QoS push.
    receipts: Vec<Sent>,
    /// Peers of the sessions closed since [`take_closed`](Self::take_closed).
    closed: Vec<SocketAddr>,
}

impl Harness {
    /// A server core with `config`, whose application stores messages for offline receivers
    /// if `store_offline`.
    pub fn new(config: Config, store_offline: bool) -> Self {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let hooks = Arc::new(FuzzHooks {
            record: Mutex::default(),
            store_offline,
        });
        let core = Arc::new(Core::new(config.clone(), hooks.clone(), clock.clone()));
        Self {
            handle: ServerHandle::new(core.clone()),
            clock,
            hooks,
            core,
            config,
            conns: Vec::new(),
            seen: Seen::default(),
            receipts: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// The configuration the core runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Sessions open.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The session of `peer`, if one is open.
    pub fn find(&self, peer: &SocketAddr) -> Option<usize> {
        self.conns.iter().position(|c| c.peer == *peer)
    }

    /// Session `i`'s peer.
    pub fn peer(&self, i: usize) -> SocketAddr {
        self.conns[i].peer
    }

    /// Whether session `i` was ever logged in (its pipe was told so).
    pub fn logged_in(&self, i: usize) -> bool {
        self.conns[i].pipe.logged_in
    }

    /// The user session `i` logged in as, if any.
    pub fn user(&self, i: usize) -> Option<&UserId> {
        self.conns[i].session.user()
    }

    /// The peers of the sessions closed since the last call.
    pub fn take_closed(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.closed)
    }

    /// Opens a session for `peer` on `transport`, as a gateway does on accept (TCP, WebSocket)
    /// or on a new address's first datagram (UDP, which the caller then hands over); returns
    /// its index.
    pub fn open(&mut self, transport: Transport, peer: SocketAddr) -> usize {
        let properties = PipeProperties::of(transport, self.config.max_outbound(transport));
        let (session, outbox) = self.core.open_session(properties, peer, self.now());
        self.conns.push(Conn {
            session,
            outbox,
            pipe: FuzzPipe {
                inner: MemoryPipe::new(properties),
                logged_in: false,
                bytes_sent: 0,
            },
            properties,
            peer,
        });
        self.conns.len() - 1
    }

    /// Hands `bytes` to session `i`'s core as its loop does, and closes the session where the
    /// loop would. Returns whether the session's pipe was told it logged in by this packet.
    pub fn receive(&mut self, i: usize, bytes: &[u8]) -> bool {
        let now = self.now();
        let conn = &mut self.conns[i];
        let limited = conn.properties.spoofable && conn.session.user().is_none();
        let was_logged_in = conn.pipe.logged_in;
        let before = conn.pipe.bytes_sent;
        let flow = at_once(
            self.core
                .handle_packet(&mut conn.session, &mut conn.pipe, bytes, now),
        );
        let answered = conn.pipe.bytes_sent - before;
        assert!(
            !limited || answered <= bytes.len(),
            "a spoofable peer that has not logged in got {answered} bytes for {}",
            bytes.len()
        );
        let logged_in_now = !was_logged_in && conn.pipe.logged_in;
        let written = conn.pipe.inner.take_written();
        let connection = !conn.properties.connectionless;
        let kicked = self.observe(i, written);
        assert!(
            !(kicked && connection && flow == Flow::Continue),
            "a connection goes on after a kickout"
        );
        let conn = &self.conns[i];
        // The UDP gateway forgets an address after answering it, unless it logged in.
        if flow == Flow::Close || (conn.properties.connectionless && !conn.pipe.logged_in) {
            self.close(i);
        }
        logged_in_now
    }

    /// Session `i`'s pipe yields an error (an oversized datagram, a broken frame): its loop
    /// closes it, answering nothing.
    pub fn refuse(&mut self, i: usize) {
        self.close(i);
    }

    /// Session `i`'s loop takes up to `items` of what was queued for it.
    pub fn drain(&mut self, i: usize, items: u8) {
        for _ in 0..items {
            let conn = &mut self.conns[i];
            let Some(out) = conn.outbox.try_recv() else {
                return;
            };
            let flow = at_once(
                self.core
                    .handle_outbound(&mut conn.session, &mut conn.pipe, out),
            );
            let connection = !conn.properties.connectionless;
            let written = conn.pipe.inner.take_written();
            let kicked = self.observe(i, written);
            assert!(
                !(kicked && connection && flow == Flow::Continue),
                "a connection goes on after a kickout"
            );
            if flow == Flow::Close {
                self.close(i);
                return;
            }
        }
    }

    /// Every later write on session `i` fails, as on a socket whose peer vanished.
    pub fn fail_writes(&mut self, i: usize) {
        self.conns[i].pipe.inner.fail_writes();
    }

    /// The peer of session `i` is gone, or its loop ends it: what the driver does.
    pub fn close(&mut self, i: usize) {
        let mut conn = self.conns.remove(i);
        self.core.close_session(&mut conn.session);
        conn.pipe.inner.close_in_place();
        let written = conn.pipe.inner.take_written();
        self.check_written(&conn.properties, &written);
        self.closed.push(conn.peer);
    }

    /// The application pushes a message to `to`.
    pub fn push(&mut self, to: &str, qos: bool, fp: &FpChoice, content: &str) {
        let fp = fp.resolve(&self.seen);
        let mut push = Outgoing::new(to, content).with_qos(qos);
        if qos {
            // Never a random fingerprint: a run depends only on its input.
            push = push.with_fingerprint(fp.clone());
        }
        if let Ok(sent) = at_once(self.handle.send(push))
            && qos
        {
            self.hooks.record().tracked.insert(key(to, &fp));
            self.receipts.push(sent);
        }
    }

    /// The application kicks `user`, with the administrator's code or `code`.
    pub fn kick(&mut self, user: &str, code: Option<i32>) {
        let user = UserId::from(user);
        let kicked = match code {
            Some(code) => self.handle.kick_with_code(&user, code, Some("fuzz")),
            None => self.handle.kick(&user, None),
        };
        assert_eq!(
            kicked,
            self.hooks.record().online.contains_key(user.as_str())
        );
    }

    /// Time passes by `ms`; every deadline due is handled.
    pub fn wait(&mut self, ms: u16) {
        self.clock.advance(Duration::from_millis(u64::from(ms)));
        self.handle_due();
    }

    /// Time moves to the earliest deadline, which is handled.
    pub fn wait_for_timeout(&mut self) {
        if let Some(next) = self.next_deadline() {
            self.clock.advance_to(next);
        }
        self.handle_due();
    }

    /// What a session loop does between inputs: a session somebody asked to close (a kick it
    /// could not be told, an outbox stalled too long) is closed.
    pub fn after_op(&mut self) {
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].session.is_closing() {
                self.close(i);
            } else {
                i += 1;
            }
        }
    }

    /// Checks what session `i` was written and remembers what inputs may refer back to;
    /// returns whether it was written a kickout.
    fn observe(&mut self, i: usize, written: Vec<Bytes>) -> bool {
        let properties = self.conns[i].properties;
        let packets = self.check_written(&properties, &written);
        let record = self.hooks.record();
        let mut kicked = false;
        for packet in packets {
            match packet.kind {
                PacketType::Ack => {
                    let fp = Fingerprint::from(packet.data_content.as_deref().unwrap_or(""));
                    if packet.from_str() == UserId::SERVER {
                        assert!(
                            record.c2s.contains(&key(packet.to_str(), &fp)),
                            "a C2S message acknowledged that the application was not given"
                        );
                    } else {
                        assert!(
                            record.relayed.contains(&key(packet.from_str(), &fp)),
                            "a C2C message acknowledged that was neither relayed nor stored"
                        );
                    }
                }
                PacketType::CommonData => {
                    if let Some(fp) = packet.qos_fingerprint()
                        && self.seen.fps.len() < MAX_SEEN
                    {
                        self.seen.fps.push(fp.clone());
                    }
                }
                PacketType::LoginResponse => {
                    if let Some(response) = packet
                        .data_content
                        .as_deref()
                        .and_then(|d| LoginResponse::decode(d).ok())
                        && response.code == codes::OK
                        && self.seen.login_times.len() < MAX_SEEN
                    {
                        self.seen.login_times.push(response.first_login_time);
                    }
                }
                PacketType::Kickout => kicked = true,
                _ => {}
            }
        }
        kicked
    }

    /// Every packet the server writes decodes and fits its pipe.
    fn check_written(&self, properties: &PipeProperties, written: &[Bytes]) -> Vec<Packet> {
        written
            .iter()
            .map(|body| {
                assert!(
                    body.len() <= properties.max_outbound,
                    "a {}-byte packet on a pipe limited to {}",
                    body.len(),
                    properties.max_outbound
                );
                Packet::decode(body).expect("every packet the server writes decodes")
            })
            .collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .conns
            .iter()
            .map(|c| self.core.poll_session_timeout(&c.session));
        sessions.chain(self.core.poll_timeout()).min()
    }

    /// Handles every deadline due now: each session's, then the server's tick (whose
    /// retransmissions wait in outboxes like anything else).
    fn handle_due(&mut self) {
        let now = self.now();
        let mut i = 0;
        while i < self.conns.len() {
            let conn = &mut self.conns[i];
            if self.core.poll_session_timeout(&conn.session) <= now {
                if self.core.handle_session_timeout(&mut conn.session, now) == Flow::Close {
                    self.close(i);
                    continue;
                }
                assert!(
                    self.core.poll_session_timeout(&conn.session) > now,
                    "a session's deadline is not later than the time it was handled at"
                );
            }
            i += 1;
        }
        if self.core.poll_timeout().is_some_and(|tick| tick <= now) {
            at_once(self.core.handle_timeout(now));
            if let Some(next) = self.core.poll_timeout() {
                assert!(next > now, "the server's tick is not later than its last");
            }
        }
    }

    /// The invariants that hold between any two operations.
    pub fn check(&self) {
        let (fingerprints, bytes) = self.handle.c2s_window();
        assert!(fingerprints <= self.config.dedup.capacity);
        // A single fingerprint larger than the whole bound is kept alone (see `DedupWindow`).
        assert!(bytes <= self.config.dedup.max_bytes || fingerprints <= 1);
        assert!(self.handle.in_flight() <= self.config.max_in_flight);
        assert!(self.handle.queued_bytes() <= self.config.max_queued_bytes);
        let record = self.hooks.record();
        assert_eq!(self.handle.online_count(), record.online.len());
        for (user, session) in &record.online {
            let info = self
                .handle
                .online_info(&UserId::from(user.as_str()))
                .expect("a user the application was told is online is in the registry");
            assert_eq!(info.session.id.0, *session);
            assert!(
                self.conns.iter().any(|c| c.session.info().id.0 == *session),
                "a user is online on a session that has ended"
            );
        }
    }

    /// Every peer leaves and time runs past every retry and lifetime: nothing may be left.
    pub fn finish(mut self) {
        while !self.conns.is_empty() {
            self.close(self.conns.len() - 1);
        }
        let mut ticks = 0;
        while let Some(next) = self.core.poll_timeout() {
            ticks += 1;
            assert!(ticks < 10_000, "the server's timer never stops");
            // At least a second at a time: nothing here depends on the exact instants.
            self.clock
                .advance_to(next.max(self.now() + Duration::from_secs(1)));
            at_once(self.core.handle_timeout(self.now()));
        }
        self.check();
        assert_eq!(self.handle.online_count(), 0, "a user is still online");
        assert_eq!(self.handle.in_flight(), 0, "a packet is still in flight");
        assert_eq!(self.handle.queued_bytes(), 0, "bytes are still held");
        assert_eq!(
            self.handle.c2s_window(),
            (0, 0),
            "the window still remembers"
        );
        for sent in self.receipts {
            assert!(
                sent.outcome().now_or_never().is_some(),
                "a QoS push never got its outcome"
            );
        }
    }
}
