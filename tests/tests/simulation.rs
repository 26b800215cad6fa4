//! Deterministic simulation of the real server core and real client sessions over a seeded
//! lossy link (drop, duplicate, delay and so reorder), with one manual clock moved to the next
//! deadline: the clients' timers, the server's retransmission tick and idle expiries, and the
//! next scheduled delivery. No socket, no sleep, no thread: every future the core returns
//! completes at once (in-memory pipes, hooks that answer immediately), and one that would wait
//! fails the test.
//!
//! Each connection follows its transport's rules: a TCP or WebSocket connection is opened and
//! closed by either side (the other learns it after the packets already in flight), a UDP
//! client's datagrams open a pseudo-session on the server that only idle expiry ends.
//!
//! # The QoS invariant, stated precisely
//! QoS is hop by hop (§6): the sender hears "delivered" when the next hop acknowledged (C2S:
//! the server application has it; C2C: the server relayed it or the application stored it
//! offline; S2C: the receiving client has it), and "lost" when its retries ran out. A message
//! can reach its receiver although every acknowledgement was dropped, so "delivered to the
//! receiver" and "reported lost" can both be true. What always holds, under every seed:
//! 1. the sender reports every QoS message exactly once: delivered or lost, never both, never
//!    twice (C2C and C2S: the sending client's events; S2C: the outcome of the server's push);
//! 2. a receiving application sees each message at most once (C2S: the server application;
//!    C2C and S2C: the receiving client);
//! 3. "delivered" is never a lie: a C2S message reported delivered is in the server
//!    application, a C2C message reported delivered was relayed or stored by the server, an
//!    S2C message reported delivered is in the receiving client;
//! 4. a client message reported lost that did reach its receiver had no acknowledgement reach
//!    the sender's session before the loss report (all were dropped, delayed or arrived on a
//!    connection that was already replaced).
//!
//! With a message store (a memory store, kept across restarts as a durable one would be), an
//! acknowledgement means "delivered or stored", which is stronger:
//! 5. a C2C message reported delivered to its sender is received by its receiver exactly once,
//!    and a server push whose outcome is delivered or stored likewise, given the receiver logs
//!    in again and the link lets packets through eventually; the server never reports a
//!    message lost that it stored (a memory store never refuses), and once everybody is
//!    online and the traffic settled, the store is empty.
//!
//! With conversation history on (§9.4; clients that sync, history written behind delivery)
//! and a server that crashes at random, a crash takes what was only in memory: messages in
//! flight to their receivers (already acknowledged to their senders), the C2S de-duplication
//! window, and the history not yet written. Invariant 5 then holds except for messages a crash
//! took in flight, which the receiver finds in its history unless the crash took that too; and
//! 6. once the link is clean and everybody online, every client's view of each of its
//!    conversations equals the server's history (epoch, newest seq, read position, and every
//!    message from where the client's view starts).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use hongyan_server::engine::{
    Clock, Core, Flow, ManualClock, MemoryPipe, Outbox, PipeProperties, Session,
};
use hongyan_server::{Config, Delivery, Hooks, Sent, ServerHandle, SessionInfo};
use hongyan_shared::client::{
    ClientEvent, ClientSession, ConnectionState, HistoryEvent, HistoryView, SessionConfig,
    SyncConfig, TransportCommand,
};
use hongyan_shared::history::HistoryRange;
use hongyan_shared::{
    Fingerprint, Instant, LoginInfo, Outgoing, Packet, PacketType, Transport, UserId,
};
use hongyan_store::{MemoryStore, MessageStore};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const EPOCH_MS: i64 = 1_700_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls a future the core returned; in the simulation nothing may wait.
fn at_once<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("with in-memory pipes and immediate hooks, the core never waits")
}

/// How the link between every client and the server misbehaves.
#[derive(Clone, Copy)]
struct Loss {
    drop: f64,
    duplicate: f64,
    max_delay_ms: u64,
    /// Every packet takes at least this long (so, equal to `max_delay_ms`: a link that
    /// delays but never reorders).
    min_delay_ms: u64,
}

