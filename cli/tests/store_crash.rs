//! Crash safety of stored messages (issue 11), with real `hongyan serve` processes: killed
//! with SIGKILL while senders stream QoS messages to offline receivers and restarted on the
//! same store, the server delivers every message a sender saw acknowledged, each fingerprint
//! once; on SQLite and on PostgreSQL. And a PostgreSQL that goes away: no acknowledgement, one
//! log line for the burst, `/readyz` not ready, and recovery when it returns.

mod process;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hongyan_client::{Client, ClientConfig, Endpoint};
use hongyan_shared::client::{ClientEvent, ConnectionState};
use hongyan_shared::{Fingerprint, LoginInfo};
use hongyan_store::testing::TempPostgres;
use tokio::time::{Instant, timeout};

use self::process::{Options, STEP, Served};

/// The admin token the servers run with.
const TOKEN: &str = "store-crash-test-token";
/// Senders streaming at once, and the QoS messages each keeps in flight.
const SENDERS: usize = 4;
const WINDOW: usize = 32;
/// Receivers, offline while the messages are sent.
const RECEIVERS: usize = 8;
/// Acknowledged messages to wait for before the kill.
const ACKED_BEFORE_KILL: u64 = 1_000;

/// A `hongyan serve` on ephemeral loopback ports, killed on drop.
struct Serve(Served);

impl Deref for Serve {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

impl Serve {
    fn start(store: &str, state_dir: &Path) -> Self {
        Self(Served::start(&Options {
            name: "the server",
            args: &[
                "--store",
                store,
                // Senders stream as fast as their window allows: the crash, not the message
                // limit, is under test.
                "--limits-exempt",
                "127.0.0.0/8",
            ],
            state_dir,
            token: TOKEN,
            log: "info",
            udp: false,
        }))
    }

