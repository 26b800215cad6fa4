//! The deadlines of one HTTP connection: where it is in its request cycle, since when, and
//! when waiting there any longer closes it.
//!
//! A connection that is not running a handler is waiting for the peer, and the peer gets a
//! deadline for it:
//!
//! | waiting for | from | at most |
//! |---|---|---|
//! | the first request's complete head | accept | `http_header_timeout_secs` |
//! | the next request's complete head | the end of the previous response | `http_idle_timeout_secs` |
//! | the peer to take more of a response | the last part it took | `http_idle_timeout_secs` |
//!
//! A half-sent request line, a connection that says nothing, and a client that stops reading
//! a large file are all closed; a handler that takes its time (a push awaiting its outcome)
//! is not, since the server, not the peer, decides how long that takes. hyper's own
//! `header_read_timeout` starts its clock whenever it waits for a head, so it cannot tell a
//! slow head from an idle keep-alive; these deadlines can, and they cost one timer per
//! connection, re-armed lazily as the session loop's is when a deadline moves later, and woken
//! when one may move earlier (a response starts, or ends).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long the peer may keep an HTTP connection waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// From accept to the first request's complete head.
    pub(crate) header: Duration,
    /// From the end of a response to the next complete head, or between two parts of a
    /// response the peer takes.
    pub(crate) idle: Duration,
}

/// Why a connection's deadline closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The first request's head did not arrive in time.
    Header,
    /// A kept-alive connection sent no request, or its peer took none of a response, in time.
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head since `since`; `first` until one has arrived.
    Waiting { since: Instant, first: bool },
    /// A handler runs.
    Handling,
    /// A response is being written; the peer last took a part of it at `since`.
    Sending { since: Instant },
}

/// Where one connection is in its request cycle. Shared by its task (which waits for the
/// deadline), its service (requests start) and its response bodies (responses progress
/// and end).
#[derive(Debug)]
pub(crate) struct Activity {
    phase: Mutex<Phase>,
    /// Told when the phase changes in a way that may bring the deadline closer.
    changed: Notify,
}

impl Activity {
    /// A connection accepted at `now`.
    pub(crate) fn new(now: Instant) -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::Waiting {
                since: now,
                first: true,
            }),
            changed: Notify::new(),
        })
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .expect("the phase lock is never held across a panic-prone section")
    }

    /// A request head arrived and its handler runs.
    pub(crate) fn handling(&self) {
        self.enter(Phase::Handling);
    }

    fn enter(&self, phase: Phase) {
        *self.phase() = phase;
        self.changed.notify_one();
    }

    /// `response`'s body is written from now on; its progress and its end move the
    /// connection's deadline.
    pub(crate) fn sending(
        self: &Arc<Self>,
        response: axum::response::Response,
    ) -> axum::response::Response {
        self.enter(Phase::Sending {
            since: Instant::now(),
        });
        let activity = self.clone();
        response.map(|body| {
            Body::new(Tracked {
                body,
                activity: Some(activity),
            })
        })
    }

    /// When the connection's wait ends and what passing it means; `None` while a handler runs.
    fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, Expiry)> {
        match *self.phase() {
            Phase::Waiting { since, first: true } => {
                Some((since + timeouts.header, Expiry::Header))
            }
            Phase::Waiting {
                since,
                first: false,
            }
            | Phase::Sending { since } => Some((since + timeouts.idle, Expiry::Idle)),
            Phase::Handling => None,
        }
    }

    /// Resolves when the connection has waited for its peer past its deadline.
    pub(crate) async fn expired(&self, timeouts: Timeouts) -> Expiry {
        loop {
            // Registered before the deadline is read, so no change in between is missed.
            let changed = self.changed.notified();
            match self.deadline(timeouts) {
                Some((at, expiry)) if at <= Instant::now() => return expiry,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A response body that tells its connection's [`Activity`] when the peer takes a part of it
/// and when it is done (hyper drops a body once it is written, or when the peer has gone).
struct Tracked {
    body: Body,
    activity: Option<Arc<Activity>>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(_))), Some(activity)) = (&polled, &self.activity) {
            // Only later: the timer looks again when the old deadline passes.
            *activity.phase() = Phase::Sending {
                since: Instant::now(),
            };
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.enter(Phase::Waiting {
                since: Instant::now(),
                first: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_no_complete_head_expires_after_the_header_timeout() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(activity.expired(TIMEOUTS).await, Expiry::Header);
        assert_eq!(Instant::now() - start, TIMEOUTS.header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_first_request_leaves_the_idle_timeout_not_the_header_timeout() {
        let timeouts = Timeouts {
            header: Duration::from_secs(60),
            idle: Duration::from_secs(5),
        };
        let activity = Activity::new(Instant::now());
        let expired = activity.expired(timeouts);
        tokio::pin!(expired);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut expired)
                .await
                .is_err()
        );
        activity.handling();
        drop(activity.sending(axum::response::Response::new(Body::from("ok"))));
        let done = Instant::now();
        assert_eq!(expired.await, Expiry::Idle);
        assert_eq!(Instant::now() - done, timeouts.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_handler_holds_no_deadline_and_an_idle_keep_alive_expires() {
        let start = Instant::now();
        let activity = Activity::new(start);
        activity.handling();
        let expired = activity.expired(TIMEOUTS);
        tokio::pin!(expired);
        // Five minutes of handler: no deadline.
        assert!(
            tokio::time::timeout(Duration::from_secs(300), &mut expired)
                .await
                .is_err()
        );
        let response = activity.sending(axum::response::Response::new(Body::from("done")));
        drop(response);
        let done = Instant::now();
        assert_eq!(expired.await, Expiry::Idle);
        assert_eq!(Instant::now() - done, TIMEOUTS.idle);
    }
}
