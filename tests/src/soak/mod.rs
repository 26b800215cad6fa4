//! The soak: a real `hongyan serve` process, thousands of real native clients on TCP, UDP
//! and WebSocket behind fault proxies, for minutes or hours, bounded and self-stopping; then
//! an audit of every message and of the server's memory and open files.
//!
//! While it runs, each client sends QoS messages to random users and to the server; clients
//! are dropped and log in again as new instances (churn) and are kicked by a second login of
//! their user; the proxies drop, duplicate, delay (so reorder) packets and reset connections
//! (UDP: rebind the client's port); and the server is killed with SIGKILL and started again
//! on the same ports and message store on a schedule. Then the faults stop, sending stops, everything still in
//! flight settles, every client logs out and the server is stopped with SIGTERM.
//!
//! The audit ([`ledger::Audit`]) checks, per message: its sender was told exactly once; if it
//! was acknowledged, it arrived (C2C at an instance of its receiver, C2S at the application)
//! or the server reported to the application that it gave up after its retries; no
//! application (a client instance, the server's application) was handed a copy twice; a
//! message reported lost that arrived anyway is explained by the network (an acknowledgement
//! dropped, the sender's link lost, its session ended). And for the server: it exited
//! cleanly, its open files came back to where they started, its resident memory to within
//! a bound of its start, and no webhook event was dropped (the audit relies on them).
//!
//! A crash keeps what the store holds, and no more: a message acknowledged shortly before a
//! SIGKILL that was still only in the server's memory (on its way to an online receiver, or
//! to the application in the webhook queue) is counted apart, as lost in a crash
//! ([`ledger::CRASH_WINDOW`]); so is a C2S copy handed to the application again after a
//! crash. Everything else is audited as without crashes.
//!
//! - [`server`]: the server child process, its metrics, memory and open files.
//! - [`backend`]: the webhook backend that stands in for the application.
//! - [`clients`]: the seats: one user each, one real client instance at a time.
//! - [`ledger`]: everything clients did and were told, and the audit.

pub mod backend;
pub mod clients;
pub mod ledger;
pub mod server;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hongyan_client::Endpoint;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::backend::Backend;
use self::clients::{Seat, SeatCommand};
use self::ledger::{Audit, Ledger};
use self::server::{Ports, ServerProcess, Usage};
use crate::proxy::{Faults, LossyProxy};

/// How a soak runs. [`SoakOptions::default`] is the short form `cargo test` runs.
#[derive(Debug, Clone, Serialize)]
pub struct SoakOptions {
    /// Seconds of chatting under faults.
    pub seconds: u64,
    /// Clients, split evenly over TCP, UDP and WebSocket.
    pub clients: usize,
    /// Mean milliseconds between one client's messages.
    pub interval_ms: u64,
    /// The share of messages sent to the server (C2S) rather than to another user.
    pub c2s_share: f64,
    /// Clients dropped and logged in again as a new instance, per second.
    pub churn_per_s: f64,
    /// Duplicate logins (a second instance, which gets the first kicked out), per second.
    pub kicks_per_s: f64,
    /// Probability that a packet is dropped, in each direction.
    pub drop: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Each packet is delayed by up to this many milliseconds (which reorders).
    pub max_delay_ms: u64,
    /// Probability that a packet resets its connection.
    pub reset: f64,
    /// Seconds allowed for everything in flight to settle once the faults stop.
    pub settle_seconds: u64,
    /// Seconds over which the clients log in at the start.
    pub ramp_seconds: u64,
    /// How much more resident memory than at its start the server may hold at the end, MiB.
    pub rss_bound_mib: u64,
    /// Seconds between SIGKILLs of the server (each followed by a restart on the same store);
    /// 0: never.
    pub restart_every_s: u64,
    /// Seeds every random choice (faults, clients, schedule).
    pub seed: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            seconds: 60,
            clients: 300,
            interval_ms: 2000,
            c2s_share: 0.1,
            churn_per_s: 1.0,
            kicks_per_s: 0.5,
            drop: 0.02,
            duplicate: 0.02,
            max_delay_ms: 30,
            reset: 0.0005,
            settle_seconds: 60,
            ramp_seconds: 5,
            rss_bound_mib: 64,
            restart_every_s: 25,
            seed: 1,
        }
    }
}

