//! `hongyan bench`: a bounded load generator for MobileIMSDK v6 servers (hongyan or the
//! reference) over TCP, UDP and WebSocket.
//!
//! Every connection is one tokio task that drives the shared, sans-IO
//! [`ClientSession`](hongyan_shared::ClientSession) (the protocol code the native and browser
//! clients run) over a bare socket: login, keepalives, QoS retransmission and duplicate
//! filtering are the real client's, while the per-connection cost stays at one task, one socket
//! and one small buffer. A full `hongyan_client::Client` per connection would add a driver
//! task, two channels and an event queue each, and the generator would measure itself.
//!
//! Every run is bounded in connections and seconds, talks only to loopback addresses
//! (127.0.0.0/8), and stops by itself.
//!
//! # Scenarios
//! - `idle`: N logged-in connections holding keepalives, spread over source addresses
//!   127.0.0.1, 127.0.0.2, …; reports logins/s, failures by kind and the server's RSS growth
//!   per connection.
//! - `c2c`: P sender/receiver pairs with W QoS messages in flight per sender; reports delivered
//!   messages/s, ACK and delivery latency (HDR histograms), duplicates, losses and the server's
//!   CPU seconds per 10,000 delivered messages.
//! - `s2c`: pushes through the server's HTTP API to R online receivers; reports pushes/s, the
//!   API's answer time, delivery latency, duplicates, losses and CPU per 10,000 delivered.
//! - `offline`: S senders with W QoS messages in flight each to R receivers who are offline
//!   (so every message is stored before it is acknowledged), then the receivers log in and
//!   drain; reports stored messages/s, replayed messages/s, the server's CPU per 10,000 in
//!   each phase, and any message acknowledged but not delivered, or delivered twice.
//!
//! The crate is a library: [`measure`] runs [`BenchOptions`] and returns a [`Report`]; the
//! `hongyan bench` command (`cli/`) parses the flags, spawns the in-process server for
//! `--spawn`, and prints the report.
//!
//! # Layout
//! - [`error`]: [`BenchError`], why a run could not be carried out.
//! - `conn`: one bare connection (TCP frames, UDP datagrams, WebSocket text frames).
//! - `peer`: the task that drives one [`ClientSession`](hongyan_shared::ClientSession) over a
//!   connection, with its role in the scenario.
//! - `idle`, `c2c`, `s2c`, `offline`: the scenarios.
//! - `probe`: CPU and memory of the server and of the generator, from `/proc`.
//! - [`report`]: what a run measured, as a table or JSON.
//! - `target`: the server under test, running elsewhere or spawned in this process
//!   ([`ServerUnderTest`], [`Spawner`]).

mod c2c;
mod conn;
pub mod error;
mod idle;
mod offline;
mod peer;
mod probe;
pub mod report;
mod s2c;
mod seqset;
mod target;

use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::time::Duration;

use hongyan_shared::{SenseMode, Transport};

pub use error::{BenchError, BoxError};
pub use report::Report;
pub use target::{ServerUnderTest, SpawnedServer, Spawner, Targets};

/// What one run does: a scenario and how its clients behave.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// What to measure.
    pub scenario: Scenario,
    /// Transport to measure.
    pub transport: Transport,
    /// No progress line on stderr.
    pub quiet: bool,
    /// User ids are `<prefix><n>`; concurrent generators need different prefixes.
    pub user_prefix: String,
    /// First source address; connections are spread over it and the following addresses.
    pub source_ip: Ipv4Addr,
    /// Connections per source address (each address has ~28,000 ephemeral ports).
    pub per_source_ip: usize,
    /// Client keepalive timing; `None` = the Java clients' for the transport (MODE_15S for TCP
    /// and WebSocket, MODE_3S for UDP). The server's sense mode must match.
    pub sense_mode: Option<SenseMode>,
    /// Clients write after every packet they handle, as the Java clients do, instead of
    /// answering everything already received with one write.
    pub unbatched: bool,
    /// The server's admin token, for `s2c` (pushes through the HTTP API).
    pub api_token: Option<String>,
    /// TLS to the TCP gateway (`tls://`) or the WebSocket gateway (`wss://`), and HTTPS to the
    /// API. The server's certificate is not checked: the generator measures cost, not
    /// identity, and talks to loopback only.
    pub tls: bool,
}