impl Loss {
    const NONE: Self = Self {
        drop: 0.0,
        duplicate: 0.0,
        max_delay_ms: 5,
        min_delay_ms: 0,
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dest {
    Client(usize),
    Server,
}

#[derive(Debug)]
enum What {
    Deliver {
        dest: Dest,
        conn: u64,
        packet: Packet,
    },
    /// The connection the client asked for is up (the server accepted it).
    Connected { client: usize, conn: u64 },
    /// The server closed this connection; the client learns it after what was in flight.
    ClosedByServer { client: usize, conn: u64 },
    /// The client closed this connection; the server learns it after what was in flight.
    ClosedByClient { conn: u64 },
}

struct Scheduled {
    at: Instant,
    seq: u64,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What the server application was told.
#[derive(Default)]
struct AppRecord {
    c2s: HashMap<Fingerprint, usize>,
    /// C2C messages handed to their online receiver, or stored offline.
    relayed: HashSet<Fingerprint>,
    s2c_received: HashMap<Fingerprint, usize>,
    s2c_lost: HashMap<Fingerprint, usize>,
}

/// The server application: records what it is told; stores offline messages if asked to.
#[derive(Default)]
struct SimHooks {
    record: Mutex<AppRecord>,
    store_offline: AtomicBool,
}

impl SimHooks {
    fn record(&self) -> std::sync::MutexGuard<'_, AppRecord> {
        self.record.lock().expect("no test panics while holding it")
    }
}

fn fp(packet: &Packet) -> Fingerprint {
    packet.fp.clone().expect("QoS packets carry a fingerprint")
}

#[async_trait]
impl Hooks for SimHooks {
    fn on_c2s(&self, packet: &Packet, _session: SessionInfo) {
        if packet.qos {
            *self.record().c2s.entry(fp(packet)).or_default() += 1;
        }
    }

    fn on_c2c_delivered(&self, packet: &Packet) {
        if packet.qos {
            self.record().relayed.insert(fp(packet));
        }
    }

    async fn on_offline(&self, packet: &Packet) -> bool {
        let stored = self.store_offline.load(Ordering::Relaxed);
        if stored && packet.qos {
            self.record().relayed.insert(fp(packet));
        }
        stored
    }

    fn on_s2c_lost(&self, lost: &[Packet]) {
        for packet in lost {
            *self.record().s2c_lost.entry(fp(packet)).or_default() += 1;
        }
    }

    fn on_s2c_received(&self, _user: &UserId, fp: &Fingerprint) {
        *self.record().s2c_received.entry(fp.clone()).or_default() += 1;
    }
}

/// One server-side session: what a gateway's session loop would hold.
struct Conn {
    client: usize,
    session: Session,
    outbox: Outbox,
    pipe: MemoryPipe,
}

/// The server process: its core and the sessions it runs.
struct Server {
    core: Arc<Core>,
    handle: ServerHandle,
    conns: BTreeMap<u64, Conn>,
}

impl Server {
    fn start(
        config: &Config,
        clock: &Arc<ManualClock>,
        hooks: &Arc<SimHooks>,
        store: Option<&Arc<MemoryStore>>,
    ) -> Self {
        let mut core = Core::new(config.clone(), hooks.clone(), clock.clone());
        if let Some(store) = store {
            core = core.with_store(store.clone());
        }
        let core = Arc::new(core);
        Self {
            handle: ServerHandle::new(core.clone()),
            core,
            conns: BTreeMap::new(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .conns
            .values()
            .map(|c| self.core.poll_session_timeout(&c.session));
        sessions
            .chain(self.core.poll_timeout())
            .chain(self.core.poll_store_timeout())
            .min()
    }
}

/// What happened to one QoS message a client sent.
#[derive(Default, Debug)]
struct Outcome {
    to: String,
    /// When it was sent, in the order of all the simulation's events.
    sent_seq: u64,
    sent_at: Option<Instant>,
    delivered: Vec<Instant>,
    lost: Vec<Instant>,
    first_ack_at: Option<Instant>,
}

struct Peer {
    user: String,
    session: ClientSession,
    conn: Option<u64>,
    sent: HashMap<Fingerprint, Outcome>,
    received: HashMap<Fingerprint, usize>,
    /// QoS messages received, in the order the application saw them.
    received_order: Vec<Fingerprint>,
    logins: usize,
    /// When the session went online, each time.
    online_at: Vec<Instant>,
    /// Its conversations as its history events built them (with history sync).
    view: HistoryView,
    history: HistoryCounts,
}

/// What a client's history sync went through.
#[derive(Debug, Default, Clone, Copy)]
struct HistoryCounts {
    resets: usize,
    pages: usize,
    unsequenced: usize,
    unavailable: usize,
}

/// A message the server pushed to a client.
struct S2cSent {
    to: usize,
    fp: Fingerprint,
    sent: Sent,
    at: Instant,
}

#[derive(Debug, Clone)]
enum Action {
    Send {
        from: usize,
        to: String,
    },
    ServerSend {
        to: usize,
    },
    CutLink {
        client: usize,
    },
    /// Every packet to and from the client is lost for this long: it stays logged in on its
    /// side (keeping its de-duplication window), while the server idles its session out.
    Partition {
        client: usize,
        ms: u64,
    },
    RestartServer,
    /// The client marks one of its conversations read up to its newest message.
    MarkRead {
        client: usize,
    },
    /// The client scrolls back in one of its conversations.
    FetchOlder {
        client: usize,
    },
    /// The link stops dropping, duplicating and delaying packets.
    Heal,
}

struct Sim {
    transport: Transport,
    /// The server's configuration, for every start.
    config: Config,
    /// The rules of the transport's gateway, for every server session.
    properties: PipeProperties,
    clock: Arc<ManualClock>,
    t0: Instant,
    rng: SmallRng,
    loss: Loss,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    next_conn: u64,
    /// The client that opened each connection.
    conn_owner: HashMap<u64, usize>,
    peers: Vec<Peer>,
    hooks: Arc<SimHooks>,
    /// The message store, if the server keeps one; it outlives server restarts.
    store: Option<Arc<MemoryStore>>,
    server: Server,
    /// Until when each client is cut off.
    partitioned_until: Vec<Option<Instant>>,
    s2c_sent: Vec<S2cSent>,
    /// `(user, firstLoginTime)` of every login the server received.
    login_times: Vec<(String, i64)>,
    script: Vec<(Instant, Action)>,
    /// When the server crashed and restarted.
    restarts: Vec<Instant>,
    dropped: usize,
    duplicated: usize,
}

impl Sim {
    fn new(seed: u64, loss: Loss, users: &[&str], transport: Transport) -> Self {
        Self::build(seed, loss, users, transport, None, Config::loopback(), None)
    }

    /// A simulation whose server keeps messages in a memory store.
    fn with_store(seed: u64, loss: Loss, users: &[&str], transport: Transport) -> Self {
        let store = Arc::new(MemoryStore::new(Config::loopback().store_config().limits));
        Self::build(
            seed,
            loss,
            users,
            transport,
            Some(store),
            Config::loopback(),
            None,
        )
    }

    /// A simulation whose server keeps messages and conversation history in a memory store,
    /// writing history `flush_delay` behind (what a crash can lose), and whose clients sync
    /// their conversations with `sync`.
    fn with_history(
        seed: u64,
        loss: Loss,
        users: &[&str],
        transport: Transport,
        flush_delay: Duration,
        sync: SyncConfig,
    ) -> Self {
        let config = Config {
            history_flush_delay: Some(flush_delay),
            ..Config::loopback()
        };
        let store = Arc::new(MemoryStore::new(config.store_config().limits));
        Self::build(
            seed,
            loss,
            users,
            transport,
            Some(store),
            config,
            Some(sync),
        )
    }

    fn build(
        seed: u64,
        loss: Loss,
        users: &[&str],
        transport: Transport,
        store: Option<Arc<MemoryStore>>,
        config: Config,
        sync: Option<SyncConfig>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(EPOCH_MS));
        let t0 = clock.now();
        let hooks = Arc::new(SimHooks::default());
        let peers = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let mut config = SessionConfig::new(transport, seed.wrapping_mul(31) + i as u64);
                config.sync = sync.clone();
                Peer {
                    user: (*user).to_owned(),
                    session: ClientSession::new(config, t0),
                    conn: None,
                    sent: HashMap::new(),
                    received: HashMap::new(),
                    received_order: Vec::new(),
                    logins: 0,
                    online_at: Vec::new(),
                    view: HistoryView::new(),
                    history: HistoryCounts::default(),
                }
            })
            .collect();
        let mut sim = Self {
            config: config.clone(),
            transport,
            properties: PipeProperties::of(transport, config.max_outbound(transport)),
            server: Server::start(&config, &clock, &hooks, store.as_ref()),
            store,
            partitioned_until: vec![None; users.len()],
            clock,
            t0,
            rng: SmallRng::seed_from_u64(seed),
            loss,
            queue: BinaryHeap::new(),
            seq: 0,
            next_conn: 1,
            conn_owner: HashMap::new(),
            peers,
            hooks,
            s2c_sent: Vec::new(),
            login_times: Vec::new(),
            script: Vec::new(),
            restarts: Vec::new(),
            dropped: 0,
            duplicated: 0,
        };
        for i in 0..users.len() {
            let user = sim.peers[i].user.clone();
            sim.peers[i]
                .session
                .login(LoginInfo::new(&user, Some("tk"), None), t0)
                .expect("a valid user id");
            sim.drain_client(i);
        }
        sim
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn at(&self, offset_ms: u64) -> Instant {
        self.t0 + ms(offset_ms)
    }

    /// After every packet already in flight.
    fn after_in_flight(&self) -> Instant {
        self.now() + ms(self.loss.max_delay_ms + 1)
    }

    /// Whether server sessions are connections, which either end closes (TCP, WebSocket),
    /// rather than pseudo-sessions that only expire (UDP).
    fn connection_oriented(&self) -> bool {
        !self.properties.connectionless
    }

    fn schedule(&mut self, at: Instant, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    fn transmit(&mut self, dest: Dest, conn: u64, packet: Packet) {
        let client = match dest {
            Dest::Client(i) => i,
            Dest::Server => self.conn_owner[&conn],
        };
        if self.partitioned_until[client].is_some_and(|until| until > self.now()) {
            return;
        }
        if self.rng.random_bool(self.loss.drop) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.random_bool(self.loss.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .random_range(self.loss.min_delay_ms..=self.loss.max_delay_ms);
            let at = self.now() + ms(delay);
            self.schedule(
                at,
                What::Deliver {
                    dest,
                    conn,
                    packet: packet.clone(),
                },
            );
        }
    }

    /// Opens a server session for `conn`, as a gateway does on accept (TCP, WebSocket) or on
    /// a new address's first datagram (UDP).
    fn open_server_session(&mut self, client: usize, conn: u64) {
        let core = &self.server.core;
        let properties = self.properties;
        let peer = SocketAddr::from(([127, 0, 0, 1], u16::try_from(conn % 60_000).unwrap()));
        let (session, outbox) = core.open_session(properties, peer, self.now());
        self.server.conns.insert(
            conn,
            Conn {
                client,
                session,
                outbox,
                pipe: MemoryPipe::new(properties),
            },
        );
    }

    /// A packet reached the server on `conn`.
    fn server_receive(&mut self, client: usize, conn: u64, packet: Packet) {
        if !self.server.conns.contains_key(&conn) {
            if self.connection_oriented() {
                return; // The connection is closed.
            }
            // A datagram from a new address, or from a socket whose pseudo-session ended
            // (the client may have moved on: late datagrams still arrive).
            self.open_server_session(client, conn);
        }
        if packet.kind == PacketType::Login
            && let Some(info) = packet
                .data_content
                .as_deref()
                .and_then(|d| LoginInfo::decode(d).ok())
        {
            let user = info
                .login_user_id
                .map(|u| u.to_string())
                .unwrap_or_default();
            self.login_times.push((user, info.first_login_time));
        }
        let now = self.now();
        let core = self.server.core.clone();
        let c = self.server.conns.get_mut(&conn).expect("opened above");
        let flow = at_once(core.handle_packet(
            &mut c.session,
            &mut c.pipe,
            packet.to_json().as_bytes(),
            now,
        ));
        self.flush_server(conn, flow);
        self.flush_all_server();
    }

    /// Sends what `conn` wrote; closes it if the core said so or it was asked to close.
    fn flush_server(&mut self, conn: u64, flow: Flow) {
        let Some(c) = self.server.conns.get_mut(&conn) else {
            return;
        };
        let written = c.pipe.take_written();
        let client = c.client;
        let close = flow == Flow::Close || c.session.is_closing();
        for body in written {
            let packet = Packet::decode(&body).expect("the server writes packets");
            self.transmit(Dest::Client(client), conn, packet);
        }
        if close {
            self.close_server_session(conn);
        }
    }

    /// Writes every outbox, as each session's loop would.
    fn flush_all_server(&mut self) {
        let core = self.server.core.clone();
        loop {
            let mut busy = Vec::new();
            for (&conn, c) in &mut self.server.conns {
                let mut flow = Flow::Continue;
                let mut wrote = false;
                while let Some(out) = c.outbox.try_recv() {
                    wrote = true;
                    flow = at_once(core.handle_outbound(&mut c.session, &mut c.pipe, out));
                    if flow == Flow::Close {
                        break;
                    }
                }
                if wrote || c.session.is_closing() {
                    busy.push((conn, flow));
                }
            }
            if busy.is_empty() {
                return;
            }
            for (conn, flow) in busy {
                self.flush_server(conn, flow);
            }
        }
    }

    /// The server ends a session; a connection's client learns it after what is in flight.
    fn close_server_session(&mut self, conn: u64) {
        let Some(mut c) = self.server.conns.remove(&conn) else {
            return;
        };
        self.server.core.close_session(&mut c.session);
        c.pipe.close_in_place();
        for body in c.pipe.take_written() {
            let packet = Packet::decode(&body).expect("the server writes packets");
            self.transmit(Dest::Client(c.client), conn, packet);
        }
        if self.connection_oriented() {
            let at = self.after_in_flight();
            self.schedule(
                at,
                What::ClosedByServer {
                    client: c.client,
                    conn,
                },
            );
        }
    }

    /// Drains every output of client `i`, in the order the session documents.
    fn drain_client(&mut self, i: usize) {
        let now = self.now();
        while let Some(packet) = self.peers[i].session.poll_transmit() {
            if let Some(conn) = self.peers[i].conn {
                self.transmit(Dest::Server, conn, packet);
            }
        }
        while let Some(command) = self.peers[i].session.poll_transport() {
            if let Some(old) = self.peers[i].conn.take()
                && self.connection_oriented()
            {
                let at = self.after_in_flight();
                self.schedule(at, What::ClosedByClient { conn: old });
            }
            if command == TransportCommand::Open {
                let conn = self.next_conn;
                self.next_conn += 1;
                self.conn_owner.insert(conn, i);
                self.peers[i].conn = Some(conn);
                let delay = self.rng.random_range(1..=20);
                self.schedule(now + ms(delay), What::Connected { client: i, conn });
            }
        }
        while let Some(event) = self.peers[i].session.poll_event() {
            let peer = &mut self.peers[i];
            peer.view.apply(&event);
            match &event {
                ClientEvent::History(HistoryEvent::Reset { .. }) => peer.history.resets += 1,
                ClientEvent::History(HistoryEvent::Page { .. }) => peer.history.pages += 1,
                ClientEvent::History(HistoryEvent::Unavailable) => peer.history.unavailable += 1,
                ClientEvent::MessageReceived(m) if m.seq.is_none() && m.qos => {
                    peer.history.unsequenced += 1;
                }
                _ => {}
            }
            match event {
                ClientEvent::MessageReceived(m) => {
                    if let Some(fp) = m.fp {
                        *peer.received.entry(fp.clone()).or_default() += 1;
                        peer.received_order.push(fp);
                    }
                }
                ClientEvent::MessageDelivered(fp) => {
                    peer.sent
                        .get_mut(&fp)
                        .expect("only what it sent")
                        .delivered
                        .push(now);
                }
                ClientEvent::MessagesLost(lost) => {
                    for p in lost {
                        let fp = p.fp.as_ref().expect("QoS packets carry a fingerprint");
                        peer.sent
                            .get_mut(fp)
                            .expect("only what it sent")
                            .lost
                            .push(now);
                    }
                }
                ClientEvent::StateChanged(ConnectionState::Online) => {
                    peer.logins += 1;
                    peer.online_at.push(now);
                }
                _ => {}
            }
        }
    }

    fn act(&mut self, action: Action) {
        let now = self.now();
        match action {
            Action::Send { from, to } => {
                let content = format!("{} -> {to} #{}", self.peers[from].user, self.seq);
                if let Ok(fp) = self.peers[from]
                    .session
                    .send(Outgoing::new(to.as_str(), content), now)
                {
                    self.peers[from].sent.insert(
                        fp,
                        Outcome {
                            to,
                            sent_seq: self.seq,
                            sent_at: Some(now),
                            ..Outcome::default()
                        },
                    );
                }
                self.drain_client(from);
            }
            Action::ServerSend { to } => {
                let fp = Fingerprint::from_random(self.rng.random());
                let push = Outgoing::new(self.peers[to].user.as_str(), format!("s2c {fp}"))
                    .with_fingerprint(fp.clone());
                if let Ok(sent) = at_once(self.server.handle.send(push)) {
                    self.s2c_sent.push(S2cSent {
                        to,
                        fp,
                        sent,
                        at: now,
                    });
                }
                self.flush_all_server();
            }
            Action::CutLink { client } => {
                if let Some(conn) = self.peers[client].conn.take() {
                    // Both ends notice at once; what was in flight is lost with the link.
                    if self.connection_oriented() {
                        self.close_server_session(conn);
                    }
                    self.peers[client].session.handle_disconnected(now);
                    self.drain_client(client);
                }
            }
            Action::Partition { client, ms } => {
                self.partitioned_until[client] = Some(now + Duration::from_millis(ms));
            }
            Action::MarkRead { client } => {
                let conversations = self.peers[client].session.conversations();
                if !conversations.is_empty() {
                    let pick = &conversations[self.rng.random_range(0..conversations.len())];
                    let _ =
                        self.peers[client]
                            .session
                            .mark_read(pick.peer.clone(), pick.newest, now);
                    self.drain_client(client);
                }
            }
            Action::FetchOlder { client } => {
                let conversations = self.peers[client].session.conversations();
                if !conversations.is_empty() {
                    let pick = &conversations[self.rng.random_range(0..conversations.len())];
                    let from = self.peers[client]
                        .session
                        .sync_state(&pick.peer)
                        .map_or(1, |state| state.complete_from);
                    let _ = self.peers[client].session.fetch_older(
                        pick.peer.clone(),
                        Some(from),
                        5,
                        now,
                    );
                    self.drain_client(client);
                }
            }
            Action::Heal => self.loss = Loss::NONE,
            Action::RestartServer => {
                self.restarts.push(now);
                // The process dies: no session says goodbye, every connection breaks.
                let conns = std::mem::take(&mut self.server.conns);
                if self.connection_oriented() {
                    let at = self.after_in_flight();
                    for (conn, c) in conns {
                        self.schedule(
                            at,
                            What::ClosedByServer {
                                client: c.client,
                                conn,
                            },
                        );
                    }
                }
                self.server =
                    Server::start(&self.config, &self.clock, &self.hooks, self.store.as_ref());
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let peers = self.peers.iter().filter_map(|p| p.session.poll_timeout());
        let queue = self.queue.peek().map(|Reverse(s)| s.at);
        let script = self.script.first().map(|(t, _)| *t);
        peers
            .chain(queue)
            .chain(self.server.next_deadline())
            .chain(script)
            .min()
    }

    fn run_until(&mut self, end: Instant) {
        self.script.sort_by_key(|(t, _)| *t);
        let mut steps = 0u32;
        while let Some(next) = self.next_deadline().filter(|t| *t <= end) {
            steps += 1;
            assert!(steps < 5_000_000, "the simulation does not settle");
            self.clock.advance_to(next);
            let now = self.now();
            while self.script.first().is_some_and(|(t, _)| *t <= now) {
                let (_, action) = self.script.remove(0);
                self.act(action);
            }
            while self.queue.peek().is_some_and(|Reverse(s)| s.at <= now) {
                let Reverse(item) = self.queue.pop().expect("peeked");
                self.deliver(item.what);
            }
            for i in 0..self.peers.len() {
                if self.peers[i]
                    .session
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
                {
                    self.peers[i].session.handle_timeout(now);
                    self.drain_client(i);
                }
            }
            self.server_timeouts(now);
        }
        self.clock.advance_to(end);
    }

    /// The server's deadlines due at `now`: the retransmission tick, idle expiries.
    fn server_timeouts(&mut self, now: Instant) {
        if self.server.core.poll_timeout().is_some_and(|t| t <= now) {
            at_once(self.server.core.handle_timeout(now));
            self.flush_all_server();
        }
        if self
            .server
            .core
            .poll_store_timeout()
            .is_some_and(|t| t <= now)
        {
            at_once(self.server.core.handle_store_timeout(now));
            self.flush_all_server();
        }
        let core = self.server.core.clone();
        let due: Vec<u64> = self
            .server
            .conns
            .iter()
            .filter(|(_, c)| core.poll_session_timeout(&c.session) <= now)
            .map(|(&conn, _)| conn)
            .collect();
        for conn in due {
            let c = self.server.conns.get_mut(&conn).expect("listed above");
            let flow = core.handle_session_timeout(&mut c.session, now);
            self.flush_server(conn, flow);
        }
    }

    fn deliver(&mut self, what: What) {
        let now = self.now();
        match what {
            What::Connected { client, conn } => {
                if self.peers[client].conn == Some(conn) {
                    if self.connection_oriented() {
                        self.open_server_session(client, conn);
                    }
                    self.peers[client].session.handle_connected(now);
                    self.drain_client(client);
                }
            }
            What::ClosedByServer { client, conn } => {
                if self.peers[client].conn == Some(conn) {
                    self.peers[client].conn = None;
                    self.peers[client].session.handle_disconnected(now);
                    self.drain_client(client);
                }
            }
            What::ClosedByClient { conn } => self.close_server_session(conn),
            What::Deliver {
                dest: Dest::Server,
                conn,
                packet,
            } => {
                let client = self.conn_owner[&conn];
                self.server_receive(client, conn, packet);
            }
            What::Deliver {
                dest: Dest::Client(i),
                conn,
                packet,
            } => {
                if self.peers[i].conn != Some(conn) {
                    return;
                }
                if packet.kind == PacketType::Ack {
                    let fp = Fingerprint::new(packet.data_content.clone().unwrap_or_default());
                    if let Some(outcome) = self.peers[i].sent.get_mut(&fp) {
                        outcome.first_ack_at.get_or_insert(now);
                    }
                }
                self.peers[i].session.handle_packet(packet, now);
                self.drain_client(i);
            }
        }
    }
}

/// One QoS message a client sent, as every check sees it.
struct SentMessage<'a> {
    /// The seed, the transport, the sender, the message and its receiver, for the checks' words.
    ctx: String,
    sender: &'a Peer,
    fp: &'a Fingerprint,
    outcome: &'a Outcome,
    /// How many times its receiving application saw it (the server's for C2S).
    received: usize,
}

/// One message the server pushed, with its outcome.
struct PushedMessage {
    /// The seed, the transport, the message and its receiver, for the checks' words.
    ctx: String,
    /// The receiver's index among the clients.
    to: usize,
    fp: Fingerprint,
    /// When it was pushed.
    at: Instant,
    outcome: Delivery,
    /// How many times its receiving client saw it.
    received: usize,
}

impl Sim {
    /// The client `user`.
    fn peer(&self, user: &str) -> &Peer {
        self.peers
            .iter()
            .find(|p| p.user == user)
            .expect("a known user")
    }

    /// Every QoS message a client sent, after checking invariant 1 (reported exactly once) for
    /// each, and invariant 2 (received at most once) for what every client received.
    fn sent_messages(&self, seed: u64, app: &AppRecord) -> Vec<SentMessage<'_>> {
        let mut sent = Vec::new();
        for peer in &self.peers {
            for (fp, outcome) in &peer.sent {
                let ctx = format!(
                    "seed {seed} ({}), {} sent {fp} to {}",
                    self.transport, peer.user, outcome.to
                );
                assert_eq!(
                    outcome.delivered.len() + outcome.lost.len(),
                    1,
                    "{ctx}: exactly one report, got {outcome:?}"
                );
                let received = if outcome.to == UserId::SERVER {
                    app.c2s.get(fp).copied().unwrap_or(0)
                } else {
                    let receiver = self.peer(&outcome.to);
                    receiver.received.get(fp).copied().unwrap_or(0)
                };
                sent.push(SentMessage {
                    ctx,
                    sender: peer,
                    fp,
                    outcome,
                    received,
                });
            }
            for (fp, count) in &peer.received {
                assert_eq!(
                    *count, 1,
                    "seed {seed} ({}): {} got {fp} {count} times",
                    self.transport, peer.user
                );
            }
        }
        sent
    }

    /// Every message the server pushed in the run, taken from it, with its outcome, which
    /// must be known by now.
    fn pushed_messages(&mut self, seed: u64) -> Vec<PushedMessage> {
        let pushed = std::mem::take(&mut self.s2c_sent);
        pushed
            .into_iter()
            .map(|S2cSent { to, fp, sent, at }| {
                let receiver = &self.peers[to];
                let ctx = format!(
                    "seed {seed} ({}), the server sent {} to {}",
                    self.transport, fp, receiver.user
                );
                let outcome = sent
                    .outcome()
                    .now_or_never()
                    .unwrap_or_else(|| panic!("{ctx}: never reported"));
                let received = receiver.received.get(&fp).copied().unwrap_or(0);
                PushedMessage {
                    ctx,
                    to,
                    fp,
                    at,
                    outcome,
                    received,
                }
            })
            .collect()
    }

    /// Invariant 5's last clause: once everybody is online and the traffic settled, the store
    /// holds nothing for anyone.
    fn check_store_empty(&self, seed: u64, store: &MemoryStore) {
        for peer in &self.peers {
            let left = at_once(store.count(&UserId::from(peer.user.as_str())))
                .expect("the memory store counts");
            assert_eq!(
                left, 0,
                "seed {seed} ({}): {left} messages stranded in the store for {}",
                self.transport, peer.user
            );
        }
    }
}

/// Totals over runs, to show every branch of the property was exercised.
#[derive(Debug, Default)]
struct Totals {
    delivered: usize,
    lost: usize,
    lost_but_received: usize,
    s2c_delivered: usize,
    s2c_lost: usize,
    relogins: usize,
}

impl Sim {
    /// Checks the four invariants of the module doc, adding what it saw to `totals`.
    fn check_invariants(&mut self, seed: u64, totals: &mut Totals) {
        let pushed = self.pushed_messages(seed);
        let app = self.hooks.record();
        for SentMessage {
            ctx,
            fp,
            outcome,
            received,
            ..
        } in self.sent_messages(seed, &app)
        {
            assert!(received <= 1, "{ctx}: received {received} times");
            if outcome.delivered.is_empty() {
                totals.lost += 1;
                if received == 1 {
                    totals.lost_but_received += 1;
                    let lost_at = outcome.lost[0];
                    assert!(
                        outcome.first_ack_at.is_none_or(|ack| ack > lost_at),
                        "{ctx}: an ack arrived before the loss report"
                    );
                }
            } else {
                totals.delivered += 1;
                if outcome.to == UserId::SERVER {
                    assert_eq!(received, 1, "{ctx}: delivered but not in the server app");
                } else {
                    assert!(app.relayed.contains(fp), "{ctx}: never relayed nor stored");
                }
            }
        }
        for PushedMessage {
            ctx,
            fp,
            outcome,
            received,
            ..
        } in pushed
        {
            let reported = app.s2c_received.get(&fp).copied().unwrap_or(0)
                + app.s2c_lost.get(&fp).copied().unwrap_or(0);
            assert!(
                reported <= 1,
                "{ctx}: reported {reported} times to the hooks"
            );
            match outcome {
                Delivery::Delivered => {
                    totals.s2c_delivered += 1;
                    assert_eq!(received, 1, "{ctx}: delivered but not received");
                }
                Delivery::Lost => totals.s2c_lost += 1,
                Delivery::Stored => panic!("{ctx}: stored, without a store"),
            }
        }
        totals.relogins += self
            .peers
            .iter()
            .map(|p| p.logins.saturating_sub(1))
            .sum::<usize>();
    }
}

/// A minute of random traffic between two clients and the server, with a link cut now and
/// then, and forty seconds to settle. With a store, a client is also cut off now and then for
/// long enough that the server idles its session out, and there are ninety seconds to settle.
fn lossy_run(seed: u64, transport: Transport, store: bool) -> Sim {
    let loss = Loss {
        drop: 0.2,
        duplicate: 0.1,
        max_delay_ms: 400,
        min_delay_ms: 0,
    };
    let users = ["alice", "bob"];
    let mut sim = if store {
        Sim::with_store(seed, loss, &users, transport)
    } else {
        Sim::new(seed, loss, &users, transport)
    };
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xABCD);
    sim.hooks
        .store_offline
        .store(rng.random_bool(0.5), Ordering::Relaxed);
    let kinds = if store { 45 } else { 41 };
    let mut t = 500;
    while t < 60_000 {
        let action = match rng.random_range(0..kinds) {
            0..10 => Action::Send {
                from: 0,
                to: "0".into(),
            },
            10..20 => Action::Send {
                from: 0,
                to: "bob".into(),
            },
            20..30 => Action::Send {
                from: 1,
                to: "alice".into(),
            },
            30..40 => Action::ServerSend {
                to: rng.random_range(0..2),
            },
            40..43 => Action::CutLink {
                client: rng.random_range(0..2),
            },
            _ => Action::Partition {
                client: rng.random_range(0..2),
                ms: rng.random_range(5_000..30_000),
            },
        };
        sim.script.push((sim.at(t), action));
        t += rng.random_range(50..700);
    }
    let end = sim.at(if store { 150_000 } else { 100_000 });
    sim.run_until(end);
    sim
}

#[test]
fn under_any_seed_every_qos_message_is_reported_once_and_received_at_most_once() {
    let mut totals = Totals::default();
    let transports = [Transport::Udp, Transport::Tcp, Transport::WebSocket];
    for seed in 0..300 {
        let transport = transports[seed as usize % transports.len()];
        let mut sim = lossy_run(seed, transport, false);
        assert!(
            sim.dropped > 0 && sim.duplicated > 0,
            "the link must misbehave"
        );
        sim.check_invariants(seed, &mut totals);
    }
    eprintln!("{totals:?}");
    // The property must have been exercised on every branch, not only the happy one.
    assert!(totals.delivered > 10_000, "{totals:?}");
    assert!(totals.lost > 0, "{totals:?}");
    assert!(totals.lost_but_received > 0, "{totals:?}");
    assert!(totals.s2c_delivered > 2_000, "{totals:?}");
    assert!(totals.s2c_lost > 0, "{totals:?}");
    assert!(totals.relogins > 0, "{totals:?}");
}

#[test]
fn on_a_clean_link_every_message_is_delivered_and_received_once() {
    for transport in [Transport::Tcp, Transport::Udp, Transport::WebSocket] {
        let mut sim = Sim::new(1, Loss::NONE, &["alice", "bob"], transport);
        for i in 0..50 {
            sim.script.push((
                sim.at(1000 + i * 100),
                Action::Send {
                    from: i as usize % 2,
                    to: if i % 2 == 0 { "bob" } else { "0" }.into(),
                },
            ));
            sim.script
                .push((sim.at(1050 + i * 100), Action::ServerSend { to: 0 }));
        }
        let end = sim.at(60_000);
        sim.run_until(end);
        let mut totals = Totals::default();
        sim.check_invariants(1, &mut totals);
        assert_eq!(
            (totals.delivered, totals.lost, totals.s2c_delivered),
            (50, 0, 50),
            "{transport}"
        );
        assert_eq!(sim.peers[0].received.len(), 50, "every S2C message");
        assert_eq!(
            sim.peers[1].received.len(),
            25,
            "every C2C message from alice"
        );
        assert!(
            sim.peers.iter().all(|p| p.logins == 1),
            "no spurious relogin on {transport}"
        );
    }
}

#[test]
fn after_a_server_restart_the_client_logs_in_again_with_its_first_login_time() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut sim = Sim::new(2, Loss::NONE, &["alice"], transport);
        sim.script.push((sim.at(5_000), Action::RestartServer));
        sim.script.push((
            sim.at(5_100),
            Action::Send {
                from: 0,
                to: "0".into(),
            },
        ));
        let end = sim.at(30_000);
        sim.run_until(end);
        let times = &sim.login_times;
        assert!(times.len() >= 2, "{transport}: {times:?}");
        assert_eq!(times[0].1, 0, "first login");
        let first = sim.peers[0]
            .session
            .login_info()
            .expect("logged in")
            .first_login_time;
        assert!(
            (EPOCH_MS..EPOCH_MS + 1_000).contains(&first),
            "the server's clock answered it: {first}"
        );
        assert!(times[1..].iter().all(|(_, t)| *t == first), "{times:?}");
        assert_eq!(sim.peers[0].session.state(), ConnectionState::Online);
        assert!(sim.server.handle.is_online(&"alice".into()));
        let mut totals = Totals::default();
        sim.check_invariants(2, &mut totals);
        assert_eq!(
            (totals.delivered, totals.lost),
            (1, 0),
            "{transport}: the message sent across the restart gets through after the relogin"
        );
    }
}

