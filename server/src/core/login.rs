//! Login (§4.2) and the duplicate-login rules (§4.3).

use hongyan_shared::{Kickout, LoginInfo, LoginResponse, Packet, UserId, codes};

use super::reply::{Allowance, end_unless_connectionless};
use super::state::{Core, Flow};
use crate::clock::system_time;
use crate::config::MAX_USER_ID_BYTES;
use crate::hooks::LoginRequest;
use crate::limits::LoginLimit;
use crate::log_limit::LogLimit;
use crate::log_text::Untrusted;
use crate::metrics::{KickReason, LoginResult, Refusal};
use crate::pipe::Pipe;
use crate::registry::Registration;
use crate::session::{Outbound, Session};

static REFUSED: LogLimit = LogLimit::info("login refused");
static STALE: LogLimit = LogLimit::info("stale client instance refused");
static OVER_RATE: LogLimit = LogLimit::info("login over the login rate refused");

impl Core {
    /// A login that arrived as a `request_len`-byte packet. A peer that may be spoofed and
    /// has not logged in is answered with no more bytes than that (§3.2, §8.1 item 6): each
    /// answer in full if it fits, else in its compact form, else not at all. A login whose
    /// answer could not be sent is not registered; one whose smallest answer cannot fit is not
    /// even verified. A stale instance (§4.3), whose answer is followed by a kickout, gets the
    /// kickout alone when both do not fit: the kickout is what stops it.
    pub(super) async fn login<P: Pipe>(
        &self,
        session: &mut Session,
        pipe: &mut P,
        packet: Packet,
        request_len: usize,
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

        let mut allowance = Allowance::of(session, request_len);
        // Clamped as the answer will be (see step 5), so the sizes are the answer's.
        let first_login_time = info.first_login_time.min(self.clock.unix_millis());
        let kickout_room =
            if allowance.is_limited() && self.may_be_stale(session, &user, first_login_time) {
                Self::duplicate_kickout(&user).to_compact_json().len()
            } else {
                0
            };
        let smallest_answer = self.smallest_answer(&user, first_login_time);
        let answer_fits = allowance.fits(smallest_answer + kickout_room);
        if !answer_fits && (kickout_room == 0 || !allowance.fits(kickout_room)) {
            self.metrics.refused(Refusal::udp_amplification);
            tracing::debug!(user = %Untrusted(user.as_str()), request_len, "login too small to be answered; ignored");
            return Flow::Continue;
        }
        allowance.keep(kickout_room);

        // §4.2 step 3: a session re-logging in as the same user skips verification. Logging in
        // as somebody else first logs the old user out (the reference silently rebinds).
        let verified = session.user.as_ref() == Some(&user);
        if !verified {
            // §8.1 item 18: a login storm is refused before it costs a verification (the
            // application's hook, a webhook) and a store read.
            if let Err(limit) = self.limits.login(session.info().peer.ip()) {
                allowance.release();
                return self
                    .refuse_over_login_rate(session, pipe, &user, limit, &mut allowance)
                    .await;
            }
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
                allowance.release();
                let flow = self
                    .reply_within(session, pipe, refusal, |p| p, &mut allowance)
                    .await
                    .unwrap_or(Flow::Continue);
                return end_unless_connectionless(session, pipe, flow).await;
            }
        }

        if !answer_fits {
            // Predicted stale, and its answer does not fit beside its kickout.
            allowance.release();
            return self
                .refuse_stale(session, pipe, &user, &mut allowance)
                .await;
        }

