//! Server configuration: [`Config`], the one definition of every server setting.
//!
//! Each user setting is one field. Its serde name is the TOML key (and, in `hongyan serve`,
//! the flag `--kebab-name` and the environment variable `HONGYAN_UPPER_NAME`), its doc comment
//! is the help text, and its default is in [`Config::default`]. A setting whose default is
//! none says what none means, in a closing `[default: …]` of its doc comment; every other
//! default is rendered from its value. Knobs that are not user settings (the S2C
//! retransmission schedule, the de-duplication lifetimes) are left out of the serde surface;
//! the longest user id and fingerprint accepted are constants ([`MAX_USER_ID_BYTES`],
//! [`MAX_FINGERPRINT_BYTES`]).
//!
//! - `format`: how values are written: addresses that may be `off`, sense modes by name,
//!   durations in whole seconds or milliseconds, counts that must be positive.
//! - `origins`: [`AllowedOrigins`], the `Origin`s a WebSocket upgrade may come from.
//! - `tls`: [`TlsMode`] per listener, and the decision behind [`Config::tls`]: which
//!   listeners speak TLS with which certificate (or why the settings do not fit together).

mod format;
mod origins;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hongyan_shared::{DedupConfig, RetransmitSchedule, SenseMode, Transport};
use hongyan_store::{Limits, StoreConfig, StoreSpec};
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::origins::{AllowedOrigins, OriginsError};
use self::tls::TlsSettings;
pub use self::tls::{TlsConfigError, TlsMode, TlsPlan};
use crate::limits::{self, AddressRanges};
use crate::tls::HandshakeLimits;
use crate::tls::certificate::DEFAULT_WATCH_INTERVAL;
use crate::token::BearerToken;
use crate::webhook::{EventKinds, WebhookConfig};

/// The longest `loginUserId` accepted, in bytes (MobileIMSDK's ids are short strings): a
/// longer one is treated like a login without a user id (§4.2).
pub const MAX_USER_ID_BYTES: usize = 256;

/// How long one server's numbered history waits before it is written, by default: what
/// arrives meanwhile joins the same write. A SQLite write costs a WAL page for every
/// conversation it touches, however few of its messages it holds, so fuller writes cost
/// markedly less per message under load (docs/PERFORMANCE.md); a crash can cost the history
/// these 20 ms more (never a delivery), and clients resync under the new epoch.
pub const HISTORY_FLUSH_DELAY: Duration = Duration::from_millis(20);

/// The longest fingerprint of a QoS data packet accepted, in bytes (the Java clients send
/// 36-character UUIDs): a QoS message with a longer one is refused, neither delivered nor
/// acknowledged, so its sender reports it lost (§6.3).
pub const MAX_FINGERPRINT_BYTES: usize = 128;

/// The largest packet body an HTTP session streams as one event, in bytes: more than any
/// client transport carries (a WebSocket's 65536) and than a stored message's content, so what
/// reaches a user over a socket reaches them over HTTP too.
pub const HTTP_SESSION_MAX_OUTBOUND: usize = 256 * 1024;

