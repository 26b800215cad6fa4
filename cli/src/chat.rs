//! `hongyan chat`: an interactive terminal client, and a line-oriented one for scripts, on
//! the `hongyan-client` library.
//!
//! Human mode prints status lines (`* online`, `* link lost, reconnecting`, `* kicked out`),
//! incoming messages as `<bob> text`, and delivery ticks (`✓` delivered, `✗` lost) under the
//! fingerprint's first eight characters. With `--json` every event is one JSON object per line
//! on stdout, and stdin lines are commands:
//!
//! - plain text: send it to the current peer (QoS on, unless `--no-qos`);
//! - `/to bob`: talk to `bob` from now on (`/to 0` talks to the server);
//! - `/quit`: log out and exit.
//!
//! When stdin ends, the chat waits until every sent QoS message is delivered or reported lost,
//! then logs out, unless `--stay` keeps it running until it is kicked out or killed.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use hongyan_shared::client::{ClientEvent, ConnectionState};
use hongyan_shared::{Fingerprint, LoginInfo, SenseMode, UserId};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use hongyan_client::{Client, ClientConfig, Endpoint, Outgoing, TlsOptions, Trust};

/// Arguments of `hongyan chat`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// Connect over TCP to `host:port` (e.g. 127.0.0.1:8901).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["udp", "ws"])]
    pub tcp: Option<String>,
    /// Connect over UDP to `host:port` (e.g. 127.0.0.1:7901).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["tcp", "ws"])]
    pub udp: Option<String>,
    /// Connect over WebSocket to a URL (e.g. ws://127.0.0.1:3000/websocket, or
    /// wss://chat.example.com/websocket for TLS).
    #[arg(long, value_name = "URL", conflicts_with_all = ["tcp", "udp"])]
    pub ws: Option<String>,
    /// Speak TLS over TCP (`--tcp` only; a WebSocket takes TLS from a `wss://` URL). The
    /// server's certificate must chain to the system's roots, or to `--ca-file`.
    #[arg(long, requires = "tcp")]
    pub tls: bool,
    /// Trust the certificates in this PEM file (a private CA, or a self-signed server's own
    /// certificate, as `hongyan serve --tls-self-signed` prints) instead of the system's roots.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "danger_accept_invalid_certs"
    )]
    pub ca_file: Option<std::path::PathBuf>,
    /// DANGER: accept ANY certificate, so that anyone on the path can read and change the
    /// chat. For a throwaway test server only; `--ca-file` is the safe way to a self-signed one.
    #[arg(long)]
    pub danger_accept_invalid_certs: bool,
    /// The name to check the certificate against (and send as SNI) instead of the host
    /// connected to, e.g. when connecting by IP address.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// The user id to log in as.
    #[arg(long)]
    pub user: String,
    /// The login token, checked by the server application.
    #[arg(long)]
    pub token: Option<String>,
    /// Opaque extra login data.
    #[arg(long)]
    pub extra: Option<String>,
    /// Who to talk to first (`0` is the server).
    #[arg(long, default_value = "0")]
    pub to: String,
    /// Keepalive sense mode (MODE_3S … MODE_120S, or 3s … 120s); must match the server's.
    #[arg(long, value_name = "MODE")]
    pub sense_mode: Option<SenseMode>,
    /// The `typeu` put on sent messages.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub typeu: i32,
    /// Send without QoS (no retransmission, no delivery report).
    #[arg(long)]
    pub no_qos: bool,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep running after stdin ends, until kicked out or killed.
    #[arg(long)]
    pub stay: bool,
}

