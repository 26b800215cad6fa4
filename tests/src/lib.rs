//! Shared helpers for hongyan's end-to-end tests: a real server on loopback ports
//! ([`TestServer`]), hooks that record what the server reports ([`RecordingHooks`]), and raw
//! protocol peers on each transport ([`Peer`]) that send exactly the bytes a test chooses;
//! a fault proxy ([`proxy`]), the browser driver ([`browser`]) and the soak ([`soak`]).
//!
//! Every wait is bounded ([`WAIT`]), so a broken server fails a test instead of hanging it.

pub mod browser;
pub mod proxy;
pub mod soak;
pub mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hongyan_server::hongyan_store::MessageStore;
use hongyan_server::{Config, Hooks, LoginRequest, Server, ServerHandle, SessionInfo};
use hongyan_shared::{
    Fingerprint, LoginInfo, LoginResponse, Packet, PacketType, Transport, UserId,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any helper waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// What the server reported through its hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `on_login`.
    Login(UserId),
    /// `verify_login` was called.
    Verify(UserId),
    /// `on_logout` with the kick code.
    Logout(UserId, Option<i32>),
    /// `on_c2s`.
    C2s(Packet),
    /// `on_c2c_delivered`.
    C2cDelivered(Packet),
    /// `on_offline`.
    Offline(Packet),
    /// `on_stored`: the message store kept a message for an offline receiver.
    Stored(Packet),
    /// `on_s2c_lost`, one event per packet.
    S2cLost(Packet),
    /// `on_s2c_received`.
    S2cReceived(UserId, Fingerprint),
}

/// Hooks that record every event. Logins whose token is `refuse-N` are refused with code N;
/// offline messages are stored when [`store_offline`](Self::store_offline) is set.
#[derive(Debug, Default)]
pub struct RecordingHooks {
    events: Mutex<Vec<Event>>,
    changed: Notify,
    /// Whether `on_offline` reports the message as stored.
    pub store_offline: AtomicBool,
}

impl RecordingHooks {
    fn record(&self, event: Event) {
        self.events.lock().expect("test lock").push(event);
        self.changed.notify_waiters();
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("test lock").clone()
    }

    /// How many recorded events match.
    pub fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.events().iter().filter(|e| matches(e)).count()
    }

    /// Waits until an event matches, failing the test after [`WAIT`].
    pub async fn wait_for(&self, matches: impl Fn(&Event) -> bool) -> Event {
        self.wait_for_within(WAIT, matches).await
    }

    /// Waits until an event matches, failing the test after `wait`.
    pub async fn wait_for_within(&self, wait: Duration, matches: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            if let Some(e) = self.events().into_iter().find(|e| matches(e)) {
                return e;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "no matching event within {wait:?}; got {:#?}",
                    self.events()
                );
            }
        }
    }
}

#[async_trait]
impl Hooks for RecordingHooks {
    async fn verify_login(&self, login: LoginRequest<'_>) -> i32 {
        self.record(Event::Verify(login.user_id.clone()));
        login
            .token
            .and_then(|t| t.strip_prefix("refuse-"))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    fn on_login(&self, user: &UserId, _extra: Option<&str>, _session: SessionInfo) {
        self.record(Event::Login(user.clone()));
    }

    fn on_logout(&self, user: &UserId, _session: SessionInfo, kick_code: Option<i32>) {
        self.record(Event::Logout(user.clone(), kick_code));
    }

    fn on_c2s(&self, packet: &Packet, _session: SessionInfo) {
        self.record(Event::C2s(packet.clone()));
    }

    fn on_c2c_delivered(&self, packet: &Packet) {
        self.record(Event::C2cDelivered(packet.clone()));
    }

    async fn on_offline(&self, packet: &Packet) -> bool {
        self.record(Event::Offline(packet.clone()));
        self.store_offline.load(Ordering::SeqCst)
    }

    fn on_stored(&self, packet: &Packet) {
        self.record(Event::Stored(packet.clone()));
    }

    fn on_s2c_lost(&self, lost: &[Packet]) {
        for p in lost {
            self.record(Event::S2cLost(p.clone()));
        }
    }

    fn on_s2c_received(&self, user: &UserId, fp: &Fingerprint) {
        self.record(Event::S2cReceived(user.clone(), fp.clone()));
    }
}

/// A hongyan server on loopback ephemeral ports, stopped when dropped. Its hooks are
/// [`RecordingHooks`] unless it was started [`with_hooks`](TestServer::with_hooks).
pub struct TestServer<H: Hooks = RecordingHooks> {
    /// TCP gateway.
    pub tcp: SocketAddr,
    /// UDP gateway.
    pub udp: SocketAddr,
    /// HTTP listener (WebSocket at `/websocket`).
    pub http: SocketAddr,
    /// The plain TCP gateway beside a TLS one, if configured (`tcp_plain_addr`).
    pub tcp_plain: Option<SocketAddr>,
    /// The send API.
    pub handle: ServerHandle,
    /// The server's hooks: what it reported, for [`RecordingHooks`].
    pub hooks: Arc<H>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with the default configuration (on loopback).
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// A server whose configuration `configure` adjusts first.
    pub async fn with(configure: impl FnOnce(&mut Config)) -> Self {
        TestServer::with_hooks(Arc::new(RecordingHooks::default()), configure).await
    }

