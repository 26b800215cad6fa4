//! The cluster (issue 14) with real processes: a `nats-server` and a PostgreSQL of the test's
//! own, and three `hongyan serve` nodes on loopback ports. Users on different nodes talk with
//! QoS over TCP, UDP and WebSocket; a push through one node's API reaches a user on another;
//! a login on another node kicks the first session; every node lists every online user. Then
//! failures: a node killed with SIGKILL while traffic flows (its users log in again on the
//! survivors, and every message a sender saw acknowledged arrives), a node stopped with
//! SIGSTOP (a hung peer), NATS restarted under running nodes. And conversation history, kept
//! as on one node: a conversation whose members write from two nodes is numbered gaplessly,
//! each message once, and reads the same through the API and a client's sync on any node.

mod process;

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hongyan_client::{Client, ClientConfig, Endpoint, Events};
use hongyan_shared::client::{ClientEvent, ConnectionState, HistoryView};
use hongyan_shared::{Fingerprint, LoginInfo, UserId};
use hongyan_store::testing::TempPostgres;
use tokio::time::{Instant, timeout};

use self::process::{Options, STEP, Served, http_at};

/// The admin token the nodes run with.
const TOKEN: &str = "cluster-test-token";

/// A `nats-server` on a loopback port of its own, stopped on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
}

impl Nats {
    fn start(dir: &Path) -> Self {
        // A port the system just handed out, free again: nats-server binds it at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Self { child: None, port };
        nats.run(dir);
        nats
    }