#[test]
fn after_the_link_is_cut_the_client_logs_in_again_at_once() {
    for transport in [Transport::Tcp, Transport::Udp] {
        let mut sim = Sim::new(3, Loss::NONE, &["alice"], transport);
        sim.script
            .push((sim.at(5_000), Action::CutLink { client: 0 }));
        let end = sim.at(5_100);
        sim.run_until(end);
        assert_eq!(sim.peers[0].session.state(), ConnectionState::Online);
        assert_eq!(sim.peers[0].logins, 2, "{transport}");
        let first = sim.peers[0]
            .session
            .login_info()
            .expect("logged in")
            .first_login_time;
        assert_eq!(sim.login_times.last().expect("logins").1, first);
        let online = sim
            .server
            .handle
            .online_info(&"alice".into())
            .expect("online");
        let current = sim.peers[0].conn.expect("connected");
        assert_eq!(
            online.session.id,
            sim.server.conns[&current].session.info().id,
            "{transport}: the new connection is the online session"
        );
    }
}

/// Totals over store runs, to show the store was exercised.
#[derive(Debug, Default)]
struct StoreTotals {
    delivered: usize,
    lost: usize,
    stored: u64,
    removed: u64,
    s2c_delivered: usize,
    s2c_stored: usize,
}

impl Sim {
    /// Checks invariant 5 of the module doc (and 1, 2 and 4's "at most once"), adding what it
    /// saw to `totals`.
    fn check_store_invariants(&mut self, seed: u64, totals: &mut StoreTotals) {
        let transport = self.transport;
        let store = self.store.clone().expect("a run with a store");
        let pushed = self.pushed_messages(seed);
        let app = self.hooks.record();
        assert!(
            app.s2c_lost.is_empty(),
            "seed {seed} ({transport}): a stored message was reported lost: {:?}",
            app.s2c_lost
        );
        for SentMessage {
            ctx,
            outcome,
            received,
            ..
        } in self.sent_messages(seed, &app)
        {
            if outcome.delivered.is_empty() {
                totals.lost += 1;
                assert!(received <= 1, "{ctx}: received {received} times");
            } else {
                totals.delivered += 1;
                assert_eq!(received, 1, "{ctx}: acknowledged, so received exactly once");
            }
        }
        for PushedMessage {
            ctx,
            outcome,
            received,
            ..
        } in pushed
        {
            match outcome {
                Delivery::Delivered => totals.s2c_delivered += 1,
                Delivery::Stored => totals.s2c_stored += 1,
                Delivery::Lost => panic!("{ctx}: lost, with a store that never refuses"),
            }
            assert_eq!(received, 1, "{ctx}: {outcome:?}, so received exactly once");
        }
        self.check_store_empty(seed, &store);
        let stats = store.stats();
        totals.stored += stats.stored;
        totals.removed += stats.removed;
    }
}

