//! Login (§4.2) and the duplicate-login rules (§4.3).

use hongyan_shared::{Kickout, LoginInfo, LoginResponse, Packet, UserId, codes};

use super::reply::end_unless_connectionless;
use super::state::{Core, Flow};
use crate::clock::system_time;
use crate::config::MAX_USER_ID_BYTES;
use crate::hooks::LoginRequest;
use crate::log_limit::LogLimit;
use crate::log_text::Untrusted;
use crate::metrics::{KickReason, LoginResult, Refusal};
use crate::pipe::Pipe;
use crate::registry::Registration;
use crate::session::{Outbound, Session};

static REFUSED: LogLimit = LogLimit::info("login refused");
static STALE: LogLimit = LogLimit::info("stale client instance refused");

impl Core {
    pub(super) async fn login<P: Pipe>(
        &self,
        session: &mut Session,
        pipe: &mut P,
        packet: Packet,
    ) -> Flow {
        // §4.2 step 1: a connection closes without a reply, a pseudo-session ignores it.
        let Some(data) = packet.data_content.as_deref() else {
            tracing::debug!("login without payload");
            return end_unless_connectionless(session, pipe, Flow::Continue).await;
        };
        let info = match LoginInfo::decode(data) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %Untrusted(&e.to_string()), "malformed login payload");
                return Flow::Close;
            }
        };
        let Some(user) = info.login_user_id.clone().filter(UserId::is_valid_login) else {
            tracing::debug!(user = ?info.login_user_id.as_ref().map(|u| Untrusted(u.as_str())), "login without a usable user id");
            return end_unless_connectionless(session, pipe, Flow::Continue).await;
        };
        if user.as_str().len() > MAX_USER_ID_BYTES {
            // Hardening: treated like a login without a user id, as the reserved ones are.
            self.metrics.refused(Refusal::user_id_too_long);
            tracing::debug!(len = user.as_str().len(), "login with an overlong user id");
            return end_unless_connectionless(session, pipe, Flow::Continue).await;
        }

        // §4.2 step 3: a session re-logging in as the same user skips verification. Logging in
        // as somebody else first logs the old user out (the reference silently rebinds).
        let verified = session.user.as_ref() == Some(&user);
        if !verified {
            self.close_session(session);
            let code = self
                .hooks
                .verify_login(LoginRequest {
                    user_id: &user,
                    token: info.login_token.as_deref(),
                    extra: info.extra.as_deref(),
                    session: session.info(),
                })
                .await;
            if code != codes::OK {
                self.metrics.login(LoginResult::refused);
                if REFUSED.allow() {
                    tracing::info!(user = %Untrusted(user.as_str()), code, "login refused");
                }
                let refusal = Packet::login_response(UserId::UNSET, LoginResponse::refused(code));
                let flow = self.reply(session, pipe, refusal).await;
                return end_unless_connectionless(session, pipe, flow).await;
            }
        }

        // §4.2 step 5: answer first, register only once the answer is written. Hardening: a
        // `firstLoginTime` after the server's clock cannot have been answered yet and counts
        // as now, so a client cannot pin its user id against later instances (§4.3).
        let now_millis = self.clock.unix_millis();
        let requested = info.first_login_time.min(now_millis);
        let answered = if requested > 0 { requested } else { now_millis };
        let response = Packet::login_response(
            user.as_str(),
            LoginResponse {
                code: codes::OK,
                first_login_time: answered,
            },
        );
        if self.reply(session, pipe, response).await == Flow::Close || pipe.flush().await.is_err() {
            return Flow::Close;
        }

        let since = system_time(now_millis);
        match self
            .registry
            .register(&user, &session.handle, requested, answered, since)
        {
            Registration::Registered { displaced } => {
                self.metrics.login(LoginResult::accepted);
                if let Some((old, kick)) = displaced {
                    if kick {
                        self.metrics.kickout(KickReason::duplicate_login);
                        tracing::debug!(old = %old.info.id, "kicking the previous session");
                        let body = self.encode(&mut Self::duplicate_kickout(&user));
                        let kick = Outbound::kick(body, codes::KICKOUT_DUPLICATE_LOGIN);
                        let told = old.push(kick, &*self.clock);
                        if told.is_err() && !old.connectionless {
                            // Its queue is full: it cannot be told, but must not stay
                            // connected as the user (a UDP pseudo-session is left, §4.3).
                            old.close();
                        }
                    } else {
                        tracing::debug!(old = %old.info.id, "same client instance reconnected; previous session left to expire");
                    }
                }
                tracing::Span::current()
                    .record("user", tracing::field::display(Untrusted(user.as_str())));
                session.first_login_time = answered;
                session.user = Some(user.clone());
                session.login_deadline = None;
                self.hooks
                    .on_login(&user, info.extra.as_deref(), session.info());
                Flow::Continue
            }
            Registration::Stale => {
                self.metrics.login(LoginResult::stale);
                self.metrics.kickout(KickReason::duplicate_login);
                if STALE.allow() {
                    tracing::info!(user = %Untrusted(user.as_str()), "stale client instance refused");
                }
                let flow = self
                    .reply(session, pipe, Self::duplicate_kickout(&user))
                    .await;
                end_unless_connectionless(session, pipe, flow).await
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
