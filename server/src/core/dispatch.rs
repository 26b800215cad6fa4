//! The dispatch table (§4.1) and the small handlers: keepalive (§5), echo, logout, and the 301
//! reply to packets that need a login (§4.5). hongyan's conversation-sync requests (§9.4)
//! need a login too.

use std::sync::Arc;

use hongyan_shared::{ErrorResponse, Instant, Packet, PacketType, UserId, codes};

use super::reply::{Allowance, end_unless_connectionless};
use super::state::{Core, Flow};
use crate::log_text::Untrusted;
use crate::metrics::Refusal;
use crate::pipe::Pipe;
use crate::session::{Outbound, Session};

impl Core {
    /// Handles one packet body that arrived at `now` on `session`, answering on `pipe`.
    /// Every packet, whatever it is, counts as traffic for the idle expiry.
    pub async fn handle_packet<P: Pipe>(
        self: &Arc<Self>,
        session: &mut Session,
        pipe: &mut P,
        body: &[u8],
        now: Instant,
    ) -> Flow {
        session.last_inbound = now;
        let packet = match Packet::decode(body) {
            Ok(packet) => packet,
            Err(e) => {
                self.metrics.packet_in(None, body.len());
                tracing::debug!(error = %Untrusted(&e.to_string()), "malformed packet");
                return Flow::Close;
            }
        };
        self.metrics.packet_in(Some(packet.kind), body.len());
        match packet.kind {
            PacketType::Login => self.login(session, pipe, packet, body.len()).await,
            PacketType::Logout => {
                tracing::debug!("logout");
                Flow::Close
            }
            PacketType::Echo => self.echo(session, pipe, packet).await,
            PacketType::KeepAlive
            | PacketType::CommonData
            | PacketType::Ack
            | PacketType::ConversationsRequest
            | PacketType::HistoryRequest
            | PacketType::ReadRequest => {
                let Some(user) = session.user.clone() else {
                    return self
                        .reject_unauthenticated(session, pipe, &packet, body.len())
                        .await;
                };
                match packet.kind {
                    PacketType::KeepAlive => self.keep_alive(session, pipe, &user).await,
                    PacketType::CommonData => {
                        let ip = session.info().peer.ip();
                        if let Err(next) = self.limits.message(session.rate.as_ref(), ip) {
                            if let Some(rate) = &mut session.rate {
                                rate.pause_until(Some(next));
                            }
                            return self.over_message_rate(session, pipe, &packet).await;
                        }
                        self.data(session, pipe, packet, user, now).await
                    }
                    PacketType::Ack => {
                        self.ack(&user, &packet).await;
                        Flow::Continue
                    }
                    _ => {
                        // Each costs a store read: it counts against the message rate. One
                        // over it is dropped (its client asks again), and the session waits.
                        let ip = session.info().peer.ip();
                        if let Err(next) = self.limits.message(session.rate.as_ref(), ip) {
                            if let Some(rate) = &mut session.rate {
                                rate.pause_until(Some(next));
                            }
                            self.metrics.refused(Refusal::message_rate);
                            return Flow::Continue;
                        }
                        // Boxed: a rare path whose store reads would otherwise grow every
                        // connection's task.
                        Box::pin(self.sync_request(session, pipe, packet, &user)).await
                    }
                }
            }
            other => {
                tracing::debug!(code = other.code(), "ignoring packet of unknown type");
                Flow::Continue
            }
        }
    }

    /// §4.5: a packet that needs a login on a session without one gets a 301 that embeds it,
    /// or the compact 301 without it where the full one is too large for the pipe or, for a
    /// peer that may be spoofed, larger than the packet; a connection is then closed, a
    /// connection-less pseudo-session kept.
    async fn reject_unauthenticated<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        packet: &Packet,
        request_len: usize,
    ) -> Flow {
        let error = |error_msg| {
            Packet::error(&ErrorResponse {
                error_code: codes::RESPONSE_FOR_UNLOGIN,
                error_msg,
            })
        };
        let mut allowance = Allowance::of(session, request_len);
        let full = error(Some(packet.to_json()));
        let answered = self
            .reply_within(session, pipe, full, |_| error(None), &mut allowance)
            .await;
        if answered.is_some() {
            tracing::debug!("packet before login: 301");
        }
        end_unless_connectionless(session, pipe, answered.unwrap_or(Flow::Continue)).await
    }

    /// §8.1 item 18: a data message over its session's rate is neither handled nor
    /// acknowledged, so its QoS sender retransmits it on its own schedule (and reports it lost
    /// if the session stays over its rate); the session is told with error 1000 carrying the
    /// message's fingerprint, which MobileIMSDK clients pass to `onErrorResponse`. The
    /// session goes on, but is not read again until its budget allows the next message
    /// ([`poll_read`](Self::poll_read)).
    async fn over_message_rate<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        packet: &Packet,
    ) -> Flow {
        self.metrics.refused(Refusal::message_rate);
        tracing::debug!(fp = ?packet.fp.as_ref().map(|fp| Untrusted(fp.as_str())), "message over the session's rate refused");
        let error = Packet::error(&ErrorResponse {
            error_code: codes::RATE_LIMITED,
            error_msg: packet.fp.as_ref().map(|fp| fp.as_str().to_owned()),
        });
        self.reply(session, pipe, error).await
    }

    /// §4.1, §5: a keepalive is answered `to` the session's user, on that user's current
    /// online session (which the reference also does when it is not this one).
    async fn keep_alive<P: Pipe>(&self, session: &Session, pipe: &mut P, user: &UserId) -> Flow {
        let mut response = Packet::keep_alive_response(user.as_str());
        let body = self.encode(&mut response);
        match self.session_of(user) {
            Some(online) if online.info.id == session.info().id => {
                self.reply_bytes(session, pipe, body).await
            }
            Some(online) => {
                let _ = online.push(Outbound::packet(body), &*self.clock);
                Flow::Continue
            }
            None => Flow::Continue,
        }
    }

    /// Type 5 comes back as type 53 with every other field unchanged. A peer that may be
    /// spoofed gets no echo before it logs in: the reply would be larger than the request.
    async fn echo<P: Pipe>(&self, session: &Session, pipe: &mut P, mut packet: Packet) -> Flow {
        if session.properties.spoofable && session.user.is_none() {
            tracing::debug!("echo from an unauthenticated, spoofable peer ignored");
            return Flow::Continue;
        }
        packet.kind = PacketType::EchoResponse;
        self.reply(session, pipe, packet).await
    }
}