    /// Starts the server (again) on its port and waits until it greets a client.
    fn run(&mut self, dir: &Path) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-l", &dir.join("nats.log").display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + STEP;
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut info = [0u8; 4];
                if stream.read_exact(&mut info).is_ok() && &info == b"INFO" {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `hongyan serve` node of the cluster, on ephemeral loopback ports, killed on drop.
struct Node(Served);

impl Deref for Node {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

impl Node {
    fn start(name: &str, store: &str, nats: &str, state_dir: &Path) -> Self {
        let log = std::env::var("CLUSTER_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
        Self(Served::start(&Options {
            name,
            args: &[
                "--store",
                store,
                "--cluster",
                nats,
                "--node-name",
                name,
                // The cluster, not the message limit, is under test.
                "--limits-exempt",
                "127.0.0.0/8",
            ],
            state_dir,
            token: TOKEN,
            log: &log,
            udp: true,
        }))
    }

    /// Waits until `/readyz`'s body starts with `state` (`ready`, `degraded`).
    async fn wait_readyz(&self, state: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let (status, body) = self.get("/readyz");
            if status == 200 && body.starts_with(state) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: /readyz stays {status} {body}",
                self.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tcp(&self) -> Endpoint {
        Endpoint::Tcp(self.0.tcp.to_string())
    }

    fn udp(&self) -> Endpoint {
        Endpoint::Udp(self.0.udp.expect("a node listens on UDP").to_string())
    }

    fn ws(&self) -> Endpoint {
        Endpoint::WebSocket(format!("ws://{}/websocket", self.0.http))
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would.
    fn kill(self) {
        self.0.kill();
    }
}

/// NATS, PostgreSQL and three nodes, named `node-0` … `node-2`.
struct Cluster {
    nodes: Vec<Node>,
    nats: Nats,
    dir: tempfile::TempDir,
    _pg: TempPostgres,
}

impl Cluster {
    async fn start() -> Self {
        let pg = TempPostgres::start().expect("PostgreSQL starts (scripts/setup installs it)");
        let store = pg.create_database("hongyan").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let nats = Nats::start(dir.path());
        // One after another: the first migrates the shared database.
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                let state = dir.path().join(format!("node-{i}"));
                Node::start(&format!("node-{i}"), &store, &nats.url(), &state)
            })
            .collect();
        for node in &nodes {
            node.wait_log("cluster connected").await;
            node.wait_readyz("ready").await;
        }
        Self {
            nodes,
            nats,
            dir,
            _pg: pg,
        }
    }
}

/// A client logged in as `user` at `endpoint`.
async fn online(endpoint: Endpoint, user: &str) -> (Client, Events) {
    online_with(ClientConfig::new(endpoint), user).await
}

/// A client with `config` logged in as `user`.
async fn online_with(config: ClientConfig, user: &str) -> (Client, Events) {
    let (client, events) = Client::connect(config, LoginInfo::new(user, Some("t"), None)).unwrap();
    timeout(STEP, client.wait_for(ConnectionState::Online))
        .await
        .expect("logs in in time")
        .expect("logs in");
    (client, events)
}

/// The next event that `pick` takes, within [`STEP`]; the others are dropped.
async fn next<T>(
    events: &mut Events,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            other => panic!("never saw {what}: {other:?}"),
        }
    }
}

/// Sends a QoS message from `from` to `to` and waits for its acknowledgement and its arrival.
async fn exchange(
    (from, from_events): &mut (Client, Events),
    (to, to_events): &mut (Client, Events),
    text: &str,
) {
    let fp = from.send_c2c(to.user_id().as_str(), text, 0).await.unwrap();
    let acked = fp.clone();
    next(from_events, "the acknowledgement", |event| match event {
        ClientEvent::MessageDelivered(fp) if fp == acked => Some(()),
        _ => None,
    })
    .await;
    let message = next(to_events, "the message", |event| match event {
        ClientEvent::MessageReceived(message) => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(message.fp, Some(fp));
    assert_eq!(message.content, text);
    assert_eq!(message.from.as_str(), from.user_id().as_str());
}

/// `a` and `b`, on two nodes, each send `n` QoS messages to the other at once, without
/// waiting. A sender hears its pseudo-ACK only when the other node has the receiver's
/// acknowledgement; a session that waited for it before reading on would never read the other
/// side's acknowledgement, and both would wait for the cluster's deliver timeout (5 s). So:
/// every message is acknowledged within a moment, and each side receives the other's messages
/// once and in order.
async fn crossing(a: &mut (Client, Events), b: &mut (Client, Events), n: usize) {
    let started = Instant::now();
    let mut sent: [Vec<Fingerprint>; 2] = [Vec::new(), Vec::new()];
    for i in 0..n {
        for (side, (from, to)) in [(&a.0, &b.0), (&b.0, &a.0)].into_iter().enumerate() {
            let text = format!("crossing {i} from {}", from.user_id());
            let fp = from
                .send_c2c(to.user_id().as_str(), &text, 0)
                .await
                .unwrap();
            sent[side].push(fp);
        }
    }
    let within = Duration::from_secs(3);
    for (side, events) in [&mut a.1, &mut b.1].into_iter().enumerate() {
        let (mut acked, mut received) = (Vec::new(), Vec::new());
        while acked.len() < n || received.len() < n {
            match tokio::time::timeout_at(started + within, events.recv()).await {
                Ok(Some(ClientEvent::MessageDelivered(fp))) => acked.push(fp),
                Ok(Some(ClientEvent::MessageReceived(message))) => received.push(message.fp),
                Ok(Some(_)) => {}
                other => panic!(
                    "side {side}: {} of {n} acknowledged and {} of {n} received within {within:?}: {other:?}",
                    acked.len(),
                    received.len()
                ),
            }
        }
        acked.sort();
        let mut expected = sent[side].clone();
        expected.sort();
        assert_eq!(
            acked, expected,
            "side {side}: each message acknowledged once"
        );
        let expected: Vec<_> = sent[1 - side].iter().cloned().map(Some).collect();
        assert_eq!(received, expected, "side {side}: received once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_nodes_talk_with_qos_on_every_transport_and_are_listed_everywhere() {
    let cluster = Cluster::start().await;
    let [n0, n1, n2] = &cluster.nodes[..] else {
        unreachable!("three nodes")
    };
    let mut alice = online(n0.tcp(), "alice").await;
    let mut bob = online(n1.udp(), "bob").await;
    let mut carol = online(n2.ws(), "carol").await;

    // C2C with QoS, each pair on two nodes and two transports.
    exchange(&mut alice, &mut bob, "tcp on node-0 to udp on node-1").await;
    exchange(&mut bob, &mut carol, "udp on node-1 to ws on node-2").await;
    exchange(&mut carol, &mut alice, "ws on node-2 to tcp on node-0").await;
    // Two users on two nodes writing to each other at the same moment.
    crossing(&mut alice, &mut bob, 20).await;

    // S2C pushed through node-0's API to a user on node-2, acknowledged there.
    let (status, body) = n0.http(
        "POST",
        "/api/messages",
        r#"{"to":"carol","content":"pushed via node-0","wait":true}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""outcome":"delivered""#), "{body}");
    let pushed = next(&mut carol.1, "the push", |event| match event {
        ClientEvent::MessageReceived(message) => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(pushed.content, "pushed via node-0");
    assert_eq!(pushed.from.as_str(), "0");

    // Every node lists every online user, with the node that holds them.
    for node in &cluster.nodes {
        let (status, body) = node.get("/api/users");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""total":3"#), "{}: {body}", node.name());
        for (user, holder) in [("alice", "node-0"), ("bob", "node-1"), ("carol", "node-2")] {
            assert!(
                body.contains(&format!(r#""userId":"{user}""#)),
                "{}: {body}",
                node.name()
            );
            let (status, one) = node.get(&format!("/api/users/{user}"));
            assert_eq!(status, 200, "{one}");
            assert!(one.contains(&format!(r#""node":"{holder}""#)), "{one}");
        }
    }
    // Pages follow user id order across nodes.
    let (_, page) = n1.get("/api/users?limit=2");
    assert!(page.contains(r#""next":"bob""#), "{page}");
    assert!(!page.contains("carol"), "{page}");

    // A user nobody holds: the message is stored, and replayed at their login on any node.
    let fp = alice.0.send_c2c("dave", "for later", 0).await.unwrap();
    next(&mut alice.1, "the acknowledgement", |event| match event {
        ClientEvent::MessageDelivered(acked) if acked == fp => Some(()),
        _ => None,
    })
    .await;
    let mut dave = online(n2.tcp(), "dave").await;
    let stored = next(&mut dave.1, "the stored message", |event| match event {
        ClientEvent::MessageReceived(message) => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(stored.fp, Some(fp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_another_node_kicks_the_first_session_and_an_admin_kicks_from_any_node() {
    let cluster = Cluster::start().await;
    let [n0, n1, n2] = &cluster.nodes[..] else {
        unreachable!("three nodes")
    };
    let (_first, mut first_events) = online(n0.tcp(), "alice").await;
    let (second, second_events) = online(n1.ws(), "alice").await;
    let kickout = next(&mut first_events, "the kickout", |event| match event {
        ClientEvent::Kickout(kickout) => Some(kickout),
        _ => None,
    })
    .await;
    assert_eq!(kickout.code, hongyan_shared::codes::KICKOUT_DUPLICATE_LOGIN);
    let (status, body) = n2.get("/api/users/alice");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""node":"node-1""#), "{body}");
    let (_, users) = n0.get("/api/users");
    assert!(users.contains(r#""total":1"#), "{users}");

    // The surviving session still gets messages, from a user on the first node.
    let mut bob = online(n0.udp(), "bob").await;
    let mut alice = (second, second_events);
    exchange(&mut bob, &mut alice, "to the second session").await;
    let (second, mut second_events) = alice;

    let (status, body) = n2.http("POST", "/api/users/alice/kick", r#"{"reason":"bye"}"#);
    assert_eq!(status, 200, "{body}");
    let kickout = next(
        &mut second_events,
        "the admin kickout",
        |event| match event {
            ClientEvent::Kickout(kickout) => Some(kickout),
            _ => None,
        },
    )
    .await;
    assert_eq!(kickout.code, hongyan_shared::codes::KICKOUT_ADMIN);
    assert_eq!(kickout.reason.as_deref(), Some("bye"));
    drop(second);
    let (status, _) = n0.http("POST", "/api/users/nobody/kick", "");
    assert_eq!(status, 404);
}

/// Streams QoS messages from `sender` at `endpoint` to `receivers`, `WINDOW` in flight, until
/// `stop` says so and the last ones are settled; returns those acknowledged, with their
/// receiver.
async fn stream(
    endpoint: Endpoint,
    sender: String,
    receivers: Vec<String>,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicU64>,
) -> HashMap<Fingerprint, String> {
    const WINDOW: usize = 8;
    let (client, mut events) = online(endpoint, &sender).await;
    let mut in_flight = HashMap::new();
    let mut delivered = HashMap::new();
    let mut n = 0;
    let deadline = Instant::now() + 3 * STEP;
    loop {
        while in_flight.len() < WINDOW && stop.load(Ordering::Relaxed) == 0 {
            let to = receivers[n % receivers.len()].clone();
            let fp = client
                .send_c2c(&to, format!("{sender} #{n}"), 0)
                .await
                .unwrap();
            in_flight.insert(fp, to);
            n += 1;
        }
        if in_flight.is_empty() {
            client.logout().await;
            return delivered;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::MessageDelivered(fp))) => {
                if let Some(to) = in_flight.remove(&fp) {
                    delivered.insert(fp, to);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Some(ClientEvent::MessagesLost(lost))) => {
                for packet in lost {
                    if let Some(fp) = packet.fp {
                        in_flight.remove(&fp);
                    }
                }
            }
            Ok(Some(_)) => {}
            other => panic!("{sender}: the stream stalls: {other:?}"),
        }
    }
}

/// Receives as `user` at `endpoint`, counting each fingerprint, until `done` says so.
async fn receive(
    endpoint: Endpoint,
    user: String,
    received: Arc<Mutex<HashMap<Fingerprint, usize>>>,
    done: Arc<AtomicU64>,
) -> Client {
    let (client, mut events) = online(endpoint, &user).await;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let ClientEvent::MessageReceived(message) = event {
                *received
                    .lock()
                    .unwrap()
                    .entry(message.fp.expect("QoS"))
                    .or_default() += 1;
            }
            if done.load(Ordering::Relaxed) == 1 {
                break;
            }
        }
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_traffic_flows_loses_no_acknowledged_message() {
    let cluster = Cluster::start().await;
    let mut nodes = cluster.nodes;
    let victim = nodes.pop().expect("three nodes");
    let receivers: Vec<String> = (0..4).map(|i| format!("receiver-{i}")).collect();
    // What each client instance received: before the kill on the victim, after it on the
    // survivors.
    let before: Vec<_> = receivers
        .iter()
        .map(|_| Arc::new(Mutex::new(HashMap::new())))
        .collect();
    let after: Vec<_> = receivers
        .iter()
        .map(|_| Arc::new(Mutex::new(HashMap::new())))
        .collect();
    let done = Arc::new(AtomicU64::new(0));
    let mut first_clients = Vec::new();
    for (user, received) in receivers.iter().zip(&before) {
        first_clients
            .push(receive(victim.tcp(), user.clone(), received.clone(), done.clone()).await);
    }
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(stream(
                nodes[i].tcp(),
                format!("sender-{i}"),
                receivers.clone(),
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let wait_acked = |at_least: u64| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + STEP;
            while acked.load(Ordering::Relaxed) < at_least {
                assert!(
                    Instant::now() < deadline,
                    "only {} acknowledged",
                    acked.load(Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_acked(200).await;
    victim.kill();
    // Its users log in again on the survivors while the senders go on.
    let mut second_clients = Vec::new();
    for (i, (user, received)) in receivers.iter().zip(&after).enumerate() {
        second_clients.push(
            receive(
                nodes[i % 2].tcp(),
                user.clone(),
                received.clone(),
                done.clone(),
            )
            .await,
        );
    }
    let at_kill = acked.load(Ordering::Relaxed);
    wait_acked(at_kill + 200).await;
    stop.store(1, Ordering::Relaxed);
    let mut expected: HashMap<Fingerprint, usize> = HashMap::new();
    for sender in senders {
        for (fp, to) in sender.await.unwrap() {
            let index = receivers.iter().position(|r| *r == to).unwrap();
            expected.insert(fp, index);
        }
    }
    // Every acknowledged message reaches its receiver: once per client instance, and on the
    // instance that lived on, unless the first one had it already.
    let deadline = Instant::now() + STEP;
    loop {
        let missing: Vec<_> = expected
            .iter()
            .filter(|(fp, i)| {
                !before[**i].lock().unwrap().contains_key(*fp)
                    && !after[**i].lock().unwrap().contains_key(*fp)
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged messages never arrived, e.g. {:?}",
            missing.len(),
            expected.len(),
            missing.first()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for received in before.iter().chain(&after) {
        assert!(
            received.lock().unwrap().values().all(|&n| n == 1),
            "a client instance received a message twice"
        );
    }
    let twice = expected
        .iter()
        .filter(|(fp, i)| {
            before[**i].lock().unwrap().contains_key(*fp)
                && after[**i].lock().unwrap().contains_key(*fp)
        })
        .count();
    eprintln!(
        "{} acknowledged ({} before the kill); {twice} reached both instances of their receiver \
         (in flight when the node died)",
        expected.len(),
        at_kill
    );
    done.store(1, Ordering::Relaxed);
    drop((first_clients, second_clients));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_nats_leaves_nodes_serving_and_the_cluster_recovers_by_itself() {
    let mut cluster = Cluster::start().await;
    let mut alice = online(cluster.nodes[0].tcp(), "alice").await;
    let mut bob = online(cluster.nodes[1].tcp(), "bob").await;
    exchange(&mut alice, &mut bob, "before").await;

    cluster.nats.stop();
    for node in &cluster.nodes {
        node.wait_readyz("degraded").await;
    }
    // Local users are still served; a message for a user on another node is stored.
    let fp = alice
        .0
        .send_c2c("bob", "while NATS is away", 0)
        .await
        .unwrap();
    next(&mut alice.1, "the acknowledgement", |event| match event {
        ClientEvent::MessageDelivered(acked) if acked == fp => Some(()),
        _ => None,
    })
    .await;
    let mut carol = online(cluster.nodes[0].ws(), "carol").await;
    exchange(&mut alice, &mut carol, "on one node").await;

    cluster.nats.run(cluster.dir.path());
    for node in &cluster.nodes {
        node.wait_readyz("ready").await;
    }
    // What was stored meanwhile reaches bob without a new login, and routing works again.
    let stored = next(&mut bob.1, "the stored message", |event| match event {
        ClientEvent::MessageReceived(message) => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(stored.fp, Some(fp));
    exchange(&mut carol, &mut bob, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_loses_no_acknowledged_message_and_the_others_keep_serving() {
    let cluster = Cluster::start().await;
    let [n0, n1, n2] = &cluster.nodes[..] else {
        unreachable!("three nodes")
    };
    let mut alice = online(n0.tcp(), "alice").await;
    let mut bob = online(n1.tcp(), "bob").await;
    let (_hung_carol, mut hung_events) = online(n2.tcp(), "carol").await;
    // Her node answers for her (its subscription is live) before it hangs.
    let deadline = Instant::now() + STEP;
    while !n0.get("/api/users/carol").1.contains(r#""node":"node-2""#) {
        assert!(Instant::now() < deadline, "carol never shows on node-2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    n2.signal("-STOP");
    // A message for a user on the hung node: acknowledged only once stored.
    let fp = alice
        .0
        .send_c2c("carol", "to a hung node", 0)
        .await
        .unwrap();
    // The others keep serving meanwhile (alice's session waits for the hung node, at most
    // `DELIVER_TIMEOUT`).
    let mut dave = online(n0.udp(), "dave").await;
    exchange(&mut bob, &mut dave, "between the others").await;
    next(&mut alice.1, "the acknowledgement", |event| match event {
        ClientEvent::MessageDelivered(acked) if acked == fp => Some(()),
        _ => None,
    })
    .await;
    // Carol gives up on the hung node and logs in on another: the message is there.
    let mut carol = online(n1.ws(), "carol").await;
    let hung_got = std::iter::from_fn(|| hung_events.try_recv())
        .filter(|event| matches!(event, ClientEvent::MessageReceived(_)))
        .count();
    assert_eq!(hung_got, 0, "the hung node delivered nothing");
    let message = next(&mut carol.1, "the stored message", |event| match event {
        ClientEvent::MessageReceived(message) => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(message.fp, Some(fp));
    exchange(&mut alice, &mut carol, "to carol on node-1").await;
    // The hung node wakes up: it lets carol go rather than deliver a second time.
    n2.signal("-CONT");
    exchange(&mut bob, &mut carol, "after the wake-up").await;
    let duplicates = std::iter::from_fn(|| carol.1.try_recv())
        .filter(|event| matches!(event, ClientEvent::MessageReceived(_)))
        .count();
    assert_eq!(duplicates, 0);
    let (_, users) = n0.get("/api/users/carol");
    assert!(users.contains(r#""node":"node-1""#), "{users}");
}

/// `(seq, from, content)` of the conversation between `user` and `peer`, as `node`'s API
/// pages it from the start.
fn api_history(node: &Node, user: &str, peer: &str) -> Vec<(u64, String, String)> {
    let (status, body) = node.get(&format!(
        "/api/users/{user}/conversations/{peer}/messages?after=0&limit=100"
    ));
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["from"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The conversation between `user` and `peer` as `node`'s API pages it, once it holds `n`
/// messages (history is written a moment after delivery).
async fn written(node: &Node, user: &str, peer: &str, n: usize) -> Vec<(u64, String, String)> {
    let deadline = Instant::now() + STEP;
    loop {
        let history = api_history(node, user, peer);
        if history.len() >= n {
            return history;
        }
        assert!(Instant::now() < deadline, "not written: {history:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that syncs history, and what it learned of it.
struct Syncing {
    client: Client,
    events: Events,
    view: HistoryView,
}

impl Syncing {
    async fn online(endpoint: Endpoint, user: &str) -> Self {
        let mut config = ClientConfig::new(endpoint);
        config.session = config.session.with_sync();
        let (client, events) = online_with(config, user).await;
        Self {
            client,
            events,
            view: HistoryView::new(),
        }
    }

    /// Takes events (into the view) until `done` holds, within [`STEP`].
    async fn until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&ClientEvent, &HistoryView) -> bool,
    ) {
        let deadline = Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.view.apply(&event);
                    if done(&event, &self.view) {
                        return;
                    }
                }
                other => panic!("never {what}: {other:?}\n{:#?}", self.view),
            }
        }
    }

    /// Sends `text` to `to` with QoS and waits for its acknowledgement.
    async fn send(&mut self, to: &str, text: &str) {
        let fp = self.client.send_c2c(to, text, 0).await.unwrap();
        self.until(
            "acknowledged",
            |event, _| matches!(event, ClientEvent::MessageDelivered(acked) if *acked == fp),
        )
        .await;
    }

    /// Waits for a message whose content is `text`.
    async fn receive(&mut self, text: &str) {
        self.until(
            "received",
            |event, _| matches!(event, ClientEvent::MessageReceived(m) if m.content == text),
        )
        .await;
    }

    /// Waits until the view of the conversation with `peer` is `expected`, every message
    /// that came without a seq found in the history.
    async fn synced(&mut self, peer: &str, expected: &[(u64, String, String)]) {
        let peer = UserId::from(peer);
        self.until("synced", |_, view| {
            view.conversation(&peer).is_some_and(|c| {
                c.unsequenced.is_empty()
                    && c.messages
                        .values()
                        .map(|m| {
                            (
                                m.seq,
                                m.from.to_string(),
                                m.content.clone().unwrap_or_default(),
                            )
                        })
                        .eq(expected.iter().cloned())
            })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_numbered_once_across_nodes_and_reads_the_same_from_any_node() {
    const EACH: usize = 4;
    let cluster = Cluster::start().await;
    let [n0, n1, n2] = &cluster.nodes[..] else {
        unreachable!("three nodes")
    };
    // Both sync history: their live messages come without a seq, found through sync.
    let mut erin = Syncing::online(n0.tcp(), "erin").await;
    let mut frank = Syncing::online(n1.ws(), "frank").await;

    // Turn about, each from their own node.
    for i in 0..EACH {
        erin.send("frank", &format!("erin {i}")).await;
        frank.receive(&format!("erin {i}")).await;
        frank.send("erin", &format!("frank {i}")).await;
        erin.receive(&format!("frank {i}")).await;
    }
    // Then at once: erin through node-0 while frank's backend sends in his name through
    // node-1, so two nodes accept messages of the conversation side by side. (Through his
    // own node: seqs follow the order the nodes write, so one sender's messages through two
    // nodes within a write's time of each other may swap.)
    let api = n1.http;
    let backend = std::thread::spawn(move || {
        for i in EACH..2 * EACH {
            let body =
                format!(r#"{{"from":"frank","to":"erin","content":"frank {i}","wait":true}}"#);
            let (status, answer) = http_at(api, TOKEN, "POST", "/api/messages/c2c", &body);
            assert_eq!(status, 200, "{answer}");
            assert!(answer.contains(r#""outcome":"delivered""#), "{answer}");
        }
    });
    for i in EACH..2 * EACH {
        erin.send("frank", &format!("erin {i}")).await;
    }
    tokio::task::spawn_blocking(move || backend.join().unwrap())
        .await
        .unwrap();
    // A push through node-2's API to frank, held by node-1.
    let (status, body) = n2.http(
        "POST",
        "/api/messages",
        r#"{"to":"frank","content":"pushed via node-2","wait":true}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""outcome":"delivered""#), "{body}");

    // node-2 reads the whole conversation: gapless, each message once, each sender's in order.
    let total = 4 * EACH;
    let history = written(n2, "erin", "frank", total).await;
    let seqs: Vec<u64> = history.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>(), "gapless");
    for sender in ["erin", "frank"] {
        let sent: Vec<&str> = history
            .iter()
            .filter(|(_, from, _)| from == sender)
            .map(|(_, _, content)| content.as_str())
            .collect();
        let expected: Vec<String> = (0..2 * EACH).map(|i| format!("{sender} {i}")).collect();
        assert_eq!(
            sent, expected,
            "each of {sender}'s messages once, in order: {history:?}"
        );
    }
    assert_eq!(
        api_history(n1, "frank", "erin"),
        history,
        "the same on node-1"
    );
    let pushes = written(n0, "frank", "0", 1).await;
    assert_eq!(
        pushes,
        [(1, "0".to_owned(), "pushed via node-2".to_owned())]
    );

    // Each client found every message that came without a seq, each once.
    frank.synced("erin", &history).await;
    frank.synced("0", &pushes).await;
    erin.synced("frank", &history).await;

    // erin comes back on node-2 with a new client: the same history.
    erin.client.logout().await;
    let mut erin = Syncing::online(n2.udp(), "erin").await;
    erin.synced("frank", &history).await;
}
