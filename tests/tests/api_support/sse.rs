//! An HTTP session seen from the backend: created through the API, its Server-Sent Events read
//! as any SSE client reads them, its messages acknowledged.

use std::net::SocketAddr;

use hongyan_tests::WAIT;
use serde_json::{Value, json};

use super::{Api, Reply};

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event: its type (`message` unless named), id and data.
    Event(Event),
    /// A comment line (the heartbeat).
    Comment(String),
}

/// An SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `message`, `kickout` or `logout`.
    pub event: String,
    /// The id (a message's fingerprint), if any.
    pub id: Option<String>,
    /// The data, as JSON.
    pub data: Value,
}

/// An open event stream.
pub struct EventStream {
    response: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// Opens the stream of session `token`, sending `last_event_id` if given.
    pub async fn open(http: SocketAddr, token: &str, last_event_id: Option<&str>) -> Self {
        let client = reqwest::Client::new();
        let mut request = client.get(format!("http://{http}/api/sessions/{token}/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("the stream opens in time")
            .expect("the server answers");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE stream"
        );
        Self {
            response,
            buf: String::new(),
        }
    }

    /// The next event or comment; `None` once the server ended the stream. Fails the test
    /// if nothing comes within [`WAIT`].
    pub async fn item(&mut self) -> Option<Item> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("the stream says something in time")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self
                    .buf
                    .push_str(std::str::from_utf8(&bytes).expect("utf-8")),
                None => {
                    assert!(self.buf.is_empty(), "a partial event: {:?}", self.buf);
                    return None;
                }
            }
        }
    }

    /// The next event, skipping heartbeats; `None` once the stream ended.
    pub async fn event(&mut self) -> Option<Event> {
        loop {
            match self.item().await? {
                Item::Event(event) => return Some(event),
                Item::Comment(_) => {}
            }
        }
    }

    /// The next event, which must be a message; returns its data.
    pub async fn message(&mut self) -> Event {
        let event = self.event().await.expect("a message, not the end");
        assert_eq!(event.event, "message", "{event:?}");
        event
    }

    /// Asserts the stream ends (after no other event).
    pub async fn expect_end(&mut self) {
        assert_eq!(self.event().await, None);
    }
}

fn parse(block: &str) -> Item {
    let mut event = None;
    let mut id = None;
    let mut data = Vec::new();
    for line in block.lines().filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix(':') {
            return Item::Comment(comment.trim().to_owned());
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    Item::Event(Event {
        event: event.unwrap_or_else(|| "message".to_owned()),
        id,
        data: serde_json::from_str(&data.join("\n")).expect("JSON data"),
    })
}

/// Creates an HTTP session for `user` with `token` as their credential; the raw reply.
pub async fn create(api: &Api, user: &str, token: &str) -> Reply {
    api.post("/api/sessions", json!({"userId": user, "token": token}))
        .await
}

/// Creates an HTTP session for `user`, which must succeed; returns its session token.
pub async fn session(api: &Api, user: &str) -> String {
    let reply = create(api, user, "token").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.json["sessionToken"]
        .as_str()
        .expect("a session token")
        .to_owned()
}

/// Acknowledges `fps` on session `token`.
pub async fn ack(api: &Api, token: &str, fps: &[&str]) {
    let reply = api
        .post(&format!("/api/sessions/{token}/acks"), json!({"fps": fps}))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
}
