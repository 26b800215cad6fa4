//! Abuse limits (§8.1 item 18): how much one session, one address and everybody together may
//! ask of the server, so that a client that floods, a host that opens thousands of connections
//! or a login storm costs the server a bounded share instead of everything. MobileIMSDK has
//! none.
//!
//! | limit | counted by | over it |
//! |---|---|---|
//! | `max_messages_per_sec`, `message_burst` | session | not acknowledged; error 1000 (type 52) |
//! | `max_logins_per_sec_per_ip`, `login_burst_per_ip` | address | refused with code 1000, not verified |
//! | `max_logins_per_sec`, `login_burst` | server | refused with code 1000, not verified |
//! | `max_connections_per_ip` | address (TCP + HTTP, a WebSocket once) | TCP closed; HTTP 429 |
//! | `max_udp_sessions_per_ip` | address | datagrams from a further port dropped |
//! | `api_requests_per_sec_per_ip`, `api_burst_per_ip` | address | 429 |
//! | `api_max_body_bytes` | request | 413 |
//!
//! (The login deadline, `login_timeout_secs`, lives with the session's other deadlines in
//! `core/lifecycle.rs`.)
//!
//! **What "an address" is.** The source IP the server sees on the socket: an IPv4 address or
//! an IPv6 /64 (`AddressKey`). Behind a proxy or load balancer that does not preserve the
//! client's address (an HTTP reverse proxy, an L4 balancer without direct return), every client
//! has the proxy's address, so per-address limits would count all of them as one: list the
//! proxy in `limits_exempt`, which lifts the per-address limits (and the per-session message
//! limit) for everything it forwards; the server-wide login limit then still protects the
//! server. hongyan reads neither `X-Forwarded-For` nor the PROXY protocol: a header any client
//! can send would let every client pick its address.
//!
//! **Exemptions** (`Exemptions`): the `limits_exempt` setting and the admin API
//! (`/api/limits/exempt`) lift every limit for an address: its sessions send without a message
//! limit, its logins are not counted (per address or in total), its connections and
//! pseudo-sessions are not counted, and its API requests are not rate-limited. The body size
//! limit stays: it bounds memory, not a rate.
//!
//! **Cost.** A session's limiter is 8 bytes in the session and a 56-byte allocation once it
//! logs in; a message costs one compare-and-swap on it, and the exemptions are read only for a
//! message over the limit. Per-address tables are bounded (`rate`); per-address counts hold
//! only addresses with something open. Every decision reads the core's clock.
//!
//! - `address`: `AddressKey` and the ranges exemptions are written in.
//! - `exempt`: `Exemptions`.
//! - `rate`: the governor limiters: per session, per address (bounded), server-wide.
//! - `count`: connections and pseudo-sessions per address.

mod address;
mod count;
mod exempt;
mod rate;

use std::net::IpAddr;
use std::sync::Arc;

use hongyan_shared::Instant;

pub(crate) use self::address::AddressKey;
pub use self::address::{AddressRange, AddressRangeError, AddressRanges, loopback};
pub(crate) use self::count::{AddressCounts, AddressSlot};
pub(crate) use self::exempt::Exemptions;
pub use self::exempt::{Exemption, MAX_EXEMPTIONS, TooManyExemptions};
pub(crate) use self::rate::Rate;
pub(crate) use self::rate::SessionRate;
use self::rate::{AddressRate, CoreClock, SharedRate};
use crate::clock::Clock;

/// Which login budget was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginLimit {
    /// The address's (`max_logins_per_sec_per_ip`).
    Address,
    /// The server's (`max_logins_per_sec`).
    Server,
}

/// Every limit of one server, and what it needs to decide (see the module documentation).
pub(crate) struct Limits {
    pub(crate) exempt: Exemptions,
    clock: CoreClock,
    messages: Rate,
    logins_per_address: Option<AddressRate>,
    logins: Option<SharedRate>,
    api_requests: Option<AddressRate>,
    /// TCP and HTTP connections per address; `None`: no limit.
    connections: Option<Arc<AddressCounts>>,
    /// UDP pseudo-sessions per address; `None`: no limit.
    udp_sessions: Option<Arc<AddressCounts>>,
}