/// What a run measures.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// N logged-in connections holding keepalives: logins/s, failures, RSS per connection.
    Idle(IdleOptions),
    /// P sender/receiver pairs, W QoS messages in flight per sender: messages/s, latency, loss,
    /// server CPU per 10,000 delivered messages.
    C2c(C2cOptions),
    /// Pushes through the HTTP API (`POST /api/messages`) to R online receivers: pushes/s, API
    /// and delivery latency, loss, server CPU per 10,000 delivered.
    S2c(S2cOptions),
    /// Senders to offline receivers (stored), then the receivers log in and drain (replayed):
    /// stored/s, replayed/s, server CPU per 10,000 in each phase.
    Offline(OfflineOptions),
}

/// The `idle` scenario.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Connections to log in (at most [`MAX_CONNECTIONS`] per generator process).
    pub connections: usize,
    /// Logins in progress at once.
    pub concurrency: usize,
    /// Seconds to hold the connections (with keepalives) after the last login.
    pub hold: u64,
    /// Seconds one connection may take to log in before it counts as a failure.
    pub login_timeout: u64,
}

/// The `c2c` scenario.
#[derive(Debug, Clone)]
pub struct C2cOptions {
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// QoS messages in flight per sender (sent, not yet acknowledged).
    pub window: usize,
    /// Seconds of sending.
    pub duration: u64,
    /// Messages per second over all senders (0 = as fast as the window allows).
    pub rate: u64,
    /// Bytes of `dataContent` per message.
    pub size: usize,
    /// Seconds to wait after sending for the last acknowledgements and deliveries.
    pub drain: u64,
    /// Seconds allowed for all logins.
    pub login_timeout: u64,
}

/// The `s2c` scenario.
#[derive(Debug, Clone)]
pub struct S2cOptions {
    /// Receivers, logged in over the run's transport; pushes go to them round robin.
    pub receivers: usize,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// Seconds of pushing.
    pub duration: u64,
    /// Bytes of `dataContent` per message.
    pub size: usize,
    /// Seconds to wait after pushing for the last deliveries.
    pub drain: u64,
    /// Seconds allowed for all logins.
    pub login_timeout: u64,
}

/// The `offline` scenario.
#[derive(Debug, Clone)]
pub struct OfflineOptions {
    /// Senders, logged in over the run's transport.
    pub senders: usize,
    /// Receivers, offline while the senders send; each sender sends to them in turn.
    pub receivers: usize,
    /// QoS messages in flight per sender (sent, not yet acknowledged).
    pub window: usize,
    /// Seconds of sending.
    pub duration: u64,
    /// Bytes of `dataContent` per message.
    pub size: usize,
    /// Seconds allowed for the last acknowledgements, and again for the receivers to drain.
    pub drain: u64,
    /// Seconds allowed for each group of logins.
    pub login_timeout: u64,
}

/// Most connections one generator process opens (drive more from several processes).
pub const MAX_CONNECTIONS: usize = 100_000;
/// Longest a scenario's own phases may be set to, in seconds.
pub const MAX_SECONDS: u64 = 600;

/// Runs `options` against `server` and returns what it measured.
pub async fn measure(options: BenchOptions, server: ServerUnderTest) -> Result<Report, BenchError> {
    check_bounds(&options, &server)?;
    let limit = probe::raise_file_limit();
    let target = target::Target::open(&options, server).await?;
    let progress = Progress::new(options.quiet);
    let result = match &options.scenario {
        Scenario::Idle(idle) => idle::run(&options, idle, &target, limit, &progress).await,
        Scenario::C2c(c2c) => c2c::run(&options, c2c, &target, limit, &progress).await,
        Scenario::S2c(s2c) => s2c::run(&options, s2c, &target, limit, &progress).await,
        Scenario::Offline(offline) => {
            offline::run(&options, offline, &target, limit, &progress).await
        }
    };
    progress.done();
    target.stop().await;
    result
}

