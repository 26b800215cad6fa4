//! The cluster seam (issue 14): how the core reaches users whose session is on another node.
//!
//! The core decides everything about a user it holds; for a user it does not hold it asks the
//! [`Cluster`] — deliver this message, grant this login, kick, who is online — where one node
//! used to conclude "not online here, so store it". A single node runs [`SingleNode`]: nobody
//! else holds anyone, so every answer is "not here" and the core behaves as it always did. A
//! cluster runs [`NatsCluster`]: per-user subjects on NATS core request/reply, answered by
//! the node that holds the user through the [`Node`] trait, which the core implements.
//!
//! # Layout
//! - `seam`: the [`Cluster`] and [`Node`] traits and what travels between nodes.
//! - `single`: [`SingleNode`], the in-process implementation for one node.
//! - `nats`: [`NatsCluster`], the implementation on NATS (connection, subscriptions per
//!   user, requests and their answers; the subjects and headers are in docs/PROTOCOL.md).

mod nats;
mod seam;
mod single;

pub use self::nats::{NatsCluster, NatsError};
pub use self::seam::{Claim, Cluster, Handover, Node, NodePage, NodeUser, Remote};
pub use self::single::SingleNode;
