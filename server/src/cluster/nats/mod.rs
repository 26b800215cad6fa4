//! [`NatsCluster`]: the cluster on NATS core (request/reply, no JetStream).
//!
//! Every node that holds a user's session subscribes to that user's subject for as long as
//! the session lives ([`users`]); a node asks about a user it does not hold by a request on
//! that subject, which the holder answers. "No responders" means nobody holds the user. The
//! connection reconnects by itself with back-off; meanwhile every request answers "not here"
//! at once (so messages are stored, as for an offline user), logins are granted, and
//! [`Cluster::degraded`] says why. When it is back, every local session replays what other
//! nodes stored for its user meanwhile.
//!
//! # Layout
//! - `subject`: the subjects, with user ids encoded so that any id is one safe token.
//! - `wire`: the headers and answers of each request.
//! - `shared`: what the cluster's tasks share.
//! - `users`: the subscription of each user held here, and how its requests are answered.

mod shared;
mod subject;
mod users;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, Request, RequestErrorKind};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use hongyan_shared::UserId;
use serde::{Deserialize, Serialize};

use self::shared::{Shared, unix_millis};
use self::wire::Op;
use crate::cluster::seam::{Claim, Cluster, Node, NodePage, NodeUser, Remote};

/// How long a node waits for another's answer before it goes on without (a hung peer): a
/// message is then kept here, a login granted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `deliver` may take: a QoS message is answered with its outcome, the client's
/// acknowledgement (a round trip) or, when it cannot take it, a store write. Past it the asking
/// node keeps the message itself (the store takes a fingerprint once per receiver, so a copy
/// the holder stores later is not kept twice), and the holder drops it unsent if it only sees
/// it then (`Hongyan-Expires`). It bounds how long a hung holder holds up a sender.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node collects the other nodes' pages of online users.
const GATHER: Duration = Duration::from_millis(300);
/// Longest pause between two attempts to reach NATS.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why the cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The `cluster` setting is no NATS address.
    #[error("cannot use the cluster address {url:?}: {source}")]
    Connect {
        /// The setting.
        url: String,
        /// What NATS's client said.
        source: async_nats::ConnectError,
    },
}

/// The cluster on NATS core: a subscription per user held here, a request on a user's
/// subject for a user held elsewhere ("no responders": nobody holds them). See
/// [`crate::cluster`] and docs/PROTOCOL.md, "Cluster".
pub struct NatsCluster {
    shared: Arc<Shared>,
}

/// What a node asks every node for a page of online users.
#[derive(Debug, Serialize, Deserialize)]
struct PageRequest {
    after: Option<String>,
    limit: usize,
}

impl NatsCluster {
    /// Connects as node `name` to the NATS server(s) at `url` (`nats://host:port`, several
    /// separated by commas). Returns at once: the connection is made, and remade after a loss,
    /// in the background, with back-off.
    pub async fn connect(url: &str, name: &str) -> Result<Self, NatsError> {
        let node: Arc<OnceLock<Weak<dyn Node>>> = Arc::new(OnceLock::new());
        let on_event = node.clone();
        let log_url = url.to_owned();
        let client = ConnectOptions::new()
            .name(format!("hongyan {name}"))
            .retry_on_initial_connect()
            .ping_interval(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                let exp = u32::try_from(attempts.min(6)).unwrap_or(6);
                (Duration::from_millis(100) * 2u32.pow(exp)).min(MAX_BACKOFF)
            })
            .event_callback(move |event| {
                let node = on_event.clone();
                let url = log_url.clone();
                async move {
                    match event {
                        Event::Connected => {
                            tracing::info!(%url, "cluster connected");
                            if let Some(node) = node.get().and_then(Weak::upgrade) {
                                // Off the client's event task: it replays from the store.
                                tokio::spawn(async move { node.reconnected().await });
                            }
                        }
                        Event::Disconnected => {
                            tracing::warn!(%url, "cluster unreachable; serving local users, storing the rest")
                        }
                        other => tracing::debug!(%url, event = %other, "cluster event"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|source| NatsError::Connect {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                name: name.to_owned(),
                url: url.to_owned(),
                node,
                users: Mutex::new(HashMap::new()),
                next_subscription: AtomicU64::new(1),
            }),
        })
    }

    /// A request on `user`'s subject; `None` when nobody answered (no responders, no answer
    /// in time, or the cluster unreachable).
    async fn ask(
        &self,
        user: &UserId,
        headers: async_nats::HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Option<Bytes> {
        let shared = &self.shared;
        if !shared.connected() {
            return None;
        }
        let request = Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(timeout));
        match shared
            .client
            .send_request(subject::user(user), request)
            .await
        {
            Ok(answer) => Some(answer.payload),
            Err(error) => {
                match error.kind() {
                    RequestErrorKind::NoResponders => {}
                    RequestErrorKind::TimedOut => {
                        tracing::warn!("a node did not answer in time; going on without it")
                    }
                    _ => tracing::debug!(%error, "cluster request failed"),
                }
                None
            }
        }
    }
}

#[async_trait]
impl Cluster for NatsCluster {
    fn node_name(&self) -> Option<&str> {
        Some(&self.shared.name)
    }

