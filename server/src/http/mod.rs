//! The HTTP listener: the WebSocket gateway, the H5 client, the API for backends (`/api`),
//! health, readiness and metrics.
//!
//! - `state`: [`HttpState`](state::HttpState), what every handler shares; in its own module
//!   so the handlers (`api`, `probes`, the WebSocket gateway) need not import this router.

pub(crate) mod state;

use std::path::Path;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};

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
        Some(dir) => router.fallback_service(web_client(&dir)),
        None => router.fallback(get(no_web_client)),
    };
    router.with_state(state)
}

/// The built H5 client, with `index.html` for any path that is not a file (client routing).
fn web_client(dir: &Path) -> ServeDir<ServeFile> {
    ServeDir::new(dir)
        .precompressed_gzip()
        .fallback(ServeFile::new(dir.join("index.html")))
}

async fn no_web_client() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(
            "<!doctype html><meta charset=utf-8><title>hongyan</title>\
             <h1>hongyan is running</h1>\
             <p>The H5 client is not built. Run <code>scripts/serve</code> (it builds the client \
             and starts the server), or pass <code>--web-dir</code> pointing at a built client.</p>\
             <p>MobileIMSDK WebSocket clients connect to <code>/websocket</code>.</p>",
        ),
    )
}
