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
//!
//! # Layout
//! - `conn`: one bare connection (TCP frames, UDP datagrams, WebSocket text frames).
//! - `peer`: the task that drives one [`ClientSession`](hongyan_shared::ClientSession) over a
//!   connection, with its role in the scenario.
//! - `idle`, `c2c`, `s2c`: the scenarios.
//! - `probe`: CPU and memory of the server and of the generator, from `/proc`.
//! - [`report`]: what a run measured, as a table or JSON.
//! - `target`: the server under test, running elsewhere or spawned in this process.

mod c2c;
mod conn;
mod idle;
mod peer;
mod probe;
pub mod report;
mod s2c;
mod seqset;
mod target;

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use hongyan_shared::{SenseMode, Transport};

pub use report::Report;
pub use target::{SpawnedServer, Spawner, Targets};

/// `hongyan bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub scenario: Scenario,
    /// Transport to measure.
    #[arg(long, short = 't', value_enum, default_value_t = Proto::Tcp, global = true)]
    pub transport: Proto,
    /// Start a hongyan server in this process (loopback, ephemeral ports) instead of using
    /// `--tcp`/`--udp`/`--ws`. Its CPU is read from its own threads.
    #[arg(long, global = true)]
    pub spawn: bool,
    /// TCP address of a running server.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8901",
        global = true
    )]
    pub tcp: SocketAddr,
    /// UDP address of a running server.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:7901",
        global = true
    )]
    pub udp: SocketAddr,
    /// HTTP address of a running server (WebSocket at `/websocket`).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub ws: SocketAddr,
    /// Process id of the running server, to read its CPU time and memory from `/proc`.
    #[arg(long, value_name = "PID", global = true)]
    pub server_pid: Option<u32>,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// User ids are `<prefix><n>`; give concurrent generators different prefixes.
    #[arg(long, default_value = "b", global = true)]
    pub user_prefix: String,
    /// First source address; connections are spread over it and the following addresses.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1", global = true)]
    pub source_ip: Ipv4Addr,
    /// Connections per source address (each address has ~28,000 ephemeral ports).
    #[arg(long, value_name = "N", default_value_t = 10_000, global = true)]
    pub per_source_ip: usize,
    /// Client keepalive timing (MODE_3S … MODE_120S) [default: the Java clients' for the
    /// transport: MODE_15S for TCP and WebSocket, MODE_3S for UDP]. The server's sense mode
    /// must match, or it expires the sessions.
    #[arg(long, value_name = "MODE", global = true)]
    pub sense_mode: Option<SenseMode>,
    /// Clients write after every packet they handle, as the Java clients do, instead of
    /// answering everything already received with one write. The server then sees more, smaller
    /// writes, and the generator needs about twice the CPU.
    #[arg(long, global = true)]
    pub unbatched: bool,
    /// The server's admin token, for `s2c` (pushes through the HTTP API at `--ws`).
    #[arg(
        long,
        env = "HONGYAN_ADMIN_TOKEN",
        value_name = "TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub api_token: Option<String>,
}

/// What a run measures.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// N logged-in connections holding keepalives: logins/s, failures, RSS per connection.
    Idle(IdleArgs),
    /// P sender/receiver pairs, W QoS messages in flight per sender: messages/s, latency, loss,
    /// server CPU per 10,000 delivered messages.
    C2c(C2cArgs),
    /// Pushes through the HTTP API (`POST /api/messages`, needs `--api-token`) to R online
    /// receivers: pushes/s, API and delivery latency, loss, server CPU per 10,000 delivered.
    S2c(S2cArgs),
}

/// `hongyan bench s2c` options.
#[derive(Debug, Clone, Args)]
pub struct S2cArgs {
    /// Receivers, logged in over `--transport`; pushes go to them round robin.
    #[arg(long, short = 'r', default_value_t = 100)]
    pub receivers: usize,
    /// HTTP requests in flight.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of pushing.
    #[arg(long, short = 'd', default_value_t = 10)]
    pub duration: u64,
    /// Bytes of `dataContent` per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Seconds to wait after pushing for the last deliveries.
    #[arg(long, default_value_t = 20)]
    pub drain: u64,
    /// Seconds allowed for all logins.
    #[arg(long, default_value_t = 10)]
    pub login_timeout: u64,
}

/// `hongyan bench idle` options.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connections to log in (at most 100,000 per generator process).
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: usize,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds to hold the connections (with keepalives) after the last login.
    #[arg(long, default_value_t = 20)]
    pub hold: u64,
    /// Seconds one connection may take to log in before it counts as a failure.
    #[arg(long, default_value_t = 10)]
    pub login_timeout: u64,
}

