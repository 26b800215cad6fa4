//! What other tasks queued for a session: packets to write, and kickouts, which end a
//! connection but not a connection-less pseudo-session (§4.3, §7.3).

use hongyan_shared::codes;

use super::reply::end_unless_connectionless;
use super::state::{Core, Flow};
use crate::pipe::Pipe;
use crate::session::{Outbound, OutboundKind, Session};

impl Core {
    /// Writes `out`, taken from the session's outbox, on its pipe, unless it was queued for an
    /// earlier login of the session (another user's packets never reach this one's client).
    /// A kickout is written and flushed; a connection then closes, its kick code reported by
    /// `on_logout` if it still was its user's online session. A UDP pseudo-session stays
    /// (§4.3), but an administrator's or application's kick logs its user out at once
    /// instead of at idle expiry.
    pub async fn handle_outbound<P: Pipe>(
        &self,
        session: &mut Session,
        pipe: &mut P,
        out: Outbound,
    ) -> Flow {
        if !session.is_for_this_login(&out) {
            // Queued for a user the session no longer is (§4.3: it logged out, or in as
            // somebody else): the QoS machinery retransmits it to that user's session, or
            // stores it, as for any packet that was not acknowledged.
            tracing::debug!("packet for the session's previous login dropped");
            return Flow::Continue;
        }
        match out.kind {
            OutboundKind::Packet(body) => match pipe.send(body).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Close,
            },
            OutboundKind::Kick { body, code } => {
                let sent = pipe.send(body).await.is_ok() && pipe.flush().await.is_ok();
                tracing::debug!(code, "kicked out");
                if !session.properties.connectionless {
                    session.kick_code = Some(code);
                } else if code != codes::KICKOUT_DUPLICATE_LOGIN {
                    // The pseudo-session stays; a duplicate login has already replaced it in
                    // the registry, any other kick takes its user offline now.
                    session.kick_code = Some(code);
                    self.close_session(session);
                }
                let flow = if sent { Flow::Continue } else { Flow::Close };
                end_unless_connectionless(session, pipe, flow).await
            }
        }
    }
}