impl SoakOptions {
    /// The options with `--name value` pairs from `args` applied (the field names, with
    /// dashes); other arguments are left alone.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                continue;
            };
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))
            };
            let bad = |e: &dyn std::fmt::Display| format!("--{name}: {e}");
            match name {
                "seconds" => o.seconds = value()?.parse().map_err(|e| bad(&e))?,
                "clients" => o.clients = value()?.parse().map_err(|e| bad(&e))?,
                "interval-ms" => o.interval_ms = value()?.parse().map_err(|e| bad(&e))?,
                "c2s-share" => o.c2s_share = value()?.parse().map_err(|e| bad(&e))?,
                "churn-per-s" => o.churn_per_s = value()?.parse().map_err(|e| bad(&e))?,
                "kicks-per-s" => o.kicks_per_s = value()?.parse().map_err(|e| bad(&e))?,
                "drop" => o.drop = value()?.parse().map_err(|e| bad(&e))?,
                "duplicate" => o.duplicate = value()?.parse().map_err(|e| bad(&e))?,
                "max-delay-ms" => o.max_delay_ms = value()?.parse().map_err(|e| bad(&e))?,
                "reset" => o.reset = value()?.parse().map_err(|e| bad(&e))?,
                "settle-seconds" => o.settle_seconds = value()?.parse().map_err(|e| bad(&e))?,
                "ramp-seconds" => o.ramp_seconds = value()?.parse().map_err(|e| bad(&e))?,
                "rss-bound-mib" => o.rss_bound_mib = value()?.parse().map_err(|e| bad(&e))?,
                "restart-every-s" => o.restart_every_s = value()?.parse().map_err(|e| bad(&e))?,
                "seed" => o.seed = value()?.parse().map_err(|e| bad(&e))?,
                _ => {}
            }
        }
        if o.clients < 3 || o.seconds == 0 || o.interval_ms == 0 {
            return Err("at least 3 clients, 1 second and 1 ms between messages".into());
        }
        if o.seconds > 24 * 3600 || o.clients > 6000 {
            return Err("at most a day and 6000 clients (the open-file limit)".into());
        }
        Ok(o)
    }

    fn faults(&self, seed: u64) -> Faults {
        Faults {
            drop: self.drop,
            duplicate: self.duplicate,
            max_delay: Duration::from_millis(self.max_delay_ms),
            reset: self.reset,
            seed,
        }
    }
}

/// What the network and the schedule did to the run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FaultCounts {
    /// Packets dropped by the proxies.
    pub dropped: usize,
    /// Packets duplicated.
    pub duplicated: usize,
    /// Packet copies delayed (by up to `max_delay_ms`).
    pub delayed: usize,
    /// Connections reset (UDP: clients rebound to a new port).
    pub resets: usize,
    /// Clients dropped and logged in again as a new instance.
    pub churns: usize,
    /// Duplicate logins.
    pub kicks: usize,
    /// SIGKILLs of the server, each followed by a restart.
    pub restarts: usize,
    /// Packets the proxies forwarded.
    pub forwarded: usize,
}

/// The server's figures.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ServerFigures {
    /// Once it was up, before any client (its first incarnation: the end is compared with it).
    pub start: Usage,
    /// The most seen while the clients ran.
    pub peak: Usage,
    /// After every client logged out and everything settled.
    pub end: Usage,
    /// What its open files were at the start and at the end (see
    /// [`ServerProcess::open_files`]).
    pub open_files: (Vec<String>, Vec<String>),
    /// Every 5 seconds: seconds since the start, resident bytes, open files.
    pub samples: Vec<(u64, u64, usize)>,
    /// Whether it exited successfully on SIGTERM.
    pub exited_cleanly: bool,
    /// Webhook events it dropped, every incarnation (the audit relies on every one).
    pub webhook_events_dropped: f64,
    /// Server → client QoS packets it gave up on (`hongyan_qos_lost_total`).
    pub qos_lost: f64,
    /// Its log, where it can be read after a failed run.
    pub log: String,
}

/// The most files the SQLite store keeps open: its writer's and each of its 4 readers'
/// (opened when first needed, then kept) database and log, and the shared-memory index.
const STORE_FILES: usize = (1 + 4) * 2 + 1;

/// A server's open files, by kind.
struct Files {
    /// The message store's (its readers open as reads come, up to [`STORE_FILES`]).
    store: usize,
    /// Every other: sockets, the runtime's, the log; what must come back to its start.
    other: usize,
}

impl Files {
    fn of(files: &[String]) -> Self {
        let store = files
            .iter()
            .filter(|f| f.contains("/state/hongyan.db"))
            .count();
        Self {
            store,
            other: files.len() - store,
        }
    }
}