    /// A server keeping messages in `store`, a store the test opened (and may look into).
    pub async fn with_store(
        store: Arc<dyn MessageStore>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let hooks = Arc::new(RecordingHooks::default());
        TestServer::bind(hooks, configure, Some(store)).await
    }
}

impl<H: Hooks> TestServer<H> {
    /// A server running `hooks`, whose configuration `configure` adjusts first.
    pub async fn with_hooks(hooks: Arc<H>, configure: impl FnOnce(&mut Config)) -> Self {
        TestServer::bind(hooks, configure, None).await
    }

    /// A server running `hooks`, with `store` if given (else the one the configuration names).
    async fn bind(
        hooks: Arc<H>,
        configure: impl FnOnce(&mut Config),
        store: Option<Arc<dyn MessageStore>>,
    ) -> Self {
        let mut config = Config::loopback();
        // Every test client comes from loopback, most tests open more connections and send
        // faster than one address may by default: the limits are lifted for loopback, as
        // `hongyan bench --spawn` does, and the tests of the limits set what they test.
        config.limits_exempt = Some(hongyan_server::limits::loopback());
        configure(&mut config);
        let bound = match store {
            Some(store) => Server::bind_with_store(config, hooks.clone(), Some(store)).await,
            None => Server::bind(config, hooks.clone()).await,
        }
        .expect("bind loopback ports");
        let (stop, stopped) = oneshot::channel::<()>();
        let (tcp, udp, http) = (
            bound.tcp_addr().expect("tcp on"),
            bound.udp_addr().expect("udp on"),
            bound.http_addr().expect("http on"),
        );
        let tcp_plain = bound.tcp_plain_addr();
        let handle = bound.handle();
        let task = tokio::spawn(async move {
            bound
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            tcp,
            udp,
            http,
            tcp_plain,
            handle,
            hooks,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The WebSocket URL, as MobileIMSDK clients use it.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket", self.http)
    }

    /// The WebSocket URL of a server whose HTTP listener speaks TLS, for the name its test
    /// certificate is issued to.
    pub fn wss_url(&self) -> String {
        format!("wss://localhost:{}/websocket", self.http.port())
    }

    /// Stops the server and waits until it has closed every session.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT * 2, task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }

    /// Connects a raw peer over `transport`.
    pub async fn peer(&self, transport: Transport) -> Peer {
        Peer::connect(transport, self).await
    }

    /// Connects a raw peer over `transport` and logs it in as `user`.
    pub async fn logged_in(&self, transport: Transport, user: &str) -> Peer {
        let mut peer = self.peer(transport).await;
        let response = peer.login(user, 0).await;
        assert_eq!(response.code, 0, "login of {user}");
        peer
    }
}

impl<H: Hooks> Drop for TestServer<H> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What a peer saw next.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv {
    /// A packet body.
    Packet(String),
    /// The server closed the connection (TCP, WebSocket).
    Closed,
    /// Nothing arrived in time.
    Timeout,
}

/// A raw MobileIMSDK peer on one transport.
pub enum Peer {
    /// Length-prefixed frames.
    Tcp {
        /// The connection.
        stream: TcpStream,
        /// Bytes read but not yet framed.
        buf: BytesMut,
    },
    /// Datagrams on a connected socket.
    Udp(UdpSocket),
    /// WebSocket text frames.
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// Length-prefixed frames inside TLS (a TLS TCP gateway).
    Tls {
        /// The connection.
        stream: Box<tokio_rustls::client::TlsStream<TcpStream>>,
        /// Bytes read but not yet framed.
        buf: BytesMut,
    },
}

impl Peer {
    /// Connects to `server` over `transport`.
    pub async fn connect<H: Hooks>(transport: Transport, server: &TestServer<H>) -> Self {
        let addr = match transport {
            Transport::Tcp => server.tcp,
            Transport::Udp => server.udp,
            Transport::WebSocket | Transport::Http => server.http,
        };
        Self::connect_to(transport, addr).await
    }

    /// Connects over `transport` to `addr`: a TCP or UDP gateway, or an HTTP listener (the
    /// WebSocket at `/websocket`), or a proxy in front of one.
    pub async fn connect_to(transport: Transport, addr: SocketAddr) -> Self {
        match transport {
            Transport::Tcp => Self::Tcp {
                stream: TcpStream::connect(addr).await.expect("tcp connect"),
                buf: BytesMut::new(),
            },
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
                socket.connect(addr).await.expect("udp connect");
                Self::Udp(socket)
            }
            Transport::WebSocket => {
                let url = format!("ws://{addr}/websocket");
                let (ws, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .expect("websocket connect");
                Self::Ws(Box::new(ws))
            }
            Transport::Http => {
                panic!(
                    "no raw peer speaks HTTP sessions: they are the API's (tests/api_sessions.rs)"
                )
            }
        }
    }

    /// Connects to `server` over `transport` from the loopback address `source` (another
    /// "address" for the per-address limits: every test client is on 127.0.0.0/8).
    pub async fn connect_from<H: Hooks>(
        transport: Transport,
        server: &TestServer<H>,
        source: Ipv4Addr,
    ) -> Self {
        let tcp_to = |addr: SocketAddr| async move {
            let socket = TcpSocket::new_v4().expect("tcp socket");
            socket
                .bind(SocketAddr::from((source, 0)))
                .expect("bind the source address");
            socket.connect(addr).await.expect("tcp connect")
        };
        match transport {
            Transport::Tcp => Self::Tcp {
                stream: tcp_to(server.tcp).await,
                buf: BytesMut::new(),
            },
            Transport::Udp => {
                let socket = UdpSocket::bind((source, 0)).await.expect("udp bind");
                socket.connect(server.udp).await.expect("udp connect");
                Self::Udp(socket)
            }
            Transport::WebSocket => {
                let stream = MaybeTlsStream::Plain(tcp_to(server.http).await);
                let (ws, _) = tokio_tungstenite::client_async(server.ws_url(), stream)
                    .await
                    .expect("websocket connect");
                Self::Ws(Box::new(ws))
            }
            Transport::Http => {
                panic!(
                    "no raw peer speaks HTTP sessions: they are the API's (tests/api_sessions.rs)"
                )
            }
        }
    }

    /// Connects to a TLS TCP gateway at `addr` with `config`, checking the certificate for
    /// `localhost` (unless `config` trusts anything).
    pub async fn tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Self {
        Self::Tls {
            stream: Box::new(tls::connect(addr, config).await),
            buf: BytesMut::new(),
        }
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Tcp { .. } | Self::Tls { .. } => Transport::Tcp,
            Self::Udp(_) => Transport::Udp,
            Self::Ws(_) => Transport::WebSocket,
        }
    }

    /// Sends one packet body as the transport frames it.
    pub async fn send_json(&mut self, json: &str) {
        match self {
            Self::Tcp { stream, .. } => write_frame(stream, json).await,
            Self::Tls { stream, .. } => write_frame(stream, json).await,
            Self::Udp(socket) => {
                socket.send(json.as_bytes()).await.expect("udp send");
            }
            Self::Ws(ws) => ws
                .send(Message::text(json.to_owned()))
                .await
                .expect("ws send"),
        }
    }

    /// Sends a packet.
    pub async fn send(&mut self, packet: &Packet) {
        self.send_json(&packet.to_json()).await;
    }

    /// Sends bytes exactly as given: raw TCP stream bytes, one datagram, or one binary frame.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match self {
            Self::Tcp { stream, .. } => stream.write_all(bytes).await.expect("tcp write"),
            Self::Tls { stream, .. } => {
                stream.write_all(bytes).await.expect("tls write");
                stream.flush().await.expect("tls flush");
            }
            Self::Udp(socket) => {
                socket.send(bytes).await.expect("udp send");
            }
            Self::Ws(ws) => ws
                .send(Message::binary(bytes.to_vec()))
                .await
                .expect("ws send"),
        }
    }

