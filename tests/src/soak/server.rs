//! The server under soak: `hongyan serve` in a process of its own (this very test binary,
//! started again with [`SERVE_CHILD`] as its first argument, runs the `hongyan` command's
//! code), so its memory and file descriptors are its own to measure, and the soak can kill it
//! with SIGKILL and start it again on the same ports, on the same message store (SQLite in its
//! state directory, `hongyan serve`'s default).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The first argument that makes the soak binary run `hongyan serve` with the rest.
pub const SERVE_CHILD: &str = "--serve-child";

/// The admin token the child serves its API with (loopback only, for `/api/stats`).
const ADMIN_TOKEN: &str = "soak-admin-token";

/// Where the child listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The TCP gateway.
    pub tcp: SocketAddr,
    /// The UDP gateway.
    pub udp: SocketAddr,
    /// The HTTP listener (WebSocket at `/websocket`, `/metrics`).
    pub http: SocketAddr,
}

impl Ports {
    /// Three ports nobody listens on now (taken from the kernel and let go).
    pub fn free() -> Self {
        let tcp = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
        };
        let udp = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free loopback port");
        Self {
            tcp: tcp(),
            udp,
            http: tcp(),
        }
    }
}

/// A running `hongyan serve` child.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub ports: Ports,
    /// Its stderr (the log, every incarnation's), for when something fails.
    pub log: PathBuf,
    backend: SocketAddr,
    dir: PathBuf,
    http: reqwest::Client,
}

/// Resident memory and open files of a process at one moment.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Usage {
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// Entries in `/proc/<pid>/fd`.
    pub fds: usize,
}

impl ServerProcess {
    /// Starts the child on `ports` with the webhooks pointed at `backend`, and waits until it
    /// answers `/healthz`.
    pub async fn start(ports: Ports, backend: SocketAddr, dir: &Path) -> Self {
        let log = dir.join("server.log");
        let server = Self {
            child: Self::spawn(ports, backend, dir, &log),
            ports,
            log,
            backend,
            dir: dir.to_owned(),
            // No idle connection kept: it would be an open file of the server's.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                // A server still starting may take the connection and not answer yet: ask
                // again rather than wait past `wait_up`'s deadline.
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
        };
        server.wait_up().await;
        server
    }

    /// Kills the child with SIGKILL (a crash: nothing flushed, nothing said to anyone) and
    /// starts it again on the same ports and store, waiting until it answers.
    pub async fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.ports, self.backend, &self.dir, &self.log);
        self.wait_up().await;
    }

    fn spawn(ports: Ports, backend: SocketAddr, dir: &Path, log: &Path) -> Child {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the server log");
        Command::new(std::env::current_exe().expect("the soak binary"))
            .arg(SERVE_CHILD)
            .arg("serve")
            .args(["--tcp-addr", &ports.tcp.to_string()])
            .args(["--udp-addr", &ports.udp.to_string()])
            .args(["--http-addr", &ports.http.to_string()])
            .args(["--webhook-url", &format!("http://{backend}")])
            // Only what the ledger needs: messages handed to the application, and what the
            // server gave up delivering.
            .args(["--webhook-events", "c2s,s2cLost"])
            .args(["--webhook-event-queue", "1000000"])
            // A loaded CI machine may answer slowly; a login the backend did not answer in
            // time would be refused.
            .args(["--webhook-timeout-ms", "10000"])
            // Every client comes through a proxy on loopback: one address, as behind a load
            // balancer, which the per-address limits must not throttle (README, Limits).
            .args(["--limits-exempt", "127.0.0.0/8"])
            .env("HONGYAN_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HONGYAN_STATE_DIR", dir.join("state"))
            .env("HONGYAN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the server child")
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metrics().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not come up; its log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its memory and open files now.
    pub fn usage(&self) -> Usage {
        let pid = self.pid();
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kb| kb * 1024);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        Usage { rss, fds }
    }

    /// What each of its open files is (`socket:[…]`, `anon_inode:[eventpoll]`, a path),
    /// sorted: what tells a leaked file from a new kind of file.
    pub fn open_files(&self) -> Vec<String> {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|target| {
                        let target = target.display().to_string();
                        // Socket inode numbers differ between runs; their kind is what counts.
                        if target.starts_with("socket:") {
                            "socket".into()
                        } else {
                            target
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// `/metrics` as `(series with labels, value)` pairs, `None` if it does not answer.
    pub async fn metrics(&self) -> Option<Vec<(String, f64)>> {
        let url = format!("http://{}/metrics", self.ports.http);
        let text = self.http.get(url).send().await.ok()?.text().await.ok()?;
        Some(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    Some((series.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The sum of every series of metric `name` (all its label sets), 0 if absent.
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics().await.map_or(0.0, |all| {
            all.iter()
                .filter(|(series, _)| series == name || series.starts_with(&format!("{name}{{")))
                .map(|(_, v)| v)
                .sum()
        })
    }

    /// Stops the child with SIGTERM (a graceful shutdown), waiting at most `within`; whether
    /// it exited successfully.
    pub async fn stop(mut self, within: Duration) -> bool {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A soak that fails half-way leaves no server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
