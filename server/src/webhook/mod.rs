//! Webhooks: the [`Hooks`] implemented by calling an application backend over HTTP, so a
//! backend in any language can verify logins, take offline messages and hear about events.
//!
//! With a base URL `B` hongyan calls:
//! - `POST B/verify` for every login to verify (waits for the answer);
//! - `POST B/offline` when a C2C message's receiver is offline (waits for the answer);
//! - `POST B/events` with batches of notifications, from a background task (never waits).
//!
//! The failure policy, when the backend cannot be reached, times out or answers other than
//! 2xx with the contract's JSON: a login is refused with [`VERIFY_UNAVAILABLE`], an offline
//! message counts as not stored (the sender retransmits, then reports it lost), and an event
//! batch is retried three times and then dropped. `docs/INTEGRATION.md` is the contract for
//! backend authors.
//!
//! - `contract.rs`: the request and response JSON.
//! - `client.rs`: the HTTP caller: timeouts, concurrency bound, retries.
//! - `events.rs`: the bounded event queue and its delivery task.
//! - `metrics.rs`: the webhook series in `/metrics`.

mod client;
mod contract;
mod events;
mod metrics;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hongyan_shared::{Fingerprint, Packet, UserId};
use reqwest::Url;

use self::client::{Caller, Endpoint};
use self::contract::{Event, OfflineResponse, VerifyRequest, VerifyResponse};
use self::events::EventQueue;
use self::metrics::WebhookMetrics;
use crate::hooks::{Hooks, LoggingHooks, LoginRequest, SessionInfo};
use crate::token::BearerToken;

/// The login code sent to a client when its login could not be verified because the
/// verification webhook failed. Applications refuse with codes ≥ 1025; this one is reserved
/// by hongyan so clients and logs can tell "backend down" from "refused".
pub const VERIFY_UNAVAILABLE: i32 = 1024;

/// Where and how to call the backend; the defaults are [`Config`](crate::Config)'s.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The base URL; the endpoints are `{url}/verify`, `{url}/offline` and `{url}/events`.
    pub url: Url,
    /// Sent as `Authorization: Bearer <token>` with every request, if set.
    pub token: Option<BearerToken>,
    /// Deadline of one attempt, from waiting for a request slot to reading the answer.
    pub timeout: Duration,
    /// Most requests in flight at once; further calls wait for a slot (within their deadline).
    pub concurrency: usize,
    /// Events queued for delivery before further ones are dropped (and counted).
    pub event_queue: usize,
    /// Which events to send to `/events`.
    pub events: EventKinds,
}

impl WebhookConfig {
    /// The defaults (those of [`Config`](crate::Config)) for a backend at `url`.
    pub fn new(url: Url) -> Self {
        let defaults = crate::Config {
            webhook_url: Some(url),
            ..crate::Config::default()
        };
        defaults
            .webhook()
            .expect("a config with a webhook URL has a webhook")
    }

    /// Parses a base URL, which must be `http` or `https`.
    pub fn parse_url(url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        }
        Ok(parsed)
    }
}

/// One kind of event notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `login`: a user logged in.
    Login,
    /// `logout`: a user's online session ended (with the kick code, if kicked).
    Logout,
    /// `c2s`: a client sent the server a message.
    C2s,
    /// `c2cDelivered`: a C2C message was handed to its online receiver.
    C2cDelivered,
    /// `s2cDelivered`: a receiver acknowledged a QoS packet from the server.
    S2cDelivered,
    /// `s2cLost`: a QoS packet from the server was never acknowledged.
    S2cLost,
}

impl EventKind {
    const ALL: [Self; 6] = [
        Self::Login,
        Self::Logout,
        Self::C2s,
        Self::C2cDelivered,
        Self::S2cDelivered,
        Self::S2cLost,
    ];

    /// The name in the event's `type` field and in `--webhook-events`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::C2s => "c2s",
            Self::C2cDelivered => "c2cDelivered",
            Self::S2cDelivered => "s2cDelivered",
            Self::S2cLost => "s2cLost",
        }
    }
}

