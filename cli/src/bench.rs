//! `hongyan bench`: its flags, turned into [`BenchOptions`]; the one adapter that spawns a
//! hongyan server in this process for `--spawn`; and the report on stdout.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hongyan_bench::{
    BenchOptions, C2cOptions, IdleOptions, OfflineOptions, S2cOptions, Scenario, ServerUnderTest,
    SpawnedServer, Spawner, Targets,
};
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_server::tls::ensure_self_signed;
use hongyan_server::{BearerToken, Config, Hooks, Server};
use hongyan_shared::{SenseMode, Transport};

/// `hongyan bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub scenario: ScenarioArgs,
    /// Transport to measure.
    #[arg(long, short = 't', value_enum, default_value_t = Proto::Tcp, global = true)]
    pub transport: Proto,
    /// Start a hongyan server in this process (loopback, ephemeral ports) instead of using
    /// `--tcp`/`--udp`/`--ws`. Its CPU is read from its own threads; its API accepts
    /// `--api-token`, or a generated token.
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
    /// The message store of the `--spawn`ed server: `sqlite` (a file in a temporary directory,
    /// removed after the run, fsync'd as `hongyan serve`'s), `sqlite:PATH`, `postgres://…`,
    /// `memory` or `off`. A running server uses its own.
    #[arg(long, value_name = "STORE", default_value = "sqlite", global = true)]
    pub store: StoreSpec,
    /// TLS: `tls://` to the TCP gateway, `wss://` to the WebSocket gateway, HTTPS to the API
    /// (`--spawn`: the server gets a self-signed certificate). The server's certificate is not
    /// checked: the generator measures cost, not identity, on loopback only.
    #[arg(long, global = true)]
    pub tls: bool,
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
pub enum ScenarioArgs {
    /// N logged-in connections holding keepalives: logins/s, failures, RSS per connection.
    Idle(IdleArgs),
    /// P sender/receiver pairs, W QoS messages in flight per sender: messages/s, latency, loss,
    /// server CPU per 10,000 delivered messages.
    C2c(C2cArgs),
    /// Pushes through the HTTP API (`POST /api/messages`, needs `--api-token` unless
    /// `--spawn`) to R online receivers: pushes/s, API and delivery latency, loss, server CPU
    /// per 10,000 delivered.
    S2c(S2cArgs),
    /// S senders to R offline receivers (each message stored before it is acknowledged), then
    /// the receivers log in and drain: stored/s, replayed/s, server CPU per 10,000 in each
    /// phase. Against a running server, give each run its own `--user-prefix`.
    Offline(OfflineArgs),
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

/// `hongyan bench offline` options.
#[derive(Debug, Clone, Args)]
pub struct OfflineArgs {
    /// Senders, logged in over `--transport`.
    #[arg(long, short = 's', default_value_t = 200)]
    pub senders: usize,
    /// Receivers, offline while the senders send; each sender sends to them in turn.
    #[arg(long, short = 'r', default_value_t = 1000)]
    pub receivers: usize,
    /// QoS messages in flight per sender (sent, not yet acknowledged).
    #[arg(long, short = 'w', default_value_t = 16)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, short = 'd', default_value_t = 10)]
    pub duration: u64,
    /// Bytes of `dataContent` per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Seconds allowed for the last acknowledgements, and again for the receivers to drain.
    #[arg(long, default_value_t = 60)]
    pub drain: u64,
    /// Seconds allowed for each group of logins.
    #[arg(long, default_value_t = 30)]
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

impl BenchArgs {
    /// The run these flags ask for.
    pub fn options(&self) -> BenchOptions {
        let scenario = match &self.scenario {
            ScenarioArgs::Idle(a) => Scenario::Idle(IdleOptions {
                connections: a.connections,
                concurrency: a.concurrency,
                hold: a.hold,
                login_timeout: a.login_timeout,
            }),
            ScenarioArgs::C2c(a) => Scenario::C2c(C2cOptions {
                pairs: a.pairs,
                window: a.window,
                duration: a.duration,
                rate: a.rate,
                size: a.size,
                drain: a.drain,
                login_timeout: a.login_timeout,
            }),
            ScenarioArgs::S2c(a) => Scenario::S2c(S2cOptions {
                receivers: a.receivers,
                concurrency: a.concurrency,
                duration: a.duration,
                size: a.size,
                drain: a.drain,
                login_timeout: a.login_timeout,
            }),
            ScenarioArgs::Offline(a) => Scenario::Offline(OfflineOptions {
                senders: a.senders,
                receivers: a.receivers,
                window: a.window,
                duration: a.duration,
                size: a.size,
                drain: a.drain,
                login_timeout: a.login_timeout,
            }),
        };
        BenchOptions {
            scenario,
            transport: self.transport.into(),
            quiet: self.quiet,
            user_prefix: self.user_prefix.clone(),
            source_ip: self.source_ip,
            per_source_ip: self.per_source_ip,
            sense_mode: self.sense_mode,
            unbatched: self.unbatched,
            api_token: self.api_token.clone(),
            tls: self.tls,
        }
    }
}

/// Runs `hongyan bench` and prints its report on stdout.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut options = args.options();
    // A temporary directory for `--store sqlite`, removed when the run ends.
    let mut scratch = None;
    let server = if args.spawn {
        // The spawned server's API takes the token the run pushes with.
        let token = match &options.api_token {
            Some(token) => BearerToken::new(token.as_str()).context("--api-token")?,
            None => BearerToken::generate()?,
        };
        options.api_token = Some(token.expose().to_owned());
        let store = match &args.store {
            StoreSpec::Sqlite(None) => {
                let dir =
                    std::env::temp_dir().join(format!("hongyan-bench-{}", std::process::id()));
                std::fs::create_dir_all(&dir).context("a directory for the sqlite store")?;
                let store = StoreSpec::Sqlite(Some(dir.join("hongyan.db")));
                scratch = Some(Scratch(dir));
                store
            }
            other => other.clone(),
        };
        ServerUnderTest::Spawned(spawner(token, store, args.tls))
    } else {
        ServerUnderTest::Running {
            tcp: args.tcp,
            udp: args.udp,
            ws: args.ws,
            pid: args.server_pid,
        }
    };
    let report = hongyan_bench::measure(options, server).await;
    drop(scratch);
    let report = report?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    } else {
        report.write_table(&mut out)?;
    }
    Ok(())
}

