//! The subscription of each user held here: a task per user that answers the requests on the
//! user's subject in the order they come (so a sender's messages keep their order), until the
//! user leaves this node.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::{Message, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use hongyan_shared::{Packet, UserId};
use tokio_util::sync::CancellationToken;

use super::shared::{Joined, Shared, unix_millis};
use super::subject;
use super::wire::{self, Op};
use crate::cluster::seam::{Claim, Handover};

/// How long a login waits for its subscription to reach NATS.
const SUBSCRIBED: Duration = Duration::from_secs(1);

/// Subscribes to `user`'s subject, unless already subscribed; returns once NATS has the
/// subscription (if it is reachable), so a request sent after the login finds it.
pub(super) async fn join(shared: &Arc<Shared>, user: &UserId) {
    let id = shared.next_subscription.fetch_add(1, Ordering::Relaxed);
    let stop = CancellationToken::new();
    {
        let mut users = shared.users();
        if users.contains_key(user) {
            return;
        }
        users.insert(
            user.clone(),
            Joined {
                id,
                stop: stop.clone(),
            },
        );
    }
    match shared.client.subscribe(subject::user(user)).await {
        Ok(subscriber) => {
            tokio::spawn(serve(shared.clone(), user.clone(), id, subscriber, stop));
        }
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe for a user; messages for them are stored");
            shared.forget(user, id);
            return;
        }
    }
    if shared.connected() {
        let _ = tokio::time::timeout(SUBSCRIBED, shared.client.flush()).await;
    }
}

/// Answers the requests for `user` until the user leaves (`stop`) or another node's login
/// takes them.
async fn serve(
    shared: Arc<Shared>,
    user: UserId,
    id: u64,
    mut subscriber: Subscriber,
    stop: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            request = subscriber.next() => match request {
                Some(request) => request,
                None => break,
            },
        };
        let Some(node) = shared.node() else {
            continue;
        };
        let headers = request.headers.as_ref();
        match Op::of(headers) {
            Some(Op::Deliver) => {
                let expired = wire::number(headers, wire::EXPIRES)
                    .is_some_and(|expires| unix_millis() > expires);
                let Ok(packet) = Packet::decode(&request.payload) else {
                    continue;
                };
                if expired {
                    // The asking node stopped waiting and kept the message itself.
                    tracing::debug!("late cluster delivery dropped; the sender's node kept it");
                    continue;
                }
                match node.deliver_here(&user, packet).await {
                    Handover::Done(remote) => {
                        answer(&shared, &request, wire::remote_word(remote)).await;
                    }
                    Handover::Waiting(outcome) => {
                        // Later requests for the user go on meanwhile, in order.
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            let word = wire::remote_word(outcome.await);
                            answer(&shared, &request, word).await;
                        });
                    }
                }
            }
            Some(Op::Claim) => {
                let requested = wire::number(headers, wire::FIRST_LOGIN_TIME).unwrap_or(0);
                let claim = node.claim_here(&user, requested);
                if claim == Claim::Granted && node.user_here(&user).is_none() {
                    // The user is the other node's now: stop answering for them before the
                    // answer lets that node subscribe, so no request reaches both.
                    shared.forget(&user, id);
                    let _ = subscriber.unsubscribe().await;
                    answer(&shared, &request, wire::claim_word(claim)).await;
                    return;
                }
                answer(&shared, &request, wire::claim_word(claim)).await;
            }
            Some(Op::Kick) => {
                let code = wire::number(headers, wire::CODE)
                    .and_then(|code| i32::try_from(code).ok())
                    .unwrap_or(hongyan_shared::codes::KICKOUT_ADMIN);
                let reason = std::str::from_utf8(&request.payload)
                    .ok()
                    .filter(|reason| !reason.is_empty());
                let kicked = node.kick_here(&user, code, reason);
                answer(
                    &shared,
                    &request,
                    if kicked { "kicked" } else { "not-here" },
                )
                .await;
            }
            Some(Op::User) => {
                let body =
                    serde_json::to_vec(&node.user_here(&user)).expect("an online user serialises");
                answer_bytes(&shared, &request, body.into()).await;
            }
            Some(Op::Stored) => {
                let user = user.clone();
                tokio::spawn(async move { node.stored_here(&user).await });
            }
            None => tracing::debug!("cluster request of an unknown kind ignored"),
        }
    }
    let _ = subscriber.unsubscribe().await;
}

async fn answer(shared: &Shared, request: &Message, word: &'static str) {
    answer_bytes(shared, request, Bytes::from_static(word.as_bytes())).await;
}

async fn answer_bytes(shared: &Shared, request: &Message, body: Bytes) {
    let Some(reply) = request.reply.clone() else {
        return;
    };
    if let Err(error) = shared.client.publish(reply, body).await {
        tracing::debug!(%error, "cannot answer a cluster request");
    }
}