impl ChatArgs {
    /// The endpoint chosen by `--tcp` (with `--tls`: TLS), `--udp` or `--ws`.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        match (&self.tcp, &self.udp, &self.ws) {
            (Some(addr), None, None) if self.tls => Ok(Endpoint::TcpTls(addr.clone())),
            (Some(addr), None, None) => Ok(Endpoint::Tcp(addr.clone())),
            (None, Some(addr), None) => Ok(Endpoint::Udp(addr.clone())),
            (None, None, Some(url)) => Ok(Endpoint::WebSocket(url.clone())),
            _ => anyhow::bail!("choose exactly one of --tcp, --udp and --ws"),
        }
    }

    /// How a TLS endpoint's certificate is checked; an error if TLS options are given for an
    /// endpoint without TLS, where they would silently do nothing.
    pub fn tls_options(&self, endpoint: &Endpoint) -> anyhow::Result<TlsOptions> {
        let trust = match (&self.ca_file, self.danger_accept_invalid_certs) {
            (Some(file), _) => Trust::CaFile(file.clone()),
            (None, true) => Trust::DangerAcceptInvalidCerts,
            (None, false) => Trust::SystemRoots,
        };
        let options = TlsOptions {
            trust,
            server_name: self.tls_server_name.clone(),
        };
        if !endpoint.uses_tls() && options != TlsOptions::default() {
            anyhow::bail!(
                "--ca-file, --danger-accept-invalid-certs and --tls-server-name are for TLS: \
                 add --tls to --tcp, or use a wss:// URL"
            );
        }
        Ok(options)
    }
}

/// Runs the chat on stdin and stdout until the user quits, stdin ends (see the module doc) or
/// the session ends.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    run_with(args, stdin_lines(), Box::new(std::io::stdout())).await
}

/// [`run`] with other input and output: `input` yields command lines (its end is the end of
/// stdin), `output` receives what would go to stdout. Tests and embedding programs drive the
/// chat this way.
pub async fn run_with(
    args: ChatArgs,
    mut lines: mpsc::Receiver<String>,
    output: Box<dyn Write + Send>,
) -> anyhow::Result<()> {
    let endpoint = args.endpoint()?;
    let mut config = ClientConfig::new(endpoint.clone());
    config.tls = args.tls_options(&endpoint)?;
    if let Some(mode) = args.sense_mode {
        config = config.with_sense_mode(mode);
    }
    let out = Output {
        json: args.json,
        sink: Arc::new(Mutex::new(output)),
    };
    let login = LoginInfo::new(&args.user, args.token.as_deref(), args.extra.as_deref());
    let (client, mut events) =
        Client::connect(config, login).context("cannot start the chat client")?;
    out.status(
        json!({"event": "connecting", "endpoint": endpoint.to_string(), "user": args.user}),
        format_args!("connecting to {endpoint} as {}", args.user),
    );
    let mut chat = Chat {
        client,
        out,
        peer: args.to.clone(),
        typeu: args.typeu,
        qos: !args.no_qos,
        pending: HashSet::new(),
        stdin_open: true,
        leaving: false,
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => chat.event(event),
                None => break,
            },
            line = lines.recv(), if chat.stdin_open => match line {
                Some(line) => chat.line(line).await,
                None => chat.stdin_open = false,
            },
        }
        if !chat.stdin_open && !args.stay && chat.pending.is_empty() {
            chat.leave();
        }
    }
    Ok(())
}

struct Chat {
    client: Client,
    out: Output,
    peer: String,
    typeu: i32,
    qos: bool,
    pending: HashSet<Fingerprint>,
    stdin_open: bool,
    leaving: bool,
}

