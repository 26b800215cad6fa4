//! What this node answers for the users it holds when another node of a cluster asks
//! ([`Node`]): deliver a message, a login elsewhere (§4.3 across nodes), a kick, a replay
//! after another node stored a message, who is online.

use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use hongyan_shared::{Packet, Transport, UserId};
use tokio::sync::oneshot;

use super::keep::Route;
use super::s2c::Delivery;
use super::state::Core;
use crate::cluster::{Claim, Handover, Node, NodePage, NodeUser, Remote};
use crate::metrics::KickReason;
use crate::registry::OnlineInfo;

#[async_trait]
impl Node for Core {
    async fn deliver_here(&self, user: &UserId, mut packet: Packet) -> Handover {
        if self.registry.get(user).is_none() {
            return Handover::Done(Remote::NotHere);
        }
        let now = self.clock.now();
        let body = self.encode_vec(&mut packet);
        let Some(fp) = packet.qos_fingerprint().cloned() else {
            let Some(online) = self.session_of(user) else {
                return Handover::Done(Remote::NotHere);
            };
            return Handover::Done(match self.forward(&online, user, None, body, None, now) {
                Ok(()) => Remote::Forwarded,
                Err(_) => Remote::Lost,
            });
        };
        let ticket = match self.route(user) {
            Route::Live(online) => {
                let (waiter, outcome) = oneshot::channel();
                match self.forward(&online, user, Some((&fp, Some(waiter))), body, None, now) {
                    Ok(()) => {
                        return Handover::Waiting(Box::pin(async move {
                            match outcome.await {
                                Ok(Delivery::Delivered) => Remote::Delivered,
                                Ok(Delivery::Stored) => Remote::Stored,
                                Ok(Delivery::Lost) | Err(_) => Remote::Lost,
                            }
                        }));
                    }
                    Err(error) => match self.store_instead(user, &error) {
                        Some(ticket) => ticket,
                        None => return Handover::Done(Remote::Lost),
                    },
                }
            }
            Route::Store { ticket, .. } => ticket,
            Route::Offline => return Handover::Done(Remote::NotHere),
        };
        Handover::Done(
            match self.put(ticket, self.stored_form(&packet, user, &fp)).await {
                Ok(_) => Remote::Stored,
                Err(_) => Remote::Lost,
            },
        )
    }

    fn claim_here(&self, user: &UserId, requested: i64) -> Claim {
        let Some(online) = self.registry.info(user) else {
            return Claim::Granted;
        };
        // §4.3, as `Registry::register` decides for two sessions of one node.
        if requested > 0 && requested < online.first_login_time {
            return Claim::Stale;
        }
        let kick = requested <= 0 || requested > online.first_login_time;
        let Some((old, _)) = self.registry.remove(user) else {
            return Claim::Granted;
        };
        self.stop_replay(user, old.info.id);
        if kick {
            self.metrics.kickout(KickReason::duplicate_login);
            tracing::debug!(old = %old.info.id, "a login on another node kicks this session");
            self.kick_duplicate(user, &old);
        } else {
            tracing::debug!(old = %old.info.id, "same client instance logged in on another node; this session is left to expire");
        }
        Claim::Granted
    }

    fn kick_here(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool {
        self.kick_local(user, code, reason)
    }

    async fn stored_here(&self, user: &UserId) {
        self.after_put(user, true).await;
    }

    fn page_here(&self, after: Option<&UserId>, limit: usize) -> NodePage {
        NodePage {
            users: self
                .registry
                .page(after, limit)
                .iter()
                .map(|(user, info)| self.node_user(user, info))
                .collect(),
            total: self.registry.len(),
        }
    }

    fn user_here(&self, user: &UserId) -> Option<NodeUser> {
        let info = self.registry.info(user)?;
        Some(self.node_user(user, &info))
    }

    async fn reconnected(&self) {
        for user in self.registry.users() {
            self.after_put(&user, true).await;
        }
    }
}

impl Core {
    /// `user`'s session here as another node reports it.
    pub(crate) fn node_user(&self, user: &UserId, info: &OnlineInfo) -> NodeUser {
        NodeUser {
            user_id: user.as_str().to_owned(),
            node: self.cluster.node_name().unwrap_or_default().to_owned(),
            session_id: info.session.id.to_string(),
            transport: match info.session.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
                Transport::WebSocket => "ws",
                Transport::Http => "http",
            }
            .to_owned(),
            peer_addr: info.session.peer.to_string(),
            since: info
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            first_login_time: info.first_login_time,
        }
    }
}
