//! Lifting the limits for an address: `POST`, `GET` and `DELETE /api/limits/exempt`. An
//! exempt address is subject to none of the abuse limits (docs/INTEGRATION.md, "Limits"):
//! for a backend that connects as users, a load test, a partner's gateway. Exemptions added
//! here last until they expire, are removed, or the server stops; the `limits_exempt` setting
//! is the permanent list.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Json, Query};
use crate::http::state::HttpState;
use crate::limits::{AddressRange, Exemption};

/// Longest exemption, 30 days: a permanent one belongs in the `limits_exempt` setting.
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// An address or range to exempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ExemptRequest {
    /// An IP address or a range in CIDR notation (IPv4 or IPv6).
    #[schema(example = "203.0.113.0/24")]
    address: String,
    /// How long the exemption lasts, in seconds (at most 30 days); without it, until it is
    /// removed or the server stops.
    #[schema(example = 3600, minimum = 1, maximum = 2_592_000)]
    ttl_secs: Option<u64>,
}

/// An exemption in force.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExemptionView {
    /// The address or range, normalised (`10.1.2.3/8` is `10.0.0.0/8`).
    #[schema(example = "203.0.113.0/24")]
    address: String,
    /// When it ends, epoch milliseconds; null: not by itself.
    #[schema(example = 1_700_003_600_000_i64)]
    expires_at: Option<i64>,
    /// True for the `limits_exempt` setting's, which the API cannot remove.
    configured: bool,
}

impl From<Exemption> for ExemptionView {
    fn from(exemption: Exemption) -> Self {
        Self {
            address: exemption.range.to_string(),
            expires_at: exemption.expires_unix_millis,
            configured: exemption.configured,
        }
    }
}

/// Every exemption in force.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExemptionList {
    /// The configured ones first, then those added through the API, oldest first.
    exemptions: Vec<ExemptionView>,
}

/// Which exemption to remove.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveQuery {
    /// The address or range, as it was added (normalised the same way).
    address: String,
}

fn range(text: &str) -> Result<AddressRange, AppError> {
    text.parse()
        .map_err(|e: crate::limits::AddressRangeError| AppError::Invalid(e.to_string()))
}

/// Exempt an address or range from the limits, for a while or until removed. Adding a range
/// again replaces its expiry.
#[utoipa::path(
    post,
    path = "/limits/exempt",
    tag = "server",
    request_body = ExemptRequest,
    responses(
        (status = 200, description = "The exemption in force", body = ExemptionView),
        (status = 422, description = "Not an address or range, a ttl out of range, or too many exemptions", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn add(
    State(state): State<HttpState>,
    Json(request): Json<ExemptRequest>,
) -> Result<axum::Json<ExemptionView>, AppError> {
    let range = range(&request.address)?;
    let ttl = match request.ttl_secs {
        Some(secs @ 1..=MAX_TTL_SECS) => Some(Duration::from_secs(secs)),
        Some(secs) => {
            return Err(AppError::Invalid(format!(
                "ttlSecs must be 1 to {MAX_TTL_SECS}, not {secs}"
            )));
        }
        None => None,
    };
    let clock = &state.core.clock;
    let exemption = state
        .core
        .limits
        .exempt
        .add(range, ttl, clock.now(), clock.unix_millis())
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    tracing::info!(%range, ?ttl, "limits lifted for an address");
    Ok(axum::Json(exemption.into()))
}

/// List the exemptions in force: the `limits_exempt` setting's and those added here.
#[utoipa::path(
    get,
    path = "/limits/exempt",
    tag = "server",
    responses(
        (status = 200, description = "The exemptions", body = ExemptionList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<HttpState>) -> axum::Json<ExemptionList> {
    let exemptions = state.core.limits.exempt.list(state.core.clock.now());
    axum::Json(ExemptionList {
        exemptions: exemptions.into_iter().map(ExemptionView::from).collect(),
    })
}

/// Remove an exemption added through the API; the limits apply to the address again.
#[utoipa::path(
    delete,
    path = "/limits/exempt",
    tag = "server",
    params(RemoveQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such exemption was added through the API", body = ErrorBody),
        (status = 422, description = "Not an address or range", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<HttpState>,
    Query(query): Query<RemoveQuery>,
) -> Result<StatusCode, AppError> {
    let range = range(&query.address)?;
    if !state
        .core
        .limits
        .exempt
        .remove(range, state.core.clock.now())
    {
        return Err(AppError::NotExempt(range.to_string()));
    }
    tracing::info!(%range, "exemption from the limits removed");
    Ok(StatusCode::NO_CONTENT)
}
