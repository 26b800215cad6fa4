//! A core on a manual clock with recording hooks, and peers on in-memory pipes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use hongyan_shared::{
    Fingerprint, Instant, LoginInfo, LoginResponse, Outgoing, Packet, PacketType, Transport, UserId,
};

use hongyan_store::{MemoryStore, MessageStore};

use crate::clock::{Clock, ManualClock};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::core::{Core, Flow};
use crate::gateway::memory::MemoryPipe;
use crate::handle::{Sent, ServerHandle};
use crate::hooks::{Hooks, LoginRequest, SessionInfo};
use crate::metrics::PerTransport;
use crate::pipe::PipeProperties;
use crate::session::{Outbox, PushError, Session};

/// The wall time the clock starts at.
pub(super) const T0: i64 = 1_700_000_000_000;

/// What the hooks were told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    Login(String),
    Logout(String, Option<i32>),
    C2s(String),
    C2cDelivered(String),
    Offline(String),
    /// `on_stored`: kept by the message store for an offline receiver.
    Stored(String),
    S2cReceived(String, String),
    S2cLost(String),
    Expired(String),
}

/// Hooks that record events. A login whose token is `refuse-N` is refused with code N.
#[derive(Debug, Default)]
pub(super) struct TestHooks {
    events: Mutex<Vec<Event>>,
    /// What `on_offline` answers.
    pub(super) store_offline: AtomicBool,
}

impl TestHooks {
    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    /// Takes the events recorded so far.
    pub(super) fn take(&self) -> Vec<Event> {
        std::mem::take(&mut self.events.lock().unwrap())
    }
}

fn fp_of(packet: &Packet) -> String {
    packet
        .fp
        .as_ref()
        .map(|f| f.as_str().to_owned())
        .unwrap_or_default()
}

#[async_trait]
impl Hooks for TestHooks {
    async fn verify_login(&self, login: LoginRequest<'_>) -> i32 {
        login
            .token
            .and_then(|t| t.strip_prefix("refuse-"))
            .map_or(0, |code| code.parse().unwrap())
    }

    fn on_login(&self, user: &UserId, _extra: Option<&str>, _session: SessionInfo) {
        self.record(Event::Login(user.to_string()));
    }

    fn on_logout(&self, user: &UserId, _session: SessionInfo, kick_code: Option<i32>) {
        self.record(Event::Logout(user.to_string(), kick_code));
    }

    fn on_c2s(&self, packet: &Packet, _session: SessionInfo) {
        self.record(Event::C2s(fp_of(packet)));
    }

    fn on_c2c_delivered(&self, packet: &Packet) {
        self.record(Event::C2cDelivered(fp_of(packet)));
    }

    async fn on_offline(&self, packet: &Packet) -> bool {
        self.record(Event::Offline(fp_of(packet)));
        self.store_offline.load(Ordering::Relaxed)
    }

    fn on_stored(&self, packet: &Packet) {
        self.record(Event::Stored(fp_of(packet)));
    }

    fn on_s2c_lost(&self, lost: &[Packet]) {
        for packet in lost {
            self.record(Event::S2cLost(fp_of(packet)));
        }
    }

    fn on_s2c_received(&self, user: &UserId, fp: &Fingerprint) {
        self.record(Event::S2cReceived(user.to_string(), fp.to_string()));
    }

    fn on_expired(&self, expired: &[Packet]) {
        for packet in expired {
            self.record(Event::Expired(fp_of(packet)));
        }
    }
}

/// A session and its in-memory pipe, as its loop would hold them.
pub(super) struct Peer {
    pub(super) session: Session,
    pub(super) outbox: Outbox,
    pub(super) pipe: MemoryPipe,
}

impl Peer {
    /// Every packet written on the pipe since the last call, decoded.
    pub(super) fn written(&mut self) -> Vec<Packet> {
        self.pipe
            .take_written()
            .iter()
            .map(|body| Packet::decode(body).expect("the server writes packets"))
            .collect()
    }

    /// Bodies written since the last call, as sent.
    pub(super) fn written_bytes(&mut self) -> Vec<Vec<u8>> {
        self.pipe
            .take_written()
            .into_iter()
            .map(|b| b.to_vec())
            .collect()
    }
}