    /// Waits until `/readyz` answers `status`.
    async fn wait_ready(&self, status: u16) {
        let deadline = Instant::now() + STEP;
        loop {
            let (now, body) = self.get("/readyz");
            if now == status {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz stays {now}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would.
    fn kill(self) {
        self.0.kill();
    }
}

fn receiver(i: usize) -> String {
    format!("receiver-{i}")
}

/// A client logged in as `user` at `tcp`.
async fn online(tcp: SocketAddr, user: &str) -> (Client, hongyan_client::Events) {
    let config = ClientConfig::new(Endpoint::Tcp(tcp.to_string()));
    let (client, events) = Client::connect(config, LoginInfo::new(user, Some("t"), None)).unwrap();
    timeout(STEP, client.wait_for(ConnectionState::Online))
        .await
        .expect("logs in in time")
        .expect("logs in");
    (client, events)
}

/// Streams QoS messages to the receivers, `WINDOW` in flight, until the connection drops;
/// returns those acknowledged, with their receiver. Every acknowledgement that reached the
/// client before the drop is in it: the client reads them before it sees the end.
async fn stream(
    tcp: SocketAddr,
    sender: usize,
    acked: Arc<AtomicU64>,
) -> HashMap<Fingerprint, String> {
    let (client, mut events) = online(tcp, &format!("sender-{sender}")).await;
    let mut in_flight = HashMap::new();
    let mut delivered = HashMap::new();
    let mut n = 0;
    // The events start with the states the client went through to log in.
    let mut was_online = false;
    loop {
        while in_flight.len() < WINDOW {
            let to = receiver((sender + n) % RECEIVERS);
            let fp = client
                .send_c2c(&to, format!("sender-{sender} #{n}"), 0)
                .await
                .unwrap();
            in_flight.insert(fp, to);
            n += 1;
        }
        match timeout(STEP, events.recv())
            .await
            .expect("the stream goes on")
        {
            Some(ClientEvent::MessageDelivered(fp)) => {
                if let Some(to) = in_flight.remove(&fp) {
                    delivered.insert(fp, to);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(ClientEvent::StateChanged(ConnectionState::Online)) => was_online = true,
            Some(ClientEvent::StateChanged(_)) if was_online => return delivered,
            None => return delivered,
            Some(_) => {}
        }
    }
}

/// Logs `user` in and returns every message it receives until it has all of `expected`, with
/// how often the application saw each.
async fn drain(
    tcp: SocketAddr,
    user: &str,
    expected: &HashSet<Fingerprint>,
) -> HashMap<Fingerprint, usize> {
    let (client, mut events) = online(tcp, user).await;
    let mut received: HashMap<Fingerprint, usize> = HashMap::new();
    let deadline = Instant::now() + STEP;
    while !expected.iter().all(|fp| received.contains_key(fp)) {
        let missing = expected.len()
            - expected
                .iter()
                .filter(|fp| received.contains_key(*fp))
                .count();
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::MessageReceived(message))) => {
                *received.entry(message.fp.expect("QoS")).or_default() += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("{user}: {missing} acknowledged messages never arrived"),
        }
    }
    client.logout().await;
    received
}

/// The SIGKILL scenario on the store `store` (a `--store` value).
async fn every_acknowledged_message_survives_a_kill(store: &str) {
    let state = tempfile::tempdir().unwrap();
    let server = Serve::start(store, state.path());
    let acked = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| tokio::spawn(stream(server.tcp, i, acked.clone())))
        .collect();
    let deadline = Instant::now() + STEP;
    while acked.load(Ordering::Relaxed) < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "the senders never got going: {} acked\n{}",
            acked.load(Ordering::Relaxed),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let mut expected: HashMap<String, HashSet<Fingerprint>> = HashMap::new();
    for sender in senders {
        for (fp, to) in sender.await.unwrap() {
            expected.entry(to).or_default().insert(fp);
        }
    }
    let total: usize = expected.values().map(HashSet::len).sum();
    assert!(total as u64 >= ACKED_BEFORE_KILL, "{total}");
    eprintln!("{total} messages acknowledged before the kill");

    let server = Serve::start(store, state.path());
    let drains: Vec<_> = (0..RECEIVERS)
        .map(|i| {
            let user = receiver(i);
            let want = expected.remove(&user).unwrap_or_default();
            let tcp = server.tcp;
            tokio::spawn(async move {
                let got = drain(tcp, &user, &want).await;
                (user, want, got)
            })
        })
        .collect();
    for drained in drains {
        let (user, want, got) = drained.await.unwrap();
        for fp in &want {
            assert_eq!(
                got.get(fp),
                Some(&1),
                "{user}: {fp} acknowledged, so received once"
            );
        }
        assert!(
            got.values().all(|&n| n == 1),
            "{user}: a message received twice"
        );
    }
    for i in 0..RECEIVERS {
        let deadline = Instant::now() + STEP;
        loop {
            let (status, body) = server.get(&format!("/api/users/{}/stored", receiver(i)));
            assert_eq!(status, 200, "{body}");
            if body.contains("\"stored\":0") {
                break;
            }
            assert!(Instant::now() < deadline, "never removed: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_acknowledged_message_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("messages.db").display());
    every_acknowledged_message_survives_a_kill(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_acknowledged_message_survives_sigkill() {
    let pg = TempPostgres::start().expect("PostgreSQL starts (scripts/setup installs it)");
    let url = pg.create_database("hongyan").unwrap();
    every_acknowledged_message_survives_a_kill(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_means_no_acknowledgement_one_log_line_and_not_ready() {
    let pg = TempPostgres::start().expect("PostgreSQL starts (scripts/setup installs it)");
    let url = pg.create_database("hongyan").unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = Serve::start(&url, state.path());
    server.wait_ready(200).await;
    let (alice, mut events) = online(server.tcp, "alice").await;
    let delivered = |events: &mut hongyan_client::Events| {
        let mut fps = Vec::new();
        while let Some(event) = events.try_recv() {
            if let ClientEvent::MessageDelivered(fp) = event {
                fps.push(fp);
            }
        }
        fps
    };

    pg.stop().unwrap();
    let mut during = HashSet::new();
    for i in 0..50 {
        during.insert(
            alice
                .send_c2c("bob", format!("during #{i}"), 0)
                .await
                .unwrap(),
        );
    }
    server.wait_ready(503).await;
    let (_, body) = server.get("/readyz");
    assert!(body.contains("message store failing"), "{body}");
    assert!(
        delivered(&mut events).iter().all(|fp| !during.contains(fp)),
        "nothing is acknowledged while the database is away"
    );
    let failing = server.wait_log("message store failing").await;
    assert_eq!(
        failing,
        1,
        "one line for the burst, not one per message:\n{}",
        server.log()
    );

    pg.start_again().unwrap();
    server.wait_ready(200).await;
    assert_eq!(server.wait_log("message store recovered").await, 1);
    let after = alice.send_c2c("bob", "after", 0).await.unwrap();
    let deadline = Instant::now() + STEP;
    let mut acked = Vec::new();
    while !acked.contains(&after) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::MessageDelivered(fp))) => acked.push(fp),
            Ok(Some(_)) => {}
            other => panic!("the store never took a message again: {other:?}"),
        }
    }
    // Whatever alice saw acknowledged reaches bob, once.
    let expected: HashSet<Fingerprint> = acked.into_iter().collect();
    let got = drain(server.tcp, "bob", &expected).await;
    assert!(got.values().all(|&n| n == 1));
}
