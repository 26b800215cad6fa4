//! The session loop shared by every transport: read, hand to the core, write what other
//! sessions queued, wake at the deadline the core gives, close. It carries out what the core
//! decides and decides nothing itself.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::core::{Core, Flow};
use crate::log_text::Untrusted;
use crate::metrics::Refusal;
use crate::pipe::Pipe;
use crate::session::{Outbox, Session};

/// Outbox items written per flush, so one busy session batches its writes.
const WRITE_BATCH: usize = 64;
/// Inbound packets handled per flush, so one busy session batches its replies.
const READ_BATCH: usize = 64;
/// How long a closing session may take to write what it still holds (a WebSocket close
/// frame, a kickout) before the connection is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

// The session future lives as long as its connection, idle or not, so it must stay small:
// handling a packet (login, C2C routing, hooks) and writing are boxed for the moment they
// run instead of reserving their largest state in every idle session (2.5 KB → 1.3 KB per
// TCP session).

/// Runs one session over `pipe` until the peer leaves, the core closes it, it idles out, it
/// is kicked, or the server shuts down. Not an `async fn`, so the future it returns is the
/// session's own and does not keep a second copy of the pipe.
pub(crate) fn drive<P: Pipe>(
    core: Arc<Core>,
    pipe: P,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> impl Future<Output = ()> + Send + use<P> {
    let properties = pipe.properties();
    let now = core.clock.now();
    let (session, outbox) =
        core.open_session_closed_by(properties, peer, now, shutdown.child_token());
    let span = tracing::debug_span!("session", id = %session.info().id, transport = %properties.transport, %peer, user = tracing::field::Empty);
    run(core, pipe, session, outbox).instrument(span)
}

async fn run<P: Pipe>(core: Arc<Core>, mut pipe: P, mut session: Session, mut outbox: Outbox) {
    tracing::debug!("session opened");
    let close = session.close_token().clone();
    let _counted = core.metrics.connection(session.properties.transport);
    // One timer per session, re-armed lazily: inbound traffic only moves the core's deadline,
    // and the timer looks again when the old one passes.
    let deadline = sleep_until(wake_at(&core, &session).into());
    tokio::pin!(deadline);
    let mut error = None;

    loop {
        tokio::select! {
            () = close.cancelled() => {
                tracing::debug!("closed by the server");
                break;
            }
            // Not while the session is over its message rate: the timer ends the pause.
            inbound = pipe.recv(), if core.poll_read(&session).is_none() => {
                // Everything that has already arrived is handled before the replies are
                // flushed, so a burst of packets is answered with one write; the clock is
                // read once for the batch.
                let now = core.clock.now();
                // Handling counts as traffic, so this is the deadline while it runs.
                let due = core.deadline_after_inbound(&session, now);
                let mut next = inbound;
                let mut handled = 0;
                let flow = loop {
                    match next {
                        Some(Ok(body)) => {
                            handled += 1;
                            let (flow, waited) = {
                                let mut handling = Box::pin(core.handle_packet(
                                    &mut session,
                                    &mut pipe,
                                    &body,
                                    now,
                                ));
                                match poll_once(handling.as_mut()).await {
                                    Poll::Ready(flow) => (Some(flow), false),
                                    Poll::Pending => (within(&core, &close, due, handling).await, true),
                                }
                            };
                            if flow != Some(Flow::Continue) {
                                break Flow::Close;
                            }
                            // Its handling waited (a commit, a hook, another node): its reply
                            // goes out now, not after the rest of the batch, which may wait
                            // as long again.
                            if waited && !flushed(&core, &close, &session, &mut pipe).await {
                                break Flow::Close;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %Untrusted(&e.to_string()), "closing on bad input");
                            error = Some(e);
                            break Flow::Close;
                        }
                        None => {
                            tracing::debug!("peer closed");
                            break Flow::Close;
                        }
                    }
                    if handled == READ_BATCH || core.poll_read(&session).is_some() {
                        break Flow::Continue;
                    }
                    match pipe.recv().now_or_never() {
                        Some(more) => next = more,
                        None => break Flow::Continue,
                    }
                };
                if flow == Flow::Close || !flushed(&core, &close, &session, &mut pipe).await {
                    break;
                }
            }
            Some(first) = outbox.recv() => {
                let due = core.poll_session_timeout(&session);
                let mut next = Some(first);
                let mut written = 0;
                let mut flow = Flow::Continue;
                while let Some(out) = next.take() {
                    let writing = Box::pin(core.handle_outbound(&mut session, &mut pipe, out));
                    flow = within(&core, &close, due, writing).await.unwrap_or(Flow::Close);
                    written += 1;
                    if flow == Flow::Close || written == WRITE_BATCH {
                        break;
                    }
                    next = outbox.try_recv();
                }
                if flow == Flow::Close || !flushed(&core, &close, &session, &mut pipe).await {
                    break;
                }
            }
            // Messages handed off to another node's receivers: relayed one at a time while
            // the loop reads on (their acknowledgements come back through the outbox).
            () = drive_lane(&core, &mut session), if session.has_handed_off() => {}
            () = &mut deadline => {
                if core.handle_session_timeout(&mut session, core.clock.now()) == Flow::Close {
                    break;
                }
                deadline.as_mut().reset(wake_at(&core, &session).into());
            }
        }
        // Traffic only moves the deadline later, which the timer finds out when it fires; a
        // session that lost its user (a kicked UDP pseudo-session) may now have an earlier one,
        // and one over its message rate a pause to end.
        let due = tokio::time::Instant::from(wake_at(&core, &session));
        if due < deadline.deadline() {
            deadline.as_mut().reset(due);
        }
    }
    core.close_session(&mut session);
    let _ = tokio::time::timeout(CLOSE_GRACE, Box::pin(pipe.close(error))).await;
}

/// Runs the session's lane ([`Core::drive_lane`]), boxed for the moment it runs: the branch's
/// future is part of every session's, and most sessions never hand a message off.
async fn drive_lane(core: &Arc<Core>, session: &mut Session) {
    Box::pin(core.drive_lane(session)).await;
}

/// Polls `work` once, with the task's own waker: whether it finished without waiting.
async fn poll_once<T>(mut work: Pin<&mut impl Future<Output = T>>) -> Poll<T> {
    std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await
}

/// When the session's one timer must fire: its deadline, or the end of a read pause if that
/// is earlier.
fn wake_at(core: &Core, session: &Session) -> hongyan_shared::Instant {
    let due = core.poll_session_timeout(session);
    core.poll_read(session).map_or(due, |pause| pause.min(due))
}

/// Runs `work` (which may write, or wait for a hook) unless the session is closed first or
/// its deadline `due` passes: a peer that stopped reading must hold its session in a write
/// neither for ever (see `SessionHandle::push`) nor past the idle expiry or login deadline
/// it would have met had it been silent. Biased, so work that completes at once never polls
/// the token or the timer.
async fn within<T>(
    core: &Core,
    close: &CancellationToken,
    due: hongyan_shared::Instant,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        done = work => Some(done),
        () = close.cancelled() => None,
        () = sleep_until(due.into()) => {
            core.metrics.refused(Refusal::write_timeout);
            tracing::debug!("still blocked at the session's deadline");
            None
        }
    }
}

/// Writes everything queued; false if that failed, or the session was closed or reached
/// its deadline meanwhile.
async fn flushed<P: Pipe>(
    core: &Core,
    close: &CancellationToken,
    session: &Session,
    pipe: &mut P,
) -> bool {
    let due = core.poll_session_timeout(session);
    matches!(within(core, close, due, pipe.flush()).await, Some(Ok(())))
}
