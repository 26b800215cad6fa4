//! Binding the listeners and running the server until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hongyan_store::{MessageStore, StoreError, StoreSpec};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::{Handshake, Plain};
use crate::clock::SystemClock;
use crate::cluster::{Cluster, NatsCluster, NatsError, Node};
use crate::config::{Config, TlsConfigError};
use crate::core::{self, Core};
use crate::gateway::{tcp, udp};
use crate::handle::ServerHandle;
use crate::hooks::Hooks;
use crate::http::deadlines::Timeouts;
use crate::http::listen::HttpListener;
use crate::http::{self, state::HttpState};
use crate::open_files;
use crate::tls::{
    CertFiles, ServerCertificate, TlsAcceptor, TlsError, http_config, tcp_gateway_config,
};

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
    /// The message store could not be opened.
    #[error("cannot open the message store: {0}")]
    Store(StoreError),
    /// The TLS settings do not fit together (TLS asked for without a certificate, say).
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A cluster was asked for with a store its nodes cannot share.
    #[error(
        "a cluster needs a message store all its nodes share: set --store postgres://… (or off), not {0}"
    )]
    ClusterStore(String),
    /// The cluster's NATS address is unusable.
    #[error(transparent)]
    Cluster(#[from] NatsError),
}

/// The hongyan server. See [`Server::bind`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds every configured listener (so the addresses, including ephemeral ports, are known
    /// before anything runs) with the application's `hooks`, and opens the message store the
    /// `store` setting names. Logs the connection limits it will run with (`max_connections`
    /// derived from the open-file limit unless configured).
    ///
    /// With a certificate configured, the TCP gateway and the HTTP listener speak TLS (unless
    /// switched off, see [`Config::tls`]); the certificate is loaded here, so a missing or
    /// broken one fails `bind`, as does TLS asked for without one.
    pub async fn bind(config: Config, hooks: Arc<dyn Hooks>) -> Result<Bound, ServerError> {
        // Checked before the store opens: a settings mistake should not wait on a database.
        config.tls()?;
        if config.cluster.is_some()
            && matches!(config.store, StoreSpec::Sqlite(_) | StoreSpec::Memory)
        {
            return Err(ServerError::ClusterStore(config.store.to_string()));
        }
        let store = config
            .store
            .open(&config.store_config())
            .await
            .map_err(ServerError::Store)?;
        if store.is_some() {
            tracing::info!(store = %config.store, "message store open");
        }
        Self::bind_with_store(config, hooks, store).await
    }

    /// [`bind`](Self::bind) with a message store the caller opened, or none (the `store`
    /// setting is then not used): a store shared with other code, a backend of the
    /// application's own, or one a test keeps across restarts of a server. The server closes
    /// it when it stops.
    pub async fn bind_with_store(
        config: Config,
        hooks: Arc<dyn Hooks>,
        store: Option<Arc<dyn MessageStore>>,
    ) -> Result<Bound, ServerError> {
        let plan = config.tls()?;
        let tcp = match config.tcp_addr {
            Some(addr) => Some(bind_tcp("tcp", addr).await?),
            None => None,
        };
        let tcp_plain = match config.tcp_plain_addr {
            Some(addr) => Some(bind_tcp("plain tcp", addr).await?),
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
        let cluster = match &config.cluster {
            Some(url) => {
                let name = config.node_name();
                let cluster = NatsCluster::connect(url, &name).await?;
                tracing::info!(node = %name, %url, "cluster node");
                Some(Arc::new(cluster))
            }
            None => None,
        };
        let mut core = Core::new(config, hooks, Arc::new(SystemClock));
        if let Some(store) = store {
            core = core.with_store(store);
        }
        if let Some(cluster) = &cluster {
            core = core.with_cluster(cluster.clone());
        }
        let core = Arc::new(core);
        if let Some(cluster) = cluster {
            let node: Arc<dyn Node> = core.clone();
            cluster.attach(Arc::downgrade(&node));
        }
        let tls = match plan.files {
            Some(files) => Some(Tls::load(files, plan.tcp, plan.http, &core).await?),
            None => None,
        };
        Ok(Bound {
            handle: ServerHandle::new(core.clone()),
            core,
            tcp,
            tcp_plain,
            udp,
            http,
            limiter,
            tls,
        })
    }
}

/// The TLS side of a server: its certificate, and the handshake stage of each listener that
/// speaks TLS (each has its own, so a flood on one port does not hold up the other).
struct Tls {
    certificate: Arc<ServerCertificate>,
    tcp: Option<TlsAcceptor>,
    http: Option<TlsAcceptor>,
}

