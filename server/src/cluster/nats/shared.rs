//! What the cluster's tasks share: the NATS client, the node answered for, the subscription
//! of each user held here.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::Client;
use async_nats::connection::State;
use hongyan_shared::UserId;
use tokio_util::sync::CancellationToken;

use crate::cluster::seam::Node;

/// What the cluster's tasks share.
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) name: String,
    pub(super) url: String,
    /// The node this one answers for, set once by [`Cluster::attach`].
    pub(super) node: Arc<OnceLock<Weak<dyn Node>>>,
    /// The subscription of each user held here.
    pub(super) users: Mutex<HashMap<UserId, Joined>>,
    pub(super) next_subscription: AtomicU64,
}

/// A user's subscription: which one (a user may leave and come back while the old one
/// winds down) and how to end it.
pub(super) struct Joined {
    pub(super) id: u64,
    pub(super) stop: CancellationToken,
}

impl Shared {
    pub(super) fn node(&self) -> Option<Arc<dyn Node>> {
        self.node.get()?.upgrade()
    }

    pub(super) fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub(super) fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Joined>> {
        self.users
            .lock()
            .expect("the subscription map's lock is never held across a panic-prone section")
    }

    /// Forgets `user`'s subscription `id` (not a newer one).
    pub(super) fn forget(&self, user: &UserId, id: u64) {
        let mut users = self.users();
        if users.get(user).is_some_and(|joined| joined.id == id) {
            users.remove(user);
        }
    }
}

/// Epoch milliseconds now: deadlines between processes are wall-clock times.
pub(super) fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
