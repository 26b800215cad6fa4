//! The application behind the soak's server: a webhook backend (docs/INTEGRATION.md) that
//! accepts every login, stores nothing offline, and records the events the ledger needs:
//! which client → server messages the application was handed (`c2s`), and which messages the
//! server gave up delivering after its retries (`s2cLost`).
//!
//! Every answer says `Connection: close`, so the server keeps no idle connection to it and its
//! open files can be compared before and after the run.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the application was told.
#[derive(Debug, Default)]
pub struct Heard {
    /// `(from, fp)` of every client → server QoS message, with when each copy was handed
    /// over (a copy after a server crash is told from a duplicate by its time).
    pub c2s: HashMap<(String, String), Vec<Instant>>,
    /// `(to, fp)` of every message the server gave up delivering.
    pub s2c_lost: HashSet<(String, String)>,
    /// Events received, each once (a retried batch repeats its events).
    pub events: usize,
    /// `(instance, id)` of every event seen, to drop repeats.
    seen: HashSet<(String, u64)>,
}

/// The running backend.
pub struct Backend {
    /// Where the server reaches it.
    pub addr: SocketAddr,
    heard: Arc<Mutex<Heard>>,
    stop: CancellationToken,
}

#[derive(Deserialize)]
struct Batch {
    instance: String,
    events: Vec<Envelope>,
}

#[derive(Deserialize)]
struct Envelope {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    fp: Option<String>,
}

impl Backend {
    /// Starts it on a loopback port.
    pub async fn start() -> Self {
        let heard = Arc::new(Mutex::new(Heard::default()));
        let app = Router::new()
            .route("/verify", post(|| async { close(json!({ "code": 0 })) }))
            .route(
                "/offline",
                post(|| async { close(json!({ "stored": false })) }),
            )
            .route("/events", post(events))
            .with_state(heard.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the backend");
        let addr = listener.local_addr().expect("the backend's address");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Self { addr, heard, stop }
    }

    /// What it heard so far.
    pub fn heard(&self) -> MutexGuard<'_, Heard> {
        lock(&self.heard)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lock(heard: &Mutex<Heard>) -> MutexGuard<'_, Heard> {
    heard
        .lock()
        .expect("no handler panics while holding the lock")
}

/// `body` as JSON, on a connection the server then closes.
fn close(body: serde_json::Value) -> impl IntoResponse {
    ([(header::CONNECTION, "close")], Json(body))
}

async fn events(
    State(heard): State<Arc<Mutex<Heard>>>,
    Json(batch): Json<Batch>,
) -> impl IntoResponse {
    let mut heard = lock(&heard);
    for event in batch.events {
        if !heard.seen.insert((batch.instance.clone(), event.id)) {
            continue;
        }
        heard.events += 1;
        let Some(fp) = event.fp else { continue };
        match event.kind.as_str() {
            "c2s" => heard
                .c2s
                .entry((event.from, fp))
                .or_default()
                .push(Instant::now()),
            "s2cLost" => {
                heard.s2c_lost.insert((event.to, fp));
            }
            _ => {}
        }
    }
    close(json!({}))
}