/// What a soak found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// How it ran.
    pub options: SoakOptions,
    /// Seconds the whole run took, settling included.
    pub wall_seconds: f64,
    /// Seconds everything in flight took to settle.
    pub settle_seconds: f64,
    /// Messages, outcomes, arrivals.
    pub audit: Audit,
    /// Faults injected.
    pub faults: FaultCounts,
    /// The server process.
    pub server: ServerFigures,
}

impl SoakReport {
    /// Every broken promise; empty when the run kept them all.
    pub fn violations(&self) -> Vec<String> {
        let mut v = self.audit.violations();
        let s = &self.server;
        let (start, end) = (Files::of(&s.open_files.0), Files::of(&s.open_files.1));
        if end.other > start.other || end.store > STORE_FILES {
            v.push(format!(
                "open files leaked: {} at the start {:?}, {} at the end {:?}",
                s.start.fds, s.open_files.0, s.end.fds, s.open_files.1
            ));
        }
        let bound = self.options.rss_bound_mib * 1024 * 1024;
        if s.end.rss > s.start.rss + bound {
            v.push(format!(
                "resident memory grew by {} MiB (bound {} MiB)",
                (s.end.rss - s.start.rss) / (1024 * 1024),
                self.options.rss_bound_mib
            ));
        }
        if !s.exited_cleanly {
            v.push("the server did not exit cleanly on SIGTERM".into());
        }
        if s.webhook_events_dropped > 0.0 {
            v.push(format!(
                "{} webhook events dropped: the audit is incomplete",
                s.webhook_events_dropped
            ));
        }
        if self.audit.sent_c2c + self.audit.sent_c2s == 0 {
            v.push("no message was sent".into());
        }
        v
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let a = &self.audit;
        let f = &self.faults;
        let s = &self.server;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        format!(
            "soak: {} clients, {} s under faults, settled in {:.1} s ({:.0} s in all)\n\
             messages: {} C2C + {} C2S sent, {} acknowledged, {} reported lost, {} unsettled\n\
             acknowledged but lost: {} (given up by the server after its retries, reported to the application: {}; lost in a crash: {}, acknowledged at most {} ms before it)\n\
             duplicates seen by applications: {} (again at another instance of the receiver: {}; C2S again after a crash: {})\n\
             reported lost yet delivered: {} (acknowledgement dropped {}, link lost {}, session ended {}, unexplained {})\n\
             clients: {} instances, {} kicked, {} logins, {} link losses or re-logins, {} sends refused\n\
             faults: {} dropped, {} duplicated, {} delayed, {} resets, {} churns, {} kicks, {} server SIGKILLs ({} packets forwarded)\n\
             server RSS: {:.1} MiB at the start, {:.1} peak, {:.1} at the end; open files: {} / {} / {}; clean exit: {}",
            self.options.clients,
            self.options.seconds,
            self.settle_seconds,
            self.wall_seconds,
            a.sent_c2c,
            a.sent_c2s,
            a.acked,
            a.reported_lost,
            a.unsettled,
            a.acked_but_lost,
            a.acked_then_given_up_by_server,
            a.acked_lost_in_crash,
            a.acked_lost_in_crash_ms_before,
            a.duplicates,
            a.again_at_another_instance,
            a.c2s_again_after_crash,
            a.lost_but_delivered,
            a.lost_but_delivered_ack_dropped,
            a.lost_but_delivered_link_lost,
            a.lost_but_delivered_session_ended,
            a.lost_but_delivered_unexplained,
            a.instances,
            a.kicked_instances,
            a.logins,
            a.link_events,
            a.send_refused,
            f.dropped,
            f.duplicated,
            f.delayed,
            f.resets,
            f.churns,
            f.kicks,
            f.restarts,
            f.forwarded,
            mib(s.start.rss),
            mib(s.peak.rss),
            mib(s.end.rss),
            s.start.fds,
            s.peak.fds,
            s.end.fds,
            s.exited_cleanly,
        )
    }
}