/// Everything the server needs to run. `Config::default()` is what `hongyan serve` runs with
/// when nothing is configured; deserializing fills what is not given from it, and refuses
/// unknown keys and bad values (an address that is not one, a UDP sense mode UDP does not
/// have, a zero where a count must be positive).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP gateway address, or `off`.
    #[serde(with = "format::listen")]
    #[schemars(with = "String")]
    pub tcp_addr: Option<SocketAddr>,
    /// UDP gateway address, or `off`.
    #[serde(with = "format::listen")]
    #[schemars(with = "String")]
    pub udp_addr: Option<SocketAddr>,
    /// HTTP address (WebSocket at `/websocket`, the H5 client at `/`, the API at `/api`), or
    /// `off`.
    #[serde(with = "format::listen")]
    #[schemars(with = "String")]
    pub http_addr: Option<SocketAddr>,
    /// A plain TCP gateway kept beside the TLS one during a migration, for clients not yet
    /// switched to TLS, or `off`. Needs TLS on the TCP gateway.
    #[serde(with = "format::listen")]
    #[schemars(with = "String")]
    pub tcp_plain_addr: Option<SocketAddr>,
    /// PEM file of the TLS certificate chain, the server's own certificate first (a
    /// `fullchain.pem`). With tls_key, the TCP gateway and the HTTP listener speak TLS (see
    /// tcp_tls and http_tls; UDP has none). Reloaded on SIGHUP and when the file changes.
    /// [default: none (no TLS)]
    #[schemars(extend("value_name" = "FILE"))]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key: PKCS#8, RSA or EC, not encrypted.
    /// [default: none]
    #[schemars(extend("value_name" = "FILE"))]
    pub tls_key: Option<PathBuf>,
    /// TLS on the TCP gateway: `auto` (when tls_cert is set), `on` (and refuse to start
    /// without a certificate) or `off`.
    #[schemars(extend("value_name" = "MODE"))]
    pub tcp_tls: TlsMode,
    /// TLS on the HTTP listener (HTTPS, WSS, the API, the H5 client): `auto`, `on` or `off`,
    /// as tcp_tls.
    #[schemars(extend("value_name" = "MODE"))]
    pub http_tls: TlsMode,
    /// Seconds a TLS connection may take from accept to its first byte, and from taking a
    /// handshake slot to the finished handshake (twice this from accept to a free slot); it is
    /// closed then.
    #[serde(rename = "tls_handshake_timeout_secs", with = "format::positive_secs")]
    #[schemars(with = "u64")]
    pub tls_handshake_timeout: Duration,
    /// Most TLS handshakes in progress at once, per listener; further connections that have
    /// sent their first byte wait for one to finish, in arrival order.
    #[serde(deserialize_with = "format::positive")]
    pub max_tls_handshakes: usize,
    /// How often the certificate files are looked at for a change. Not a user setting.
    #[serde(skip)]
    pub tls_watch_interval: Duration,
    /// TCP sense mode (MODE_3S … MODE_120S, as the clients' `ConfigEntity.setSenseMode`): how
    /// long a silent session lives. [default: none (20 s expiry)]
    #[serde(with = "format::sense_mode")]
    #[schemars(with = "Option<String>")]
    pub tcp_sense_mode: Option<SenseMode>,
    /// UDP sense mode (MODE_3S, MODE_10S, MODE_30S, MODE_60S or MODE_120S). [default: none
    /// (10 s expiry)]
    #[serde(with = "format::udp_sense_mode")]
    #[schemars(with = "Option<String>")]
    pub udp_sense_mode: Option<SenseMode>,
    /// WebSocket sense mode (MODE_3S … MODE_120S). [default: none (20 s expiry)]
    #[serde(with = "format::sense_mode")]
    #[schemars(with = "Option<String>")]
    pub ws_sense_mode: Option<SenseMode>,
    /// Largest TCP frame body in bytes, both ways; clients must use the same
    /// (`TCP_FRAME_MAX_BODY_LENGTH`).
    #[serde(deserialize_with = "format::positive")]
    #[schemars(extend("value_name" = "BYTES"))]
    pub max_frame_body: usize,
    /// Largest UDP datagram accepted, in bytes; a larger one closes its pseudo-session, as in
    /// the reference.
    #[schemars(extend("value_name" = "BYTES"))]
    pub udp_max_inbound: usize,
    /// Largest UDP datagram sent, in bytes; the Java and Android UDP clients read at most 1024.
    #[schemars(extend("value_name" = "BYTES"))]
    pub udp_max_outbound: usize,
    /// Largest WebSocket message accepted and sent, in bytes.
    #[schemars(extend("value_name" = "BYTES"))]
    pub ws_max_message: usize,
    /// Origins a WebSocket upgrade may come from, comma-separated: `self` (a page this server
    /// served) and origins like `https://chat.example.com`. An upgrade from another Origin gets
    /// 403; one without an Origin (a native or uni-app client, not a browser) is accepted.
    /// [default: none (any Origin)]
    #[serde(with = "format::optional_display")]
    #[schemars(with = "Option<String>", extend("value_name" = "LIST"))]
    pub ws_allowed_origins: Option<AllowedOrigins>,
    /// Most TCP, WebSocket and HTTP connections at once (a WebSocket counts once); further
    /// TCP connections are closed, further HTTP ones answered 503 but for /healthz, /readyz
    /// and /metrics. [default: the open-file limit less 256 and the webhooks' connections, at
    /// most 50000]
    #[serde(deserialize_with = "format::optional_positive")]
    pub max_connections: Option<usize>,
    /// Most UDP pseudo-sessions at once, those of logged-in users and those of addresses being
    /// answered before a login; datagrams from further addresses are dropped.
    pub max_udp_sessions: usize,
    /// Most UDP addresses being answered before they logged in (a login being verified, a 301
    /// being sent), part of max_udp_sessions; datagrams from further new addresses are
    /// dropped, so the rest of max_udp_sessions is kept for logged-in users.
    #[serde(deserialize_with = "format::positive")]
    pub max_udp_unauthenticated: usize,
    /// Seconds a new HTTP connection may take to send a complete request head; it is closed
    /// then.
    #[serde(rename = "http_header_timeout_secs", with = "format::positive_secs")]
    #[schemars(with = "u64")]
    pub http_header_timeout: Duration,
    /// Seconds a kept-alive HTTP connection may wait for its next request head, or go without
    /// taking any of a response, before it is closed.
    #[serde(rename = "http_idle_timeout_secs", with = "format::positive_secs")]
    #[schemars(with = "u64")]
    pub http_idle_timeout: Duration,
    /// Seconds an HTTP session (a backend receiving as a user through the API) lives with no
    /// event stream open and no request; while a stream is open it stays.
    #[serde(rename = "http_session_idle_secs", with = "format::positive_secs")]
    #[schemars(with = "u64")]
    pub http_session_idle: Duration,
    /// Most HTTP sessions at once; creating one more answers 503.
    #[serde(deserialize_with = "format::positive")]
    pub max_http_sessions: usize,
    /// Packets queued per session; what does not fit is refused (not acknowledged), or stored
    /// instead with a message store.
    #[serde(deserialize_with = "format::positive")]
    pub outbox_capacity: usize,
    /// Seconds a session's full queue may drain nothing before the session is closed as a
    /// receiver that stopped reading.
    #[serde(rename = "slow_consumer_secs", with = "format::secs")]
    #[schemars(with = "u64")]
    pub slow_consumer_stall: Duration,
    /// Most bytes of packets held for delivery, server-wide: queued for sessions, or sent with
    /// QoS and awaiting acknowledgement. What does not fit is refused (not acknowledged), or
    /// stored instead with a message store.
    #[serde(deserialize_with = "format::positive")]
    #[schemars(extend("value_name" = "BYTES"))]
    pub max_queued_bytes: usize,
    /// Most server → client QoS packets awaiting acknowledgement, server-wide; what does not
    /// fit is refused (not acknowledged), or stored instead with a message store.
    #[serde(deserialize_with = "format::positive")]
    pub max_in_flight: usize,
    /// Most server → client QoS packets awaiting one user's acknowledgement; what does not fit
    /// is refused (not acknowledged), or stored instead with a message store.
    #[serde(deserialize_with = "format::positive")]
    pub max_in_flight_per_user: usize,
    /// Most bytes of server → client QoS packets awaiting one user's acknowledgement; what
    /// does not fit is refused (not acknowledged), or stored instead with a message store.
    #[serde(deserialize_with = "format::positive")]
    #[schemars(extend("value_name" = "BYTES"))]
    pub max_in_flight_bytes_per_user: usize,
    /// Seconds a session may stay without logging in; nothing extends it, not even echoes (a
    /// UDP pseudo-session is then forgotten).
    #[serde(rename = "login_timeout_secs", with = "format::positive_secs")]
    #[schemars(with = "u64")]
    pub login_timeout: Duration,
    /// Data messages (type 2) a logged-in session may send per second, sustained; one over
    /// the limit is not acknowledged and gets error 1000 (type 52). Keepalives, ACKs, echoes
    /// and logins do not count; retransmissions do. 0: no limit.
    pub max_messages_per_sec: u32,
    /// Data messages a session may send at once above max_messages_per_sec, after a quiet
    /// spell.
    #[serde(deserialize_with = "format::positive_u32")]
    pub message_burst: u32,
    /// Logins one address (an IPv4 address, an IPv6 /64) may start per second, sustained; one
    /// over the limit is refused with code 1000 before it is verified. 0: no limit.
    pub max_logins_per_sec_per_ip: u32,
    /// Logins one address may start at once above max_logins_per_sec_per_ip.
    #[serde(deserialize_with = "format::positive_u32")]
    pub login_burst_per_ip: u32,
    /// Logins the server verifies per second from all addresses together, sustained; one
    /// over the limit is refused with code 1000. 0: no limit.
    pub max_logins_per_sec: u32,
    /// Logins the server verifies at once above max_logins_per_sec.
    #[serde(deserialize_with = "format::positive_u32")]
    pub login_burst: u32,
    /// Most TCP and HTTP connections (a WebSocket counts once, with its HTTP connection) one
    /// address holds at once; a further TCP connection is closed, a further HTTP one answered
    /// 429. 0: no limit.
    pub max_connections_per_ip: usize,
    /// Most UDP pseudo-sessions one address holds at once (one per source port); datagrams
    /// from its further ports are dropped. 0: no limit.
    pub max_udp_sessions_per_ip: usize,
    /// Largest request body the HTTP API (`/api`) reads; a larger one is answered 413.
    #[serde(deserialize_with = "format::positive")]
    #[schemars(extend("value_name" = "BYTES"))]
    pub api_max_body_bytes: usize,
    /// Requests to the HTTP API (`/api`) one address may make per second, sustained; one over
    /// the limit is answered 429. 0: no limit.
    pub api_requests_per_sec_per_ip: u32,
    /// API requests one address may make at once above api_requests_per_sec_per_ip.
    #[serde(deserialize_with = "format::positive_u32")]
    pub api_burst_per_ip: u32,
    /// Addresses no limit applies to, comma-separated IPs and ranges such as
    /// `10.0.0.0/8,2001:db8::/32`: the load balancer or proxy every client comes through, the
    /// application backend, monitoring. The admin API adds more for a while (`POST
    /// /api/limits/exempt`). [default: none]
    #[serde(with = "format::optional_display")]
    #[schemars(with = "Option<String>", extend("value_name" = "LIST"))]
    pub limits_exempt: Option<AddressRanges>,
    /// Retransmission of server → client QoS packets (reference: 5 s tick, 2 s, 1 retry). Not
    /// a user setting.
    #[serde(skip)]
    pub s2c_schedule: RetransmitSchedule,
    /// C2S fingerprints remembered to drop duplicates, taking at most 176 bytes each on
    /// average (key and entry); when full, the oldest are forgotten.
    #[serde(rename = "dedup_capacity", with = "format::dedup_capacity")]
    #[schemars(with = "usize")]
    pub dedup: DedupConfig,
    /// Stamp `sm` (server time in ms) on every packet sent.
    pub server_timestamp: bool,
    /// Directory of the built H5 client, served at `/`. [default: none; `hongyan serve` uses
    /// `dist` if it exists]
    pub web_dir: Option<PathBuf>,
    /// Bearer token for the HTTP API at `/api`; without one the API answers 503. [default:
    /// none; `hongyan serve` generates one on first start, prints it once and keeps it in the
    /// state dir]
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub admin_token: Option<BearerToken>,
    /// Bearer token required by `/metrics`. [default: none (`/metrics` is public)]
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub metrics_token: Option<BearerToken>,
    /// Base URL of the application backend: hongyan POSTs to `<url>/verify`, `<url>/offline`
    /// and `<url>/events` (see docs/INTEGRATION.md). [default: none: built-in hooks, every
    /// login accepted]
    #[serde(with = "format::webhook_url")]
    #[schemars(with = "Option<String>")]
    pub webhook_url: Option<Url>,
    /// Bearer token hongyan sends to the webhooks. [default: none]
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub webhook_token: Option<BearerToken>,
    /// Deadline of one webhook attempt in milliseconds, from waiting for a request slot to
    /// reading the answer.
    #[serde(rename = "webhook_timeout_ms", with = "format::positive_millis")]
    #[schemars(with = "u64")]
    pub webhook_timeout: Duration,
    /// Most webhook requests in flight at once.
    #[serde(deserialize_with = "format::positive")]
    pub webhook_concurrency: usize,
    /// Events queued for delivery before further ones are dropped (and counted).
    #[serde(deserialize_with = "format::positive")]
    pub webhook_event_queue: usize,
    /// Events sent to `<url>/events`: `all`, `none`, or a list of login, logout, c2s,
    /// c2cDelivered, s2cDelivered, s2cLost, expired.
    #[serde(with = "format::display")]
    #[schemars(with = "String", extend("value_name" = "LIST"))]
    pub webhook_events: EventKinds,
    /// Where messages are kept for receivers who cannot take them now (offline, or not
    /// acknowledging): `sqlite` (SQLite at `<state dir>/hongyan.db`), `sqlite:PATH`,
    /// `postgres://…`, `memory` (lost on exit: tests, benchmarks) or `off` (nothing kept: the
    /// offline hook decides, as in the reference). A sender's acknowledgement then means
    /// delivered or durably stored; see docs/INTEGRATION.md.
    #[serde(with = "format::display")]
    #[schemars(with = "String")]
    pub store: StoreSpec,
    /// Most messages stored for one user; a further one is refused (not acknowledged, so its
    /// sender reports it lost).
    #[serde(deserialize_with = "format::positive")]
    pub store_max_per_user: usize,
    /// Largest message content the store keeps, in bytes; a larger message for a user who
    /// cannot take it now is refused (not acknowledged).
    #[serde(deserialize_with = "format::positive")]
    #[schemars(extend("value_name" = "BYTES"))]
    pub store_max_message_bytes: usize,
    /// Seconds a stored message is kept; then it is removed and reported as expired (the
    /// `on_expired` hook, the `expired` webhook event). 0 keeps it until it is delivered or
    /// erased.
    #[serde(rename = "store_ttl_secs", with = "format::secs")]
    #[schemars(with = "u64")]
    pub store_ttl: Duration,
    /// Stored messages replayed to a user at once, awaiting acknowledgement (at most
    /// `outbox_capacity` and `max_in_flight_per_user`).
    #[serde(deserialize_with = "format::positive")]
    pub store_replay_window: usize,
    /// NATS address of a cluster (`nats://host:4222`; several comma-separated): this server
    /// becomes one node of it, and reaches users on the other nodes through it (see README,
    /// "Cluster"). Needs a store all nodes share (`postgres://…`). [default: none: one node]
    #[schemars(extend("value_name" = "NATS_URL"))]
    pub cluster: Option<String>,
    /// This node's name in the cluster, shown in logs and the online-user listing. [default:
    /// the host name and HTTP port]
    #[schemars(extend("value_name" = "NAME"))]
    pub node_name: Option<String>,
    /// How long conversation history is kept, with a message store: every message accepted,
    /// numbered per conversation, for hongyan clients' sync and the HTTP API (a number of
    /// seconds, or 30d, 12h, 45m, 30s). 0 keeps none: only undelivered messages are stored.
    #[serde(with = "format::retention")]
    #[schemars(with = "String", extend("value_name" = "DURATION"))]
    pub history_retention: Duration,
    /// How long numbered history waits before it is written (0: at once), or `None` for the
    /// default: [`HISTORY_FLUSH_DELAY`] on one server, 0 on a cluster's node (whose readers
    /// see history only once it is written). What a crash can cost the history, besides the
    /// write under way. Not a user setting.
    #[serde(skip)]
    pub history_flush_delay: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tcp_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8901))),
            udp_addr: Some(SocketAddr::from(([0, 0, 0, 0], 7901))),
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 3000))),
            tcp_plain_addr: None,
            tls_cert: None,
            tls_key: None,
            tcp_tls: TlsMode::Auto,
            http_tls: TlsMode::Auto,
            tls_handshake_timeout: HandshakeLimits::default().timeout,
            max_tls_handshakes: HandshakeLimits::default().max_in_progress,
            tls_watch_interval: DEFAULT_WATCH_INTERVAL,
            tcp_sense_mode: None,
            udp_sense_mode: None,
            ws_sense_mode: None,
            max_frame_body: hongyan_shared::codec::frame::DEFAULT_MAX_BODY,
            udp_max_inbound: 2048,
            udp_max_outbound: 1024,
            ws_max_message: 65536,
            ws_allowed_origins: None,
            max_connections: None,
            max_udp_sessions: 100_000,
            max_udp_unauthenticated: 1024,
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            http_session_idle: Duration::from_secs(60),
            max_http_sessions: 10_000,
            outbox_capacity: 256,
            slow_consumer_stall: Duration::from_secs(10),
            max_queued_bytes: 64 * 1024 * 1024,
            max_in_flight: 50_000,
            max_in_flight_per_user: 1024,
            max_in_flight_bytes_per_user: 4 * 1024 * 1024,
            login_timeout: Duration::from_secs(15),
            max_messages_per_sec: 50,
            message_burst: 200,
            max_logins_per_sec_per_ip: 20,
            login_burst_per_ip: 100,
            max_logins_per_sec: 5_000,
            login_burst: 10_000,
            max_connections_per_ip: 1_000,
            max_udp_sessions_per_ip: 1_000,
            api_max_body_bytes: 1024 * 1024,
            api_requests_per_sec_per_ip: 1_000,
            api_burst_per_ip: 2_000,
            limits_exempt: None,
            s2c_schedule: RetransmitSchedule::SERVER,
            dedup: DedupConfig::default(),
            server_timestamp: false,
            web_dir: None,
            admin_token: None,
            metrics_token: None,
            webhook_url: None,
            webhook_token: None,
            webhook_timeout: Duration::from_secs(3),
            webhook_concurrency: 64,
            webhook_event_queue: 10_000,
            webhook_events: EventKinds::ALL,
            // The library keeps today's behaviour unless asked: an embedding application's
            // `on_offline` hook still decides, and no acknowledgement means "kept in memory"
            // (which a crash would break). `hongyan serve` defaults to `sqlite`.
            store: StoreSpec::Off,
            store_max_per_user: 10_000,
            store_max_message_bytes: 64 * 1024,
            store_ttl: Duration::from_secs(7 * 24 * 3600),
            store_replay_window: 64,
            cluster: None,
            node_name: None,
            history_retention: Duration::from_secs(30 * 24 * 3600),
            history_flush_delay: None,
        }
    }
}

