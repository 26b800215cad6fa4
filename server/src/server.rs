//! Binding the listeners and running the server until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::Plain;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::core::{self, Core};
use crate::gateway::{tcp, udp};
use crate::handle::ServerHandle;
use crate::hooks::Hooks;
use crate::http::deadlines::Timeouts;
use crate::http::listen::HttpListener;
use crate::http::{self, state::HttpState};
use crate::open_files;

/// How long shutdown waits for sessions to say goodbye.
const DRAIN: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot bind the {what} listener on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server failed: {0}")]
    Http(std::io::Error),
}

/// The hongyan server. See [`Server::bind`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds every configured listener (so the addresses, including ephemeral ports, are known
    /// before anything runs) with the application's `hooks`. Logs the connection limits it
    /// will run with (`max_connections` derived from the open-file limit unless configured).
    pub async fn bind(config: Config, hooks: Arc<dyn Hooks>) -> Result<Bound, ServerError> {
        let tcp = match config.tcp_addr {
            Some(addr) => Some(bind_tcp("tcp", addr).await?),
            None => None,
        };
        let udp = match config.udp_addr {
            Some(addr) => {
                Some(
                    UdpSocket::bind(addr)
                        .await
                        .map_err(|source| ServerError::Bind {
                            what: "udp",
                            addr,
                            source,
                        })?,
                )
            }
            None => None,
        };
        let http = match config.http_addr {
            Some(addr) => Some(bind_tcp("http", addr).await?),
            None => None,
        };
        let limiter = Arc::new(Semaphore::new(open_files::connection_limit(&config)));
        let core = Arc::new(Core::new(config, hooks, Arc::new(SystemClock)));
        Ok(Bound {
            handle: ServerHandle::new(core.clone()),
            core,
            tcp,
            udp,
            http,
            limiter,
        })
    }
}

/// Connections the kernel may queue for `accept` (capped by `net.core.somaxconn`). Tokio's
/// 1024 overflows under a login storm, and every dropped SYN costs its client a 1 s retry; the
/// WebSocket gateway needs the same room as the TCP one.
const ACCEPT_BACKLOG: i32 = 8192;

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })?;
    let socket = socket2::SockRef::from(&listener);
    // Listening again on a listening socket only changes its backlog.
    if let Err(e) = socket.listen(ACCEPT_BACKLOG) {
        tracing::warn!(error = %e, what, "cannot raise the accept backlog");
    }
    // Packets are small and answered at once, so Nagle's algorithm only delays them (up to a
    // delayed ACK, 40 ms). Accepted sockets inherit the option on Linux and the BSDs, which
    // saves a system call per connection, and covers the HTTP listener's connections.
    if let Err(e) = socket.set_tcp_nodelay(true) {
        tracing::warn!(error = %e, what, "cannot disable Nagle's algorithm");
    }
    Ok(listener)
}

/// A server whose listeners are bound, ready to [`serve`](Bound::serve).
pub struct Bound {
    core: Arc<Core>,
    handle: ServerHandle,
    tcp: Option<TcpListener>,
    udp: Option<UdpSocket>,
    http: Option<TcpListener>,
    limiter: Arc<Semaphore>,
}

impl Bound {
    /// The TCP gateway's address, if enabled.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The UDP gateway's address, if enabled.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The HTTP listener's address (WebSocket at `/websocket`), if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle for pushing messages, kicking users and looking up who is online.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Runs every gateway until `shutdown` completes, then closes all sessions (WebSocket
    /// clients get a close frame) and waits briefly for them to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let services = TaskTracker::new();

        services.spawn(core::run_retransmission(self.core.clone(), token.clone()));
        if let Some(listener) = self.tcp {
            tracing::info!(addr = ?listener.local_addr().ok(), "tcp gateway listening");
            services.spawn(tcp::serve(
                listener,
                self.core.clone(),
                self.limiter.clone(),
                token.clone(),
                tracker.clone(),
            ));
        }
        if let Some(socket) = self.udp {
            tracing::info!(addr = ?socket.local_addr().ok(), "udp gateway listening");
            services.spawn(udp::serve(
                socket,
                self.core.clone(),
                token.clone(),
                tracker.clone(),
            ));
        }
        let http = self.http.map(|listener| {
            tracing::info!(addr = ?listener.local_addr().ok(), "http listening (websocket at /websocket)");
            let state = HttpState {
                core: self.core.clone(),
                handle: self.handle.clone(),
                shutdown: token.clone(),
                tracker: tracker.clone(),
            };
            let config = &self.core.config;
            let http = HttpListener {
                handshake: Plain,
                router: http::router(state),
                limiter: self.limiter.clone(),
                timeouts: Timeouts {
                    header: config.http_header_timeout,
                    idle: config.http_idle_timeout,
                },
                core: self.core.clone(),
            };
            tokio::spawn(http.serve(listener, token.clone(), tracker.clone()))
        });

        // The accept loop ends only at shutdown; ending otherwise means it panicked.
        let http_failed = async {
            match http {
                Some(task) => match task.await {
                    Ok(()) => std::future::pending::<Result<(), ServerError>>().await,
                    Err(e) => Err(ServerError::Http(std::io::Error::other(e))),
                },
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            () = shutdown => Ok(()),
            failed = http_failed => failed,
        };
        tracing::info!("shutting down");
        token.cancel();
        tracker.close();
        services.close();
        if tokio::time::timeout(DRAIN, async {
            tracker.wait().await;
            services.wait().await;
        })
        .await
        .is_err()
        {
            tracing::warn!("some sessions did not finish within {DRAIN:?}");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tcp::serve` relies on it instead of a `setsockopt` per connection.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_sockets_inherit_no_delay_from_the_listener() {
        let listener = bind_tcp("tcp", SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