fn check_bounds(options: &BenchOptions, server: &ServerUnderTest) -> Result<(), BenchError> {
    let refuse = |why: String| Err(BenchError::Options(why));
    if let ServerUnderTest::Running { tcp, udp, ws, .. } = server {
        for addr in [tcp, udp, ws] {
            if !addr.ip().is_loopback() {
                return refuse(format!(
                    "{addr} is not a loopback address: hongyan bench only targets 127.0.0.0/8"
                ));
            }
        }
    }
    if options.tls && options.transport == Transport::Udp {
        return refuse("UDP has no TLS".into());
    }
    if !options.source_ip.is_loopback() {
        return refuse(format!(
            "source address {} is not in 127.0.0.0/8",
            options.source_ip
        ));
    }
    if options.per_source_ip == 0 {
        return refuse("--per-source-ip must be positive".into());
    }
    let (connections, seconds) = match &options.scenario {
        Scenario::Idle(a) => (a.connections, a.hold.max(a.login_timeout)),
        Scenario::C2c(a) => (a.pairs * 2, a.duration.max(a.drain).max(a.login_timeout)),
        Scenario::S2c(a) => (
            a.receivers + a.concurrency,
            a.duration.max(a.drain).max(a.login_timeout),
        ),
        Scenario::Offline(a) => (
            a.senders + a.receivers,
            a.duration.max(a.drain).max(a.login_timeout),
        ),
    };
    if connections == 0 || connections > MAX_CONNECTIONS {
        return refuse(format!(
            "between 1 and {MAX_CONNECTIONS} connections per generator process"
        ));
    }
    if seconds > MAX_SECONDS {
        return refuse(format!("phases are limited to {MAX_SECONDS} s"));
    }
    if let Scenario::C2c(a) = &options.scenario
        && (a.window == 0 || a.size < 40 || a.size > 4096)
    {
        return refuse("--window must be positive and --size between 40 and 4096 bytes".into());
    }
    if let Scenario::S2c(a) = &options.scenario
        && (a.receivers == 0 || a.concurrency == 0 || a.size < 40 || a.size > 4096)
    {
        return refuse(
            "s2c needs receivers and concurrency, and --size between 40 and 4096 bytes".into(),
        );
    }
    if let Scenario::Offline(a) = &options.scenario
        && (a.senders == 0 || a.receivers == 0 || a.window == 0 || a.size < 40 || a.size > 4096)
    {
        return refuse(
            "offline needs senders, receivers and a window, and --size between 40 and 4096 bytes"
                .into(),
        );
    }
    Ok(())
}

/// The source address of connection `i`.
pub(crate) fn source_ip(args: &BenchOptions, i: usize) -> Ipv4Addr {
    let offset = u32::try_from(i / args.per_source_ip).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(args.source_ip).saturating_add(offset))
}

/// The progress line on stderr: rewritten in place on a terminal, one line every five
/// seconds otherwise.
pub(crate) struct Progress {
    enabled: bool,
    terminal: bool,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet,
            terminal: std::io::stderr().is_terminal(),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Shows `line` (at most every 5 s when stderr is not a terminal).
    pub(crate) fn show(&self, line: &str) {
        if !self.enabled {
            return;
        }
        let mut last = self.last.lock().expect("progress lock is never poisoned");
        let now = std::time::Instant::now();
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else if last.is_none_or(|t| now - t >= Duration::from_secs(5)) {
            eprintln!("{line}");
        } else {
            return;
        }
        *last = Some(now);
    }

    /// Shows `line(now)` every 250 ms until `end`.
    pub(crate) async fn until(
        &self,
        end: std::time::Instant,
        line: impl Fn(std::time::Instant) -> String,
    ) {
        loop {
            let now = std::time::Instant::now();
            if now >= end {
                return;
            }
            self.show(&line(now));
            tokio::time::sleep(Duration::from_millis(250).min(end - now)).await;
        }
    }

    fn done(&self) {
        if self.enabled && self.terminal && self.last.lock().is_ok_and(|l| l.is_some()) {
            eprintln!();
        }
    }
}