#[test]
fn with_a_store_every_acknowledged_message_is_received_exactly_once() {
    let mut totals = StoreTotals::default();
    let transports = [Transport::Udp, Transport::Tcp, Transport::WebSocket];
    for seed in 0..300 {
        let transport = transports[seed as usize % transports.len()];
        let mut sim = lossy_run(seed, transport, true);
        sim.check_store_invariants(seed, &mut totals);
    }
    eprintln!("{totals:?}");
    // Messages went through the store, and pushes were stored, not only delivered live.
    assert!(totals.delivered > 10_000, "{totals:?}");
    assert!(totals.lost > 0, "{totals:?}");
    assert!(totals.stored > 10_000, "{totals:?}");
    assert_eq!(totals.stored, totals.removed, "{totals:?}");
    assert!(totals.s2c_delivered > 1_000, "{totals:?}");
    assert!(totals.s2c_stored > 5_000, "{totals:?}");
}

#[test]
fn with_a_store_messages_for_a_user_who_is_away_survive_a_server_restart() {
    for transport in [Transport::Tcp, Transport::Udp, Transport::WebSocket] {
        let mut sim = Sim::with_store(4, Loss::NONE, &["alice", "bob"], transport);
        // Bob is cut off long enough for the server to see him go, then the server restarts
        // with everything sent to him only in the store.
        sim.script.push((
            sim.at(1_000),
            Action::Partition {
                client: 1,
                ms: 60_000,
            },
        ));
        for i in 0..20 {
            sim.script.push((
                sim.at(30_000 + i * 200),
                Action::Send {
                    from: 0,
                    to: "bob".into(),
                },
            ));
            sim.script
                .push((sim.at(30_100 + i * 200), Action::ServerSend { to: 1 }));
        }
        sim.script.push((sim.at(40_000), Action::RestartServer));
        let end = sim.at(120_000);
        sim.run_until(end);
        let mut totals = StoreTotals::default();
        sim.check_store_invariants(4, &mut totals);
        assert_eq!(
            (totals.delivered, totals.s2c_stored),
            (20, 20),
            "{transport}: every message was stored, then delivered after the restart"
        );
        assert_eq!(sim.peers[1].received.len(), 40, "{transport}");
    }
}