/// A core on a manual clock with [`TestHooks`].
pub(super) struct Harness {
    pub(super) clock: Arc<ManualClock>,
    pub(super) hooks: Arc<TestHooks>,
    pub(super) core: Arc<Core>,
    /// The message store, for a harness made [`with_store`](Self::with_store).
    pub(super) store: Option<Arc<MemoryStore>>,
    next_port: std::cell::Cell<u16>,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self::with(|_| {})
    }

    /// A harness whose configuration `configure` changed first.
    pub(super) fn with(configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::loopback();
        configure(&mut config);
        Self::build(config, None)
    }

    /// A harness keeping messages in a memory store, its configuration changed by `configure`.
    /// Without conversation history, which has its tests of its own
    /// ([`with_history`](Self::with_history)): these are about store and forward.
    pub(super) fn with_store(configure: impl FnOnce(&mut Config)) -> Self {
        Self::with_history(|config| {
            config.history_retention = Duration::ZERO;
            configure(config);
        })
    }

    /// A harness keeping messages and conversation history in a memory store, its
    /// configuration changed by `configure`.
    pub(super) fn with_history(configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Self::history_config();
        configure(&mut config);
        let store = Arc::new(MemoryStore::new(config.store_config().limits));
        Self::build(config, Some(store))
    }

    /// A harness with a memory store, one node of the cluster `cluster`.
    pub(super) fn in_cluster(cluster: Arc<dyn Cluster>) -> Self {
        let store = Arc::new(MemoryStore::new(Config::loopback().store_config().limits));
        Self::in_cluster_on(store, cluster)
    }

    /// One node of the cluster `cluster` on `store`, which the other nodes share: configured
    /// as a node is (`cluster` set), so the store numbers the history.
    pub(super) fn in_cluster_on(store: Arc<MemoryStore>, cluster: Arc<dyn Cluster>) -> Self {
        let mut config = Config::loopback();
        config.cluster = Some("nats://127.0.0.1:4222".to_owned());
        Self::build_in(config, Some(store), Some(cluster))
    }

    /// A harness on `store`, which another harness may have used before, as a server
    /// restarted on the same store.
    pub(super) fn with_history_in(
        store: Arc<MemoryStore>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Self::history_config();
        configure(&mut config);
        Self::build(config, Some(store))
    }

    /// A server's configuration whose history is written at the next chore (no flush
    /// delay): these tests are about what is written, and a chore is their unit of time.
    fn history_config() -> Config {
        Config {
            history_flush_delay: Some(Duration::ZERO),
            ..Config::loopback()
        }
    }

    fn build(config: Config, store: Option<Arc<MemoryStore>>) -> Self {
        Self::build_in(config, store, None)
    }

    fn build_in(
        config: Config,
        store: Option<Arc<MemoryStore>>,
        cluster: Option<Arc<dyn Cluster>>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let hooks = Arc::new(TestHooks::default());
        let mut core = Core::new(config, hooks.clone(), clock.clone());
        if let Some(store) = &store {
            core = core.with_store(store.clone());
        }
        if let Some(cluster) = cluster {
            core = core.with_cluster(cluster);
        }
        Self {
            clock,
            hooks,
            core: Arc::new(core),
            store,
            next_port: std::cell::Cell::new(40_000),
        }
    }

    /// How many messages the store keeps for `user`.
    pub(super) fn stored(&self, user: &str) -> u64 {
        self.store
            .as_ref()
            .expect("a harness with a store")
            .count(&UserId::from(user))
            .now_or_never()
            .expect("the memory store never waits")
            .expect("the memory store counts")
    }

    /// Runs the store chores due now (removals, sweeps, stalled replays).
    pub(super) fn chores(&self) {
        self.core
            .handle_store_timeout(self.now())
            .now_or_never()
            .expect("with a memory store, the chores never wait");
    }

    pub(super) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(super) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The send API of this core.
    pub(super) fn handle(&self) -> ServerHandle {
        ServerHandle::new(self.core.clone())
    }

    /// Pushes `push` through the send API, which must not wait (the store, if any, is in
    /// memory).
    pub(super) fn push(&self, push: Outgoing) -> Result<Sent, PushError> {
        self.handle()
            .send(push)
            .now_or_never()
            .expect("with an in-memory store, a push never waits")
    }

    /// A new session on a pipe with `transport`'s rules and configured limit.
    pub(super) fn open(&self, transport: Transport) -> Peer {
        let max = self.core.config.max_outbound(transport);
        self.open_with(PipeProperties::of(transport, max))
    }

    pub(super) fn open_with(&self, properties: PipeProperties) -> Peer {
        self.open_from(properties, [127, 0, 0, 1])
    }

    /// [`open_with`](Self::open_with) from another address, `ip`.
    pub(super) fn open_from(&self, properties: PipeProperties, ip: [u8; 4]) -> Peer {
        let port = self.next_port.get();
        self.next_port.set(port + 1);
        let peer = SocketAddr::from((ip, port));
        let (session, outbox) = self.core.open_session(properties, peer, self.now());
        Peer {
            session,
            outbox,
            pipe: MemoryPipe::new(properties),
        }
    }

    /// `peer` sent `packet`.
    pub(super) fn receive(&self, peer: &mut Peer, packet: &Packet) -> Flow {
        self.receive_bytes(peer, packet.to_json().as_bytes())
    }

    /// `peer` sent `body`.
    pub(super) fn receive_bytes(&self, peer: &mut Peer, body: &[u8]) -> Flow {
        let now = self.now();
        let flow = self
            .core
            .handle_packet(&mut peer.session, &mut peer.pipe, body, now)
            .now_or_never()
            .expect("with an in-memory pipe and immediate hooks, handling never waits");
        if peer.session.lane.is_some() {
            // As the session's loop would: what it handed off runs as far as it can now, and
            // the acknowledgements it queued are written.
            self.drive_lane(peer);
        }
        flow
    }

    /// Runs `peer`'s lane as far as it goes without waiting, and writes what it queued.
    pub(super) fn drive_lane(&self, peer: &mut Peer) {
        let _ = self.core.drive_lane(&mut peer.session).now_or_never();
        self.deliver(peer);
    }

    /// Writes what `peer`'s outbox holds, as its loop would; the first `Close` stops.
    pub(super) fn deliver(&self, peer: &mut Peer) -> Flow {
        while let Some(out) = peer.outbox.try_recv() {
            let flow = self
                .core
                .handle_outbound(&mut peer.session, &mut peer.pipe, out)
                .now_or_never()
                .expect("with an in-memory pipe, writing never waits");
            if flow == Flow::Close {
                return flow;
            }
        }
        Flow::Continue
    }

    /// The server-wide tick at the clock's time.
    pub(super) fn tick(&self) {
        self.core
            .handle_timeout(self.now())
            .now_or_never()
            .expect("with immediate hooks, the tick never waits");
    }

    /// Logs `peer` in as `user` with `first_login_time`, returning the response and taking
    /// everything written.
    pub(super) fn login(
        &self,
        peer: &mut Peer,
        user: &str,
        first_login_time: i64,
    ) -> (Flow, LoginResponse) {
        let mut info = LoginInfo::new(user, Some("token"), None);
        info.first_login_time = first_login_time;
        let flow = self.receive(peer, &Packet::login(&info));
        let written = peer.written();
        let response = written
            .iter()
            .find(|p| p.kind == PacketType::LoginResponse)
            .and_then(|p| LoginResponse::decode(p.data_content.as_deref()?).ok())
            .expect("a login response");
        (flow, response)
    }

    /// How many refusals `/metrics` counts for `reason`.
    pub(super) fn refused(&self, reason: &str) -> u64 {
        let text = self.core.metrics.render(PerTransport::default(), 0, 0);
        let series = format!("hongyan_refused_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |n| n.parse().unwrap())
    }

    /// A logged-in peer, its login events taken.
    pub(super) fn online(&self, transport: Transport, user: &str) -> Peer {
        let mut peer = self.open(transport);
        let (flow, response) = self.login(&mut peer, user, 0);
        assert_eq!((flow, response.code), (Flow::Continue, 0));
        self.hooks.take();
        peer
    }
}

/// A C2C or C2S data packet from `from` to `to`, with QoS and fingerprint `fp`.
pub(super) fn data(from: &str, to: &str, fp: &str) -> Packet {
    let mut packet = Packet::common_data(from, to, "hello", Some(Fingerprint::new(fp)), 0);
    packet.qos = true;
    packet
}

/// The kinds of `packets`, to compare at a glance.
pub(super) fn kinds(packets: &[Packet]) -> Vec<PacketType> {
    packets.iter().map(|p| p.kind).collect()
}