    /// The next packet body, closure, or a timeout after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Recv {
        tokio::time::timeout(wait, self.next_inner())
            .await
            .unwrap_or(Recv::Timeout)
    }

    async fn next_inner(&mut self) -> Recv {
        match self {
            Self::Tcp { stream, buf } => read_frame(stream, buf).await,
            Self::Tls { stream, buf } => read_frame(stream, buf).await,
            Self::Udp(socket) => {
                let mut buf = vec![0u8; 65536];
                match socket.recv(&mut buf).await {
                    Ok(n) => Recv::Packet(String::from_utf8(buf[..n].to_vec()).expect("utf-8")),
                    // ICMP port unreachable after the server stopped.
                    Err(_) => std::future::pending().await,
                }
            }
            Self::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => return Recv::Packet(text.to_string()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Recv::Closed,
                    Some(Ok(_)) => {}
                }
            },
        }
    }

    /// The next packet, failing the test if none arrives within [`WAIT`].
    pub async fn packet(&mut self) -> Packet {
        match self.next(WAIT).await {
            Recv::Packet(body) => {
                Packet::decode(body.as_bytes()).expect("server sends valid packets")
            }
            other => panic!(
                "{:?} peer expected a packet, got {other:?}",
                self.transport()
            ),
        }
    }

    /// The next packet, which must be of `kind`.
    pub async fn expect(&mut self, kind: PacketType) -> Packet {
        let packet = self.packet().await;
        assert_eq!(packet.kind, kind, "unexpected packet {packet:?}");
        packet
    }

    /// Asserts the server closes the connection (nothing else arrives first).
    pub async fn expect_closed(&mut self) {
        assert_eq!(self.next(WAIT).await, Recv::Closed);
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        assert_eq!(self.next(wait).await, Recv::Timeout);
    }

    /// Logs in as `user` with `first_login_time` and returns the response.
    pub async fn login(&mut self, user: &str, first_login_time: i64) -> LoginResponse {
        self.login_with(user, "token", first_login_time).await
    }

    /// Logs in with a chosen token (`refuse-N` makes the test hooks refuse with N).
    pub async fn login_with(
        &mut self,
        user: &str,
        token: &str,
        first_login_time: i64,
    ) -> LoginResponse {
        let mut info = LoginInfo::new(user, Some(token), None);
        info.first_login_time = first_login_time;
        self.send(&Packet::login(&info)).await;
        let response = self.expect(PacketType::LoginResponse).await;
        LoginResponse::decode(response.data_content.as_deref().unwrap_or_default())
            .expect("login response payload")
    }
}