#[test]
fn with_a_store_the_replay_keeps_send_order_and_new_messages_do_not_overtake_it() {
    // 30 ms each way, never reordered: the replay takes several round trips, during which
    // new messages arrive.
    let in_order = Loss {
        drop: 0.0,
        duplicate: 0.0,
        max_delay_ms: 30,
        min_delay_ms: 30,
    };
    for transport in [Transport::Tcp, Transport::Udp, Transport::WebSocket] {
        let mut sim = Sim::with_store(5, in_order, &["alice", "bob"], transport);
        sim.script.push((
            sim.at(1_000),
            Action::Partition {
                client: 1,
                ms: 40_000,
            },
        ));
        // While bob is away (stored), around the moment he is back (replayed while new ones
        // arrive), and after (live).
        for i in 0..300 {
            sim.script.push((
                sim.at(30_000 + i * 50),
                Action::Send {
                    from: 0,
                    to: "bob".into(),
                },
            ));
        }
        let end = sim.at(90_000);
        sim.run_until(end);
        let back = *sim.peers[1].online_at.last().expect("bob came back");
        let mut totals = StoreTotals::default();
        sim.check_store_invariants(5, &mut totals);
        let sent_while_away = sim.peers[0]
            .sent
            .values()
            .filter(|outcome| outcome.sent_at.is_some_and(|at| at < back))
            .count();
        let stored_behind = totals.stored as usize - sent_while_away;
        assert!(
            sent_while_away > 100 && stored_behind > 0 && stored_behind < 300 - sent_while_away,
            "{transport}: of the messages sent once bob was back, some were stored behind the \
             replay and the later ones went live ({sent_while_away} sent while away, {totals:?})"
        );
        let mut sent: Vec<(u64, &Fingerprint)> = sim.peers[0]
            .sent
            .iter()
            .map(|(fp, outcome)| (outcome.sent_seq, fp))
            .collect();
        sent.sort();
        let sent: Vec<&Fingerprint> = sent.into_iter().map(|(_, fp)| fp).collect();
        let received: Vec<&Fingerprint> = sim.peers[1].received_order.iter().collect();
        assert_eq!(
            received, sent,
            "{transport}: bob got alice's messages in send order"
        );
    }
}

