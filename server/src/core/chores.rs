//! The message store's background work, apart from any session: removing acknowledged
//! messages (batched, so receivers never wait for a commit), sweeping expired ones (reported
//! through the `on_expired` hook), and pumping replays that stalled. Deterministic like the
//! retransmission tick: [`Core::poll_store_timeout`] says when, [`Core::handle_store_timeout`]
//! does it; in a server, one task drives them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use hongyan_shared::{Instant, Packet};
use hongyan_store::StoreError;
use tokio_util::sync::CancellationToken;

use super::keep::replay_packet;
use super::state::Core;
use super::store_link::SWEEP_BATCH;
use crate::metrics::StoreOp;

/// How long after a failed removal the store chores try again.
const REMOVAL_RETRY: Duration = Duration::from_secs(1);
/// How long a stalled replay waits before it is pumped again.
const STALL_RETRY: Duration = Duration::from_secs(1);

impl Core {
    /// When [`handle_store_timeout`](Self::handle_store_timeout) next has work: now while
    /// acknowledged messages await removal, a moment after a replay stalled or a removal
    /// failed, and the next expiry sweep. `None` without a store.
    pub fn poll_store_timeout(&self) -> Option<Instant> {
        let link = self.store.as_ref()?;
        let removals =
            (!link.acked.is_empty()).then(|| link.lock_retry().unwrap_or_else(|| self.clock.now()));
        let stall = link.backlogs.first_stall().map(|at| at + STALL_RETRY);
        let sweep = *link.lock_sweep();
        [removals, stall, sweep].into_iter().flatten().min()
    }

    /// Does the store chores due at `now`: removes acknowledged messages, pumps stalled
    /// replays, sweeps expired messages. One caller at a time.
    pub async fn handle_store_timeout(&self, now: Instant) {
        let Some(link) = &self.store else {
            return;
        };
        if !link.acked.is_empty() && link.lock_retry().is_none_or(|at| at <= now) {
            self.remove_acknowledged(now).await;
        }
        for user in link.backlogs.stalled(now, STALL_RETRY) {
            self.pump(&user).await;
        }
        let due = link.lock_sweep().is_some_and(|at| at <= now);
        if due {
            self.sweep_expired().await;
            *link.lock_sweep() = link.sweep_interval().map(|every| now + every);
        }
    }

    /// Removes every acknowledged stored message from the store, many receivers' removals
    /// sharing one group commit; what fails is tried again a moment later.
    pub(crate) async fn remove_acknowledged(&self, now: Instant) {
        let Some(link) = &self.store else {
            return;
        };
        let batches = link.acked.snapshot();
        let removals = batches.iter().map(|(user, ids)| {
            link.call(&self.metrics, StoreOp::remove, link.store.remove(user, ids))
        });
        let mut failed = false;
        for ((user, ids), result) in batches.iter().zip(join_all(removals).await) {
            match result {
                Ok(_) => link.acked.removed(user, ids),
                Err(_) => failed = true,
            }
        }
        *link.lock_retry() = failed.then(|| now + REMOVAL_RETRY);
    }

    /// Removes the messages that outlived `store_ttl_secs` and reports them through the
    /// `on_expired` hook, a batch at a time.
    async fn sweep_expired(&self) {
        let Some(link) = &self.store else {
            return;
        };
        loop {
            let expire = link.store.expire(self.clock.unix_millis(), SWEEP_BATCH);
            let Ok(expired) = link.call(&self.metrics, StoreOp::expire, expire).await else {
                return;
            };
            let more = expired.len() >= SWEEP_BATCH;
            if !expired.is_empty() {
                let packets: Vec<Packet> = expired.iter().map(replay_packet).collect();
                self.hooks.on_expired(&packets);
            }
            if !more {
                return;
            }
        }
    }

    /// Whether the store can take messages now, by a real write through its queue (for
    /// `/readyz`). `Ok` without a store.
    pub(crate) async fn store_health(&self) -> Result<(), StoreError> {
        let Some(link) = &self.store else {
            return Ok(());
        };
        link.call(&self.metrics, StoreOp::health, link.store.health())
            .await
    }
}

/// Drives the store chores until shutdown. (What sessions acknowledge while they close is
/// removed by [`Bound::serve`](crate::Bound::serve) once they are gone.)
pub(crate) async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let Some(link) = &core.store else {
        return;
    };
    loop {
        let next = core.poll_store_timeout();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = link.acked.wake.notified() => {}
            () = sleep => {}
        }
        core.handle_store_timeout(core.clock.now()).await;
    }
}