impl Tls {
    async fn load(
        files: CertFiles,
        tcp: bool,
        http: bool,
        core: &Core,
    ) -> Result<Self, ServerError> {
        let metrics = core.metrics.tls.clone();
        let load_metrics = metrics.clone();
        // Two file reads: off the runtime's threads, as every other blocking call.
        let loading =
            tokio::task::spawn_blocking(move || ServerCertificate::load(files, load_metrics));
        let certificate = match loading.await {
            Ok(loaded) => loaded?,
            Err(failed) => std::panic::resume_unwind(failed.into_panic()),
        };
        let limits = core.config.tls_handshake_limits();
        let acceptor = |config| TlsAcceptor::new(config, limits, metrics.clone());
        Ok(Self {
            tcp: match tcp {
                true => Some(acceptor(tcp_gateway_config(certificate.clone())?)),
                false => None,
            },
            http: match http {
                true => Some(acceptor(http_config(certificate.clone())?)),
                false => None,
            },
            certificate,
        })
    }
}

/// Runs an HTTP accept loop in its own task.
fn spawn_http<H: Handshake>(
    http: HttpListener<H>,
    listener: TcpListener,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(http.serve(listener, shutdown.clone(), tracker.clone()))
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
    tcp_plain: Option<TcpListener>,
    udp: Option<UdpSocket>,
    http: Option<TcpListener>,
    limiter: Arc<Semaphore>,
    tls: Option<Tls>,
}

impl Bound {
    /// The TCP gateway's address, if enabled (TLS when [`tcp_tls`](Self::tcp_tls)).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The plain TCP gateway kept beside the TLS one, if configured (`tcp_plain_addr`).
    pub fn tcp_plain_addr(&self) -> Option<SocketAddr> {
        self.tcp_plain.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Whether the TCP gateway speaks TLS.
    pub fn tcp_tls(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.tcp.is_some())
    }

    /// Whether the HTTP listener speaks TLS (HTTPS, WSS).
    pub fn http_tls(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.http.is_some())
    }

    /// The certificate the TLS listeners present, if any: its
    /// [`fingerprint`](ServerCertificate::fingerprint), and
    /// [`reload`](ServerCertificate::reload) for a SIGHUP handler (`hongyan serve` installs
    /// one with [`reload_on_sighup`](crate::tls::certificate::reload_on_sighup)). The server
    /// also reloads it by itself when its files change.
    pub fn certificate(&self) -> Option<Arc<ServerCertificate>> {
        self.tls.as_ref().map(|tls| tls.certificate.clone())
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
        services.spawn(core::run_store_chores(self.core.clone(), token.clone()));
        let (tcp_tls, http_tls) = match &self.tls {
            Some(tls) => {
                let interval = self.core.config.tls_watch_interval;
                services.spawn(tls.certificate.clone().watch(interval, token.clone()));
                (tls.tcp.clone(), tls.http.clone())
            }
            None => (None, None),
        };
        let serve_tcp = |listener: TcpListener, tls: Option<TlsAcceptor>, what: &str| {
            let addr = listener.local_addr().ok();
            let (core, limiter) = (self.core.clone(), self.limiter.clone());
            let (token, tracker) = (token.clone(), tracker.clone());
            match tls {
                Some(tls) => {
                    tracing::info!(?addr, "{what} listening (TLS)");
                    services.spawn(tcp::serve(listener, tls, core, limiter, token, tracker));
                }
                None => {
                    tracing::info!(?addr, "{what} listening");
                    services.spawn(tcp::serve(listener, Plain, core, limiter, token, tracker));
                }
            }
        };
        if let Some(listener) = self.tcp {
            serve_tcp(listener, tcp_tls, "tcp gateway");
        }
        if let Some(listener) = self.tcp_plain {
            serve_tcp(listener, None, "plain tcp gateway (beside TLS)");
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
            let addr = listener.local_addr().ok();
            let state = HttpState {
                core: self.core.clone(),
                handle: self.handle.clone(),
                sessions: Arc::default(),
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
            match http_tls {
                Some(tls) => {
                    tracing::info!(?addr, "https listening (websocket at /websocket, wss)");
                    spawn_http(http.with_handshake(tls), listener, &token, &tracker)
                }
                None => {
                    tracing::info!(?addr, "http listening (websocket at /websocket)");
                    spawn_http(http, listener, &token, &tracker)
                }
            }
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
        if let Some(link) = &self.core.store {
            // What the sessions acknowledged up to their end is removed, so a clean restart
            // does not replay it again; then queued writes are committed.
            self.core.remove_acknowledged(self.core.clock.now()).await;
            // The history numbered so far is written, and closed: a clean restart keeps its
            // epoch, so clients keep what they learned.
            self.core.finish_history().await;
            link.store.close().await;
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