/// What history runs went through, to show every branch was exercised.
#[derive(Debug, Default)]
struct HistoryTotals {
    conversations: usize,
    messages: usize,
    resets: usize,
    pages: usize,
    unsequenced: usize,
    lost_with_a_crash: usize,
    restarts: usize,
    /// Acknowledged messages (C2C, and S2C delivered or stored) received live.
    received_live: usize,
    /// Acknowledged messages a crash took while in flight to their receiver, found in the
    /// receiver's history instead.
    only_in_history: usize,
    /// Acknowledged messages a crash took in flight, and their history with them.
    gone_with_a_crash: usize,
}

/// How a history run's clients sync: small pages (so catching up takes several, and the
/// conversations list too), the whole history (so views can be compared whole), short waits.
fn sim_sync() -> SyncConfig {
    SyncConfig {
        request_timeout: Duration::from_secs(2),
        max_retry_interval: Duration::from_secs(8),
        conversations_page: 1,
        history_page: 7,
        catch_up: u64::MAX,
        gap_grace: Duration::from_millis(500),
        refresh_attempts: 6,
        ..SyncConfig::default()
    }
}

impl Sim {
    /// Whether a restart happened after `at`.
    fn crashed_since(&self, at: Instant) -> bool {
        self.restarts.iter().any(|&restart| restart >= at)
    }

