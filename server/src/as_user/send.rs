//! Sending in a user's name (C2C): `POST /api/messages/c2c` and its batch form. The message
//! takes exactly the path of one the user's client sends (`ServerHandle::send_as`): the
//! `before_c2c` hook, forwarding with QoS and retransmission, store and forward.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use futures_util::future::join_all;
use hongyan_shared::{Fingerprint, Outgoing, UserId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::api::defaults::{unset_typeu, yes};
use crate::api::error::{AppError, ErrorBody};
use crate::api::extract::Json;
use crate::handle::{Delivery, SendAsError, Sent, check_send_as};
use crate::http::state::HttpState;

/// Most messages in one batch.
const MAX_BATCH: usize = 1000;
/// How long a caller waits for outcomes unless it says otherwise: longer than the server's
/// retransmissions take to run out (7 to 12 s), so the outcome is final.
const DEFAULT_TIMEOUT_MS: u64 = 15_000;
/// The longest a caller may wait.
const MAX_TIMEOUT_MS: u64 = 60_000;

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// A message from one user to another, sent as if the sender's client had sent it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct C2cRequest {
    /// The sender's user id. The admin token speaks for every user: no login of theirs is
    /// needed, and the receiver sees the message from them.
    #[schema(example = "alice")]
    from: String,
    /// The receiver's user id.
    #[schema(example = "bob")]
    to: String,
    /// The message (`dataContent`).
    #[schema(example = "hi bob")]
    content: String,
    /// The application's message type (`typeu`); -1 when unset.
    #[serde(default = "unset_typeu")]
    #[schema(default = -1, example = 1)]
    typeu: i32,
    /// Ask the receiver to acknowledge, with retransmission (MobileIMSDK's default).
    #[serde(default = "yes")]
    #[schema(default = true)]
    qos: bool,
    /// A fingerprint of your choosing (1 to 128 bytes), e.g. your own message id; a fresh
    /// UUID when absent.
    fp: Option<String>,
    /// Answer only once the outcome is known, or `timeoutMs` has passed.
    #[serde(default)]
    wait: bool,
    /// With `wait`: the longest to wait, 1 to 60000 ms.
    #[serde(default = "default_timeout")]
    #[schema(default = 15000, minimum = 1, maximum = 60000)]
    timeout_ms: u64,
}

/// One message of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct C2cMessage {
    /// The sender's user id.
    #[schema(example = "alice")]
    from: String,
    /// The receiver's user id.
    #[schema(example = "bob")]
    to: String,
    /// The message (`dataContent`).
    content: String,
    /// The application's message type (`typeu`); -1 when unset.
    #[serde(default = "unset_typeu")]
    #[schema(default = -1)]
    typeu: i32,
    /// Ask the receiver to acknowledge, with retransmission.
    #[serde(default = "yes")]
    #[schema(default = true)]
    qos: bool,
    /// A fingerprint of your choosing; a fresh UUID when absent.
    fp: Option<String>,
}

/// Many messages, each with its own sender and receiver.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct C2cBatchRequest {
    /// 1 to 1000 messages, sent in this order.
    messages: Vec<C2cMessage>,
    /// Answer only once every outcome is known, or `timeoutMs` has passed.
    #[serde(default)]
    wait: bool,
    /// With `wait`: the longest to wait for all of them, 1 to 60000 ms.
    #[serde(default = "default_timeout")]
    #[schema(default = 15000, minimum = 1, maximum = 60000)]
    timeout_ms: u64,
}

/// What became of a message sent in a user's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum C2cOutcome {
    /// Handed to the receiver's session; the outcome was not awaited, not known within
    /// `timeoutMs`, or will not come (`qos: false`).
    Sent,
    /// The receiver acknowledged it.
    Delivered,
    /// The receiver could not take it now (offline, its queue full, stored messages replayed
    /// to it first, or it did not acknowledge the retransmissions): hongyan's message store
    /// keeps it and replays it at their next login — or, without a store, the application's
    /// offline hook (`…/offline`) said it keeps it.
    Stored,
    /// The receiver could not take it and nothing kept it (no store and the offline hook
    /// declined, the store refused it, or it is larger than the receiver's transport), or it
    /// was not acknowledged after the last retransmission and could not be stored. A client
    /// would retransmit it: send it again, with the same `fp`, to do the same.
    Lost,
    /// The application's `before_c2c` hook (moderation) dropped it, as it would a client's.
    Refused,
}