        // §4.2 step 5: answer first, register only once the answer is written. Hardening: a
        // `firstLoginTime` after the server's clock cannot have been answered yet and counts
        // as now, so a client cannot pin its user id against later instances (§4.3). A
        // session logging in again as its own user without a time (a duplicated login
        // datagram) is the same client instance: it gets the time it was answered before,
        // which the client kept, so its next re-login is not taken for a stale instance.
        let now_millis = self.clock.unix_millis();
        let requested = info.first_login_time.min(now_millis);
        let answered = if requested > 0 {
            requested
        } else if verified && session.first_login_time > 0 {
            session.first_login_time
        } else {
            now_millis
        };
        let response = Packet::login_response(
            user.as_str(),
            LoginResponse {
                code: codes::OK,
                first_login_time: answered,
            },
        );
        match self
            .reply_within(session, pipe, response, |p| p, &mut allowance)
            .await
        {
            None => {
                tracing::debug!(user = %Untrusted(user.as_str()), "login answer does not fit; not answered, not registered");
                return Flow::Continue;
            }
            Some(Flow::Close) => return Flow::Close,
            Some(Flow::Continue) => {}
        }
        if pipe.flush().await.is_err() {
            return Flow::Close;
        }

        let since = system_time(now_millis);
        match self.registry.register(
            &user,
            &session.handle,
            requested,
            answered,
            since,
            self.store.is_some(),
        ) {
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
                pipe.logged_in();
                session.first_login_time = answered;
                session.user = Some(user.clone());
                if session.rate.is_none() {
                    // Once per session: logging in again must not refill its budget.
                    session.rate = self.limits.session_rate();
                }
                session.login_deadline = None;
                self.hooks
                    .on_login(&user, info.extra.as_deref(), session.info());
                // After the login response: the user's stored messages, oldest first.
                self.start_replay(&user, &session.handle).await;
                Flow::Continue
            }
            Registration::Stale => {
                allowance.release();
                self.refuse_stale(session, pipe, &user, &mut allowance)
                    .await
            }
        }
    }

    /// §8.1 item 18: a login over its address's or the server's login rate is refused with
    /// code 1000, unverified; a connection then closes (its client retries on its re-login
    /// interval).
    async fn refuse_over_login_rate<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        user: &UserId,
        limit: LoginLimit,
        allowance: &mut Allowance,
    ) -> Flow {
        self.metrics.refused(match limit {
            LoginLimit::Address => Refusal::address_login_rate,
            LoginLimit::Server => Refusal::login_rate,
        });
        self.metrics.login(LoginResult::refused);
        if OVER_RATE.allow() {
            tracing::info!(user = %Untrusted(user.as_str()), ?limit, "login over the login rate refused");
        }
        let refusal =
            Packet::login_response(UserId::UNSET, LoginResponse::refused(codes::RATE_LIMITED));
        let flow = self
            .reply_within(session, pipe, refusal, |p| p, allowance)
            .await
            .unwrap_or(Flow::Continue);
        end_unless_connectionless(session, pipe, flow).await
    }

    /// §4.3: a stale client instance gets a duplicate-login kickout; a connection then closes.
    async fn refuse_stale<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        user: &UserId,
        allowance: &mut Allowance,
    ) -> Flow {
        self.metrics.login(LoginResult::stale);
        self.metrics.kickout(KickReason::duplicate_login);
        if STALE.allow() {
            tracing::info!(user = %Untrusted(user.as_str()), "stale client instance refused");
        }
        let kickout = Self::duplicate_kickout(user);
        let flow = self
            .reply_within(session, pipe, kickout, |p| p, allowance)
            .await
            .unwrap_or(Flow::Continue);
        end_unless_connectionless(session, pipe, flow).await
    }

    /// Whether a login of `user` with `first_login_time` on `session` looks like a stale
    /// instance now (§4.3). Only sizes answers: the registry decides when it registers.
    fn may_be_stale(&self, session: &Session, user: &UserId, first_login_time: i64) -> bool {
        first_login_time > 0
            && self.registry.info(user).is_some_and(|online| {
                online.session.id != session.info().id && first_login_time < online.first_login_time
            })
    }

    /// The length of the smallest answer a login of `user` can get: its compact `code 0`.
    fn smallest_answer(&self, user: &UserId, first_login_time: i64) -> usize {
        let answered = if first_login_time > 0 {
            first_login_time
        } else {
            self.clock.unix_millis()
        };
        let response = LoginResponse {
            code: codes::OK,
            first_login_time: answered,
        };
        Packet::login_response(user.as_str(), response)
            .to_compact_json()
            .len()
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
