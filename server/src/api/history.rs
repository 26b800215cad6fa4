//! Conversation history (issue 12) for the application's backend: a user's conversations, and
//! a conversation's messages by seq, a page at a time (§9.4 describes the numbering).

use axum::extract::State;
use hongyan_shared::UserId;
use hongyan_shared::history::HistoryRange;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppError, ErrorBody};
use super::extract::{Path, Query};
use crate::handle::HistoryError;
use crate::http::state::HttpState;

/// Page size when the query does not say.
const DEFAULT_LIMIT: usize = 100;
/// Largest page.
const MAX_LIMIT: usize = 1000;

impl From<HistoryError> for AppError {
    fn from(error: HistoryError) -> Self {
        match error {
            HistoryError::Off => AppError::NoHistory,
            HistoryError::Store(error) => AppError::Store(error),
        }
    }
}

/// The page size a query asked for, checked.
fn limit(asked: Option<usize>) -> Result<usize, AppError> {
    let limit = asked.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::Invalid(format!(
            "limit must be 1 to {MAX_LIMIT}, not {limit}"
        )))
    }
}

/// Which page of a user's conversations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConversationsQuery {
    /// Start after this peer id: the `next` of the previous page.
    after: Option<String>,
    /// Conversations per page, 1 to 1000.
    #[param(default = 100, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// One conversation of the user, as the history keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationItem {
    /// The other member: a user id, or `"0"` for the server's pushes to the user.
    #[schema(example = "bob")]
    peer: String,
    /// The conversation's newest seq (its messages are numbered from 1).
    #[schema(example = 42)]
    newest: u64,
    /// The user's read position: every seq up to it is read (sending moves it).
    #[schema(example = 40)]
    read: u64,
    /// Messages after the read position.
    #[schema(example = 2)]
    unread: u64,
    /// When the newest message was accepted, in milliseconds since the Unix epoch.
    #[schema(example = 1_700_000_000_000_i64)]
    at: i64,
}

/// One page of a user's conversations, in peer id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationPage {
    /// The conversations on this page.
    conversations: Vec<ConversationItem>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<String>,
}

/// List a user's conversations with their newest seq, read position and unread count.
#[utoipa::path(
    get,
    path = "/users/{userId}/conversations",
    tag = "history",
    params(("userId" = String, Path, description = "The user id"), ConversationsQuery),
    responses(
        (status = 200, description = "One page of conversations", body = ConversationPage),
        (status = 409, description = "The server keeps no history (store = off, or history_retention = 0)", body = ErrorBody),
        (status = 422, description = "limit is out of range", body = ErrorBody),
        (status = 503, description = "The message store is failing", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn conversations(
    State(state): State<HttpState>,
    Path(user): Path<String>,
    Query(query): Query<ConversationsQuery>,
) -> Result<axum::Json<ConversationPage>, AppError> {
    let limit = limit(query.limit)?;
    let after = query.after.map(UserId::from);
    let (page, more) = state
        .handle
        .conversations(&UserId::from(user.as_str()), after.as_ref(), limit)
        .await?;
    let next = more
        .then(|| page.last().map(|c| c.peer.as_str().to_owned()))
        .flatten();
    Ok(axum::Json(ConversationPage {
        conversations: page
            .into_iter()
            .map(|c| ConversationItem {
                peer: c.peer.as_str().to_owned(),
                newest: c.newest,
                read: c.read,
                unread: c.unread,
                at: c.at,
            })
            .collect(),
        next,
    }))
}

/// Which messages of a conversation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessagesQuery {
    /// Messages with a seq greater than this, oldest first (reading forward: pass the last
    /// seq of the previous page). Takes precedence over `before`.
    after: Option<u64>,
    /// The newest messages with a seq below this (reading back: pass the first seq of the
    /// previous page). With neither, the newest messages.
    before: Option<u64>,
    /// Messages per page, 1 to 1000.
    #[param(default = 100, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// A message of a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryItem {
    /// Its place in the conversation: from 1, gapless, in the order the server accepted them.
    #[schema(example = 41)]
    seq: u64,
    /// The sender (`"0"`: the server).
    #[schema(example = "alice")]
    from: String,
    /// Its fingerprint, when it had one (QoS messages).
    #[schema(example = "a0f6c5de-8d7b-4a70-9a39-6a2f2f3bb9c1")]
    fp: Option<String>,
    /// The application's message type (MobileIMSDK `typeu`).
    #[schema(example = -1)]
    typeu: i32,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    #[schema(example = 1_700_000_000_000_i64)]
    at: i64,
    /// The message body (MobileIMSDK `dataContent`).
    #[schema(example = "hello")]
    content: String,
}

/// One page of a conversation's messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessagePage {
    /// The conversation's newest seq.
    #[schema(example = 42)]
    newest: u64,
    /// The messages; a seq missing between two of them is gone from the history.
    messages: Vec<HistoryItem>,
    /// More messages lie beyond this page in the direction asked (after its last message
    /// with `after`, before its first otherwise).
    more: bool,
}

/// Read a conversation's messages by seq, a page at a time.
///
/// The conversation is the one between the user and the peer (`"0"`: the server's pushes to
/// the user). Messages older than `history_retention` are gone.
#[utoipa::path(
    get,
    path = "/users/{userId}/conversations/{peer}/messages",
    tag = "history",
    params(
        ("userId" = String, Path, description = "The user id"),
        ("peer" = String, Path, description = "The other member: a user id, or 0 for the server's pushes"),
        MessagesQuery,
    ),
    responses(
        (status = 200, description = "One page of messages", body = MessagePage),
        (status = 409, description = "The server keeps no history (store = off, or history_retention = 0)", body = ErrorBody),
        (status = 422, description = "limit is out of range", body = ErrorBody),
        (status = 503, description = "The message store is failing", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub(crate) async fn messages(
    State(state): State<HttpState>,
    Path((user, peer)): Path<(String, String)>,
    Query(query): Query<MessagesQuery>,
) -> Result<axum::Json<MessagePage>, AppError> {
    let limit = limit(query.limit)?;
    let range = match query.after {
        Some(after) => HistoryRange::After(after),
        None => HistoryRange::Before(query.before),
    };
    let page = state
        .handle
        .history(
            &UserId::from(user.as_str()),
            &UserId::from(peer.as_str()),
            range,
            limit,
        )
        .await?;
    Ok(axum::Json(MessagePage {
        newest: page.newest,
        messages: page
            .entries
            .into_iter()
            .map(|e| HistoryItem {
                seq: e.seq,
                from: e.sender.as_str().to_owned(),
                fp: e.fp.map(|fp| fp.as_str().to_owned()),
                typeu: e.typeu,
                at: e.accepted_at,
                content: e.content,
            })
            .collect(),
        more: page.more,
    }))
}
