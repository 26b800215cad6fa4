//! Server configuration: defaults, a TOML file, environment variables and flags, in rising
//! order of precedence (see [`ServeArgs`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hongyan_shared::{DedupConfig, RetransmitSchedule, SenseMode, Transport};
use serde::Deserialize;

use crate::token::BearerToken;
use crate::webhook::{EventKinds, WebhookConfig};

/// Everything the server needs to run. `Config::default()` is what `hongyan serve` runs with
/// when nothing is configured.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP gateway address (`None` = off). Default `0.0.0.0:8901`.
    pub tcp_addr: Option<SocketAddr>,
    /// UDP gateway address (`None` = off). Default `0.0.0.0:7901`.
    pub udp_addr: Option<SocketAddr>,
    /// HTTP listener for the WebSocket gateway (`/websocket`), the H5 client and the API
    /// (`None` = off). Default `0.0.0.0:3000`.
    pub http_addr: Option<SocketAddr>,
    /// Sense mode of the TCP gateway; `None` = the jar default (20 s idle expiry).
    pub tcp_sense_mode: Option<SenseMode>,
    /// Sense mode of the UDP gateway; `None` = the jar default (10 s idle expiry).
    pub udp_sense_mode: Option<SenseMode>,
    /// Sense mode of the WebSocket gateway; `None` = the reference default (20 s idle expiry).
    pub ws_sense_mode: Option<SenseMode>,
    /// Largest TCP frame body accepted and sent (must equal the clients' limit). Default 6144.
    pub max_frame_body: usize,
    /// Largest UDP datagram accepted; a larger one closes its pseudo-session, as in the
    /// reference. Default 2048.
    pub udp_max_inbound: usize,
    /// Largest UDP datagram sent; the Java and Android UDP clients read at most 1024 bytes.
    pub udp_max_outbound: usize,
    /// Largest WebSocket message accepted and sent. Default 65536.
    pub ws_max_message: usize,
    /// Most TCP plus WebSocket connections at once; further ones are refused.
    pub max_connections: usize,
    /// Most UDP pseudo-sessions at once; datagrams from further addresses are dropped.
    pub max_udp_sessions: usize,
    /// Packets queued for one session; what does not fit is refused (not acknowledged).
    pub outbox_capacity: usize,
    /// How long a session's queue may stay full, with nothing taken from it, before the
    /// session is closed as a receiver that stopped reading. Default 10 s.
    pub slow_consumer_stall: Duration,
    /// Retransmission of server → client QoS packets (reference: 5 s tick, 2 s, 1 retry).
    pub s2c_schedule: RetransmitSchedule,
    /// The C2S de-duplication window.
    pub dedup: DedupConfig,
    /// Stamp `sm` (server time, epoch ms) on every packet the server sends.
    pub server_timestamp: bool,
    /// Directory holding the built H5 client, served at `/`.
    pub web_dir: Option<PathBuf>,
    /// The bearer token `/api` requires. `None` disables the API (every call answers 503);
    /// `hongyan serve` never runs without one (see [`BearerToken::load_or_create`]).
    pub admin_token: Option<BearerToken>,
    /// If set, `/metrics` requires this bearer token; otherwise it is public.
    pub metrics_token: Option<BearerToken>,
    /// Where `hongyan serve` keeps state between runs: the generated admin token
    /// (`admin-token`). The library itself writes nothing there.
    pub state_dir: PathBuf,
    /// Worker threads of the runtime `hongyan serve` builds; `None` = one per core. The
    /// library itself starts no runtime. See docs/PERFORMANCE.md, "Worker threads".
    pub workers: Option<usize>,
    /// The application backend to call instead of the built-in hooks; `hongyan serve` runs
    /// [`WebhookHooks`](crate::webhook::WebhookHooks) when this is set.
    pub webhook: Option<WebhookConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tcp_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8901))),
            udp_addr: Some(SocketAddr::from(([0, 0, 0, 0], 7901))),
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 3000))),
            tcp_sense_mode: None,
            udp_sense_mode: None,
            ws_sense_mode: None,
            max_frame_body: hongyan_shared::codec::frame::DEFAULT_MAX_BODY,
            udp_max_inbound: 2048,
            udp_max_outbound: 1024,
            ws_max_message: 65536,
            max_connections: 50_000,
            max_udp_sessions: 100_000,
            outbox_capacity: 256,
            slow_consumer_stall: Duration::from_secs(10),
            s2c_schedule: RetransmitSchedule::SERVER,
            dedup: DedupConfig::default(),
            server_timestamp: false,
            web_dir: None,
            admin_token: None,
            metrics_token: None,
            state_dir: crate::token::default_state_dir(),
            workers: None,
            webhook: None,
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

    /// How long a session of `transport` may stay silent before the server closes it.
    pub fn idle_expiry(&self, transport: Transport) -> Duration {
        let mode = match transport {
            Transport::Tcp => self.tcp_sense_mode,
            Transport::Udp => self.udp_sense_mode,
            Transport::WebSocket => self.ws_sense_mode,
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
        }
    }
}