/// A set of [`EventKind`]s; parsed from a comma-separated list of names, `all` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKinds(u8);

impl EventKinds {
    /// Every kind.
    pub const ALL: Self = Self(0b11_1111);
    /// No events: `/events` is never called.
    pub const NONE: Self = Self(0);

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }
}

impl FromStr for EventKinds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => return Ok(Self::ALL),
            "none" | "" => return Ok(Self::NONE),
            _ => {}
        }
        s.split(',')
            .map(str::trim)
            .try_fold(Self::NONE, |set, name| {
                EventKind::ALL
                    .into_iter()
                    .find(|k| k.name() == name)
                    .map(|k| Self(set.0 | 1 << k as u8))
                    .ok_or_else(|| {
                        let names: Vec<_> = EventKind::ALL.iter().map(|k| k.name()).collect();
                        format!(
                            "unknown event {name:?}; use all, none, or some of {}",
                            names.join(",")
                        )
                    })
            })
    }
}

/// `all`, `none`, or the names separated by commas: what [`FromStr`] reads back.
impl std::fmt::Display for EventKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::ALL => f.write_str("all"),
            Self::NONE => f.write_str("none"),
            kinds => {
                let names: Vec<_> = EventKind::ALL
                    .into_iter()
                    .filter(|&k| kinds.contains(k))
                    .map(EventKind::name)
                    .collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

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
    kinds: EventKinds,
}

impl WebhookHooks {
    /// Builds the HTTP client and starts the event delivery task; call within a Tokio runtime.
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookSetupError> {
        let caller = Arc::new(Caller::new(config, WebhookMetrics::new())?);
        Ok(Self {
            events: EventQueue::start(caller.clone(), config.event_queue),
            caller,
            kinds: config.events,
        })
    }

    /// Waits until queued events are delivered (or given up on), at most `within`; false if
    /// some were still pending. Call after the server stopped, so the final logouts reach
    /// the backend.
    pub async fn flush(&self, within: Duration) -> bool {
        self.events.flush(within).await
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
        let answer = self.caller.post(Endpoint::Verify, &request).await;
        match answer.and_then(|body| parse::<VerifyResponse>(&body)) {
            Ok(VerifyResponse { code }) => code,
            Err(error) => {
                tracing::warn!(user = %login.user_id, %error, code = VERIFY_UNAVAILABLE,
                    "login verification webhook failed; login refused");
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

    async fn on_offline(&self, packet: &Packet) -> bool {
        let request = contract::Message::from(packet);
        let answer = self.caller.post(Endpoint::Offline, &request).await;
        match answer.and_then(|body| parse::<OfflineResponse>(&body)) {
            Ok(OfflineResponse { stored }) => stored,
            Err(error) => {
                tracing::warn!(from = request.from, to = request.to, fp = ?request.fp, %error,
                    "offline webhook failed; message not stored");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_parse_by_name() {
        let kinds: EventKinds = "login, s2cLost".parse().unwrap();
        assert!(kinds.contains(EventKind::Login));
        assert!(kinds.contains(EventKind::S2cLost));
        assert!(!kinds.contains(EventKind::Logout));
        assert_eq!("all".parse::<EventKinds>(), Ok(EventKinds::ALL));
        assert_eq!("none".parse::<EventKinds>(), Ok(EventKinds::NONE));
    }

    #[test]
    fn an_unknown_event_name_says_which_names_exist() {
        let error = "login,logins".parse::<EventKinds>().unwrap_err();
        assert!(error.contains("\"logins\""), "{error}");
        assert!(error.contains("c2cDelivered"), "{error}");
    }

    #[test]
    fn only_http_base_urls_are_accepted() {
        assert!(WebhookConfig::parse_url("https://backend.example/hooks").is_ok());
        assert!(WebhookConfig::parse_url("ftp://backend.example/").is_err());
        assert!(WebhookConfig::parse_url("backend:8080").is_err());
    }
}
