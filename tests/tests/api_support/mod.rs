//! Helpers shared by the `api_*` tests: a server with an admin token, an HTTP client for its
//! API, a server whose hooks are the webhooks, and a stub backend that records every webhook
//! call it receives.

pub mod sse;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use hongyan_server::{BearerToken, Config, Hooks, WebhookConfig, WebhookHooks};
use hongyan_shared::{Packet, PacketType, Transport};
use hongyan_tests::{Peer, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The admin token the API tests configure.
pub const TOKEN: &str = "test-admin-token";

/// A test server whose API accepts [`TOKEN`].
pub async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// A test server whose API accepts [`TOKEN`], configured further by `configure`.
pub async fn server_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(|c| {
        c.admin_token = Some(BearerToken::new(TOKEN).expect("a valid token"));
        configure(c);
    })
    .await
}

/// A retransmission schedule that gives up within a second: a tick every 200 ms, one resend.
pub fn fast_schedule() -> hongyan_shared::RetransmitSchedule {
    hongyan_shared::RetransmitSchedule {
        check_interval: Duration::from_millis(200),
        just_sent: Duration::from_millis(100),
        max_retries: 1,
    }
}

/// An answer from the server.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Null` if it is not JSON).
    pub json: Value,
}

impl Reply {
    /// Asserts a JSON error with `status` and `code`, and a message that is not empty.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json["code"], code, "{self:?}");
        assert!(
            self.json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
    }

    /// Asserts a 200 and returns the JSON body.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        self.json
    }
}

/// An HTTP client for one server's HTTP listener.
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client that sends [`TOKEN`].
    pub fn new(http: SocketAddr) -> Self {
        Self::with_token(http, Some(TOKEN))
    }

    /// A client that sends no token.
    pub fn anonymous(http: SocketAddr) -> Self {
        Self::with_token(http, None)
    }

    /// A client that sends `token`, if any.
    pub fn with_token(http: SocketAddr, token: Option<&str>) -> Self {
        Self::from_address(http, token, None)
    }

    /// A client that sends `token`, if any, from the loopback address `source` (another
    /// "address" for the per-address limits).
    pub fn from_address(http: SocketAddr, token: Option<&str>, source: Option<IpAddr>) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .local_address(source)
                .build()
                .expect("an HTTP client"),
            base: format!("http://{http}"),
            token: token.map(str::to_owned),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// `POST path` with a body sent as given, with `content_type` if any.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request).await
    }

    /// A request of `method` to `path` with an empty JSON object as the body.
    pub async fn call(&self, method: &str, path: &str) -> Reply {
        self.call_with(method, path, json!({})).await
    }

    /// A request of `method` to `path` with `body` as JSON.
    pub async fn call_with(&self, method: &str, path: &str, body: Value) -> Reply {
        let method =
            reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
        self.send(
            self.client
                .request(method, format!("{}{path}", self.base))
                .json(&body),
        )
        .await
    }
}

/// Acknowledges the S2C packet `packet` as `user`, as a client does.
pub async fn ack(peer: &mut Peer, user: &str, packet: &Packet) {
    let fp = packet.fp.as_ref().expect("a QoS packet has a fingerprint");
    peer.send(&Packet::ack(user, "0", fp, false)).await;
}

/// Waits for the next data packet on `peer`, skipping anything else.
pub async fn next_data(peer: &mut Peer) -> Packet {
    loop {
        let packet = peer.packet().await;
        if packet.kind == PacketType::CommonData {
            return packet;
        }
    }
}

/// A test server whose hooks are [`WebhookHooks`] calling `webhook`, with [`TOKEN`] as its
/// admin token, configured further by `configure`.
pub async fn hooked(
    webhook: WebhookConfig,
    configure: impl FnOnce(&mut Config),
) -> TestServer<WebhookHooks> {
    let hooks = Arc::new(WebhookHooks::new(&webhook).expect("webhooks start"));
    TestServer::with_hooks(hooks, |c| {
        c.admin_token = Some(BearerToken::new(TOKEN).expect("a valid token"));
        configure(c);
    })
    .await
}

/// Connects over TCP and logs in as `user` with `token`; returns the peer and the code.
pub async fn login<H: Hooks>(server: &TestServer<H>, user: &str, token: &str) -> (Peer, i32) {
    let mut peer = server.peer(Transport::Tcp).await;
    let code = peer.login_with(user, token, 0).await.code;
    (peer, code)
}