    fn attach(&self, node: Weak<dyn Node>) {
        if self.shared.node.set(node).is_err() {
            return;
        }
        tokio::spawn(serve_nodes(self.shared.clone()));
    }

    async fn deliver(&self, user: &UserId, packet: Bytes) -> Remote {
        let mut headers = Op::Deliver.headers();
        let expires = unix_millis()
            .saturating_add(i64::try_from(DELIVER_TIMEOUT.as_millis()).unwrap_or(i64::MAX));
        headers.insert(wire::EXPIRES, expires.to_string());
        match self.ask(user, headers, packet, DELIVER_TIMEOUT).await {
            Some(word) => wire::remote_of(&word),
            None => Remote::NotHere,
        }
    }

    async fn claim(&self, user: &UserId, requested: i64) -> Claim {
        let mut headers = Op::Claim.headers();
        headers.insert(wire::FIRST_LOGIN_TIME, requested.to_string());
        match self.ask(user, headers, Bytes::new(), REQUEST_TIMEOUT).await {
            Some(word) => wire::claim_of(&word),
            None => Claim::Granted,
        }
    }

    async fn joined(&self, user: &UserId) {
        users::join(&self.shared, user).await;
    }

    fn left(&self, user: &UserId) {
        if let Some(joined) = self.shared.users().remove(user) {
            joined.stop.cancel();
        }
    }

    fn stored(&self, user: &UserId) {
        let shared = &self.shared;
        if !shared.connected() {
            return;
        }
        let client = shared.client.clone();
        let subject = subject::user(user);
        tokio::spawn(async move {
            if let Err(error) = client
                .publish_with_headers(subject, Op::Stored.headers(), Bytes::new())
                .await
            {
                tracing::debug!(%error, "cannot tell the cluster about a stored message");
            }
        });
    }

    async fn kick(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool {
        let mut headers = Op::Kick.headers();
        headers.insert(wire::CODE, code.to_string());
        let body = Bytes::copy_from_slice(reason.unwrap_or_default().as_bytes());
        self.ask(user, headers, body, REQUEST_TIMEOUT)
            .await
            .is_some_and(|word| &word[..] == b"kicked")
    }

    async fn user(&self, user: &UserId) -> Option<NodeUser> {
        let answer = self
            .ask(user, Op::User.headers(), Bytes::new(), REQUEST_TIMEOUT)
            .await?;
        serde_json::from_slice(&answer).ok()
    }

    async fn pages(&self, after: Option<&UserId>, limit: usize) -> Option<Vec<NodePage>> {
        let shared = &self.shared;
        if !shared.connected() {
            return None;
        }
        let request = PageRequest {
            after: after.map(|user| user.as_str().to_owned()),
            limit,
        };
        let body = serde_json::to_vec(&request).expect("a page request serialises");
        let inbox = shared.client.new_inbox();
        let mut answers = shared.client.subscribe(inbox.clone()).await.ok()?;
        shared
            .client
            .publish_with_reply(subject::NODES_USERS, inbox, body.into())
            .await
            .ok()?;
        let mut pages = Vec::new();
        let deadline = tokio::time::Instant::now() + GATHER;
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await {
            if let Ok(page) = serde_json::from_slice(&answer.payload) {
                pages.push(page);
            }
        }
        Some(pages)
    }

    fn degraded(&self) -> Option<String> {
        (!self.shared.connected())
            .then(|| format!("cluster (NATS at {}) unreachable", self.shared.url))
    }
}

/// Answers the requests every node gets (who is online here), for as long as the client
/// lives.
async fn serve_nodes(shared: Arc<Shared>) {
    let mut requests = match shared.client.subscribe(subject::NODES_USERS).await {
        Ok(requests) => requests,
        Err(error) => {
            tracing::error!(%error, "cannot subscribe to the cluster's requests");
            return;
        }
    };
    while let Some(request) = requests.next().await {
        let (Some(reply), Some(node)) = (request.reply, shared.node()) else {
            continue;
        };
        let Ok(asked) = serde_json::from_slice::<PageRequest>(&request.payload) else {
            continue;
        };
        let after = asked.after.map(UserId::from);
        let page = node.page_here(after.as_ref(), asked.limit);
        let body = serde_json::to_vec(&page).expect("a page serialises");
        if let Err(error) = shared.client.publish(reply, body.into()).await {
            tracing::debug!(%error, "cannot answer a cluster request");
        }
    }
}
