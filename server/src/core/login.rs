//! Login (§4.2) and the duplicate-login rules (§4.3).

use hongyan_shared::{Kickout, LoginInfo, LoginResponse, Packet, Transport, UserId, codes};

use super::{Core, Flow};
use crate::gateway::Link;
use crate::hooks::LoginRequest;
use crate::metrics::{KickReason, LoginResult};
use crate::registry::Registration;
use crate::session::{Outbound, Session, epoch_millis};

impl Core {
    pub(super) async fn login<L: Link>(
        &self,
        session: &mut Session,
        link: &mut L,
        packet: Packet,
    ) -> Flow {
        let udp = L::TRANSPORT == Transport::Udp;
        // §4.2 step 1: TCP/WS close without a reply, UDP ignores.
        let unusable = if udp { Flow::Continue } else { Flow::Close };
        let Some(data) = packet.data_content.as_deref() else {
            tracing::debug!("login without payload");
            return unusable;
        };
        let info = match LoginInfo::decode(data) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "malformed login payload");
                return Flow::Close;
            }
        };
        let Some(user) = info.login_user_id.clone().filter(UserId::is_valid_login) else {
            tracing::debug!(user = ?info.login_user_id, "login without a usable user id");
            return unusable;
        };

        // §4.2 step 3: a session re-logging in as the same user skips verification. Logging in
        // as somebody else first logs the old user out (the reference silently rebinds).
        let verified = session.user.as_ref() == Some(&user);
        if !verified {
            self.on_close(session);
            let code = self
                .hooks
                .verify_login(LoginRequest {
                    user_id: &user,
                    token: info.login_token.as_deref(),
                    extra: info.extra.as_deref(),
                    session: session.info,
                })
                .await;
            if code != codes::OK {
                self.metrics.login(LoginResult::Refused);
                tracing::info!(%user, code, "login refused");
                let refusal = Packet::login_response(UserId::UNSET, LoginResponse::refused(code));
                let flow = self.reply(link, refusal).await;
                return if udp {
                    flow
                } else {
                    let _ = link.flush().await;
                    Flow::Close
                };
            }
        }

        // §4.2 step 5: answer first, register only once the answer is written.
        let answered = if info.first_login_time > 0 {
            info.first_login_time
        } else {
            epoch_millis()
        };
        let response = Packet::login_response(
            user.as_str(),
            LoginResponse {
                code: codes::OK,
                first_login_time: answered,
            },
        );
        if self.reply(link, response).await == Flow::Close || link.flush().await.is_err() {
            return Flow::Close;
        }

        match self
            .registry
            .register(&user, &session.handle, info.first_login_time, answered)
        {
            Registration::Registered { displaced } => {
                self.metrics.login(LoginResult::Accepted);
                if let Some((old, kick)) = displaced {
                    if kick {
                        self.metrics.kickout(KickReason::DuplicateLogin);
                        tracing::debug!(old = %old.info.id, "kicking the previous session");
                        let body = self.encode(&mut Self::duplicate_kickout(&user));
                        let told = old.push(Outbound::Kick {
                            body,
                            code: codes::KICKOUT_DUPLICATE_LOGIN,
                        });
                        if told.is_err() && old.info.transport != Transport::Udp {
                            // Its queue is full: it cannot be told, but must not stay
                            // connected as the user (a UDP pseudo-session is left, §4.3).
                            old.close();
                        }
                    } else {
                        tracing::debug!(old = %old.info.id, "same client instance reconnected; previous session left to expire");
                    }
                }
                tracing::Span::current().record("user", user.as_str());
                session.first_login_time = answered;
                session.user = Some(user.clone());
                self.hooks
                    .on_login(&user, info.extra.as_deref(), session.info);
                Flow::Continue
            }
            Registration::Stale => {
                self.metrics.login(LoginResult::Stale);
                self.metrics.kickout(KickReason::DuplicateLogin);
                tracing::info!(%user, "stale client instance refused");
                let flow = self.reply(link, Self::duplicate_kickout(&user)).await;
                if udp {
                    flow
                } else {
                    let _ = link.flush().await;
                    Flow::Close
                }
            }
        }
    }

    fn duplicate_kickout(user: &UserId) -> Packet {
        Packet::kickout(
            user.as_str(),
            &Kickout {
                code: codes::KICKOUT_DUPLICATE_LOGIN,
                reason: None,
            },
        )
    }
}