/// A listen address that can also be `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" | "none" | "disabled" | "" => Ok(Self(None)),
            addr => addr.parse().map(|a| Self(Some(a))).map_err(|e| {
                format!("{addr:?} is not an address like 127.0.0.1:8901 or \"off\": {e}")
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn parse_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SenseMode>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// The TOML configuration file: every key optional, names as in the flags with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    tcp_addr: Option<Listen>,
    udp_addr: Option<Listen>,
    http_addr: Option<Listen>,
    #[serde(default, deserialize_with = "parse_mode")]
    tcp_sense_mode: Option<SenseMode>,
    #[serde(default, deserialize_with = "parse_mode")]
    udp_sense_mode: Option<SenseMode>,
    #[serde(default, deserialize_with = "parse_mode")]
    ws_sense_mode: Option<SenseMode>,
    max_frame_body: Option<usize>,
    udp_max_inbound: Option<usize>,
    udp_max_outbound: Option<usize>,
    ws_max_message: Option<usize>,
    max_connections: Option<usize>,
    max_udp_sessions: Option<usize>,
    workers: Option<usize>,
    outbox_capacity: Option<usize>,
    slow_consumer_secs: Option<u64>,
    dedup_capacity: Option<usize>,
    server_timestamp: Option<bool>,
    web_dir: Option<PathBuf>,
    admin_token: Option<BearerToken>,
    metrics_token: Option<BearerToken>,
    state_dir: Option<PathBuf>,
    webhook_url: Option<String>,
    webhook_token: Option<BearerToken>,
    webhook_timeout_ms: Option<u64>,
    webhook_concurrency: Option<usize>,
    webhook_event_queue: Option<usize>,
    webhook_events: Option<EventKinds>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or bad values.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

/// `hongyan serve` options. Each flag also reads the environment variable named next to it;
/// a flag or variable overrides the `--config` file, which overrides the defaults.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys: the flag names with `_`, e.g. `tcp_addr = "0.0.0.0:8901"`).
    #[arg(long, env = "HONGYAN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP gateway address, or `off` [default: 0.0.0.0:8901].
    #[arg(long, env = "HONGYAN_TCP_ADDR", value_name = "ADDR")]
    pub tcp_addr: Option<Listen>,
    /// UDP gateway address, or `off` [default: 0.0.0.0:7901].
    #[arg(long, env = "HONGYAN_UDP_ADDR", value_name = "ADDR")]
    pub udp_addr: Option<Listen>,
    /// HTTP address (WebSocket `/websocket`, H5 client, API), or `off` [default: 0.0.0.0:3000].
    #[arg(long, env = "HONGYAN_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<Listen>,
    /// TCP sense mode (MODE_3S … MODE_120S); sets the idle expiry [default: 20 s].
    #[arg(long, env = "HONGYAN_TCP_SENSE_MODE", value_name = "MODE")]
    pub tcp_sense_mode: Option<SenseMode>,
    /// UDP sense mode (MODE_3S, MODE_10S … MODE_120S) [default: 10 s expiry].
    #[arg(long, env = "HONGYAN_UDP_SENSE_MODE", value_name = "MODE")]
    pub udp_sense_mode: Option<SenseMode>,
    /// WebSocket sense mode [default: 20 s expiry].
    #[arg(long, env = "HONGYAN_WS_SENSE_MODE", value_name = "MODE")]
    pub ws_sense_mode: Option<SenseMode>,
    /// Largest TCP frame body in bytes, both ways; clients must use the same [default: 6144].
    #[arg(long, env = "HONGYAN_MAX_FRAME_BODY", value_name = "BYTES")]
    pub max_frame_body: Option<usize>,
    /// Most TCP + WebSocket connections [default: 50000].
    #[arg(long, env = "HONGYAN_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most UDP pseudo-sessions [default: 100000].
    #[arg(long, env = "HONGYAN_MAX_UDP_SESSIONS", value_name = "N")]
    pub max_udp_sessions: Option<usize>,
    /// Runtime worker threads [default: one per core]. Fewer than the cores leaves them to
    /// other processes on the machine, and costs less CPU per message at moderate load.
    #[arg(long, env = "HONGYAN_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Stamp `sm` (server time in ms) on every packet sent.
    #[arg(long, env = "HONGYAN_SERVER_TIMESTAMP")]
    pub server_timestamp: bool,
    /// Directory of the built H5 client served at `/` [default: `dist` if it exists].
    #[arg(long, env = "HONGYAN_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,
    /// Bearer token for the HTTP API at `/api`. Without one, a token is generated on first
    /// start, printed once and kept in `<state-dir>/admin-token`.
    #[arg(
        long,
        env = "HONGYAN_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<BearerToken>,
    /// Bearer token required by `/metrics` [default: none, metrics are public].
    #[arg(
        long,
        env = "HONGYAN_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<BearerToken>,
    /// Directory for state kept between runs [default: $XDG_STATE_HOME/hongyan,
    /// ~/.local/state/hongyan or ./.hongyan].
    #[arg(long, env = "HONGYAN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Base URL of the application backend: hongyan POSTs to `<url>/verify`, `<url>/offline`
    /// and `<url>/events` (see docs/INTEGRATION.md) [default: none, built-in hooks].
    #[arg(long, env = "HONGYAN_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Bearer token hongyan sends to the webhooks.
    #[arg(
        long,
        env = "HONGYAN_WEBHOOK_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub webhook_token: Option<BearerToken>,
    /// Deadline of one webhook attempt in milliseconds [default: 3000].
    #[arg(long, env = "HONGYAN_WEBHOOK_TIMEOUT_MS", value_name = "MS")]
    pub webhook_timeout_ms: Option<u64>,
    /// Most webhook requests in flight at once [default: 64].
    #[arg(long, env = "HONGYAN_WEBHOOK_CONCURRENCY", value_name = "N")]
    pub webhook_concurrency: Option<usize>,
    /// Events queued for delivery before further ones are dropped [default: 10000].
    #[arg(long, env = "HONGYAN_WEBHOOK_EVENT_QUEUE", value_name = "N")]
    pub webhook_event_queue: Option<usize>,
    /// Events sent to `<url>/events`: `all`, `none`, or a list of login, logout, c2s,
    /// c2cDelivered, s2cDelivered, s2cLost [default: all].
    #[arg(long, env = "HONGYAN_WEBHOOK_EVENTS", value_name = "LIST")]
    pub webhook_events: Option<EventKinds>,
}

impl ServeArgs {
    /// Layers defaults, the file named by `--config`, then flags and environment.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        // Each value: the flag (or its environment variable), else the file, else the default.
        let mut c = Config::default();
        let listen = |flag: Option<Listen>, file: Option<Listen>, default| {
            flag.or(file).map_or(default, |l: Listen| l.0)
        };
        c.tcp_addr = listen(self.tcp_addr, file.tcp_addr, c.tcp_addr);
        c.udp_addr = listen(self.udp_addr, file.udp_addr, c.udp_addr);
        c.http_addr = listen(self.http_addr, file.http_addr, c.http_addr);
        c.tcp_sense_mode = self.tcp_sense_mode.or(file.tcp_sense_mode);
        c.udp_sense_mode = self.udp_sense_mode.or(file.udp_sense_mode);
        c.ws_sense_mode = self.ws_sense_mode.or(file.ws_sense_mode);
        c.max_frame_body = self
            .max_frame_body
            .or(file.max_frame_body)
            .unwrap_or(c.max_frame_body);
        c.max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(c.max_connections);
        c.max_udp_sessions = self
            .max_udp_sessions
            .or(file.max_udp_sessions)
            .unwrap_or(c.max_udp_sessions);
        c.workers = self.workers.or(file.workers);
        c.udp_max_inbound = file.udp_max_inbound.unwrap_or(c.udp_max_inbound);
        c.udp_max_outbound = file.udp_max_outbound.unwrap_or(c.udp_max_outbound);
        c.ws_max_message = file.ws_max_message.unwrap_or(c.ws_max_message);
        c.outbox_capacity = file.outbox_capacity.unwrap_or(c.outbox_capacity);
        if let Some(secs) = file.slow_consumer_secs {
            c.slow_consumer_stall = Duration::from_secs(secs);
        }
        c.dedup.capacity = file.dedup_capacity.unwrap_or(c.dedup.capacity);
        c.server_timestamp = self.server_timestamp || file.server_timestamp.unwrap_or(false);
        c.web_dir = self
            .web_dir
            .clone()
            .or(file.web_dir)
            .or_else(|| Path::new("dist").is_dir().then(|| PathBuf::from("dist")));
        c.admin_token = self.admin_token.clone().or(file.admin_token);
        c.metrics_token = self.metrics_token.clone().or(file.metrics_token);
        if let Some(dir) = self.state_dir.clone().or(file.state_dir) {
            c.state_dir = dir;
        }
        if let Some(url) = self.webhook_url.as_deref().or(file.webhook_url.as_deref()) {
            let url = WebhookConfig::parse_url(url).map_err(ConfigError::Invalid)?;
            let mut webhook = WebhookConfig::new(url);
            webhook.token = self.webhook_token.clone().or(file.webhook_token);
            if let Some(ms) = self.webhook_timeout_ms.or(file.webhook_timeout_ms) {
                webhook.timeout = Duration::from_millis(ms);
            }
            if let Some(n) = self.webhook_concurrency.or(file.webhook_concurrency) {
                webhook.concurrency = n;
            }
            if let Some(n) = self.webhook_event_queue.or(file.webhook_event_queue) {
                webhook.event_queue = n;
            }
            if let Some(kinds) = self.webhook_events.or(file.webhook_events) {
                webhook.events = kinds;
            }
            if webhook.timeout.is_zero() || webhook.concurrency == 0 || webhook.event_queue == 0 {
                return Err(ConfigError::Invalid(
                    "webhook_timeout_ms, webhook_concurrency and webhook_event_queue must be positive"
                        .into(),
                ));
            }
            c.webhook = Some(webhook);
        }
        if let Some(mode) = c.udp_sense_mode.filter(|m| !m.supports(Transport::Udp)) {
            return Err(ConfigError::Invalid(format!(
                "{mode} does not exist for UDP (use MODE_3S, MODE_10S, MODE_30S, MODE_60S or MODE_120S)"
            )));
        }
        if c.max_frame_body == 0
            || c.outbox_capacity == 0
            || c.dedup.capacity == 0
            || c.workers == Some(0)
        {
            return Err(ConfigError::Invalid(
                "max_frame_body, outbox_capacity, dedup_capacity and workers must be positive"
                    .into(),
            ));
        }
        Ok(c)
    }
}

impl From<Listen> for Option<SocketAddr> {
    fn from(l: Listen) -> Self {
        l.0
    }
}