/// What the limits are, as the settings give them (`Config::limits`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) messages: Rate,
    pub(crate) logins_per_address: Rate,
    pub(crate) logins: Rate,
    pub(crate) api_requests: Rate,
    /// 0: no limit.
    pub(crate) connections_per_address: usize,
    /// 0: no limit.
    pub(crate) udp_sessions_per_address: usize,
    pub(crate) exempt: AddressRanges,
}

impl Limits {
    pub(crate) fn new(settings: Settings, clock: Arc<dyn Clock>) -> Self {
        let clock = CoreClock(clock);
        let counts = |max: usize| (max > 0).then(|| AddressCounts::new(max));
        Self {
            exempt: Exemptions::new(settings.exempt),
            messages: settings.messages,
            logins_per_address: AddressRate::new(settings.logins_per_address, &clock),
            logins: SharedRate::new(settings.logins, &clock),
            api_requests: AddressRate::new(settings.api_requests, &clock),
            connections: counts(settings.connections_per_address),
            udp_sessions: counts(settings.udp_sessions_per_address),
            clock,
        }
    }

    fn now(&self) -> Instant {
        self.clock.0.now()
    }

    /// The message budget of a session that just logged in; `None` without a limit.
    pub(crate) fn session_rate(&self) -> Option<SessionRate> {
        SessionRate::new(self.messages, &self.clock)
    }

    /// Whether a session from `ip` may send one more message: within its budget `rate`, or
    /// from an exempt address (read only when the budget is spent). If not, when the next one
    /// may come.
    pub(crate) fn message(&self, rate: Option<&SessionRate>, ip: IpAddr) -> Result<(), Instant> {
        match rate.map(SessionRate::check) {
            Some(Err(next)) if !self.exempt.covers(ip, self.now()) => Err(next),
            _ => Ok(()),
        }
    }

    /// Whether a login from `ip` may be verified now: its address's budget first (a flooding
    /// address does not spend everybody's), then the server's.
    pub(crate) fn login(&self, ip: IpAddr) -> Result<(), LoginLimit> {
        if self.exempt.covers(ip, self.now()) {
            return Ok(());
        }
        if let Some(per_address) = &self.logins_per_address
            && !per_address.check(AddressKey::from(ip))
        {
            return Err(LoginLimit::Address);
        }
        match &self.logins {
            Some(logins) if !logins.check() => Err(LoginLimit::Server),
            _ => Ok(()),
        }
    }

    /// Whether an API request from `ip` may be served now.
    pub(crate) fn api_request(&self, ip: IpAddr) -> bool {
        match &self.api_requests {
            Some(per_address) => {
                per_address.check(AddressKey::from(ip)) || self.exempt.covers(ip, self.now())
            }
            None => true,
        }
    }

    /// A place for one more TCP or HTTP connection from `ip`: `Ok(None)` when it is not
    /// counted (no limit, or an exempt address), `Err` when the address holds its most.
    pub(crate) fn connection(&self, ip: IpAddr) -> Result<Option<AddressSlot>, Crowded> {
        self.slot(self.connections.as_ref(), ip)
    }

    /// [`connection`](Self::connection) for a UDP pseudo-session.
    pub(crate) fn udp_session(&self, ip: IpAddr) -> Result<Option<AddressSlot>, Crowded> {
        self.slot(self.udp_sessions.as_ref(), ip)
    }

    fn slot(
        &self,
        counts: Option<&Arc<AddressCounts>>,
        ip: IpAddr,
    ) -> Result<Option<AddressSlot>, Crowded> {
        let Some(counts) = counts else {
            return Ok(None);
        };
        if self.exempt.covers(ip, self.now()) {
            return Ok(None);
        }
        counts
            .acquire(AddressKey::from(ip))
            .map(Some)
            .ok_or(Crowded)
    }
}

/// An address already holds as many connections (or pseudo-sessions) as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Crowded;
