//! Receiving as a user: `POST /api/sessions` logs a user in over HTTP (verified by the login
//! hooks, counted as the user's online session), and the session's token then opens its event
//! stream, acknowledges what it received, keeps it alive and logs it out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response, Sse};
use hongyan_shared::{Fingerprint, LoginInfo, Packet, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{AppError, ErrorBody};
use crate::api::extract::{Json, Path};
use crate::config::MAX_USER_ID_BYTES;
use crate::gateway::sse::link::Link;
use crate::gateway::sse::stream;
use crate::gateway::sse::table::OpenError;
use crate::http::state::HttpState;

/// Most fingerprints acknowledged by one request.
const MAX_ACKS: usize = 1000;
/// The longest between two heartbeats of an event stream.
const MAX_HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a logout waits for its session to end before it answers anyway.
const LOGOUT_WAIT: Duration = Duration::from_secs(5);

/// A user to log in over HTTP, with what their client would send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateSession {
    /// The user id (`loginUserId`).
    #[schema(example = "alice")]
    user_id: String,
    /// The user's credential (`loginToken`), checked by the login hooks (`…/verify`) as a
    /// client's is.
    #[schema(example = "alice's password or token")]
    token: Option<String>,
    /// `extra`, passed to the login hooks.
    extra: Option<String>,
}

/// An HTTP session, logged in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedSession {
    /// What the session's own requests present, in their path: a secret, as good as the
    /// user's login while the session lives.
    #[schema(example = "5b1f0c9a4e2d47c8b3a6d1e0f9c8b7a6")]
    session_token: String,
    /// The user.
    #[schema(example = "alice")]
    user_id: String,
    /// The `firstLoginTime` the login was answered with (epoch ms).
    first_login_time: i64,
    /// Seconds the session lives with no event stream open and no request.
    idle_secs: u64,
}

/// Fingerprints of received messages.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Acks {
    /// 1 to 1000 fingerprints: the event ids of the messages received.
    #[schema(example = json!(["0b9c2f4e-6d8a-4c3b-9a57-3e1f2d4c5b6a"]))]
    fps: Vec<String>,
}

/// The session's token.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("sessionToken"), parameter_in = Path)]
pub(crate) struct SessionPath(
    /// The `sessionToken` its creation returned.
    String,
);

/// The live session `token` names.
fn link(state: &HttpState, token: &str) -> Result<Arc<Link>, AppError> {
    state
        .sessions
        .get(token)
        .filter(|link| !link.has_ended())
        .ok_or(AppError::NoSuchSession)
}

