//! The server under test: one already running (addresses and optionally its pid), or one
//! started in this process on its own runtime, whose threads are named so that its CPU time
//! can be told from the generator's.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use hongyan_shared::Transport;
use tokio_util::sync::CancellationToken;

use crate::probe::{self, Cpu};
use crate::{BenchError, BenchOptions, BoxError};

/// Name of the in-process server's runtime threads.
pub(crate) const SERVER_THREAD: &str = "hy-bench-server";

/// The in-process server's threads, as `/proc` names them (at most 15 bytes): its runtime's,
/// and the SQLite store's writer (`hongyan-sqlite-writer`), whose commits are the server's
/// work too.
const SERVER_THREADS: &[&str] = &[SERVER_THREAD, "hongyan-sqlite-"];

/// The server a run measures.
pub enum ServerUnderTest {
    /// A server already running at these addresses.
    Running {
        /// Its TCP gateway.
        tcp: SocketAddr,
        /// Its UDP gateway.
        udp: SocketAddr,
        /// Its HTTP listener, with the WebSocket gateway at `/websocket` and the API.
        ws: SocketAddr,
        /// Its process id, to read its CPU time and memory from `/proc`.
        pid: Option<u32>,
    },
    /// A server started in this process by the spawner, on a runtime of its own whose threads
    /// are named so that its CPU time can be told from the generator's.
    Spawned(Spawner),
}

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
/// cancelled. It is called on a runtime of its own, on threads only the server uses.
///
/// This crate does not depend on the server: the `hongyan` command, which has both, hands
/// its bind function in.
pub type Spawner = Box<
    dyn FnOnce(
            CancellationToken,
        ) -> Pin<Box<dyn Future<Output = Result<SpawnedServer, BoxError>> + Send>>
        + Send,
>;

pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
    /// The HTTP listener (WebSocket gateway and API), if known.
    pub(crate) http: Option<SocketAddr>,
    /// Where the server's CPU time and memory are read, if anywhere.
    pub(crate) server: Option<Cpu>,
    pub(crate) generator: Cpu,
    pub(crate) spawned: bool,
    /// Whether clients answer a burst with one write (see `BenchOptions::unbatched`).
    pub(crate) batch: bool,
    /// How clients speak TLS, when the run asks for it.
    pub(crate) tls: Option<crate::conn::Tls>,
    stop: Option<(CancellationToken, std::thread::JoinHandle<()>)>,
}

impl Target {
    pub(crate) async fn open(
        args: &BenchOptions,
        server: ServerUnderTest,
    ) -> Result<Self, BenchError> {
        let transport = args.transport;
        let spawner = match server {
            ServerUnderTest::Running { tcp, udp, ws, pid } => {
                let addr = match transport {
                    Transport::Tcp => tcp,
                    Transport::Udp => udp,
                    Transport::WebSocket => ws,
                    Transport::Http => return Err(BenchError::NoListener("HTTP session")),
                };
                let server = match pid {
                    Some(pid) => {
                        let cpu = Cpu::Process(pid);
                        cpu.seconds().ok_or(BenchError::ServerPid(pid))?;
                        Some(cpu)
                    }
                    None => None,
                };
                return Ok(Self {
                    addr,
                    transport,
                    http: Some(ws),
                    server,
                    generator: Cpu::Process(std::process::id()),
                    spawned: false,
                    batch: !args.unbatched,
                    tls: args.tls.then(crate::conn::Tls::new),
                    stop: None,
                });
            }
            ServerUnderTest::Spawned(spawner) => spawner,
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
                        let _ = tx.send(Err(BenchError::Setup {
                            what: "the server runtime",
                            source: e.into(),
                        }));
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
                            let _ = tx.send(Err(BenchError::Spawn(e)));
                        }
                    }
                });
            })
            .map_err(|e| BenchError::Setup {
                what: "the server thread",
                source: e.into(),
            })?;
        let targets = rx.await.map_err(|e| BenchError::Spawn(e.into()))??;
        let (addr, listener) = match transport {
            Transport::Tcp => (targets.tcp, "TCP"),
            Transport::Udp => (targets.udp, "UDP"),
            Transport::WebSocket => (targets.ws, "WebSocket"),
            Transport::Http => (None, "HTTP session"),
        };
        Ok(Self {
            addr: addr.ok_or(BenchError::NoListener(listener))?,
            transport,
            http: targets.ws,
            server: Some(Cpu::Threads {
                names: SERVER_THREADS,
                matching: true,
            }),
            generator: Cpu::Threads {
                names: SERVER_THREADS,
                matching: false,
            },
            spawned: true,
            batch: !args.unbatched,
            tls: args.tls.then(crate::conn::Tls::new),
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
    pub(crate) fn dial(
        &self,
        args: &BenchOptions,
        timeout: std::time::Duration,
    ) -> crate::peer::Dial {
        crate::peer::Dial {
            transport: self.transport,
            target: self.addr,
            sense: args.sense_mode,
            timeout,
            batch: self.batch,
            tls: self.tls.clone(),
        }
    }

    pub(crate) fn run_info(&self, file_limit: u64) -> crate::report::RunInfo {
        crate::report::RunInfo {
            transport: match (self.transport, self.tls.is_some()) {
                (Transport::Tcp, false) => "tcp",
                (Transport::Tcp, true) => "tls",
                (Transport::Udp, _) => "udp",
                (Transport::WebSocket, false) => "ws",
                (Transport::WebSocket, true) => "wss",
                (Transport::Http, false) => "http",
                (Transport::Http, true) => "https",
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