/// A temporary directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Accepts every login and logs nothing: the server `hongyan bench --spawn` measures.
struct BenchHooks;

impl Hooks for BenchHooks {}

/// `hongyan bench --spawn`'s server: every gateway on `127.0.0.1` with an ephemeral port,
/// every login accepted, `admin_token` guarding its API, messages kept in `store`, and the
/// abuse limits lifted for loopback (`limits_exempt`), where the generator's clients come
/// from: a benchmark measures the server's capacity, not its limits on one address. With
/// `tls`, TCP and HTTP in TLS with a self-signed certificate made for the run (in the
/// system's temporary directory).
pub fn spawner(admin_token: BearerToken, store: StoreSpec, tls: bool) -> Spawner {
    Box::new(move |stop| {
        Box::pin(async move {
            let mut config = Config {
                admin_token: Some(admin_token),
                store,
                limits_exempt: Some(hongyan_server::limits::loopback()),
                ..Config::loopback()
            };
            let dir = tls.then(|| {
                std::env::temp_dir().join(format!("hongyan-bench-tls-{}", std::process::id()))
            });
            if let Some(dir) = dir.clone() {
                let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
                let made =
                    tokio::task::spawn_blocking(move || ensure_self_signed(&dir, &names)).await??;
                config.tls_cert = Some(made.files.cert);
                config.tls_key = Some(made.files.key);
            }
            let bound = Server::bind(config, Arc::new(BenchHooks)).await?;
            let targets = Targets {
                tcp: bound.tcp_addr(),
                udp: bound.udp_addr(),
                ws: bound.http_addr(),
            };
            let serve = Box::pin(async move {
                if let Err(e) = bound.serve(stop.cancelled_owned()).await {
                    tracing::error!(error = %e, "bench server failed");
                }
                if let Some(dir) = dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            });
            Ok(SpawnedServer { targets, serve })
        })
    })
}
