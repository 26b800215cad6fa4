//! The dispatch table (§4.1) and the small handlers: keepalive (§5), echo, the 301 reply to
//! packets that need a login (§4.5), and close handling (§4.4).

use bytes::Bytes;
use hongyan_shared::{ErrorResponse, Packet, PacketType, Transport, UserId, codes};

use super::{Core, Flow};
use crate::gateway::Link;
use crate::session::{Outbound, Session};

/// The smallest 301 a Java client understands (missing keys read as zero values), for UDP
/// peers whose request was smaller than the full reply.
const COMPACT_301: &[u8] =
    br#"{"type":52,"dataContent":"{\"errorCode\":301}","from":"0","to":"-1"}"#;

impl Core {
    /// Handles one packet body received on `session`.
    pub(crate) async fn on_packet<L: Link>(
        &self,
        session: &mut Session,
        link: &mut L,
        body: &[u8],
    ) -> Flow {
        let packet = match Packet::decode(body) {
            Ok(packet) => packet,
            Err(e) => {
                self.metrics.packet_in(None, body.len());
                tracing::debug!(error = %e, "malformed packet");
                return Flow::Close;
            }
        };
        self.metrics.packet_in(Some(packet.kind), body.len());
        match packet.kind {
            PacketType::Login => self.login(session, link, packet).await,
            PacketType::Logout => {
                tracing::debug!("logout");
                Flow::Close
            }
            PacketType::Echo => self.echo(session, link, packet).await,
            PacketType::KeepAlive | PacketType::CommonData | PacketType::Ack => {
                let Some(user) = session.user.clone() else {
                    return self.reject_unauthenticated(link, &packet, body.len()).await;
                };
                match packet.kind {
                    PacketType::KeepAlive => self.keep_alive(session, link, &user).await,
                    PacketType::CommonData => self.data(session, link, packet, user).await,
                    _ => {
                        self.ack(&user, &packet);
                        Flow::Continue
                    }
                }
            }
            other => {
                tracing::debug!(code = other.code(), "ignoring packet of unknown type");
                Flow::Continue
            }
        }
    }

    /// Sends a server-made packet on this session's own link; a packet over the transport's
    /// limit is dropped rather than truncated.
    pub(crate) async fn reply<L: Link>(&self, link: &mut L, mut packet: Packet) -> Flow {
        let body = self.encode(&mut packet);
        self.reply_bytes(link, body).await
    }

    pub(crate) async fn reply_bytes<L: Link>(&self, link: &mut L, body: Bytes) -> Flow {
        let max = self.config.max_outbound(L::TRANSPORT);
        if body.len() > max {
            tracing::warn!(
                len = body.len(),
                max,
                "reply exceeds the client's limit; not sent"
            );
            return Flow::Continue;
        }
        match link.send(body).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    /// §4.5: a packet that needs a login on a session without one gets a 301 that embeds it;
    /// TCP and WebSocket sessions are then closed, UDP pseudo-sessions kept.
    async fn reject_unauthenticated<L: Link>(
        &self,
        link: &mut L,
        packet: &Packet,
        request_len: usize,
    ) -> Flow {
        let error = Packet::error(&ErrorResponse {
            error_code: codes::RESPONSE_FOR_UNLOGIN,
            error_msg: Some(packet.to_json()),
        });
        let mut error = error;
        let mut body = self.encode(&mut error);
        let limit = if L::TRANSPORT == Transport::Udp {
            // Never amplify: an unauthenticated UDP address may be spoofed, so the reply is
            // never larger than the datagram that caused it.
            request_len.min(self.config.max_outbound(L::TRANSPORT))
        } else {
            self.config.max_outbound(L::TRANSPORT)
        };
        if body.len() > limit {
            body = Bytes::from_static(COMPACT_301);
        }
        if body.len() <= limit {
            tracing::debug!("packet before login: 301");
            if self.reply_bytes(link, body).await == Flow::Close {
                return Flow::Close;
            }
        }
        if L::TRANSPORT == Transport::Udp {
            Flow::Continue
        } else {
            let _ = link.flush().await;
            Flow::Close
        }
    }

    /// §4.1, §5: a keepalive is answered `to` the session's user, on that user's current
    /// online session (which the reference also does when it is not this one).
    async fn keep_alive<L: Link>(&self, session: &Session, link: &mut L, user: &UserId) -> Flow {
        let mut response = Packet::keep_alive_response(user.as_str());
        let body = self.encode(&mut response);
        match self.registry.get(user) {
            Some(online) if online.info.id == session.info.id => self.reply_bytes(link, body).await,
            Some(online) => {
                let _ = online.push(Outbound::Packet(body));
                Flow::Continue
            }
            None => Flow::Continue,
        }
    }

    /// Type 5 comes back as type 53 with every other field unchanged. Unauthenticated UDP
    /// addresses get no echo: the reply would be larger than the request (amplification).
    async fn echo<L: Link>(&self, session: &Session, link: &mut L, mut packet: Packet) -> Flow {
        if L::TRANSPORT == Transport::Udp && session.user.is_none() {
            tracing::debug!("echo from an unauthenticated UDP address ignored");
            return Flow::Continue;
        }
        packet.kind = PacketType::EchoResponse;
        self.reply(link, packet).await
    }

    /// §4.4: if the session is its user's online session, the user goes offline.
    pub(crate) fn on_close(&self, session: &mut Session) {
        if let Some(user) = session.user.take()
            && self.registry.remove_if_current(&user, session.info.id)
        {
            self.hooks.on_logout(&user, session.info, session.kick_code);
        }
    }
}
