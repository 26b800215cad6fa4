//! Webhooks: the [`Hooks`] implemented by calling an application backend over HTTP, so a
//! backend in any language can verify logins, take offline messages and hear about events.
//!
//! With a base URL `B` hongyan calls:
//! - `POST B/verify` for every login to verify (waits for the answer);
//! - `POST B/offline` when a C2C message's receiver is offline: without a message store it
//!   waits for the answer (did the backend keep it?); with one, the message is already stored
//!   and acknowledged, and the call only notifies (for a push notification), from a
//!   background task (never waits);
//! - `POST B/events` with batches of notifications, from a background task (never waits).
//!
//! The failure policy, when the backend cannot be reached, times out or answers other than
//! 2xx with the contract's JSON: a login is refused with [`VERIFY_UNAVAILABLE`], an offline
//! message counts as not stored (the sender retransmits, then reports it lost), and an event
//! batch is retried three times and then dropped. `docs/INTEGRATION.md` is the contract for
//! backend authors.
//!
//! - `config.rs`: [`WebhookConfig`] and the [`EventKinds`] to send.
//! - `contract.rs`: the request and response JSON.
//! - `endpoint.rs`: the three endpoints.
//! - `client.rs`: the HTTP caller: timeouts, concurrency bound, retries.
//! - `events.rs`: the bounded event queue and its delivery task.
//! - `stored.rs`: the bounded queue of stored-message notifications and their delivery task.
//! - `metrics.rs`: the webhook series in `/metrics`.

mod client;
mod config;
pub(crate) mod contract;
mod endpoint;
mod events;
mod metrics;
mod stored;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hongyan_shared::{Fingerprint, Packet, UserId};

use self::client::Caller;
pub use self::config::{EventKind, EventKinds, WebhookConfig};
use self::contract::{Event, OfflineResponse, VerifyRequest, VerifyResponse};
use self::endpoint::Endpoint;
use self::events::EventQueue;
use self::metrics::WebhookMetrics;
use self::stored::StoredQueue;
use crate::hooks::{Hooks, LoggingHooks, LoginRequest, SessionInfo};
use crate::log_limit::LogLimit;
use crate::log_text::Untrusted;

static VERIFY_FAILED: LogLimit = LogLimit::warn("login verification webhook failed; login refused");
static OFFLINE_FAILED: LogLimit = LogLimit::warn("offline webhook failed; message not stored");

/// The login code sent to a client when its login could not be verified because the
/// verification webhook failed. Applications refuse with codes ≥ 1025; this one is reserved
/// by hongyan so clients and logs can tell "backend down" from "refused".
pub const VERIFY_UNAVAILABLE: i32 = 1024;

/// Why the webhooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// [`Hooks`] that call the backend (see the [module docs](self)). Events are also logged as
/// [`LoggingHooks`] logs them.
pub struct WebhookHooks {
    caller: Arc<Caller>,
    events: EventQueue,
    stored: StoredQueue,
    kinds: EventKinds,
}

impl WebhookHooks {
    /// Builds the HTTP client and starts the event delivery task; call within a Tokio runtime.
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookSetupError> {
        let caller = Arc::new(Caller::new(config, WebhookMetrics::new())?);
        Ok(Self {
            events: EventQueue::start(caller.clone(), config.event_queue),
            stored: StoredQueue::start(caller.clone(), config.event_queue, config.concurrency),
            caller,
            kinds: config.events,
        })
    }

    /// Waits until queued events and stored-message notifications are delivered (or given
    /// up on), at most `within`; false if some were still pending. Call after the server
    /// stopped, so the final logouts reach the backend.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.events.pending() + self.stored.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn emit(&self, kind: EventKind, event: impl FnOnce() -> Event) {
        if self.kinds.contains(kind) {
            self.events.push(event());
        }
    }
}

#[async_trait]
impl Hooks for WebhookHooks {
    async fn verify_login(&self, login: LoginRequest<'_>) -> i32 {
        let request = VerifyRequest::from(&login);
        let answer = self.caller.post(Endpoint::verify, &request).await;
        match answer.and_then(|body| parse::<VerifyResponse>(&body)) {
            Ok(VerifyResponse { code }) => code,
            Err(error) => {
                if VERIFY_FAILED.allow() {
                    tracing::warn!(user = %Untrusted(login.user_id.as_str()), %error, code = VERIFY_UNAVAILABLE,
                        "login verification webhook failed; login refused");
                }
                VERIFY_UNAVAILABLE
            }
        }
    }

    fn on_login(&self, user: &UserId, extra: Option<&str>, session: SessionInfo) {
        LoggingHooks.on_login(user, extra, session);
        self.emit(EventKind::Login, || Event::Login {
            user_id: user.as_str().to_owned(),
            extra: extra.map(str::to_owned),
            session: session.into(),
        });
    }

    fn on_logout(&self, user: &UserId, session: SessionInfo, kick_code: Option<i32>) {
        LoggingHooks.on_logout(user, session, kick_code);
        self.emit(EventKind::Logout, || Event::Logout {
            user_id: user.as_str().to_owned(),
            kick_code,
            session: session.into(),
        });
    }

    fn on_c2s(&self, packet: &Packet, session: SessionInfo) {
        LoggingHooks.on_c2s(packet, session);
        self.emit(EventKind::C2s, || Event::C2s {
            message: packet.into(),
            session: session.into(),
        });
    }

    fn on_c2c_delivered(&self, packet: &Packet) {
        self.emit(EventKind::C2cDelivered, || Event::C2cDelivered {
            message: packet.into(),
        });
    }

    fn on_stored(&self, packet: &Packet) {
        self.stored.push(contract::Message::from(packet));
    }

    async fn on_offline(&self, packet: &Packet) -> bool {
        let request = contract::Message::from(packet);
        let answer = self.caller.post(Endpoint::offline, &request).await;
        match answer.and_then(|body| parse::<OfflineResponse>(&body)) {
            Ok(OfflineResponse { stored }) => stored,
            Err(error) => {
                if OFFLINE_FAILED.allow() {
                    tracing::warn!(from = %Untrusted(&request.from), to = %Untrusted(&request.to),
                        fp = ?request.fp.as_deref().map(Untrusted), %error,
                        "offline webhook failed (without a message store, the message is not kept)");
                }
                false
            }
        }
    }

    fn on_s2c_lost(&self, lost: &[Packet]) {
        LoggingHooks.on_s2c_lost(lost);
        for packet in lost {
            self.emit(EventKind::S2cLost, || Event::S2cLost {
                message: packet.into(),
            });
        }
    }

    fn on_expired(&self, expired: &[Packet]) {
        LoggingHooks.on_expired(expired);
        for packet in expired {
            self.emit(EventKind::Expired, || Event::Expired {
                message: packet.into(),
            });
        }
    }

    fn on_s2c_received(&self, user: &UserId, fp: &Fingerprint) {
        self.emit(EventKind::S2cDelivered, || Event::S2cDelivered {
            user_id: user.as_str().to_owned(),
            fp: fp.as_str().to_owned(),
        });
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.caller.metrics.register(registry);
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, client::WebhookError> {
    serde_json::from_slice(body).map_err(|e| client::WebhookError::Body(e.to_string()))
}
