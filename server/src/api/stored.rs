//! A user's stored messages (issue 11): how many await delivery, and erasing them all when
//! the account is deleted.

use axum::extract::State;
use hongyan_shared::UserId;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::Path;
use crate::handle::StoredError;
use crate::http::state::HttpState;

/// How many messages the store keeps for a user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredCount {
    /// The user id.
    #[schema(example = "alice")]
    user_id: String,
    /// Messages stored for the user and not yet delivered (expired ones not yet swept
    /// included).
    #[schema(example = 3)]
    stored: u64,
}

/// What erasing a user's stored messages did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErasedResult {
    /// The user id.
    #[schema(example = "alice")]
    user_id: String,
    /// Messages erased.
    #[schema(example = 3)]
    erased: u64,
}

impl From<StoredError> for AppError {
    fn from(error: StoredError) -> Self {
        match error {
            StoredError::NoStore => AppError::NoStore,
            StoredError::Store(error) => AppError::Store(error),
        }
    }
}

/// Count a user's stored messages: those kept for them while they could not take them,
/// replayed at their next login.
#[utoipa::path(
    get,
    path = "/users/{userId}/stored",
    tag = "users",
    params(("userId" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The count", body = StoredCount),
        (status = 409, description = "The server keeps no messages (store = off)", body = ErrorBody),
        (status = 503, description = "The message store is failing", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn count(
    State(state): State<HttpState>,
    Path(user): Path<String>,
) -> Result<axum::Json<StoredCount>, AppError> {
    let stored = state
        .handle
        .stored_count(&UserId::from(user.as_str()))
        .await?;
    Ok(axum::Json(StoredCount {
        user_id: user,
        stored,
    }))
}

/// Erase every message stored for a user, for account deletion.
///
/// Nothing erased is replayed again; a message already sent to an online session may still
/// reach it.
#[utoipa::path(
    delete,
    path = "/users/{userId}/stored",
    tag = "users",
    params(("userId" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "Erased", body = ErasedResult),
        (status = 409, description = "The server keeps no messages (store = off)", body = ErrorBody),
        (status = 503, description = "The message store is failing", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn erase(
    State(state): State<HttpState>,
    Path(user): Path<String>,
) -> Result<axum::Json<ErasedResult>, AppError> {
    let erased = state
        .handle
        .erase_stored(&UserId::from(user.as_str()))
        .await?;
    Ok(axum::Json(ErasedResult {
        user_id: user,
        erased,
    }))
}
