//! Deterministic simulation of client sessions talking to a minimal server model over a
//! seeded lossy link (drop, duplicate, delay and so reorder), with a clock moved to the next
//! deadline.
//!
//! # The QoS invariant, stated precisely
//! QoS is hop by hop (§6): the sender hears "delivered" when the server acknowledged (C2S: the
//! server application has it; C2C: the server relayed it or stored it offline), and "lost" when
//! its retries ran out. A message can reach its receiver although every acknowledgement was
//! dropped, so "delivered to the receiver" and "reported lost" can both be true. What always
//! holds, under every seed:
//! 1. the sender reports every QoS message exactly once: delivered or lost, never both, never
//!    twice;
//! 2. a receiving application sees each message at most once (C2S: the server application;
//!    C2C and S2C: the receiving client);
//! 3. "delivered" is never a lie: a C2S message reported delivered is in the server
//!    application, a C2C message reported delivered was relayed or stored by the server;
//! 4. a message reported lost that did reach its receiver had no acknowledgement reach the
//!    sender's session before the loss report (all were dropped, delayed or arrived on a
//!    connection that was already replaced).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use hongyan_shared::client::{
    ClientEvent, ClientSession, ConnectionState, SessionConfig, TransportCommand,
};
use hongyan_shared::{
    ErrorResponse, Fingerprint, Instant, LoginInfo, LoginResponse, Outgoing, Packet, PacketType,
    RetransmitSchedule, SendQueue, Transport, UserId,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const EPOCH_MS: i64 = 1_700_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How the link between every client and the server misbehaves.
#[derive(Clone, Copy)]
struct Loss {
    drop: f64,
    duplicate: f64,
    max_delay_ms: u64,
}

impl Loss {
    const NONE: Self = Self {
        drop: 0.0,
        duplicate: 0.0,
        max_delay_ms: 5,
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
    Connected {
        client: usize,
        conn: u64,
    },
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

/// What happened to one QoS message a client sent.
#[derive(Default, Debug)]
struct Outcome {
    to: String,
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
    logins: usize,
}

/// The server as §4 and §6.4 describe it, reduced to what a client can observe.
#[derive(Default)]
struct ServerModel {
    open: HashSet<u64>,
    auth: HashMap<u64, String>,
    online: HashMap<String, u64>,
    c2s_seen: HashSet<Fingerprint>,
    app_c2s: HashMap<Fingerprint, usize>,
    c2c_relayed: HashSet<Fingerprint>,
    s2c: Option<SendQueue<Fingerprint, Packet>>,
    login_times: Vec<(String, i64)>,
}

impl ServerModel {
    fn s2c(&mut self) -> &mut SendQueue<Fingerprint, Packet> {
        self.s2c
            .get_or_insert_with(|| SendQueue::new(RetransmitSchedule::SERVER))
    }

    fn handle(
        &mut self,
        conn: u64,
        packet: Packet,
        now: Instant,
        t0: Instant,
    ) -> Vec<(u64, Packet)> {
        let mut out = Vec::new();
        let user = self.auth.get(&conn).cloned();
        match packet.kind {
            PacketType::Login => {
                let info = LoginInfo::decode(packet.data_content.as_deref().unwrap()).unwrap();
                let uid = info.login_user_id.unwrap().to_string();
                self.login_times.push((uid.clone(), info.first_login_time));
                let first = if info.first_login_time > 0 {
                    info.first_login_time
                } else {
                    EPOCH_MS + i64::try_from((now - t0).as_millis()).unwrap()
                };
                out.push((
                    conn,
                    Packet::login_response(
                        &uid,
                        LoginResponse {
                            code: 0,
                            first_login_time: first,
                        },
                    ),
                ));
                self.auth.insert(conn, uid.clone());
                self.online.insert(uid, conn);
            }
            PacketType::Logout => {
                self.close(conn);
            }
            PacketType::KeepAlive | PacketType::CommonData | PacketType::Ack if user.is_none() => {
                out.push((
                    conn,
                    Packet::error(&ErrorResponse {
                        error_code: 301,
                        error_msg: Some(packet.to_json()),
                    }),
                ));
            }
            PacketType::KeepAlive => {
                let user = user.unwrap();
                if let Some(&current) = self.online.get(&user) {
                    out.push((current, Packet::keep_alive_response(&user)));
                }
            }
            PacketType::Ack => {
                let fp = Fingerprint::new(packet.data_content.unwrap_or_default());
                self.s2c().acknowledge(&fp);
            }
            PacketType::CommonData if packet.to_str() == UserId::SERVER => {
                if let Some(fp) = packet.qos_fingerprint().cloned() {
                    out.push((conn, Packet::ack("0", packet.from_str(), &fp, false)));
                    if self.c2s_seen.insert(fp.clone()) {
                        *self.app_c2s.entry(fp).or_default() += 1;
                    }
                }
            }
            PacketType::CommonData => {
                let fp = packet.qos_fingerprint().cloned();
                if let Some(&receiver) = self.online.get(packet.to_str()) {
                    out.push((receiver, packet.clone()));
                    if let Some(fp) = &fp {
                        self.s2c().insert(fp.clone(), packet.clone(), now);
                    }
                }
                // Relayed, or stored offline by an application whose hook returns true.
                if let Some(fp) = fp {
                    self.c2c_relayed.insert(fp.clone());
                    out.push((
                        conn,
                        Packet::ack(packet.to_str(), packet.from_str(), &fp, false),
                    ));
                }
            }
            _ => {}
        }
        out
    }

    fn send_s2c(&mut self, to: &str, fp: Fingerprint, now: Instant) -> Vec<(u64, Packet)> {
        let packet = Packet::common_data("0", to, format!("s2c {fp}"), Some(fp.clone()), 0);
        match self.online.get(to) {
            Some(&conn) => {
                self.s2c().insert(fp, packet.clone(), now);
                vec![(conn, packet)]
            }
            None => Vec::new(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Vec<(u64, Packet)> {
        let mut out = Vec::new();
        let online = self.online.clone();
        self.s2c().handle_timeout(now, |r| {
            if let hongyan_shared::Retransmit::Resend(_, packet) = r
                && let Some(&conn) = online.get(packet.to_str())
            {
                out.push((conn, packet.clone()));
            }
        });
        out
    }

    fn close(&mut self, conn: u64) {
        self.open.remove(&conn);
        if let Some(user) = self.auth.remove(&conn)
            && self.online.get(&user) == Some(&conn)
        {
            self.online.remove(&user);
        }
    }

    /// The process dies and comes back: every session and memory is gone, but (as with UDP)
    /// the clients' sockets still reach it.
    fn restart(&mut self) {
        self.auth.clear();
        self.online.clear();
        self.c2s_seen.clear();
        self.s2c = None;
    }
}

#[derive(Debug, Clone)]
enum Action {
    Send { from: usize, to: String },
    ServerSend { to: usize },
    CutLink { client: usize },
    RestartServer,
}

struct Sim {
    t0: Instant,
    now: Instant,
    rng: SmallRng,
    loss: Loss,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    next_conn: u64,
    conn_owner: HashMap<u64, usize>,
    peers: Vec<Peer>,
    server: ServerModel,
    s2c_sent: Vec<(usize, Fingerprint)>,
    script: Vec<(Instant, Action)>,
    dropped: usize,
    duplicated: usize,
}

impl Sim {
    fn new(seed: u64, loss: Loss, users: &[&str], transport: Transport) -> Self {
        let t0 = Instant::now();
        let peers = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let config = SessionConfig::new(transport, seed.wrapping_mul(31) + i as u64);
                Peer {
                    user: (*user).to_owned(),
                    session: ClientSession::new(config, t0),
                    conn: None,
                    sent: HashMap::new(),
                    received: HashMap::new(),
                    logins: 0,
                }
            })
            .collect();
        let mut sim = Self {
            t0,
            now: t0,
            rng: SmallRng::seed_from_u64(seed),
            loss,
            queue: BinaryHeap::new(),
            seq: 0,
            next_conn: 1,
            conn_owner: HashMap::new(),
            peers,
            server: ServerModel::default(),
            s2c_sent: Vec::new(),
            script: Vec::new(),
            dropped: 0,
            duplicated: 0,
        };
        for i in 0..users.len() {
            let user = sim.peers[i].user.clone();
            sim.peers[i]
                .session
                .login(LoginInfo::new(&user, Some("tk"), None), t0)
                .unwrap();
            sim.drain_client(i);
        }
        sim
    }

    fn at(&self, offset_ms: u64) -> Instant {
        self.t0 + ms(offset_ms)
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
            let delay = self.rng.random_range(0..=self.loss.max_delay_ms);
            let at = self.now + ms(delay);
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

    fn server_out(&mut self, out: Vec<(u64, Packet)>) {
        for (conn, packet) in out {
            if let Some(&client) = self.conn_owner.get(&conn) {
                self.transmit(Dest::Client(client), conn, packet);
            }
        }
    }

    /// Drains every output of client `i`, in the order the session documents.
    fn drain_client(&mut self, i: usize) {
        let now = self.now;
        while let Some(packet) = self.peers[i].session.poll_transmit() {
            if let Some(conn) = self.peers[i].conn {
                self.transmit(Dest::Server, conn, packet);
            }
        }
        while let Some(command) = self.peers[i].session.poll_transport() {
            if let Some(old) = self.peers[i].conn.take() {
                self.server.close(old);
            }
            if command == TransportCommand::Open {
                let conn = self.next_conn;
                self.next_conn += 1;
                self.conn_owner.insert(conn, i);
                self.server.open.insert(conn);
                self.peers[i].conn = Some(conn);
                let delay = self.rng.random_range(1..=20);
                self.schedule(now + ms(delay), What::Connected { client: i, conn });
            }
        }
        while let Some(event) = self.peers[i].session.poll_event() {
            let peer = &mut self.peers[i];
            match event {
                ClientEvent::MessageReceived(m) => {
                    if let Some(fp) = m.fp {
                        *peer.received.entry(fp).or_default() += 1;
                    }
                }
                ClientEvent::MessageDelivered(fp) => {
                    peer.sent.get_mut(&fp).unwrap().delivered.push(now);
                }
                ClientEvent::MessagesLost(lost) => {
                    for p in lost {
                        peer.sent
                            .get_mut(p.fp.as_ref().unwrap())
                            .unwrap()
                            .lost
                            .push(now);
                    }
                }
                ClientEvent::StateChanged(ConnectionState::Online) => peer.logins += 1,
                _ => {}
            }
        }
    }

    fn act(&mut self, action: Action) {
        let now = self.now;
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
                            ..Outcome::default()
                        },
                    );
                }
                self.drain_client(from);
            }
            Action::ServerSend { to } => {
                let fp = Fingerprint::from_random(self.rng.random());
                let out = self.server.send_s2c(&self.peers[to].user, fp.clone(), now);
                if !out.is_empty() {
                    self.s2c_sent.push((to, fp));
                }
                self.server_out(out);
            }
            Action::CutLink { client } => {
                if let Some(conn) = self.peers[client].conn.take() {
                    self.server.close(conn);
                    self.peers[client].conn = Some(conn);
                    self.peers[client].session.handle_disconnected(now);
                    self.peers[client].conn = None;
                    self.drain_client(client);
                }
            }
            Action::RestartServer => self.server.restart(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let peers = self.peers.iter().filter_map(|p| p.session.poll_timeout());
        let queue = self.queue.peek().map(|Reverse(s)| s.at);
        let server = self.server.s2c.as_ref().and_then(|q| q.poll_timeout());
        let script = self.script.first().map(|(t, _)| *t);
        peers.chain(queue).chain(server).chain(script).min()
    }

    fn run_until(&mut self, end: Instant) {
        self.script.sort_by_key(|(t, _)| *t);
        let mut steps = 0u32;
        while let Some(next) = self.next_deadline().filter(|t| *t <= end) {
            steps += 1;
            assert!(steps < 5_000_000, "the simulation does not settle");
            self.now = self.now.max(next);
            let now = self.now;
            while self.script.first().is_some_and(|(t, _)| *t <= now) {
                let (_, action) = self.script.remove(0);
                self.act(action);
            }
            while self.queue.peek().is_some_and(|Reverse(s)| s.at <= now) {
                let Reverse(item) = self.queue.pop().unwrap();
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
            if self.server.s2c.as_ref().and_then(|q| q.poll_timeout()) <= Some(now) {
                let out = self.server.handle_timeout(now);
                self.server_out(out);
            }
        }
        self.now = end;
    }

    fn deliver(&mut self, what: What) {
        let now = self.now;
        match what {
            What::Connected { client, conn } => {
                if self.peers[client].conn == Some(conn) {
                    self.peers[client].session.handle_connected(now);
                    self.drain_client(client);
                }
            }
            What::Deliver {
                dest: Dest::Server,
                conn,
                packet,
            } => {
                if self.server.open.contains(&conn) {
                    let out = self.server.handle(conn, packet, now, self.t0);
                    self.server_out(out);
                }
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

    /// Checks the four invariants of the module doc; returns (delivered, lost, lost but
    /// received) counts.
    fn check_invariants(&self, seed: u64) -> (usize, usize, usize) {
        let (mut delivered, mut lost, mut lost_but_received) = (0, 0, 0);
        for peer in &self.peers {
            for (fp, outcome) in &peer.sent {
                let ctx = format!("seed {seed}, {} sent {fp} to {}", peer.user, outcome.to);
                assert_eq!(
                    outcome.delivered.len() + outcome.lost.len(),
                    1,
                    "{ctx}: exactly one report, got {outcome:?}"
                );
                let received = if outcome.to == UserId::SERVER {
                    self.server.app_c2s.get(fp).copied().unwrap_or(0)
                } else {
                    let receiver = self.peers.iter().find(|p| p.user == outcome.to).unwrap();
                    receiver.received.get(fp).copied().unwrap_or(0)
                };
                assert!(received <= 1, "{ctx}: received {received} times");
                if outcome.delivered.is_empty() {
                    lost += 1;
                    if received == 1 {
                        lost_but_received += 1;
                        let lost_at = outcome.lost[0];
                        assert!(
                            outcome.first_ack_at.is_none_or(|ack| ack > lost_at),
                            "{ctx}: an ack arrived before the loss report"
                        );
                    }
                } else {
                    delivered += 1;
                    if outcome.to == UserId::SERVER {
                        assert_eq!(received, 1, "{ctx}: delivered but not in the server app");
                    } else {
                        assert!(self.server.c2c_relayed.contains(fp), "{ctx}: never relayed");
                    }
                }
            }
            for (fp, count) in &peer.received {
                assert_eq!(
                    *count, 1,
                    "seed {seed}: {} got {fp} {count} times",
                    peer.user
                );
            }
        }
        (delivered, lost, lost_but_received)
    }
}

fn lossy_run(seed: u64, transport: Transport) -> Sim {
    let loss = Loss {
        drop: 0.2,
        duplicate: 0.1,
        max_delay_ms: 400,
    };
    let mut sim = Sim::new(seed, loss, &["alice", "bob"], transport);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xABCD);
    let mut t = 500;
    while t < 60_000 {
        let action = match rng.random_range(0..4) {
            0 => Action::Send {
                from: 0,
                to: "0".into(),
            },
            1 => Action::Send {
                from: 0,
                to: "bob".into(),
            },
            2 => Action::Send {
                from: 1,
                to: "alice".into(),
            },
            _ => Action::ServerSend {
                to: rng.random_range(0..2),
            },
        };
        sim.script.push((sim.at(t), action));
        t += rng.random_range(50..700);
    }
    let end = sim.at(100_000);
    sim.run_until(end);
    sim
}

#[test]
fn under_any_seed_every_qos_message_is_reported_once_and_received_at_most_once() {
    let (mut delivered, mut lost, mut lost_but_received, mut relogins) = (0, 0, 0, 0);
    for seed in 0..300 {
        let transport = if seed % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let sim = lossy_run(seed, transport);
        assert!(
            sim.dropped > 0 && sim.duplicated > 0,
            "the link must misbehave"
        );
        let (d, l, lr) = sim.check_invariants(seed);
        delivered += d;
        lost += l;
        lost_but_received += lr;
        relogins += sim.peers.iter().map(|p| p.logins - 1).sum::<usize>();
    }
    eprintln!(
        "delivered {delivered}, lost {lost}, lost but received {lost_but_received}, relogins {relogins}"
    );
    // The property must have been exercised on every branch, not only the happy one.
    assert!(delivered > 10_000, "delivered {delivered}");
    assert!(lost > 0, "lost {lost}");
    assert!(
        lost_but_received > 0,
        "lost but received {lost_but_received}"
    );
    assert!(relogins > 0, "relogins {relogins}");
}

#[test]
fn on_a_clean_link_every_message_is_delivered_and_received_once() {
    let mut sim = Sim::new(1, Loss::NONE, &["alice", "bob"], Transport::Tcp);
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
    let (delivered, lost, _) = sim.check_invariants(1);
    assert_eq!((delivered, lost), (50, 0));
    assert_eq!(sim.peers[0].received.len(), 50, "every S2C message");
    assert_eq!(
        sim.peers[1].received.len(),
        25,
        "every C2C message from alice"
    );
    assert!(
        sim.peers.iter().all(|p| p.logins == 1),
        "no spurious relogin"
    );
}

#[test]
fn after_a_server_restart_the_client_logs_in_again_with_its_first_login_time() {
    let mut sim = Sim::new(2, Loss::NONE, &["alice"], Transport::Udp);
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
    let times = &sim.server.login_times;
    assert!(times.len() >= 2, "{times:?}");
    assert_eq!(times[0].1, 0, "first login");
    let first = sim.peers[0].session.login_info().unwrap().first_login_time;
    assert!(first > 0);
    assert!(times[1..].iter().all(|(_, t)| *t == first), "{times:?}");
    assert_eq!(sim.peers[0].session.state(), ConnectionState::Online);
    let (delivered, lost, _) = sim.check_invariants(2);
    assert_eq!(
        (delivered, lost),
        (1, 0),
        "the message sent into the 301 gets through after the relogin"
    );
}

#[test]
fn after_the_link_is_cut_the_client_logs_in_again_at_once() {
    let mut sim = Sim::new(3, Loss::NONE, &["alice"], Transport::Tcp);
    sim.script
        .push((sim.at(5_000), Action::CutLink { client: 0 }));
    let end = sim.at(5_100);
    sim.run_until(end);
    assert_eq!(sim.peers[0].session.state(), ConnectionState::Online);
    assert_eq!(sim.peers[0].logins, 2);
    let first = sim.peers[0].session.login_info().unwrap().first_login_time;
    assert_eq!(sim.server.login_times.last().unwrap().1, first);
}