/// Writes one length-prefixed frame carrying `json`.
async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, json: &str) {
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    stream.write_all(&frame).await.expect("tcp write");
    stream.flush().await.expect("tcp flush");
}

/// The next frame's body, or `Closed` when the stream ends or fails.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> Recv {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
            if buf.len() >= 4 + len {
                buf.advance(4);
                let body = buf.split_to(len);
                return Recv::Packet(String::from_utf8(body.to_vec()).expect("utf-8"));
            }
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Recv::Closed,
            Ok(_) => {}
        }
    }
}

/// Generates one `#[tokio::test]` per transport, in modules `tcp`, `udp` and `ws`, for each
/// scenario `async fn name(transport: Transport)`.
#[macro_export]
macro_rules! on_each_transport {
    ($($scenario:ident),* $(,)?) => {
        mod tcp {
            $(#[tokio::test]
            async fn $scenario() { super::$scenario(hongyan_shared::Transport::Tcp).await }
            )*
        }
        mod udp {
            $(#[tokio::test]
            async fn $scenario() { super::$scenario(hongyan_shared::Transport::Udp).await }
            )*
        }
        mod ws {
            $(#[tokio::test]
            async fn $scenario() { super::$scenario(hongyan_shared::Transport::WebSocket).await }
            )*
        }
    };
}