    /// Invariant 5 where the server crashes at random: a crash takes the messages in flight
    /// from the server to their receivers (acknowledged to their senders when relayed, kept
    /// only in memory), which the receiver then finds in its history, unless the crash took
    /// their history too (written behind delivery). Every message is still reported exactly
    /// once and received live at most once; one the sender saw acknowledged and nobody
    /// received had a crash after it was sent; the store ends empty.
    fn check_delivery_across_crashes(&mut self, seed: u64, totals: &mut HistoryTotals) {
        let store = self.store.clone().expect("a run with a store");
        let pushed = self.pushed_messages(seed);
        let app = self.hooks.record();
        let in_view = |receiver: &Peer, from: &UserId, fp: &Fingerprint| {
            receiver.view.conversation(from).is_some_and(|c| {
                c.messages
                    .values()
                    .any(|m| &m.from == from && m.fp.as_ref() == Some(fp))
            })
        };
        let mut acknowledged = Vec::new();
        for SentMessage {
            ctx,
            sender,
            fp,
            outcome,
            received,
        } in self.sent_messages(seed, &app)
        {
            // The server application's de-duplication window (C2S) lives in memory: a
            // retransmission after a crash reaches it again.
            let c2s_after_crash = outcome.to == UserId::SERVER
                && outcome.sent_at.is_some_and(|at| self.crashed_since(at));
            assert!(
                received <= 1 || c2s_after_crash,
                "{ctx}: received {received} times"
            );
            if !outcome.delivered.is_empty() && outcome.to != UserId::SERVER {
                let sent_at = outcome.sent_at.expect("sent");
                let from = UserId::from(sender.user.as_str());
                acknowledged.push((ctx, outcome.to.clone(), from, fp.clone(), sent_at));
            }
        }
        for PushedMessage {
            ctx,
            to,
            fp,
            at,
            outcome,
            received,
        } in pushed
        {
            match outcome {
                Delivery::Delivered => assert_eq!(received, 1, "{ctx}: delivered"),
                Delivery::Stored => {
                    let to = self.peers[to].user.clone();
                    let from = UserId::from(UserId::SERVER);
                    acknowledged.push((ctx, to, from, fp, at));
                }
                // The crash took the server's wait for the client's acknowledgement.
                Delivery::Lost => assert!(
                    self.crashed_since(at),
                    "{ctx}: lost, with a store that never refuses and no crash"
                ),
            }
        }
        for (ctx, to, from, fp, sent_at) in acknowledged {
            let receiver = self.peer(&to);
            if receiver.received.contains_key(&fp) {
                totals.received_live += 1;
            } else if in_view(receiver, &from, &fp) {
                assert!(self.crashed_since(sent_at), "{ctx}: only in the history");
                totals.only_in_history += 1;
            } else {
                assert!(
                    self.crashed_since(sent_at),
                    "{ctx}: acknowledged, never received"
                );
                totals.gone_with_a_crash += 1;
            }
        }
        self.check_store_empty(seed, &store);
    }

