//! The server under test: one already running (addresses and optionally its pid), or one
//! started in this process on its own runtime, whose threads are named so that its CPU time
//! can be told from the generator's.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use anyhow::{Context, anyhow, bail};
use hongyan_shared::Transport;
use tokio_util::sync::CancellationToken;

use crate::BenchArgs;
use crate::probe::{self, Cpu};

/// Name of the in-process server's runtime threads.
pub(crate) const SERVER_THREAD: &str = "hy-bench-server";

/// Where a server listens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Targets {
    /// TCP gateway.
    pub tcp: Option<SocketAddr>,
    /// UDP gateway.
    pub udp: Option<SocketAddr>,
    /// HTTP listener with the WebSocket gateway at `/websocket`.
    pub ws: Option<SocketAddr>,
}

/// A server bound by a [`Spawner`]: its addresses and the future that serves it until the
/// token given to the spawner is cancelled.
pub struct SpawnedServer {
    /// Where it listens.
    pub targets: Targets,
    /// Serves until the spawner's token is cancelled, then shuts down.
    pub serve: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Binds a loopback server (every gateway on `127.0.0.1:0`) that serves until the token is
/// cancelled. It runs on a runtime of its own, on threads only it uses.
///
/// The bench crate cannot name `hongyan_server` (the server's binary depends on this crate), so
/// the binary hands its bind function in.
pub type Spawner =
    fn(CancellationToken) -> Pin<Box<dyn Future<Output = anyhow::Result<SpawnedServer>> + Send>>;

pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
    /// The HTTP listener (WebSocket gateway and API), if known.
    pub(crate) http: Option<SocketAddr>,
    /// Where the server's CPU time and memory are read, if anywhere.
    pub(crate) server: Option<Cpu>,
    pub(crate) generator: Cpu,
    pub(crate) spawned: bool,
    /// Whether clients answer a burst with one write (see `BenchArgs::unbatched`).
    pub(crate) batch: bool,
    stop: Option<(CancellationToken, std::thread::JoinHandle<()>)>,
}

impl Target {
    pub(crate) async fn open(args: &BenchArgs, spawner: Option<Spawner>) -> anyhow::Result<Self> {
        let transport = Transport::from(args.transport);
        if !args.spawn {
            let addr = match transport {
                Transport::Tcp => args.tcp,
                Transport::Udp => args.udp,
                Transport::WebSocket => args.ws,
            };
            let server = match args.server_pid {
                Some(pid) => {
                    let cpu = Cpu::Process(pid);
                    cpu.seconds()
                        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
                    Some(cpu)
                }
                None => None,
            };
            return Ok(Self {
                addr,
                transport,
                http: Some(args.ws),
                server,
                generator: Cpu::Process(std::process::id()),
                spawned: false,
                batch: !args.unbatched,
                stop: None,
            });
        }
        let Some(spawner) = spawner else {
            bail!("--spawn needs a build that embeds the server (run it as `hongyan bench`)");
        };
        let token = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = token.clone();
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD.into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name(SERVER_THREAD)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow!(e).context("server runtime")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match spawner(stop).await {
                        Ok(spawned) => {
                            let _ = tx.send(Ok(spawned.targets));
                            spawned.serve.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .context("starting the server thread")?;
        let targets = rx.await.context("the server thread died")??;
        let addr = match transport {
            Transport::Tcp => targets.tcp,
            Transport::Udp => targets.udp,
            Transport::WebSocket => targets.ws,
        }
        .with_context(|| format!("the spawned server has no {transport} gateway"))?;
        Ok(Self {
            addr,
            transport,
            http: targets.ws,
            server: Some(Cpu::Threads {
                name: SERVER_THREAD,
                matching: true,
            }),
            generator: Cpu::Threads {
                name: SERVER_THREAD,
                matching: false,
            },
            spawned: true,
            batch: !args.unbatched,
            stop: Some((token, thread)),
        })
    }

    /// The server's resident memory in bytes: its own for a server given by pid, the whole
    /// process (server and generator) for a spawned one.
    pub(crate) fn rss(&self) -> Option<u64> {
        match (&self.server, self.spawned) {
            (Some(Cpu::Process(pid)), _) => probe::rss_bytes(*pid),
            (_, true) => probe::rss_bytes(std::process::id()),
            _ => None,
        }
    }

    pub(crate) async fn stop(self) {
        if let Some((token, thread)) = self.stop {
            token.cancel();
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// CPU counters at one moment, to measure an interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    server: Option<f64>,
    generator: f64,
    at: std::time::Instant,
}

impl Target {
    pub(crate) fn cpu_mark(&self) -> CpuMark {
        CpuMark {
            server: self.server.and_then(|c| c.seconds()),
            generator: self.generator.seconds().unwrap_or(0.0),
            at: std::time::Instant::now(),
        }
    }

    /// CPU used since `mark`.
    pub(crate) fn cpu_since(&self, mark: CpuMark) -> crate::report::CpuUse {
        let now = self.cpu_mark();
        crate::report::CpuUse {
            server_s: now.server.zip(mark.server).map(|(b, a)| b - a),
            generator_s: now.generator - mark.generator,
            wall_s: (now.at - mark.at).as_secs_f64(),
        }
    }

    /// File descriptors this process needs per connection.
    pub(crate) fn fds_per_connection(&self) -> usize {
        if self.spawned && self.transport != Transport::Udp {
            2
        } else {
            1
        }
    }

    /// How this run's clients connect to this target.
    pub(crate) fn dial(&self, args: &BenchArgs, timeout: std::time::Duration) -> crate::peer::Dial {
        crate::peer::Dial {
            transport: self.transport,
            target: self.addr,
            sense: args.sense_mode,
            timeout,
            batch: self.batch,
        }
    }

    pub(crate) fn run_info(&self, file_limit: u64) -> crate::report::RunInfo {
        crate::report::RunInfo {
            transport: match self.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
                Transport::WebSocket => "ws",
            }
            .into(),
            target: self.addr.to_string(),
            spawned: self.spawned,
            batched_clients: self.batch,
            file_limit,
        }
    }
}

/// A per-connection seed for fingerprints: distinct across connections and processes.
pub(crate) fn seed(i: usize) -> u64 {
    let mut z =
        (u64::from(std::process::id()) << 32) ^ (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