impl Config {
    /// Every gateway on `127.0.0.1` with an ephemeral port: what tests use.
    pub fn loopback() -> Self {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        Self {
            tcp_addr: any,
            udp_addr: any,
            http_addr: any,
            ..Self::default()
        }
    }

    /// Which listeners speak TLS, with which certificate, or why the settings do not fit:
    /// half a certificate, a listener's TLS `on` without one, or a plain migration port beside
    /// a TCP gateway that is not TLS.
    pub fn tls(&self) -> Result<TlsPlan, TlsConfigError> {
        TlsSettings {
            cert: self.tls_cert.as_deref(),
            key: self.tls_key.as_deref(),
            tcp: self.tcp_tls,
            http: self.http_tls,
            tcp_listens: self.tcp_addr.is_some(),
            http_listens: self.http_addr.is_some(),
            plain_port: self.tcp_plain_addr.is_some(),
        }
        .plan()
    }

    /// The bounds of each listener's TLS handshake stage.
    pub fn tls_handshake_limits(&self) -> HandshakeLimits {
        HandshakeLimits {
            max_in_progress: self.max_tls_handshakes,
            timeout: self.tls_handshake_timeout,
        }
    }

    /// This node's name in a cluster: [`node_name`](Self::node_name), or the host name and
    /// the HTTP port (so nodes on one machine differ).
    pub fn node_name(&self) -> String {
        if let Some(name) = &self.node_name {
            return name.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "hongyan".to_owned());
        match self.http_addr {
            Some(addr) => format!("{host}:{}", addr.port()),
            None => host,
        }
    }