/// Stops the server, then waits until its webhook events are delivered.
pub async fn stop_and_flush(server: TestServer<WebhookHooks>) {
    let hooks = server.hooks.clone();
    server.stop().await;
    assert!(hooks.flush(WAIT).await, "events delivered after stop");
}

/// One webhook request the backend received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `verify`, `offline`, `events`, or `events refused` for a batch answered with 503.
    pub endpoint: &'static str,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// How the stub backend answers.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// `/offline` answers `{"stored": true}` when set.
    pub store_offline: AtomicBool,
    /// `/events` answers 503 when set (and the call is recorded as `events refused`).
    pub events_fail: AtomicBool,
    /// `/events` takes this long to answer when set (a slow backend).
    pub events_stall: AtomicBool,
    /// `/offline` takes 30 s to answer when set (a slow backend).
    pub offline_stall: AtomicBool,
}

#[derive(Default)]
struct Recorded {
    calls: Mutex<Vec<Call>>,
    changed: Notify,
    behaviour: Behaviour,
}

impl Recorded {
    fn record(&self, endpoint: &'static str, headers: &HeaderMap, body: Value) {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.calls.lock().expect("test lock").push(Call {
            endpoint,
            authorization,
            body,
        });
        self.changed.notify_waiters();
    }
}

/// An application backend stub on a loopback port: `/verify` accepts every login except tokens
/// `refuse-N` (refused with N) and `slow` (answers after 30 s); `/offline` and `/events`
/// answer per [`Behaviour`].
pub struct Backend {
    /// The base URL to configure as `webhook_url`.
    pub url: String,
    recorded: Arc<Recorded>,
    task: JoinHandle<()>,
}

async fn verify(
    State(r): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    r.record("verify", &headers, body.clone());
    let token = body["token"].as_str().unwrap_or_default();
    if token == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let code = token
        .strip_prefix("refuse-")
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    Json(json!({ "code": code }))
}

async fn offline(
    State(r): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    r.record("offline", &headers, body);
    if r.behaviour.offline_stall.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let stored = r.behaviour.store_offline.load(Ordering::SeqCst);
    Json(json!({ "stored": stored }))
}

async fn events(
    State(r): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::http::StatusCode {
    if r.behaviour.events_stall.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if r.behaviour.events_fail.load(Ordering::SeqCst) {
        r.record("events refused", &headers, body);
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    r.record("events", &headers, body);
    axum::http::StatusCode::NO_CONTENT
}

impl Backend {
    /// Starts the stub.
    pub async fn start() -> Self {
        let recorded = Arc::new(Recorded::default());
        let app = axum::Router::new()
            .route("/hooks/verify", post(verify))
            .route("/hooks/offline", post(offline))
            .route("/hooks/events", post(events))
            .with_state(recorded.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the backend");
        let url = format!(
            "http://{}/hooks",
            listener.local_addr().expect("an address")
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("backend runs");
        });
        Self {
            url,
            recorded,
            task,
        }
    }

    /// A webhook configuration pointing at this backend.
    pub fn config(&self) -> WebhookConfig {
        WebhookConfig::new(WebhookConfig::parse_url(&self.url).expect("a valid URL"))
    }

    /// How the backend answers.
    pub fn behaviour(&self) -> &Behaviour {
        &self.recorded.behaviour
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.recorded.calls.lock().expect("test lock").clone()
    }

    /// Every event accepted so far (the `events` of every `/events` call answered 2xx).
    pub fn events(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.endpoint == "events")
            .flat_map(|c| c.body["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until a call matches, failing the test after [`WAIT`].
    pub async fn wait_for_call(&self, matches: impl Fn(&Call) -> bool) -> Call {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.recorded.changed.notified();
            if let Some(call) = self.calls().into_iter().find(|c| matches(c)) {
                return call;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "no matching webhook call within {WAIT:?}; got {:#?}",
                    self.calls()
                );
            }
        }
    }

    /// Waits until an event matches, failing the test after [`WAIT`].
    pub async fn wait_for_event(&self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.recorded.changed.notified();
            if let Some(event) = self.events().into_iter().find(|e| matches(e)) {
                return event;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "no matching event within {WAIT:?}; got {:#?}",
                    self.events()
                );
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A base URL where nothing listens: a port bound and released again.
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    format!("http://{addr}/hooks")
}
