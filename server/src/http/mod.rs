//! The HTTP listener: the WebSocket gateway, the H5 client, the API for backends (`/api`),
//! health, readiness and metrics.
//!
//! - `listen`: the accept loop: the connection limit (a WebSocket counts once), a probe
//!   reserve beyond it, hyper with its deadlines, graceful shutdown, the place for TLS.
//! - `deadlines`: how long a peer may keep a connection waiting (request head, keep-alive,
//!   a response it does not take).
//! - `web`: the H5 client, with its Content-Security-Policy and framing headers.
//! - `state`: [`HttpState`](state::HttpState), what every handler shares; in its own module
//!   so the handlers (`api`, `probes`, the WebSocket gateway) need not import this router.

pub(crate) mod deadlines;
pub(crate) mod listen;
pub(crate) mod state;
mod web;

use axum::Router;
use axum::routing::get;

use self::state::HttpState;
use crate::gateway::ws;
use crate::{api, probes};

pub(crate) fn router(state: HttpState) -> Router {
    let web_dir = state.core.config.web_dir.clone();
    let router = Router::new()
        .route("/websocket", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .merge(api::router(&state));
    let router = match web_dir {
        Some(dir) => router.fallback_service(web::client(&dir)),
        None => router.fallback(get(web::no_client)),
    };
    router.with_state(state)
}