/// Runs a soak as `options` say, with progress lines on stderr.
pub async fn run(options: &SoakOptions) -> SoakReport {
    let began = Instant::now();
    let dir = std::env::temp_dir().join(format!("hongyan-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let backend = Backend::start().await;
    let mut server = ServerProcess::start(Ports::free(), backend.addr, &dir).await;
    let mut figures = ServerFigures {
        start: server.usage(),
        open_files: (server.open_files(), Vec::new()),
        log: server.log.display().to_string(),
        ..ServerFigures::default()
    };
    let proxies = [
        LossyProxy::tcp(server.ports.tcp, options.faults(options.seed)).await,
        LossyProxy::udp(server.ports.udp, options.faults(options.seed + 1)).await,
        LossyProxy::ws(server.ports.http, options.faults(options.seed + 2)).await,
    ];
    let endpoints = [
        Endpoint::Tcp(proxies[0].addr.to_string()),
        Endpoint::Udp(proxies[1].addr.to_string()),
        Endpoint::WebSocket(format!("ws://{}/websocket", proxies[2].addr)),
    ];

    // The users: t0, u0, w0, t1, … (TCP, UDP, WebSocket in turn); everyone writes to anyone.
    let users: Vec<(String, usize)> = (0..options.clients)
        .map(|i| {
            let prefix = ["t", "u", "w"][i % 3];
            (format!("{prefix}{}", i / 3), i % 3)
        })
        .collect();
    let peers = Arc::new(users.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>());
    let ledger = Arc::new(Ledger::default());
    let (sending_tx, sending) = watch::channel(true);
    let stop = CancellationToken::new();
    let mut seats = tokio::task::JoinSet::new();
    let mut commands = Vec::new();
    for (i, (user, transport)) in users.iter().enumerate() {
        let endpoint = endpoints[*transport].clone();
        let seat = Seat {
            user: user.clone(),
            endpoint,
            peers: peers.clone(),
            interval: Duration::from_millis(options.interval_ms),
            c2s_share: options.c2s_share,
            seed: options.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        };
        let (tx, rx) = mpsc::channel(4);
        commands.push(tx);
        let delay =
            Duration::from_secs(options.ramp_seconds).mul_f64(i as f64 / options.clients as f64);
        let (ledger, sending, stop) = (ledger.clone(), sending.clone(), stop.clone());
        seats.spawn(async move {
            tokio::time::sleep(delay).await;
            seat.run(ledger, rx, sending, stop).await;
        });
    }

    // Chatting under faults, with churn and kicks; the server sampled every 5 s.
    let scheduling = CancellationToken::new();
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let scheduler = tokio::spawn(schedule(
        commands,
        options.clone(),
        scheduling.clone(),
        counts.clone(),
    ));
    let chat_end = Instant::now() + Duration::from_secs(options.ramp_seconds + options.seconds);
    let mut next_sample = Instant::now();
    let mut kills: Vec<Instant> = Vec::new();
    let mut webhook_events_dropped = 0.0;
    let restart_every = Duration::from_secs(options.restart_every_s);
    let mut next_kill = (options.restart_every_s > 0)
        .then(|| Instant::now() + Duration::from_secs(options.ramp_seconds) + restart_every);
    while Instant::now() < chat_end {
        if let Some(at) = next_kill
            && Instant::now() >= at
        {
            webhook_events_dropped += server.metric("hongyan_webhook_events_dropped_total").await;
            kills.push(Instant::now());
            eprintln!(
                "[soak] {:>4} s  server killed with SIGKILL",
                began.elapsed().as_secs()
            );
            server.crash_and_restart().await;
            eprintln!("[soak] {:>4} s  server up again", began.elapsed().as_secs());
            next_kill = Some(at + restart_every);
        }
        if Instant::now() >= next_sample {
            let usage = server.usage();
            figures.peak.rss = figures.peak.rss.max(usage.rss);
            figures.peak.fds = figures.peak.fds.max(usage.fds);
            figures
                .samples
                .push((began.elapsed().as_secs(), usage.rss, usage.fds));
            let (sent, unsettled, _) = ledger.pending(&backend.heard(), &kills);
            eprintln!(
                "[soak] {:>4} s  sent {sent}  unsettled {unsettled}  server {:.1} MiB, {} files",
                began.elapsed().as_secs(),
                usage.rss as f64 / (1024.0 * 1024.0),
                usage.fds
            );
            next_sample += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Settling: a clean network, no more churn or sending, until every message has its
    // outcome and every acknowledged one has arrived (or the server gave up on it).
    scheduling.cancel();
    let _ = scheduler.await;
    for proxy in &proxies {
        proxy.set_faults(Faults::none());
    }
    let _ = sending_tx.send(false);
    let settling = Instant::now();
    let settle_end = settling + Duration::from_secs(options.settle_seconds);
    loop {
        let (_, unsettled, undelivered) = ledger.pending(&backend.heard(), &kills);
        if (unsettled == 0 && undelivered == 0) || Instant::now() >= settle_end {
            eprintln!(
                "[soak] settling: {unsettled} without an outcome, {undelivered} acknowledged but not arrived"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settle_seconds = settling.elapsed().as_secs_f64();

    // Everyone logs out; the server empties; its files and memory are read.
    stop.cancel();
    let logout_end = Instant::now() + Duration::from_secs(30);
    while !seats.is_empty() && Instant::now() < logout_end {
        let _ = tokio::time::timeout(Duration::from_secs(1), seats.join_next()).await;
    }
    seats.abort_all();
    wait_until(Duration::from_secs(30), async || {
        server.metric("hongyan_online_users").await == 0.0
            && server.metric("hongyan_qos_in_flight").await == 0.0
    })
    .await;
    eprintln!(
        "[soak] {:>4} s  every client logged out, the server idle",
        began.elapsed().as_secs()
    );
    // The last events (losses of packets to users who left) reach the backend.
    let mut last = usize::MAX;
    wait_until(Duration::from_secs(15), async || {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let events = backend.heard().events;
        std::mem::replace(&mut last, events) == events
    })
    .await;
    let start_other = Files::of(&figures.open_files.0).other;
    wait_until(Duration::from_secs(30), async || {
        Files::of(&server.open_files()).other <= start_other
    })
    .await;
    figures.end = server.usage();
    figures.open_files.1 = server.open_files();
    figures.webhook_events_dropped =
        webhook_events_dropped + server.metric("hongyan_webhook_events_dropped_total").await;
    figures.qos_lost = server.metric("hongyan_qos_lost_total").await;
    figures.exited_cleanly = server.stop(Duration::from_secs(15)).await;

    let mut dropped_acks = HashSet::new();
    let mut faults = FaultCounts {
        churns: counts.0.load(Ordering::Relaxed),
        kicks: counts.1.load(Ordering::Relaxed),
        restarts: kills.len(),
        ..FaultCounts::default()
    };
    for proxy in &proxies {
        dropped_acks.extend(proxy.dropped_acks());
        let stats = proxy.stats();
        faults.dropped += stats.dropped.load(Ordering::Relaxed);
        faults.duplicated += stats.duplicated.load(Ordering::Relaxed);
        faults.delayed += stats.delayed.load(Ordering::Relaxed);
        faults.resets += stats.resets.load(Ordering::Relaxed);
        faults.forwarded += stats.forwarded.load(Ordering::Relaxed);
    }
    let audit = ledger.audit(&backend.heard(), &dropped_acks, &kills);
    let _ = std::fs::remove_dir_all(dir.join("state"));
    SoakReport {
        options: options.clone(),
        wall_seconds: began.elapsed().as_secs_f64(),
        settle_seconds,
        audit,
        faults,
        server: figures,
    }
}

/// Polls `condition` every 100 ms until it holds or `within` passes.
async fn wait_until(within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + within;
    while !condition().await && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends churn and kick commands to random seats at the configured rates (exponential gaps)
/// until `until`; counts what it sent.
async fn schedule(
    seats: Vec<mpsc::Sender<SeatCommand>>,
    options: SoakOptions,
    until: CancellationToken,
    counts: Arc<(AtomicUsize, AtomicUsize)>,
) {
    let mut rng = SmallRng::seed_from_u64(options.seed ^ 0x5eed);
    let gap = |rng: &mut SmallRng, per_s: f64| {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        Duration::from_secs_f64(-u.ln() / per_s)
    };
    let far = Duration::from_secs(24 * 3600);
    let start = tokio::time::Instant::now() + Duration::from_secs(options.ramp_seconds);
    let mut churn_at = start
        + if options.churn_per_s > 0.0 {
            gap(&mut rng, options.churn_per_s)
        } else {
            far
        };
    let mut kick_at = start
        + if options.kicks_per_s > 0.0 {
            gap(&mut rng, options.kicks_per_s)
        } else {
            far
        };
    loop {
        let (command, at) = if churn_at <= kick_at {
            (SeatCommand::Churn, churn_at)
        } else {
            (SeatCommand::Kick, kick_at)
        };
        tokio::select! {
            () = until.cancelled() => return,
            () = tokio::time::sleep_until(at) => {}
        }
        let seat = &seats[rng.random_range(0..seats.len())];
        let sent = seat.try_send(command).is_ok();
        match command {
            SeatCommand::Churn => {
                counts.0.fetch_add(usize::from(sent), Ordering::Relaxed);
                churn_at += gap(&mut rng, options.churn_per_s);
            }
            SeatCommand::Kick => {
                counts.1.fetch_add(usize::from(sent), Ordering::Relaxed);
                kick_at += gap(&mut rng, options.kicks_per_s);
            }
        }
    }
}
