//! Pushing server → client messages (S2C, `from "0"`), to one user or to many, optionally
//! waiting for the outcome.

use std::collections::HashSet;

use axum::extract::State;
use futures_util::future::join_all;
use hongyan_shared::{Fingerprint, Outgoing, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::Json;
use crate::api::defaults::{unset_typeu, yes};
use crate::handle::{Delivery, Sent};
use crate::http::state::HttpState;
use crate::session::PushError;

/// Most receivers in one batch.
pub(crate) const MAX_BATCH: usize = 1000;

/// A message for one user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PushRequest {
    /// The receiver's user id.
    #[schema(example = "alice")]
    to: String,
    /// The message (`dataContent`), often JSON of the application's own.
    #[schema(example = "Your order has shipped")]
    content: String,
    /// The application's message type (`typeu`); -1 when unset.
    #[serde(default = "unset_typeu")]
    #[schema(default = -1, example = 1)]
    typeu: i32,
    /// Ask the client to acknowledge, with retransmission (MobileIMSDK's default).
    #[serde(default = "yes")]
    #[schema(default = true)]
    qos: bool,
    /// A fingerprint of your choosing, e.g. your own message id; a fresh UUID when absent.
    /// The receiving client drops a message whose fingerprint it has already seen.
    fp: Option<String>,
    /// Answer only once the outcome is known: `delivered` when the client acknowledges;
    /// when the retransmissions run out (about 7–12 s with the default schedule), `stored`
    /// if the message store keeps it, else `lost`.
    #[serde(default)]
    wait: bool,
}

/// One message for many users; each gets its own fingerprint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BatchPushRequest {
    /// The receivers: distinct user ids, at most 1000.
    #[schema(example = json!(["alice", "bob"]))]
    to: Vec<String>,
    /// The message (`dataContent`).
    content: String,
    /// The application's message type (`typeu`); -1 when unset.
    #[serde(default = "unset_typeu")]
    #[schema(default = -1)]
    typeu: i32,
    /// Ask each client to acknowledge, with retransmission.
    #[serde(default = "yes")]
    #[schema(default = true)]
    qos: bool,
    /// Answer only once every outcome is known.
    #[serde(default)]
    wait: bool,
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Outcome {
    /// Handed to the user's session; the outcome was not awaited (or the message has no QoS,
    /// so no acknowledgement will come).
    Sent,
    /// The client acknowledged it.
    Delivered,
    /// The user could not take it now (offline, or the retransmissions ran out): hongyan's
    /// message store keeps it and replays it when the user next logs in. QoS messages only,
    /// with a store.
    Stored,
    /// The client did not acknowledge it after the last retransmission, and it was not
    /// stored.
    Lost,
    /// The user is not online, is being disconnected, or cannot take more now (the server
    /// holds as much as it may for them), and the message was not kept: it has no QoS, the
    /// server has no store, or the store refused it (the user's limit, its size, the store
    /// failing). Store it yourself if it matters.
    Offline,
    /// Too large for the receiver's transport (UDP carries at most 1024 bytes by default).
    TooLarge,
}

/// The result for one receiver.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushResult {
    /// The receiver.
    #[schema(example = "alice")]
    to: String,
    /// The message's fingerprint (null for a message without QoS and without a chosen one,
    /// and when it was not sent).
    #[schema(example = "0b9c2f4e-6d8a-4c3b-9a57-3e1f2d4c5b6a")]
    fp: Option<String>,
    /// What became of it.
    outcome: Outcome,
}

/// The results of a batch, in the order of the request's `to`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchPushResult {
    /// One per receiver.
    results: Vec<PushResult>,
}

fn receiver(id: &str) -> Result<UserId, AppError> {
    let user = UserId::from(id);
    if user.is_valid_login() {
        Ok(user)
    } else {
        Err(AppError::Invalid(format!(
            "{id:?} is not a user id (it must not be empty, \"0\" (the server) or \"-1\")"
        )))
    }
}

/// A push handed over, still to be awaited, or settled already.
enum Pending {
    Waiting(Sent),
    Settled(Outcome),
}

/// What a send attempt means for the caller.
fn classify(result: Result<Sent, PushError>, qos: bool) -> (Option<Fingerprint>, Pending) {
    match result {
        Ok(sent) if sent.settled() == Some(Delivery::Stored) => {
            (sent.fp, Pending::Settled(Outcome::Stored))
        }
        Ok(sent) if qos => (sent.fp.clone(), Pending::Waiting(sent)),
        Ok(sent) => (sent.fp, Pending::Settled(Outcome::Sent)),
        Err(
            PushError::Offline
            | PushError::SlowConsumer
            | PushError::Overloaded
            | PushError::NotStored,
        ) => (None, Pending::Settled(Outcome::Offline)),
        Err(PushError::TooLarge { .. }) => (None, Pending::Settled(Outcome::TooLarge)),
    }
}

