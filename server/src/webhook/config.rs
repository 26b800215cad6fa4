//! Where and how to call the backend, and which events to send it.

use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

use crate::token::BearerToken;

/// Where and how to call the backend; the defaults are [`Config`](crate::config::Config)'s
/// (see `WebhookConfig::new`, defined next to them).
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
    /// `s2cLost`: a QoS packet from the server was never acknowledged (and not stored).
    S2cLost,
    /// `expired`: a stored message outlived `store_ttl_secs` undelivered and was removed.
    Expired,
}

impl EventKind {
    const ALL: [Self; 7] = [
        Self::Login,
        Self::Logout,
        Self::C2s,
        Self::C2cDelivered,
        Self::S2cDelivered,
        Self::S2cLost,
        Self::Expired,
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
            Self::Expired => "expired",
        }
    }
}

/// A set of [`EventKind`]s; parsed from a comma-separated list of names, `all` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKinds(u8);

impl EventKinds {
    /// Every kind.
    pub const ALL: Self = Self(0b111_1111);
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