    /// Invariant 6: once the traffic settled and everybody is online, every client's view of
    /// each of its conversations equals the server's history: the same epoch, the same newest
    /// seq, read position and unread count, every message the server keeps from where the
    /// client's view starts, exactly as the server keeps it, and no message the client holds
    /// without a seq that the server's history has (those are the ones a crash took from the
    /// history after they were delivered).
    fn check_history(&mut self, seed: u64, totals: &mut HistoryTotals) {
        let transport = self.transport;
        let handle = self.server.handle.clone();
        let epoch = handle.history_epoch().expect("the history is open");
        for peer in &self.peers {
            let ctx = format!("seed {seed} ({transport}), {}", peer.user);
            let user = UserId::from(peer.user.as_str());
            assert_eq!(
                peer.session.state(),
                ConnectionState::Online,
                "{ctx}: online at the end"
            );
            assert_eq!(peer.session.history_epoch(), Some(epoch), "{ctx}");
            assert_eq!(peer.view.epoch(), Some(epoch), "{ctx}");
            let mut listed = Vec::new();
            let mut after: Option<UserId> = None;
            loop {
                let (page, more) = at_once(handle.conversations(&user, after.as_ref(), 100))
                    .expect("the memory store reads");
                after = page.last().map(|c| c.peer.clone());
                listed.extend(page);
                if !more {
                    break;
                }
            }
            let known: Vec<UserId> = peer
                .session
                .conversations()
                .into_iter()
                .map(|c| c.peer)
                .collect();
            let servers: Vec<UserId> = listed.iter().map(|c| c.peer.clone()).collect();
            assert_eq!(known, servers, "{ctx}: the same conversations");
            for info in &listed {
                let ctx = format!("{ctx}, conversation with {}", info.peer);
                let state = peer
                    .session
                    .sync_state(&info.peer)
                    .expect("the session knows it");
                assert_eq!(state.info, *info, "{ctx}: newest, read, unread");
                assert_eq!(state.complete_through, info.newest, "{ctx}: caught up");
                assert_eq!(state.unsequenced, 0, "{ctx}: nothing left to look for");
                let page =
                    at_once(handle.history(&user, &info.peer, HistoryRange::After(0), 100_000))
                        .expect("the memory store reads");
                let server: BTreeMap<u64, _> = page.entries.iter().map(|e| (e.seq, e)).collect();
                let view = peer.view.conversation(&info.peer).expect("the view has it");
                for (seq, message) in &view.messages {
                    let entry = server
                        .get(seq)
                        .unwrap_or_else(|| panic!("{ctx}: the view has {seq}, the server not"));
                    assert_eq!(
                        (
                            &message.from,
                            &message.fp,
                            message.typeu,
                            message.at,
                            message.content.as_deref()
                        ),
                        (
                            &entry.sender,
                            &entry.fp,
                            entry.typeu,
                            entry.accepted_at,
                            Some(entry.content.as_str())
                        ),
                        "{ctx}: message {seq}"
                    );
                }
                for seq in server.keys().filter(|&&s| s >= state.complete_from) {
                    assert!(
                        view.messages.contains_key(seq),
                        "{ctx}: the server has {seq}, the view not"
                    );
                }
                for message in &view.unsequenced {
                    let kept = page
                        .entries
                        .iter()
                        .any(|e| e.sender == message.from && e.fp == message.fp);
                    assert!(
                        !kept,
                        "{ctx}: {:?} is in the history but never got its seq",
                        message.fp
                    );
                    totals.lost_with_a_crash += 1;
                }
                totals.conversations += 1;
                totals.messages += view.messages.len();
            }
            totals.resets += peer.history.resets;
            totals.pages += peer.history.pages;
            totals.unsequenced += peer.history.unsequenced;
            assert_eq!(
                peer.history.unavailable, 0,
                "{ctx}: the server kept answering"
            );
        }
    }
}

/// A minute of random traffic (messages both ways, pushes, reads, scrolling back) over a
/// lossy link with cuts, partitions and a server crash now and then, thirty seconds more of
/// loss, and a minute on a clean link to settle, with conversation history written 300 ms
/// behind delivery.
fn history_run(seed: u64, transport: Transport) -> Sim {
    let loss = Loss {
        drop: 0.2,
        duplicate: 0.1,
        max_delay_ms: 400,
        min_delay_ms: 0,
    };
    let mut sim = Sim::with_history(
        seed,
        loss,
        &["alice", "bob"],
        transport,
        Duration::from_millis(300),
        sim_sync(),
    );
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED);
    let mut t = 500;
    while t < 60_000 {
        let action = match rng.random_range(0..60) {
            0..15 => Action::Send {
                from: 0,
                to: "bob".into(),
            },
            15..30 => Action::Send {
                from: 1,
                to: "alice".into(),
            },
            30..40 => Action::ServerSend {
                to: rng.random_range(0..2),
            },
            40..44 => Action::Send {
                from: 0,
                to: "0".into(),
            },
            44..48 => Action::MarkRead {
                client: rng.random_range(0..2),
            },
            48..51 => Action::FetchOlder {
                client: rng.random_range(0..2),
            },
            51..54 => Action::CutLink {
                client: rng.random_range(0..2),
            },
            54..57 => Action::Partition {
                client: rng.random_range(0..2),
                ms: rng.random_range(5_000..25_000),
            },
            _ => Action::RestartServer,
        };
        sim.script.push((sim.at(t), action));
        t += rng.random_range(50..700);
    }
    sim.script.push((sim.at(90_000), Action::Heal));
    let end = sim.at(150_000);
    sim.run_until(end);
    sim
}

#[test]
fn after_any_loss_and_reconnects_every_clients_view_of_each_conversation_equals_the_servers() {
    let mut totals = HistoryTotals::default();
    let transports = [Transport::Udp, Transport::Tcp, Transport::WebSocket];
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    for seed in 0..seeds {
        let transport = transports[seed as usize % transports.len()];
        let mut sim = history_run(seed, transport);
        totals.restarts += sim.restarts.len();
        sim.check_delivery_across_crashes(seed, &mut totals);
        sim.check_history(seed, &mut totals);
    }
    eprintln!("{totals:?}");
    // Every branch was taken: several conversations and pages, crashes that changed the epoch
    // (and the views with it), messages that arrived without a seq and were found again, and
    // some a crash took from the history after they were delivered.
    assert!(totals.conversations >= 400, "{totals:?}");
    assert!(totals.messages > 10_000, "{totals:?}");
    assert!(totals.resets > 100, "{totals:?}");
    assert!(totals.pages > 4_000, "{totals:?}");
    assert!(totals.unsequenced > 1_000, "{totals:?}");
    assert!(totals.lost_with_a_crash > 0, "{totals:?}");
    assert!(totals.restarts > 100, "{totals:?}");
    assert!(totals.received_live > 5_000, "{totals:?}");
    assert!(totals.only_in_history > 0, "{totals:?}");
}