/// The result of one message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct C2cResult {
    /// The sender.
    #[schema(example = "alice")]
    from: String,
    /// The receiver.
    #[schema(example = "bob")]
    to: String,
    /// The message's fingerprint (null for a message without QoS and without a chosen one).
    #[schema(example = "0b9c2f4e-6d8a-4c3b-9a57-3e1f2d4c5b6a")]
    fp: Option<String>,
    /// What became of it.
    outcome: C2cOutcome,
}

/// The results of a batch, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct C2cBatchResult {
    /// One per message.
    results: Vec<C2cResult>,
}

/// A message checked and ready to send.
struct Checked {
    from: UserId,
    message: Outgoing,
}

/// Checks a message as `ServerHandle::send_as` will (user ids, fingerprint), and that a
/// chosen fingerprint is not still in flight to the receiver: a second copy would not be
/// tracked, so its outcome would say nothing.
fn check(state: &HttpState, message: C2cMessage) -> Result<Checked, AppError> {
    let checked = Checked {
        from: UserId::from(message.from),
        message: Outgoing {
            to: UserId::from(message.to),
            content: message.content,
            typeu: message.typeu,
            qos: message.qos,
            fp: message.fp.map(Fingerprint::from),
        },
    };
    check_send_as(&checked.from, &checked.message).map_err(|e| AppError::Invalid(e.to_string()))?;
    let to = &checked.message.to;
    if let Some(fp) = checked
        .message
        .fp
        .as_ref()
        .filter(|fp| state.handle.is_in_flight(to, fp))
    {
        return Err(AppError::InFlight {
            to: to.as_str().to_owned(),
            fp: fp.as_str().to_owned(),
        });
    }
    Ok(checked)
}

/// When waiting for outcomes ends, if the caller waits.
fn deadline(wait: bool, timeout_ms: u64) -> Result<Option<Instant>, AppError> {
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(AppError::Invalid(format!(
            "timeoutMs must be 1 to {MAX_TIMEOUT_MS}"
        )));
    }
    Ok(wait.then(|| Instant::now() + Duration::from_millis(timeout_ms)))
}

/// Sends a checked message; `None` if the `before_c2c` hook refused it.
async fn attempt(
    state: &HttpState,
    checked: Checked,
    peer: SocketAddr,
) -> Result<Option<Sent>, AppError> {
    match state
        .handle
        .send_as_from(&checked.from, checked.message, peer)
        .await
    {
        Ok(sent) => Ok(Some(sent)),
        Err(SendAsError::Refused) => Ok(None),
        Err(e) => Err(AppError::Invalid(e.to_string())),
    }
}

/// The result of `message`, once known or `deadline` passed.
async fn settle(
    message: (String, String, bool, Option<Fingerprint>),
    sent: Option<Sent>,
    deadline: Option<Instant>,
) -> C2cResult {
    let (from, to, qos, chosen) = message;
    let Some(sent) = sent else {
        let fp = chosen.map(|fp| fp.as_str().to_owned());
        return C2cResult {
            from,
            to,
            fp,
            outcome: C2cOutcome::Refused,
        };
    };
    let fp = sent.fp.as_ref().map(|fp| fp.as_str().to_owned());
    let delivery = match (sent.settled(), deadline) {
        (Some(delivery), _) => Some(delivery),
        (None, None) => None,
        (None, Some(at)) => tokio::time::timeout_at(at, sent.outcome()).await.ok(),
    };
    let outcome = match delivery {
        None => C2cOutcome::Sent,
        // Without QoS, "delivered" only means handed over: no acknowledgement comes.
        Some(Delivery::Delivered) if !qos => C2cOutcome::Sent,
        Some(Delivery::Delivered) => C2cOutcome::Delivered,
        Some(Delivery::Stored) => C2cOutcome::Stored,
        Some(Delivery::Lost) => C2cOutcome::Lost,
    };
    C2cResult {
        from,
        to,
        fp,
        outcome,
    }
}

