//! Probes for operators: `/readyz` (serving, not shutting down) and `/metrics` (Prometheus /
//! OpenMetrics text). `/healthz` (the process answers) is in the router itself.
//!
//! Both are unauthenticated by default so load balancers and Prometheus need no secret; set
//! `metrics_token` to require a bearer token for `/metrics` (it is a different token from the
//! admin token, so a scraper cannot push messages or kick users).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::auth::authorized;
use crate::api::error::AppError;
use crate::http::state::HttpState;

/// The OpenMetrics text format, which Prometheus negotiates and parses.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long `/readyz` waits for the message store's probe write.
const STORE_PROBE: Duration = Duration::from_secs(2);

/// `GET /readyz`: 200 while the server serves (every listener was bound before it started)
/// and its message store, if any, commits writes; 503 once it is shutting down or while the
/// store fails (its disk is full, its database unreachable), so load balancers send clients
/// elsewhere. Recovers by itself with the store.
pub(crate) async fn ready(State(state): State<HttpState>) -> (StatusCode, String) {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    }
    match tokio::time::timeout(STORE_PROBE, state.core.store_health()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("message store failing: {error}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("message store failing: no answer within {STORE_PROBE:?}\n"),
        ),
    }
}

/// `GET /metrics`: every series of this server (see `docs/INTEGRATION.md` for the list).
pub(crate) async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.core.config.metrics_token
        && !authorized(&headers, token)
    {
        return AppError::Unauthorized.into_response();
    }
    let core = &state.core;
    let body = core.metrics.render(
        core.registry.count_by_transport(),
        core.s2c.len(),
        core.queued.bytes(),
    );
    ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
}
