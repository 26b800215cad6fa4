//! The HTTP listener's accept loop: every connection counted in the connection limit it
//! shares with the TCP gateway, served by hyper with its deadlines (`deadlines`), closed
//! gracefully at shutdown.
//!
//! It is written out rather than left to `axum::serve`, which can neither count connections,
//! nor time them out, nor give a WebSocket the permit of the connection it was upgraded from.
//!
//! - **One permit per connection.** A connection takes a permit of `max_connections` when it
//!   is accepted and holds it for its life; a WebSocket upgraded from it takes the very same
//!   permit along ([`ConnectionPermit`], a request extension), so it counts once, not twice,
//!   and the permit is free again only when both the connection and the session are gone.
//! - **Per address.** A connection also takes a place in its address's count
//!   (`max_connections_per_ip`, shared with the TCP gateway), held like the permit; one beyond
//!   it goes to the probe reserve too, where anything but a probe is answered 429.
//! - **A probe reserve.** A connection beyond the limit is not simply closed: up to
//!   [`PROBE_RESERVE`] of them are served, one request each, with `/healthz`, `/readyz` and
//!   `/metrics` answered as usual and anything else (a page, the API, an upgrade) refused with
//!   503, so an orchestrator's liveness probe never restarts a server for being full, and a
//!   browser sees why it was turned away. Beyond the reserve, connections are closed at once.
//! - **The handshake.** The loop is generic over [`Handshake`]: plain HTTP, or HTTPS with the
//!   TLS acceptor, whose handshake (bounded by its own deadline and handshake slots) runs in
//!   the connection's task, after the limit is checked (a refused connection costs no
//!   handshake) and before the deadlines start.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::deadlines::{Activity, Expiry, Timeouts};
use crate::accept::Handshake;
use crate::core::Core;
use crate::limits::{AddressSlot, Crowded};
use crate::metrics::Refusal;

/// Connections beyond `max_connections` that are still served, one request each, so that
/// probes answer and others learn why they are refused (503).
pub(crate) const PROBE_RESERVE: usize = 32;
/// The largest request head hyper buffers: browsers send a few kilobytes; a peer must not make
/// every connection hold hyper's default of 400 KiB.
const MAX_HEAD: usize = 32 * 1024;
/// Paths a connection in the probe reserve is answered on.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The connection limit's permit of one HTTP connection, shared with the WebSocket session
/// upgraded from it: a request extension on every request of a connection within the limit.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionPermit {
    /// Held, never read: the permit (and the address's place, if it is counted) is free again
    /// when the last clone is dropped.
    _permit: Arc<(OwnedSemaphorePermit, Option<AddressSlot>)>,
}

/// What the accept loop shares with every connection.
pub(crate) struct HttpListener<H> {
    /// Turns an accepted connection into the stream HTTP is spoken on.
    pub(crate) handshake: H,
    /// The routes.
    pub(crate) router: Router,
    /// `max_connections`, shared with the TCP gateway.
    pub(crate) limiter: Arc<Semaphore>,
    /// How long a peer may keep a connection waiting.
    pub(crate) timeouts: Timeouts,
    /// Where refusals and open connections are counted (its metrics).
    pub(crate) core: Arc<Core>,
}

impl<H> HttpListener<H> {
    /// The same listener with another handshake: HTTPS with the TLS acceptor.
    pub(crate) fn with_handshake<T: Handshake>(self, handshake: T) -> HttpListener<T> {
        HttpListener {
            handshake,
            router: self.router,
            limiter: self.limiter,
            timeouts: self.timeouts,
            core: self.core,
        }
    }
}

