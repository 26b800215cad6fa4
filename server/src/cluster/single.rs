//! [`SingleNode`]: the cluster of one node, where nobody else holds anyone.

use std::sync::Weak;

use async_trait::async_trait;
use bytes::Bytes;
use hongyan_shared::UserId;

use super::seam::{Claim, Cluster, Node, NodePage, NodeUser, Remote};

/// The cluster of one: every user not online here is offline, every login is granted, and
/// nothing needs connecting. What a server runs without the `cluster` setting.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleNode;

#[async_trait]
impl Cluster for SingleNode {
    fn node_name(&self) -> Option<&str> {
        None
    }

    fn attach(&self, _node: Weak<dyn Node>) {}

    async fn deliver(&self, _user: &UserId, _packet: Bytes) -> Remote {
        Remote::NotHere
    }

    async fn claim(&self, _user: &UserId, _requested: i64) -> Claim {
        Claim::Granted
    }

    async fn joined(&self, _user: &UserId) {}

    fn left(&self, _user: &UserId) {}

    fn stored(&self, _user: &UserId) {}

    async fn kick(&self, _user: &UserId, _code: i32, _reason: Option<&str>) -> bool {
        false
    }

    async fn user(&self, _user: &UserId) -> Option<NodeUser> {
        None
    }

    async fn pages(&self, _after: Option<&UserId>, _limit: usize) -> Option<Vec<NodePage>> {
        None
    }

    fn degraded(&self) -> Option<String> {
        None
    }
}
