//! The online map (§4.3, §7.4): which session each user is online on, and the duplicate-login
//! decision that keeps it consistent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use hongyan_shared::{Transport, UserId};

use crate::hooks::{SessionId, SessionInfo};
use crate::metrics::PerTransport;
use crate::session::SessionHandle;

/// A user's online session as the registry records it.
#[derive(Debug, Clone)]
pub(crate) struct Online {
    pub(crate) session: SessionHandle,
    /// The `firstLoginTime` the session was answered with.
    pub(crate) first_login_time: i64,
    /// When the session logged in.
    pub(crate) since: SystemTime,
}

/// What registering a login did.
#[derive(Debug)]
pub(crate) enum Registration {
    /// The session is now the user's online session. `displaced` is the previous one, with
    /// whether it must be kicked (it is not when the same client instance reconnected).
    Registered {
        displaced: Option<(SessionHandle, bool)>,
    },
    /// A newer instance is online; this stale one is refused and must be kicked (§4.3).
    Stale,
}

/// Public view of an online user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnlineInfo {
    /// The session.
    pub session: SessionInfo,
    /// The `firstLoginTime` the session was answered with.
    pub first_login_time: i64,
    /// When the session logged in.
    pub since: SystemTime,
}

/// `user id → online session`, behind a short-lived lock that is never held across `.await`.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    online: Mutex<HashMap<UserId, Online>>,
    /// Online users per transport; changed only under the map's lock, so it always matches
    /// the map.
    by_transport: PerTransport<AtomicUsize>,
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Online>> {
        self.online
            .lock()
            .expect("registry lock is never held across a panic-prone section")
    }

    /// Registers `session` as `user`'s online session by the rules of §4.3, comparing the
    /// login's raw `firstLoginTime` (`requested`) with the one stored for the current session:
    /// a login without one (≤ 0) or with a later one is a new client instance, which kicks the
    /// current session; an equal one is the same instance reconnecting, which displaces it
    /// without a kick; an earlier one is a stale instance, refused. `answered` is the
    /// `firstLoginTime` the login was answered with, `since` when it logged in.
    pub(crate) fn register(
        &self,
        user: &UserId,
        session: &SessionHandle,
        requested: i64,
        answered: i64,
        since: SystemTime,
    ) -> Registration {
        let mut map = self.map();
        let online = Online {
            session: session.clone(),
            first_login_time: answered,
            since,
        };
        match map.get_mut(user) {
            Some(old) if old.session.info.id != session.info.id => {
                let kick_old = requested <= 0 || requested > old.first_login_time;
                if requested > 0 && requested < old.first_login_time {
                    return Registration::Stale;
                }
                self.count(old.session.info.transport)
                    .fetch_sub(1, Ordering::Relaxed);
                self.count(session.info.transport)
                    .fetch_add(1, Ordering::Relaxed);
                let old = std::mem::replace(old, online);
                Registration::Registered {
                    displaced: Some((old.session, kick_old)),
                }
            }
            Some(same) => {
                *same = online;
                Registration::Registered { displaced: None }
            }
            None => {
                self.count(session.info.transport)
                    .fetch_add(1, Ordering::Relaxed);
                map.insert(user.clone(), online);
                Registration::Registered { displaced: None }
            }
        }
    }

    /// Removes `user` if `session` is still its online session; true if it was.
    pub(crate) fn remove_if_current(&self, user: &UserId, session: SessionId) -> bool {
        let mut map = self.map();
        if map.get(user).is_some_and(|o| o.session.info.id == session) {
            if let Some(old) = map.remove(user) {
                self.count(old.session.info.transport)
                    .fetch_sub(1, Ordering::Relaxed);
            }
            true
        } else {
            false
        }
    }

    /// The user's online session.
    pub(crate) fn get(&self, user: &UserId) -> Option<SessionHandle> {
        self.map().get(user).map(|o| o.session.clone())
    }

    /// The user's online record.
    pub(crate) fn info(&self, user: &UserId) -> Option<OnlineInfo> {
        self.map().get(user).map(|o| OnlineInfo {
            session: o.session.info,
            first_login_time: o.first_login_time,
            since: o.since,
        })
    }

    /// Online users.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// Online users per transport.
    pub(crate) fn count_by_transport(&self) -> PerTransport<usize> {
        self.by_transport.map(|n| n.load(Ordering::Relaxed))
    }

    fn count(&self, transport: Transport) -> &AtomicUsize {
        self.by_transport.get(transport)
    }

    /// A page of online users in id order: those after `after`, at most `limit`.
    pub(crate) fn page(&self, after: Option<&UserId>, limit: usize) -> Vec<(UserId, OnlineInfo)> {
        let map = self.map();
        let mut users: Vec<(&UserId, &Online)> = map
            .iter()
            .filter(|(u, _)| after.is_none_or(|a| *u > a))
            .collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        users
            .into_iter()
            .take(limit)
            .map(|(u, o)| {
                (
                    u.clone(),
                    OnlineInfo {
                        session: o.session.info,
                        first_login_time: o.first_login_time,
                        since: o.since,
                    },
                )
            })
            .collect()
    }
}