impl<H: Handshake> HttpListener<H> {
    /// Accepts connections on `listener` until `shutdown`, each in a task on `tracker`, which
    /// closes gracefully at shutdown (requests under way finish, idle connections close).
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        let this = Arc::new(self);
        let reserve = Arc::new(Semaphore::new(PROBE_RESERVE));
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "http accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let counted = match this.limiter.clone().try_acquire_owned() {
                Ok(permit) => match this.core.limits.connection(peer.ip()) {
                    Ok(slot) => Ok(ConnectionPermit {
                        _permit: Arc::new((permit, slot)),
                    }),
                    Err(Crowded) => Err((Refusal::address_connections, Full::Address)),
                },
                Err(_) => Err((Refusal::connection_limit, Full::Server)),
            };
            let admission = match counted {
                Ok(permit) => Admission::Counted(permit),
                Err((refusal, full)) => {
                    this.core.metrics.refused(refusal);
                    match reserve.clone().try_acquire_owned() {
                        Ok(permit) => Admission::Reserve {
                            _permit: permit,
                            full,
                        },
                        Err(_) => {
                            tracing::debug!(%peer, ?full, "connection limit and probe reserve full; http connection closed");
                            continue;
                        }
                    }
                }
            };
            let this = this.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                // Shutdown does not wait for a handshake (bounded by its own deadline anyway),
                // and its state is boxed while it runs, so the task is no larger for it.
                let handshake = Box::pin(this.handshake.handshake(stream));
                let stream = match shutdown.run_until_cancelled(handshake).await {
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "handshake failed");
                        return;
                    }
                    None => return,
                };
                this.connection(stream, peer, admission, &shutdown).await;
            });
        }
    }

    /// Serves one connection until it ends, its deadline passes or shutdown closes it.
    async fn connection(
        &self,
        stream: H::Stream,
        peer: SocketAddr,
        admission: Admission,
        shutdown: &CancellationToken,
    ) {
        let _counted = self.core.metrics.http_connection();
        let activity = Activity::new(tokio::time::Instant::now());
        let (within_limit, full) = match &admission {
            Admission::Counted(permit) => (Some(permit.clone()), Full::Server),
            Admission::Reserve { full, .. } => (None, *full),
        };
        let router = self.router.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            requests.handling();
            let routed = match &within_limit {
                Some(permit) => {
                    request.extensions_mut().insert(permit.clone());
                    Some(router.clone().oneshot(request))
                }
                None if PROBES.contains(&request.uri().path()) => {
                    Some(router.clone().oneshot(request))
                }
                None => None,
            };
            let requests = requests.clone();
            async move {
                let response = match routed {
                    Some(routed) => routed.await.unwrap_or_else(|never| match never {}),
                    None => over_limit(full),
                };
                Ok::<_, Infallible>(requests.sending(response))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_buf_size(MAX_HEAD)
            // The deadlines are `deadlines`'; hyper's own would count idle keep-alive time as
            // header time.
            .header_read_timeout(None)
            // A connection in the probe reserve answers one request and closes.
            .keep_alive(matches!(admission, Admission::Counted(_)));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "http connection failed");
                    }
                    return;
                }
                () = shutdown.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                expiry = activity.expired(self.timeouts) => {
                    if expiry == Expiry::Header {
                        self.core.metrics.refused(Refusal::header_timeout);
                        tracing::debug!(%peer, "no complete request head in time; http connection closed");
                    }
                    return;
                }
            }
        }
    }
}

/// How a connection was let in.
enum Admission {
    /// Within `max_connections`.
    Counted(ConnectionPermit),
    /// Beyond it, or beyond its address's `max_connections_per_ip`, in the probe reserve.
    Reserve {
        /// Held, never read: the reserve's place.
        _permit: OwnedSemaphorePermit,
        /// Which limit it is beyond.
        full: Full,
    },
}

/// Which connection limit a connection in the probe reserve is beyond.
#[derive(Debug, Clone, Copy)]
enum Full {
    /// `max_connections`.
    Server,
    /// `max_connections_per_ip`.
    Address,
}

/// What a connection beyond a limit gets for anything but a probe: 503 when the server is
/// full, 429 when its address holds as many connections as it may.
fn over_limit(full: Full) -> Response {
    let (status, text) = match full {
        Full::Server => (
            StatusCode::SERVICE_UNAVAILABLE,
            "connection limit reached\n",
        ),
        Full::Address => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections from your address\n",
        ),
    };
    (status, [(header::RETRY_AFTER, "5")], text).into_response()
}
