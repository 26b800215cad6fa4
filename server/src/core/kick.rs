//! Kickouts sent to a session from elsewhere: a newer login of its user (§4.3), here or on
//! another node, and an administrator's or the application's kick (§7.3).

use hongyan_shared::{Kickout, Packet, UserId, codes};

use super::state::Core;
use crate::metrics::KickReason;
use crate::session::{Outbound, SessionHandle};

impl Core {
    /// Tells `old`, a session of `user` a newer login displaced, that it is kicked (code 1).
    pub(super) fn kick_duplicate(&self, user: &UserId, old: &SessionHandle) {
        let body = self.encode(&mut Self::duplicate_kickout(user));
        let kick = Outbound::kick(body, codes::KICKOUT_DUPLICATE_LOGIN);
        if old.push(kick, &*self.clock).is_err() && !old.connectionless {
            // Its queue is full: it cannot be told, but must not stay connected as the user
            // (a UDP pseudo-session is left, §4.3).
            old.close();
        }
    }

    /// Kicks `user`'s session on this node with `code`; false if it holds none.
    pub(crate) fn kick_local(&self, user: &UserId, code: i32, reason: Option<&str>) -> bool {
        let Some(online) = self.session_of(user) else {
            return false;
        };
        let mut packet = Packet::kickout(
            user.as_str(),
            &Kickout {
                code,
                reason: reason.map(str::to_owned),
            },
        );
        let body = self.encode(&mut packet);
        self.metrics.kickout(if code == codes::KICKOUT_ADMIN {
            KickReason::admin
        } else {
            KickReason::application
        });
        if online
            .push(Outbound::kick(body, code), &*self.clock)
            .is_err()
        {
            online.close();
        }
        true
    }

    pub(super) fn duplicate_kickout(user: &UserId) -> Packet {
        Packet::kickout(
            user.as_str(),
            &Kickout {
                code: codes::KICKOUT_DUPLICATE_LOGIN,
                reason: None,
            },
        )
    }
}
