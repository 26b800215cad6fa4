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
    /// Stored messages are being replayed to the session: a new QoS message for the user is
    /// stored behind them rather than sent ahead of them. Read with the session in one lock,
    /// so a sender never sees the session without the flag it was registered with.
    pub(crate) replaying: bool,
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
    /// `firstLoginTime` the login was answered with, `since` when it logged in; `replaying`
    /// whether the session starts with a replay of stored messages.
    pub(crate) fn register(
        &self,
        user: &UserId,
        session: &SessionHandle,
        requested: i64,
        answered: i64,
        since: SystemTime,
        replaying: bool,
    ) -> Registration {
        let mut map = self.map();
        let online = Online {
            session: session.clone(),
            first_login_time: answered,
            since,
            replaying,
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

    /// The user's online session, and whether stored messages are being replayed to it.
    pub(crate) fn route(&self, user: &UserId) -> Option<(SessionHandle, bool)> {
        self.map()
            .get(user)
            .map(|o| (o.session.clone(), o.replaying))
    }

    /// Marks whether stored messages are being replayed to `user`'s online session, if it is
    /// still `session`; true if it was.
    pub(crate) fn set_replaying(&self, user: &UserId, session: SessionId, replaying: bool) -> bool {
        match self.map().get_mut(user) {
            Some(online) if online.session.info.id == session => {
                online.replaying = replaying;
                true
            }
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use hongyan_shared::Instant;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::pipe::PipeProperties;
    use crate::session::{Session, SessionLimits};

    const T0: i64 = 1_700_000_000_000;

    /// The handle of a fresh session `id` on `transport`.
    fn session(id: u64, transport: Transport) -> SessionHandle {
        let info = SessionInfo {
            id: SessionId(id),
            transport,
            peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
        };
        let limits = SessionLimits {
            outbox_capacity: 4,
            stall_limit: Duration::from_secs(10),
            idle_expiry: Duration::from_secs(20),
            login_timeout: Duration::from_secs(15),
        };
        let properties = PipeProperties::of(transport, 1024);
        let (session, _outbox) = Session::new(
            info,
            properties,
            limits,
            CancellationToken::new(),
            Instant::now(),
        );
        session.handle
    }

    fn alice() -> UserId {
        UserId::new("alice")
    }

    /// What a registration did, in a comparable form: `Registered(displaced id, kicked)`.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Registered(Option<(u64, bool)>),
        Stale,
    }

    fn register(
        registry: &Registry,
        session: &SessionHandle,
        requested: i64,
        answered: i64,
    ) -> Outcome {
        let since = crate::clock::system_time(answered);
        match registry.register(&alice(), session, requested, answered, since, false) {
            Registration::Registered { displaced } => {
                Outcome::Registered(displaced.map(|(old, kick)| (old.info.id.0, kick)))
            }
            Registration::Stale => Outcome::Stale,
        }
    }

    fn current(registry: &Registry) -> (u64, i64) {
        let info = registry.info(&alice()).expect("alice is online");
        (info.session.id.0, info.first_login_time)
    }

    #[test]
    fn a_new_user_is_registered_and_counted_by_transport() {
        let registry = Registry::default();
        let udp = session(1, Transport::Udp);
        assert_eq!(register(&registry, &udp, 0, T0), Outcome::Registered(None));
        assert_eq!(current(&registry), (1, T0));
        assert_eq!(
            registry.info(&alice()).unwrap().since,
            crate::clock::system_time(T0)
        );
        assert_eq!(registry.count_by_transport().udp, 1);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn the_same_session_logging_in_again_displaces_nothing() {
        let registry = Registry::default();
        let tcp = session(1, Transport::Tcp);
        register(&registry, &tcp, 0, T0);
        assert_eq!(register(&registry, &tcp, T0, T0), Outcome::Registered(None));
        assert_eq!(current(&registry), (1, T0));
        assert_eq!(registry.count_by_transport().tcp, 1);
    }

    #[test]
    fn another_session_without_a_first_login_time_kicks_the_old_one() {
        for requested in [0, -1] {
            let registry = Registry::default();
            register(&registry, &session(1, Transport::Tcp), 0, T0);
            assert_eq!(
                register(&registry, &session(2, Transport::Udp), requested, T0 + 5),
                Outcome::Registered(Some((1, true))),
                "requested {requested}"
            );
            assert_eq!(current(&registry), (2, T0 + 5));
            let counts = registry.count_by_transport();
            assert_eq!(
                (counts.tcp, counts.udp),
                (0, 1),
                "moved to the new transport"
            );
        }
    }

    #[test]
    fn a_later_first_login_time_is_a_newer_instance_that_kicks_the_old_one() {
        let registry = Registry::default();
        register(&registry, &session(1, Transport::Tcp), 0, T0);
        assert_eq!(
            register(&registry, &session(2, Transport::Tcp), T0 + 1, T0 + 1),
            Outcome::Registered(Some((1, true)))
        );
        assert_eq!(current(&registry), (2, T0 + 1));
    }

    #[test]
    fn an_equal_first_login_time_is_the_same_instance_which_displaces_without_a_kick() {
        let registry = Registry::default();
        register(&registry, &session(1, Transport::Udp), 0, T0);
        assert_eq!(
            register(&registry, &session(2, Transport::Udp), T0, T0),
            Outcome::Registered(Some((1, false)))
        );
        assert_eq!(current(&registry), (2, T0));
    }

    #[test]
    fn an_earlier_first_login_time_is_a_stale_instance_that_is_refused() {
        let registry = Registry::default();
        register(&registry, &session(1, Transport::Tcp), T0 + 10, T0 + 10);
        assert_eq!(
            register(&registry, &session(2, Transport::Tcp), T0, T0),
            Outcome::Stale
        );
        assert_eq!(current(&registry), (1, T0 + 10), "the newer instance stays");
        assert_eq!(registry.count_by_transport().tcp, 1);
    }

    #[test]
    fn only_the_current_session_takes_its_user_offline() {
        let registry = Registry::default();
        register(&registry, &session(1, Transport::Tcp), 0, T0);
        register(&registry, &session(2, Transport::Tcp), T0, T0);
        assert!(
            !registry.remove_if_current(&alice(), SessionId(1)),
            "displaced"
        );
        assert_eq!(current(&registry), (2, T0));
        assert!(registry.remove_if_current(&alice(), SessionId(2)));
        assert!(registry.info(&alice()).is_none());
        assert_eq!(registry.count_by_transport().tcp, 0);
    }
}
