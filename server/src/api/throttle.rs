//! The API's own limits, in front of every operation (before the admin token is checked, so
//! a flood of bad tokens is limited too): requests per second per address
//! (`api_requests_per_sec_per_ip`: 429 beyond it) and the size of a request body
//! (`api_max_body_bytes`: 413, enforced by axum's `DefaultBodyLimit` as the body is read, and
//! counted here).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::{AppError, BodyTooLarge};
use crate::http::state::HttpState;
use crate::metrics::Refusal;

/// Middleware: refuses a request over its address's rate; counts a body over the limit.
pub(crate) async fn limit_requests(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let limits = &state.core.limits;
    if let Some(ip) = peer
        && !limits.api_request(ip)
    {
        state.core.metrics.refused(Refusal::api_rate);
        return Err(AppError::RateLimited);
    }
    let response = next.run(request).await;
    if response.extensions().get::<BodyTooLarge>().is_some() {
        state.core.metrics.refused(Refusal::api_body);
    }
    Ok(response)
}