impl Chat {
    async fn line(&mut self, line: String) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return;
        }
        if line == "/quit" {
            self.leave();
        } else if let Some(peer) = line.strip_prefix("/to ") {
            self.peer = peer.trim().to_owned();
            self.out.status(
                json!({"event": "peer", "to": self.peer}),
                format_args!("talking to {}", describe(&self.peer)),
            );
        } else if line.starts_with('/') {
            self.out.status(
                json!({"event": "unknown_command", "line": line}),
                format_args!("commands: /to <user>, /quit; anything else is sent"),
            );
        } else {
            self.send(line.to_owned()).await;
        }
    }

    async fn send(&mut self, content: String) {
        let message = Outgoing {
            typeu: self.typeu,
            qos: self.qos,
            ..Outgoing::new(self.peer.clone(), content.clone())
        };
        match self.client.send(message).await {
            Ok(fp) => {
                if self.qos {
                    self.pending.insert(fp.clone());
                }
                self.out.line(
                    json!({"event": "sent", "fp": fp.as_str(), "to": self.peer, "content": content}),
                    format_args!("→ {}: {content}  [{}]", self.peer, short(&fp)),
                );
            }
            Err(error) => self.out.status(
                json!({"event": "send_failed", "to": self.peer, "error": error.to_string()}),
                format_args!("not sent: {error}"),
            ),
        }
    }

    /// Logs out in the background; the event stream ends once it is done.
    fn leave(&mut self) {
        if !self.leaving {
            self.leaving = true;
            let client = self.client.clone();
            tokio::spawn(async move { client.logout().await });
        }
    }

    fn event(&mut self, event: ClientEvent) {
        let out = self.out.clone();
        match event {
            ClientEvent::StateChanged(state) => {
                let text = match state {
                    ConnectionState::Offline => "offline",
                    ConnectionState::Connecting => "connecting",
                    ConnectionState::Online => "online",
                    ConnectionState::Reconnecting => "link lost, reconnecting",
                };
                out.status(
                    json!({"event": "state", "state": state.as_str()}),
                    format_args!("{text}"),
                );
            }
            ClientEvent::LoginResponse {
                code,
                first_login_time,
            } => out.status(
                json!({"event": "login", "code": code, "firstLoginTime": first_login_time}),
                format_args!(
                    "{}",
                    if code == 0 {
                        format!("logged in (firstLoginTime {first_login_time})")
                    } else {
                        format!("login refused with code {code}")
                    }
                ),
            ),
            ClientEvent::LinkClosed => {
                out.status(json!({"event": "link_closed"}), format_args!("link closed"));
            }
            ClientEvent::Kickout(kickout) => out.status(
                json!({"event": "kickout", "code": kickout.code, "reason": kickout.reason}),
                format_args!(
                    "kicked out (code {}{}){}",
                    kickout.code,
                    match kickout.code {
                        1 => ": logged in elsewhere",
                        2 => ": by the server",
                        _ => "",
                    },
                    kickout.reason.map(|r| format!(" {r}")).unwrap_or_default()
                ),
            ),
            ClientEvent::MessageReceived(m) => out.line(
                json!({
                    "event": "message",
                    "from": m.from.as_str(),
                    "content": m.content,
                    "typeu": m.typeu,
                    "fp": m.fp.as_ref().map(Fingerprint::as_str),
                }),
                format_args!("<{}> {}", describe(m.from.as_str()), m.content),
            ),
            ClientEvent::RateLimited { fp } => out.status(
                json!({"event": "rate_limited", "fp": fp.as_ref().map(Fingerprint::as_str)}),
                format_args!(
                    "sending too fast: message [{}] refused; it is retried",
                    fp.as_ref().map(short).unwrap_or_default()
                ),
            ),
            ClientEvent::ErrorResponse { code, message } => out.status(
                json!({"event": "error", "code": code, "message": message}),
                format_args!("server error {code}"),
            ),
            ClientEvent::MessageDelivered(fp) => {
                self.pending.remove(&fp);
                out.line(
                    json!({"event": "delivered", "fp": fp.as_str()}),
                    format_args!("✓ delivered [{}]", short(&fp)),
                );
            }
            ClientEvent::MessagesLost(lost) => {
                for packet in lost {
                    let fp = packet.fp.clone().unwrap_or_default();
                    self.pending.remove(&fp);
                    out.line(
                        json!({
                            "event": "lost",
                            "fp": fp.as_str(),
                            "to": packet.to_str(),
                            "content": packet.data_content,
                        }),
                        format_args!("✗ lost [{}] to {}", short(&fp), packet.to_str()),
                    );
                }
            }
        }
    }
}

fn describe(user: &str) -> &str {
    if user == UserId::SERVER {
        "server"
    } else {
        user
    }
}

fn short(fp: &Fingerprint) -> &str {
    fp.as_str().get(..8).unwrap_or(fp.as_str())
}

/// Writes events to stdout (or the given sink), as JSON lines or as text.
#[derive(Clone)]
struct Output {
    json: bool,
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Output {
    /// A status line: `* text` in human mode.
    fn status(&self, value: Value, text: std::fmt::Arguments<'_>) {
        if self.json {
            self.line(value, text);
        } else {
            self.line(value, format_args!("* {text}"));
        }
    }

    fn line(&self, value: Value, text: std::fmt::Arguments<'_>) {
        let mut stdout = self
            .sink
            .lock()
            .expect("no writer panics while holding the lock");
        // A closed stdout (e.g. `| head`) must not kill the session mid-logout.
        let _ = if self.json {
            writeln!(stdout, "{value}")
        } else {
            writeln!(stdout, "{text}")
        };
        let _ = stdout.flush();
    }
}

/// Reads stdin on its own thread, so a pending read never holds up runtime shutdown.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}