/// `hongyan bench c2c` options.
#[derive(Debug, Clone, Args)]
pub struct C2cArgs {
    /// Sender/receiver pairs.
    #[arg(long, short = 'p', default_value_t = 100)]
    pub pairs: usize,
    /// QoS messages in flight per sender (sent, not yet acknowledged).
    #[arg(long, short = 'w', default_value_t = 16)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, short = 'd', default_value_t = 10)]
    pub duration: u64,
    /// Messages per second over all senders (0 = as fast as the window allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Bytes of `dataContent` per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Seconds to wait after sending for the last acknowledgements and deliveries.
    #[arg(long, default_value_t = 20)]
    pub drain: u64,
    /// Seconds allowed for all logins.
    #[arg(long, default_value_t = 10)]
    pub login_timeout: u64,
}

/// The transports, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// TCP, length-prefixed frames.
    Tcp,
    /// UDP, one packet per datagram.
    Udp,
    /// WebSocket text frames at `/websocket`.
    Ws,
}

impl From<Proto> for Transport {
    fn from(p: Proto) -> Self {
        match p {
            Proto::Tcp => Transport::Tcp,
            Proto::Udp => Transport::Udp,
            Proto::Ws => Transport::WebSocket,
        }
    }
}

/// Most connections one generator process opens (drive more from several processes).
pub const MAX_CONNECTIONS: usize = 100_000;
/// Longest a scenario's own phases may be set to, in seconds.
pub const MAX_SECONDS: u64 = 600;

/// Runs `args` and prints the report. `spawner` starts the in-process server for `--spawn`
/// (the `hongyan` binary passes one built on `hongyan_server::Server::bind`).
pub async fn run(args: BenchArgs, spawner: Option<Spawner>) -> anyhow::Result<()> {
    let json = args.json;
    let report = measure(args, spawner).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    } else {
        report.write_table(&mut out)?;
    }
    Ok(())
}

/// Runs `args` and returns what it measured, without printing it.
pub async fn measure(args: BenchArgs, spawner: Option<Spawner>) -> anyhow::Result<Report> {
    check_bounds(&args)?;
    let limit = probe::raise_file_limit();
    let target = target::Target::open(&args, spawner).await?;
    let progress = Progress::new(args.quiet);
    let result = match &args.scenario {
        Scenario::Idle(idle) => idle::run(&args, idle, &target, limit, &progress).await,
        Scenario::C2c(c2c) => c2c::run(&args, c2c, &target, limit, &progress).await,
        Scenario::S2c(s2c) => s2c::run(&args, s2c, &target, limit, &progress).await,
    };
    progress.done();
    target.stop().await;
    result
}

fn check_bounds(args: &BenchArgs) -> anyhow::Result<()> {
    for addr in [args.tcp, args.udp, args.ws] {
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address: hongyan bench only targets 127.0.0.0/8");
        }
    }
    if !args.source_ip.is_loopback() {
        bail!("source address {} is not in 127.0.0.0/8", args.source_ip);
    }
    if args.per_source_ip == 0 {
        bail!("--per-source-ip must be positive");
    }
    let (connections, seconds) = match &args.scenario {
        Scenario::Idle(a) => (a.connections, a.hold.max(a.login_timeout)),
        Scenario::C2c(a) => (a.pairs * 2, a.duration.max(a.drain).max(a.login_timeout)),
        Scenario::S2c(a) => (
            a.receivers + a.concurrency,
            a.duration.max(a.drain).max(a.login_timeout),
        ),
    };
    if connections == 0 || connections > MAX_CONNECTIONS {
        bail!("between 1 and {MAX_CONNECTIONS} connections per generator process");
    }
    if seconds > MAX_SECONDS {
        bail!("phases are limited to {MAX_SECONDS} s");
    }
    if let Scenario::C2c(a) = &args.scenario
        && (a.window == 0 || a.size < 40 || a.size > 4096)
    {
        bail!("--window must be positive and --size between 40 and 4096 bytes");
    }
    if let Scenario::S2c(a) = &args.scenario
        && (a.receivers == 0 || a.concurrency == 0 || a.size < 40 || a.size > 4096)
    {
        bail!("s2c needs receivers and concurrency, and --size between 40 and 4096 bytes");
    }
    Ok(())
}

/// The source address of connection `i`.
pub(crate) fn source_ip(args: &BenchArgs, i: usize) -> Ipv4Addr {
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