/// What a result repeats of its message.
fn described(message: &C2cMessage) -> (String, String, bool, Option<Fingerprint>) {
    (
        message.from.clone(),
        message.to.clone(),
        message.qos,
        message.fp.clone().map(Fingerprint::from),
    )
}

/// Send a message in a user's name (C2C).
///
/// The message takes exactly the path of one the sender's client sends: the `before_c2c`
/// hook (moderation) with the session's transport `http`, forwarding to the receiver's online
/// session with QoS and retransmission, and store and forward when the receiver cannot take
/// it. Every outcome is a 200.
#[utoipa::path(
    post,
    path = "/messages/c2c",
    tag = "messages",
    request_body = C2cRequest,
    responses(
        (status = 200, description = "The outcome", body = C2cResult),
        (status = 409, description = "A message with this fp still awaits the receiver's acknowledgement", body = ErrorBody),
        (status = 422, description = "A value is not acceptable (a reserved or overlong user id, an empty or overlong fp, timeoutMs out of range)", body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn send(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<C2cRequest>,
) -> Result<axum::Json<C2cResult>, AppError> {
    let deadline = deadline(request.wait, request.timeout_ms)?;
    let message = C2cMessage {
        from: request.from,
        to: request.to,
        content: request.content,
        typeu: request.typeu,
        qos: request.qos,
        fp: request.fp,
    };
    let described = described(&message);
    let sent = attempt(&state, check(&state, message)?, peer).await?;
    Ok(axum::Json(settle(described, sent, deadline).await))
}

/// Send many messages in users' names (C2C), with an outcome per message.
///
/// The messages are checked first (a bad one refuses the whole batch), then sent in order:
/// two for the same receiver reach it in the order given.
#[utoipa::path(
    post,
    path = "/messages/c2c/batch",
    tag = "messages",
    request_body = C2cBatchRequest,
    responses(
        (status = 200, description = "One result per message, in request order", body = C2cBatchResult),
        (status = 409, description = "A message's chosen fp still awaits its receiver's acknowledgement", body = ErrorBody),
        (status = 422, description = "A value is not acceptable (no or too many messages, a user id, a repeated fp for one receiver, timeoutMs)", body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn send_batch(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<C2cBatchRequest>,
) -> Result<axum::Json<C2cBatchResult>, AppError> {
    let deadline = deadline(request.wait, request.timeout_ms)?;
    if request.messages.is_empty() || request.messages.len() > MAX_BATCH {
        return Err(AppError::Invalid(format!(
            "messages holds {}; send 1 to {MAX_BATCH}",
            request.messages.len()
        )));
    }
    // Every message is checked before any is sent, so a bad one refuses the whole batch.
    let mut chosen = HashSet::new();
    let mut descriptions = Vec::with_capacity(request.messages.len());
    let mut batch = Vec::with_capacity(request.messages.len());
    for message in request.messages {
        if let Some(fp) = &message.fp
            && !chosen.insert((message.to.clone(), fp.clone()))
        {
            return Err(AppError::Invalid(format!(
                "fp {fp:?} appears twice for receiver {:?}",
                message.to
            )));
        }
        descriptions.push(described(&message));
        batch.push(check(&state, message)?);
    }
    // Concurrently, each started (and routed) before the next: messages for one receiver
    // reach it in order, and those for offline receivers share the store's group commits.
    let sent = join_all(
        batch
            .into_iter()
            .map(|checked| attempt(&state, checked, peer)),
    )
    .await;
    let mut settling = Vec::with_capacity(sent.len());
    for (described, sent) in descriptions.into_iter().zip(sent) {
        settling.push(settle(described, sent?, deadline));
    }
    let results = join_all(settling).await;
    Ok(axum::Json(C2cBatchResult { results }))
}
