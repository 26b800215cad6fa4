//! The body of an HTTP session's event stream (`GET /api/sessions/{token}/events`): the
//! link's events as Server-Sent Events, and a heartbeat. The heartbeat is an SSE comment,
//! which keeps proxies and the HTTP listener's idle deadline from closing a quiet stream, and
//! a keepalive packet for the session's loop: an open stream is a live client, so the session
//! does not idle out while one is attached (and a client that stops reading stops the
//! heartbeat too).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse;
use futures_util::Stream;
use tokio::time::{Instant, sleep_until};

use super::link::{Link, Taken};

/// One attached stream.
struct Streaming {
    link: Arc<Link>,
    stream: u64,
    heartbeat: Duration,
    next_beat: Instant,
    done: bool,
}

impl Streaming {
    async fn next(&mut self) -> Option<sse::Event> {
        loop {
            if self.done {
                return None;
            }
            let now = Instant::now();
            if now >= self.next_beat {
                self.next_beat = now + self.heartbeat;
                self.link.keep_alive();
                return Some(sse::Event::default().comment("keepalive"));
            }
            let readable = self.link.readable();
            tokio::pin!(readable);
            readable.as_mut().enable();
            match self.link.take(self.stream) {
                Taken::Event(event) => return Some(event.to_sse()),
                Taken::Done => self.done = true,
                Taken::Nothing => {
                    tokio::select! {
                        () = readable => {}
                        () = sleep_until(self.next_beat) => {}
                    }
                }
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.link.detach(self.stream);
    }
}

/// The events of stream `stream` of `link` (see [`Link::attach`]), with a heartbeat every
/// `heartbeat`, the first at once. It ends when the session ends (after its last event) or
/// another stream replaces it; dropped (its client gone), it detaches.
pub(crate) fn events(
    link: Arc<Link>,
    stream: u64,
    heartbeat: Duration,
) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let streaming = Streaming {
        link,
        stream,
        heartbeat,
        next_beat: Instant::now(),
        done: false,
    };
    futures_util::stream::unfold(streaming, |mut streaming| async move {
        let event = streaming.next().await?;
        Some((Ok(event), streaming))
    })
}
