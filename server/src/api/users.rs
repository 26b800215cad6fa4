//! Online users: list them a page at a time, look one up, kick one out (§7.3, code 2).

use std::time::UNIX_EPOCH;

use axum::extract::State;
use bytes::Bytes;
use hongyan_shared::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Path, Query};
use crate::http::state::HttpState;
use crate::registry::OnlineInfo;

/// Page size when the query does not say.
const DEFAULT_LIMIT: usize = 100;
/// Largest page.
const MAX_LIMIT: usize = 1000;
/// Longest kick reason: the kickout must fit a UDP datagram (1024 bytes by default).
const MAX_REASON: usize = 512;

/// Which page of online users.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Start after this user id: the `next` of the previous page.
    after: Option<String>,
    /// Users per page, 1 to 1000.
    #[param(default = 100, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// How a user is connected.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportName {
    /// TCP (length-prefixed frames).
    Tcp,
    /// UDP datagrams.
    Udp,
    /// WebSocket text frames.
    Ws,
    /// An HTTP session: the API receiving as the user (Server-Sent Events).
    Http,
}

impl From<hongyan_shared::Transport> for TransportName {
    fn from(transport: hongyan_shared::Transport) -> Self {
        match transport {
            hongyan_shared::Transport::Tcp => Self::Tcp,
            hongyan_shared::Transport::Udp => Self::Udp,
            hongyan_shared::Transport::WebSocket => Self::Ws,
            hongyan_shared::Transport::Http => Self::Http,
        }
    }
}

/// An online user's session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OnlineUser {
    /// The user id.
    #[schema(example = "alice")]
    user_id: String,
    /// hongyan's id for the session.
    #[schema(example = "s42")]
    session_id: String,
    /// How the user is connected.
    transport: TransportName,
    /// The client's address.
    #[schema(example = "203.0.113.7:52144")]
    peer_addr: String,
    /// When the session logged in, epoch milliseconds.
    #[schema(example = 1_700_000_000_000_i64)]
    since: i64,
    /// The `firstLoginTime` the session was answered with (epoch milliseconds): the client
    /// instance's identity in duplicate-login decisions (§4.3).
    #[schema(example = 1_699_999_000_000_i64)]
    first_login_time: i64,
}

impl OnlineUser {
    fn new(user: &UserId, info: &OnlineInfo) -> Self {
        Self {
            user_id: user.as_str().to_owned(),
            session_id: info.session.id.to_string(),
            transport: info.session.transport.into(),
            peer_addr: info.session.peer.to_string(),
            since: info
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            first_login_time: info.first_login_time,
        }
    }
}

/// One page of online users, in user id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    /// The users on this page.
    users: Vec<OnlineUser>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<String>,
    /// Users online now, on all pages.
    total: usize,
}

/// An optional reason shown to the kicked client.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KickRequest {
    /// Sent to the client in the kickout (`reason`); at most 512 bytes.
    #[schema(example = "account suspended")]
    reason: Option<String>,
}

/// A kick that happened.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KickResult {
    /// The user kicked out.
    user_id: String,
    /// The kickout code sent: 2, an administrator's kick.
    kick_code: i32,
}

/// List online users, a page at a time.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of online users", body = UserPage),
        (status = 400, description = "The query does not parse", body = ErrorBody),
        (status = 422, description = "limit is out of range", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<HttpState>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<UserPage>, AppError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::Invalid(format!(
            "limit must be 1 to {MAX_LIMIT}, not {limit}"
        )));
    }
    let after = query.after.map(UserId::from);
    let page = state.handle.online_page(after.as_ref(), limit);
    let next = (page.len() == limit)
        .then(|| page.last().map(|(user, _)| user.as_str().to_owned()))
        .flatten();
    Ok(axum::Json(UserPage {
        users: page
            .iter()
            .map(|(user, info)| OnlineUser::new(user, info))
            .collect(),
        next,
        total: state.handle.online_count(),
    }))
}

/// Look up an online user.
#[utoipa::path(
    get,
    path = "/users/{userId}",
    tag = "users",
    params(("userId" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The user's session", body = OnlineUser),
        (status = 404, description = "The user is not online", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<HttpState>,
    Path(user): Path<String>,
) -> Result<axum::Json<OnlineUser>, AppError> {
    let id = UserId::from(user.as_str());
    let info = state
        .handle
        .online_info(&id)
        .ok_or(AppError::NotOnline(user))?;
    Ok(axum::Json(OnlineUser::new(&id, &info)))
}

/// Kick a user out (kickout code 2, an administrator's kick).
///
/// The client receives a kickout with the reason and does not log in again by itself; the
/// session closes and the `logout` event carries `kickCode` 2. The body is optional.
#[utoipa::path(
    post,
    path = "/users/{userId}/kick",
    tag = "users",
    params(("userId" = String, Path, description = "The user id")),
    request_body(content = Option<KickRequest>, description = "Optional: the reason shown to the client"),
    responses(
        (status = 200, description = "The user was kicked out", body = KickResult),
        (status = 404, description = "The user is not online", body = ErrorBody),
        (status = 422, description = "The body or reason is not acceptable", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn kick(
    State(state): State<HttpState>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<axum::Json<KickResult>, AppError> {
    let request: KickRequest = if body.iter().all(u8::is_ascii_whitespace) {
        KickRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AppError::Invalid(format!(
                "the body must be empty or JSON like {{\"reason\": \"...\"}}: {e}"
            ))
        })?
    };
    if let Some(reason) = &request.reason
        && reason.len() > MAX_REASON
    {
        return Err(AppError::Invalid(format!(
            "reason is {} bytes; at most {MAX_REASON}",
            reason.len()
        )));
    }
    let id = UserId::from(user.as_str());
    if !state.handle.kick(&id, request.reason.as_deref()) {
        return Err(AppError::NotOnline(user));
    }
    Ok(axum::Json(KickResult {
        user_id: user,
        kick_code: hongyan_shared::codes::KICKOUT_ADMIN,
    }))
}