async fn settle(pending: Pending, wait: bool) -> Outcome {
    match pending {
        Pending::Waiting(sent) if wait => match sent.outcome().await {
            Delivery::Delivered => Outcome::Delivered,
            Delivery::Stored => Outcome::Stored,
            Delivery::Lost => Outcome::Lost,
        },
        Pending::Waiting(_) => Outcome::Sent,
        Pending::Settled(outcome) => outcome,
    }
}

/// Push a message to one user.
///
/// An offline receiver is an outcome, not an error: the answer is 200. With hongyan's message
/// store a QoS message for an offline user is stored (`stored`) and replayed at their next
/// login; otherwise the outcome is `offline` and the application decides whether to keep it.
#[utoipa::path(
    post,
    path = "/messages",
    tag = "messages",
    request_body = PushRequest,
    responses(
        (status = 200, description = "The outcome", body = PushResult),
        (status = 409, description = "A message with this fp still awaits the receiver's acknowledgement", body = ErrorBody),
        (status = 413, description = "Larger than the receiver's transport carries", body = ErrorBody),
        (status = 422, description = "A value is not acceptable", body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn push(
    State(state): State<HttpState>,
    Json(request): Json<PushRequest>,
) -> Result<axum::Json<PushResult>, AppError> {
    let to = receiver(&request.to)?;
    let fp = match request.fp {
        Some(fp) if fp.is_empty() => {
            return Err(AppError::Invalid(
                "fp must not be empty; leave it out to get a fresh one".into(),
            ));
        }
        fp => fp.map(Fingerprint::from),
    };
    if let Some(fp) = fp.as_ref().filter(|fp| state.handle.is_in_flight(&to, fp)) {
        return Err(AppError::InFlight {
            to: request.to,
            fp: fp.as_str().to_owned(),
        });
    }
    let push = Outgoing {
        to,
        content: request.content,
        typeu: request.typeu,
        qos: request.qos,
        fp,
    };
    let (fp, pending) = match state.handle.send(push).await {
        Err(PushError::TooLarge { len, max }) => return Err(AppError::TooLarge { len, max }),
        result => classify(result, request.qos),
    };
    let outcome = settle(pending, request.wait).await;
    Ok(axum::Json(PushResult {
        to: request.to,
        fp: fp.map(|fp| fp.as_str().to_owned()),
        outcome,
    }))
}

/// Push one message to many users, with an outcome per user.
#[utoipa::path(
    post,
    path = "/messages/batch",
    tag = "messages",
    request_body = BatchPushRequest,
    responses(
        (status = 200, description = "One result per receiver, in request order", body = BatchPushResult),
        (status = 422, description = "A value is not acceptable (empty, too many or repeated receivers)", body = ErrorBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn push_batch(
    State(state): State<HttpState>,
    Json(request): Json<BatchPushRequest>,
) -> Result<axum::Json<BatchPushResult>, AppError> {
    if request.to.is_empty() {
        return Err(AppError::Invalid("to must name at least one user".into()));
    }
    if request.to.len() > MAX_BATCH {
        return Err(AppError::Invalid(format!(
            "to names {} users; at most {MAX_BATCH} per batch",
            request.to.len()
        )));
    }
    let mut seen = HashSet::with_capacity(request.to.len());
    let mut receivers = Vec::with_capacity(request.to.len());
    for id in &request.to {
        if !seen.insert(id.as_str()) {
            return Err(AppError::Invalid(format!("{id:?} appears twice in to")));
        }
        receivers.push(receiver(id)?);
    }
    // Concurrently: pushes to offline users wait for the store, and share its group commits.
    let sends: Vec<_> = join_all(receivers.into_iter().map(|to| {
        let push = Outgoing {
            to,
            content: request.content.clone(),
            typeu: request.typeu,
            qos: request.qos,
            fp: None,
        };
        let handle = &state.handle;
        async move { classify(handle.send(push).await, request.qos) }
    }))
    .await;
    let fps: Vec<_> = sends.iter().map(|(fp, _)| fp.clone()).collect();
    let outcomes = join_all(
        sends
            .into_iter()
            .map(|(_, pending)| settle(pending, request.wait)),
    )
    .await;
    let results = request
        .to
        .into_iter()
        .zip(fps)
        .zip(outcomes)
        .map(|((to, fp), outcome)| PushResult {
            to,
            fp: fp.map(|fp| fp.as_str().to_owned()),
            outcome,
        })
        .collect();
    Ok(axum::Json(BatchPushResult { results }))
}