    /// The backend to call instead of the built-in hooks, if [`webhook_url`](Self::webhook_url)
    /// is set: `hongyan serve` then runs [`WebhookHooks`](crate::webhook::WebhookHooks) with it.
    pub fn webhook(&self) -> Option<WebhookConfig> {
        let url = self.webhook_url.clone()?;
        Some(WebhookConfig {
            url,
            token: self.webhook_token.clone(),
            timeout: self.webhook_timeout,
            concurrency: self.webhook_concurrency,
            event_queue: self.webhook_event_queue,
            events: self.webhook_events,
        })
    }

    /// How the store is opened: its limits, and `sqlite` without a path at `hongyan.db` in the
    /// working directory (`hongyan serve` passes `sqlite:<state dir>/hongyan.db`).
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig::new("hongyan.db").with_limits(Limits {
            max_per_receiver: Some(self.store_max_per_user as u64),
            max_content_bytes: Some(self.store_max_message_bytes),
        })
    }

    /// How long a stored message is kept; `None`: until it is delivered or erased.
    pub fn store_expiry(&self) -> Option<Duration> {
        (!self.store_ttl.is_zero()).then_some(self.store_ttl)
    }

    /// How many stored messages are replayed to a user at once: the setting, at most the
    /// outbox's capacity and the packets a user may have in flight (replays go through both).
    pub fn replay_window(&self) -> usize {
        self.store_replay_window
            .min(self.outbox_capacity)
            .min(self.max_in_flight_per_user)
    }

    /// The abuse limits these settings describe.
    pub(crate) fn limits(&self) -> limits::Settings {
        let rate = |per_sec, burst| limits::Rate { per_sec, burst };
        limits::Settings {
            messages: rate(self.max_messages_per_sec, self.message_burst),
            logins_per_address: rate(self.max_logins_per_sec_per_ip, self.login_burst_per_ip),
            logins: rate(self.max_logins_per_sec, self.login_burst),
            api_requests: rate(self.api_requests_per_sec_per_ip, self.api_burst_per_ip),
            connections_per_address: self.max_connections_per_ip,
            udp_sessions_per_address: self.max_udp_sessions_per_ip,
            exempt: self.limits_exempt.clone().unwrap_or_default(),
        }
    }

    /// How long a session of `transport` may stay silent before the server closes it.
    pub fn idle_expiry(&self, transport: Transport) -> Duration {
        let mode = match transport {
            Transport::Tcp => self.tcp_sense_mode,
            Transport::Udp => self.udp_sense_mode,
            Transport::WebSocket => self.ws_sense_mode,
            Transport::Http => return self.http_session_idle,
        };
        mode.map_or_else(
            || transport.default_timing().server_expire,
            |mode| mode.timing(transport).server_expire,
        )
    }

    /// The largest packet body the server may send over `transport`.
    pub fn max_outbound(&self, transport: Transport) -> usize {
        match transport {
            Transport::Tcp => self.max_frame_body,
            Transport::Udp => self.udp_max_outbound,
            Transport::WebSocket => self.ws_max_message,
            Transport::Http => HTTP_SESSION_MAX_OUTBOUND,
        }
    }
}