/// Log a user in over HTTP.
///
/// The login is a client's: the login hooks (`…/verify`) check `userId` with `token` and
/// `extra`; the session then is the user's online session, so the duplicate-login rule kicks
/// the user's other session (a later login of theirs kicks this one), and it is sent what
/// the user receives, their stored messages first. Open its event stream next.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Logged in", body = CreatedSession),
        (status = 403, description = "The login hooks refused the login (`loginCode`)", body = ErrorBody),
        (status = 422, description = "Not a user id a client could log in as", body = ErrorBody),
        (status = 503, description = "Too many HTTP sessions, or the login did not complete", body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<CreateSession>,
) -> Result<Response, AppError> {
    let user = UserId::from(request.user_id);
    if !user.is_valid_login() || user.as_str().len() > MAX_USER_ID_BYTES {
        return Err(AppError::Invalid(format!(
            "{:?} is not a user id a client could log in as (empty, \"0\", \"-1\" or over \
             {MAX_USER_ID_BYTES} bytes)",
            user.as_str()
        )));
    }
    let login = LoginInfo {
        login_user_id: Some(user.clone()),
        login_token: request.token,
        extra: request.extra,
        first_login_time: 0,
    };
    let opened = state
        .sessions
        .open(&state.core, &login, peer, &state.shutdown, &state.tracker)
        .await
        .map_err(|e| match e {
            OpenError::Full => AppError::TooManySessions,
            OpenError::Refused(code) => AppError::LoginRefused(code),
            OpenError::Ended => AppError::LoginUnavailable,
        })?;
    let created = CreatedSession {
        session_token: opened.token,
        user_id: user.as_str().to_owned(),
        first_login_time: opened.first_login_time,
        idle_secs: state.core.config.http_session_idle.as_secs(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// Stream what the user receives, as Server-Sent Events.
///
/// Each message is an event whose id is its fingerprint and whose data is
/// `{"from","to","fp","content","typeu","qos"}`; acknowledge the QoS ones (`qos: true`) with
/// `POST …/acks`. An unacknowledged message is sent again (the server's retransmission), and
/// stored when that runs out, as for a client. A `kickout` event (`{"code","reason"}`: 1
/// another login of the user, 2 an administrator) or a `logout` event (`{"reason"}`: `logout`,
/// `shutdown`, `closed`) ends the stream and the session. Comments (`: keepalive`) come at
/// least every 15 s, and keep the session alive while the stream is open. One stream per
/// session: a new one replaces the old; it first gets again what earlier streams received and
/// the user did not acknowledge, after the `Last-Event-ID` it sends.
#[utoipa::path(
    get,
    path = "/sessions/{sessionToken}/events",
    tag = "sessions",
    params(SessionPath),
    security(()),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such session (it ended, or never existed)", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<HttpState>,
    Path(SessionPath(token)): Path<SessionPath>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let link = link(&state, &token)?;
    let last_event_id = headers.get("last-event-id").and_then(|id| id.to_str().ok());
    let stream = link.attach(last_event_id);
    let config = &state.core.config;
    let heartbeat = MAX_HEARTBEAT
        .min(config.http_idle_timeout / 2)
        .min(config.http_session_idle / 3);
    let mut response = Sse::new(stream::events(link, stream, heartbeat)).into_response();
    // Proxies that buffer responses (nginx) would hold events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Acknowledge received messages.
///
/// Each fingerprint settles the message it names, as a client's acknowledgement does: it is
/// not sent again, and a stored message is removed from the store. Unknown fingerprints are
/// ignored.
#[utoipa::path(
    post,
    path = "/sessions/{sessionToken}/acks",
    tag = "sessions",
    params(SessionPath),
    security(()),
    request_body = Acks,
    responses(
        (status = 204, description = "Acknowledged"),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 422, description = "No, too many or empty fingerprints", body = ErrorBody),
    )
)]
pub(crate) async fn acknowledge(
    State(state): State<HttpState>,
    Path(SessionPath(token)): Path<SessionPath>,
    Json(acks): Json<Acks>,
) -> Result<StatusCode, AppError> {
    if acks.fps.is_empty() || acks.fps.len() > MAX_ACKS || acks.fps.iter().any(String::is_empty) {
        return Err(AppError::Invalid(format!(
            "fps must hold 1 to {MAX_ACKS} fingerprints, none empty"
        )));
    }
    let link = link(&state, &token)?;
    let fps: Vec<Fingerprint> = acks.fps.into_iter().map(Fingerprint::from).collect();
    link.acknowledge(&fps);
    let user = link.user().as_str();
    for fp in &fps {
        if !link
            .deliver(&Packet::ack(user, UserId::SERVER, fp, false))
            .await
        {
            return Err(AppError::NoSuchSession);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Keep the session alive without an event stream open.
///
/// Any request of the session counts; an open stream keeps it alive by itself.
#[utoipa::path(
    post,
    path = "/sessions/{sessionToken}/keepalive",
    tag = "sessions",
    params(SessionPath),
    security(()),
    responses(
        (status = 204, description = "Kept alive"),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub(crate) async fn keep_alive(
    State(state): State<HttpState>,
    Path(SessionPath(token)): Path<SessionPath>,
) -> Result<StatusCode, AppError> {
    let link = link(&state, &token)?;
    if link
        .deliver(&Packet::keep_alive(link.user().as_str()))
        .await
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NoSuchSession)
    }
}

/// Log the session out.
///
/// The user goes offline (unless another session of theirs replaced it), as on a client's
/// logout; its stream ends with a `logout` event. What it did not acknowledge stays stored
/// for the user's next login.
#[utoipa::path(
    delete,
    path = "/sessions/{sessionToken}",
    tag = "sessions",
    params(SessionPath),
    security(()),
    responses(
        (status = 204, description = "Logged out"),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<HttpState>,
    Path(SessionPath(token)): Path<SessionPath>,
) -> Result<StatusCode, AppError> {
    let link = link(&state, &token)?;
    link.request_logout();
    let ended = async {
        link.deliver(&Packet::logout(link.user().as_str())).await;
        link.ended().await;
    };
    // The session's loop ends it at once, or by its deadline if it is stuck in a write.
    let _ = tokio::time::timeout(LOGOUT_WAIT, ended).await;
    Ok(StatusCode::NO_CONTENT)
}
