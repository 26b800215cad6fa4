//! The seam itself: [`Cluster`] (what the core asks of the other nodes), [`Node`] (what it
//! answers them) and what travels between them.

use std::sync::Weak;

use async_trait::async_trait;
use bytes::Bytes;
use hongyan_shared::{Packet, UserId};
use serde::{Deserialize, Serialize};

/// What became of a message handed to another node for a user this node does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// No node holds a session of the user, or none could be asked (the cluster is
    /// unreachable, the holder did not answer in time): the caller keeps the message, as one
    /// node keeps one for an offline user.
    NotHere,
    /// A message without QoS was handed to the user's session on the node that holds it.
    Forwarded,
    /// A QoS message the client at the node that holds the user acknowledged.
    Delivered,
    /// A QoS message the node that holds the user stored (its client could not take it, or
    /// never acknowledged it): the sender may be acknowledged.
    Stored,
    /// A message the node that holds the user could neither hand over nor store: the sender
    /// is not acknowledged, and a QoS sender retransmits.
    Lost,
}

/// What a node did at once with a message another node handed it.
pub enum Handover {
    /// Its outcome is known.
    Done(Remote),
    /// Handed to the user's session with QoS: the outcome comes with the client's
    /// acknowledgement or the end of its retransmissions.
    Waiting(futures_util::future::BoxFuture<'static, Remote>),
}

/// A node's answer to a login elsewhere (§4.3 across nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// No node holds a newer instance: the login goes on (a node that held the user let its
    /// session go: kicked, or displaced without a kick when it is the same instance).
    Granted,
    /// A newer instance of the client is online on another node: this login is stale.
    Stale,
}

/// An online user as any node reports it (`GET /api/users` in a cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUser {
    /// The user id.
    pub user_id: String,
    /// The node that holds the session.
    pub node: String,
    /// The node's id for the session.
    pub session_id: String,
    /// `tcp`, `udp`, `ws` or `http`.
    pub transport: String,
    /// The client's address as the node sees it.
    pub peer_addr: String,
    /// When the session logged in, epoch milliseconds.
    pub since: i64,
    /// The `firstLoginTime` the session was answered with.
    pub first_login_time: i64,
}

/// One node's page of online users, and how many it holds in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePage {
    /// Its users after the asked-for id, in id order, at most the asked-for number.
    pub users: Vec<NodeUser>,
    /// Users online on that node.
    pub total: usize,
}

/// What the core answers for the users it holds, when another node asks (implemented by
/// [`Core`](crate::engine::Core)). A cluster implementation holds it weakly: the core owns the
/// cluster, not the other way round.
#[async_trait]
pub trait Node: Send + Sync {
    /// Delivers `packet` (a C2C or S2C data packet, its rules already applied by the node that
    /// accepted it) to `user`'s session here, by the QoS rules of a message accepted here:
    /// [`Remote::NotHere`] if this node does not hold the user.
    async fn deliver_here(&self, user: &UserId, packet: Packet) -> Handover;
    /// A login of `user` with the raw `firstLoginTime` `requested` on another node: the
    /// duplicate-login rule against the session here, if any (kicked, displaced or kept).
    fn claim_here(&self, user: &UserId, requested: i64) -> Claim;
    /// Kicks `user`'s session here with `code`; false if this node does not hold the user.
    fn kick_here(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool;
    /// Another node stored a message for `user`: a session here replays it now.
    async fn stored_here(&self, user: &UserId);
    /// The users online here after `after`, at most `limit`, and how many there are.
    fn page_here(&self, after: Option<&UserId>, limit: usize) -> NodePage;
    /// `user`'s session here, if any.
    fn user_here(&self, user: &UserId) -> Option<NodeUser>;
    /// The connection to the other nodes came back: every session here replays what other
    /// nodes stored for its user meanwhile.
    async fn reconnected(&self);
}

/// How the core reaches users on other nodes: the seam between one node and a cluster.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// This node's name (none for a single node).
    fn node_name(&self) -> Option<&str>;
    /// Gives the cluster the node it answers for (once, when the server starts).
    fn attach(&self, node: Weak<dyn Node>);
    /// Hands `packet` (encoded) to the node that holds `user`, if any. A QoS message's answer
    /// is its outcome there (the client's acknowledgement, stored, or lost), so what its
    /// sender hears holds whichever node fails later.
    async fn deliver(&self, user: &UserId, packet: Bytes) -> Remote;
    /// A login of `user` here, with the raw `firstLoginTime` `requested`: asks the node that
    /// holds the user to apply the duplicate-login rule.
    async fn claim(&self, user: &UserId, requested: i64) -> Claim;
    /// `user` is now online here: requests for them are answered here from now on.
    async fn joined(&self, user: &UserId);
    /// `user` went offline here.
    fn left(&self, user: &UserId);
    /// A message for `user` was stored here while they may be online elsewhere.
    fn stored(&self, user: &UserId);
    /// Kicks `user` on whichever node holds them; false if none does.
    async fn kick(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool;
    /// `user`'s session on another node, if any.
    async fn user(&self, user: &UserId) -> Option<NodeUser>;
    /// Every node's page of online users after `after` (this node's included), or `None` if
    /// the cluster cannot be asked (a single node; the cluster unreachable).
    async fn pages(&self, after: Option<&UserId>, limit: usize) -> Option<Vec<NodePage>>;
    /// Why the node cannot reach the others now, if it cannot (`/readyz` says degraded).
    fn degraded(&self) -> Option<String>;
}