// Here rather than in `webhook`, next to the defaults it reads, so that `webhook` need not
// import this module, which imports it.
impl WebhookConfig {
    /// The defaults (those of [`Config`]) for a backend at `url`.
    pub fn new(url: Url) -> Self {
        let defaults = Config {
            webhook_url: Some(url),
            ..Config::default()
        };
        defaults
            .webhook()
            .expect("a config with a webhook URL has a webhook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, String> {
        toml::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn every_key_is_optional_and_missing_ones_take_the_defaults() {
        let config = parse("udp_addr = \"off\"\ntcp_sense_mode = \"MODE_5S\"\n").unwrap();
        assert_eq!(config.udp_addr, None);
        assert_eq!(config.tcp_sense_mode, Some(SenseMode::S5));
        assert_eq!(config.tcp_addr, Config::default().tcp_addr);
        assert_eq!(config.max_frame_body, Config::default().max_frame_body);
    }

    #[test]
    fn values_in_human_units_become_their_rust_types() {
        let config = parse(
            "slow_consumer_secs = 3\nwebhook_timeout_ms = 250\ndedup_capacity = 7\n\
             http_idle_timeout_secs = 5\nws_allowed_origins = \"self, https://a.example\"\n\
             webhook_events = \"login,s2cLost\"\nwebhook_url = \"http://127.0.0.1:9/hooks\"\n",
        )
        .unwrap();
        assert_eq!(config.slow_consumer_stall, Duration::from_secs(3));
        assert_eq!(config.http_idle_timeout, Duration::from_secs(5));
        let origins = config
            .ws_allowed_origins
            .as_ref()
            .expect("a list turns the check on");
        assert_eq!(origins.to_string(), "self,https://a.example");
        assert_eq!(config.dedup.capacity, 7);
        assert_eq!(config.dedup.lifetime, DedupConfig::default().lifetime);
        let webhook = config.webhook().expect("a URL turns the webhooks on");
        assert_eq!(webhook.timeout, Duration::from_millis(250));
        assert_eq!(webhook.events.to_string(), "login,s2cLost");
        assert_eq!(webhook.url.as_str(), "http://127.0.0.1:9/hooks");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_with_a_reason() {
        for (toml, reason) in [
            ("tcp_addr = \"nonsense\"", "not an address"),
            ("udp_sense_mode = \"MODE_5S\"", "does not exist for UDP"),
            ("ws_sense_mode = \"MODE_7S\"", "unknown sense mode"),
            ("max_frame_body = 0", "must be positive"),
            ("login_timeout_secs = 0", "must be positive"),
            ("max_queued_bytes = 0", "must be positive"),
            ("max_connections = 0", "must be positive"),
            ("http_header_timeout_secs = 0", "must be positive"),
            (
                "ws_allowed_origins = \"chat.example.com\"",
                "neither `self` nor an origin",
            ),
            ("webhook_timeout_ms = 0", "must be positive"),
            ("webhook_url = \"backend:8080\"", "http:// or https://"),
            (
                "webhook_events = \"login,logins\"",
                "unknown event \"logins\"",
            ),
            ("admin_token = \"two words\"", "visible ASCII"),
            ("tcp_adr = \"off\"", "unknown field"),
            ("s2c_schedule = 1", "unknown field"),
        ] {
            let error = parse(toml).expect_err(toml);
            assert!(error.contains(reason), "{toml}: {error}");
        }
    }

    #[test]
    fn the_defaults_survive_a_round_trip() {
        let text = serde_json::to_string(&Config::default()).unwrap();
        let back: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn secrets_are_never_serialized() {
        let config = Config {
            admin_token: Some(BearerToken::new("s3cret").unwrap()),
            ..Config::default()
        };
        assert!(!serde_json::to_string(&config).unwrap().contains("s3cret"));
    }
}
