//! The session loop shared by every transport: read, dispatch to the core, write what other
//! sessions queued, expire when idle, close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use hongyan_shared::{Transport, codes};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Link;
use crate::core::{Core, Flow};
use crate::session::{Outbound, Session};

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

/// Runs one session over `link` until the peer leaves, the core closes it, it idles out, it
/// is kicked, or the server shuts down.
pub(crate) async fn drive<L: Link>(
    core: Arc<Core>,
    link: L,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) {
    let id = core.next_session_id();
    let span = tracing::debug_span!("session", %id, transport = %L::TRANSPORT, %peer, user = tracing::field::Empty);
    run(core, link, peer, id, shutdown.child_token())
        .instrument(span)
        .await;
}

async fn run<L: Link>(
    core: Arc<Core>,
    mut link: L,
    peer: SocketAddr,
    id: crate::hooks::SessionId,
    close: CancellationToken,
) {
    let (mut session, mut outbox) = Session::new(
        id,
        L::TRANSPORT,
        peer,
        core.config.max_outbound(L::TRANSPORT),
        core.config.outbox_capacity,
        core.config.slow_consumer_stall,
        close.clone(),
    );
    tracing::debug!("session opened");
    let _counted = core.metrics.connection(L::TRANSPORT);
    let expiry = core.config.idle_expiry(L::TRANSPORT);
    let mut last_inbound = Instant::now();
    // One timer per session, re-armed lazily: inbound traffic only moves `last_inbound`.
    let idle = sleep_until(last_inbound + expiry);
    tokio::pin!(idle);
    let mut error = None;

    loop {
        tokio::select! {
            () = close.cancelled() => {
                tracing::debug!("closed by the server");
                break;
            }
            inbound = link.recv() => {
                // Everything that has already arrived is handled before the replies are
                // flushed, so a burst of packets is answered with one write.
                let mut next = inbound;
                let mut handled = 0;
                let flow = loop {
                    match next {
                        Some(Ok(body)) => {
                            handled += 1;
                            let handling = Box::pin(core.on_packet(&mut session, &mut link, &body));
                            if unless_closed(&close, handling).await != Some(Flow::Continue) {
                                break Flow::Close;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "closing on bad input");
                            error = Some(e);
                            break Flow::Close;
                        }
                        None => {
                            tracing::debug!("peer closed");
                            break Flow::Close;
                        }
                    }
                    if handled == READ_BATCH {
                        break Flow::Continue;
                    }
                    match link.recv().now_or_never() {
                        Some(more) => next = more,
                        None => break Flow::Continue,
                    }
                };
                if handled > 0 {
                    last_inbound = Instant::now();
                }
                if flow == Flow::Close || !flushed(&close, &mut link).await {
                    break;
                }
            }
            Some(first) = outbox.recv() => {
                let mut next = Some(first);
                let mut written = 0;
                let mut flow = Flow::Continue;
                while let Some(out) = next.take() {
                    let writing = Box::pin(write_outbound(&core, &mut session, &mut link, out));
                    flow = unless_closed(&close, writing).await.unwrap_or(Flow::Close);
                    written += 1;
                    if flow == Flow::Close || written == WRITE_BATCH {
                        break;
                    }
                    next = outbox.try_recv();
                }
                if flow == Flow::Close || !flushed(&close, &mut link).await {
                    break;
                }
            }
            () = &mut idle => {
                let deadline = last_inbound + expiry;
                if Instant::now() >= deadline {
                    tracing::debug!(?expiry, "idle expiry");
                    break;
                }
                idle.as_mut().reset(deadline);
            }
        }
    }
    core.on_close(&mut session);
    let _ = tokio::time::timeout(CLOSE_GRACE, Box::pin(link.close(error))).await;
}

/// Runs `work` (which may write) unless the session is closed first: a peer that stopped
/// reading must not hold its session in a write for ever (see `SessionHandle::push`). Biased,
/// so a write that completes at once never polls the token.
async fn unless_closed<T>(close: &CancellationToken, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        done = work => Some(done),
        () = close.cancelled() => None,
    }
}

/// Writes everything queued; false if that failed or the session was closed meanwhile.
async fn flushed<L: Link>(close: &CancellationToken, link: &mut L) -> bool {
    matches!(unless_closed(close, link.flush()).await, Some(Ok(())))
}

async fn write_outbound<L: Link>(
    core: &Core,
    session: &mut Session,
    link: &mut L,
    out: Outbound,
) -> Flow {
    match out {
        Outbound::Packet(body) => match link.send(body).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        },
        Outbound::Kick { body, code } => {
            let sent = link.send(body).await.is_ok() && link.flush().await.is_ok();
            tracing::debug!(code, "kicked out");
            if L::TRANSPORT == Transport::Udp {
                // A UDP pseudo-session is not closed by a kickout (§4.3); an admin kick also
                // logs the user out at once instead of at idle expiry.
                if code != codes::KICKOUT_DUPLICATE_LOGIN {
                    session.kick_code = Some(code);
                    core.on_close(session);
                }
                if sent { Flow::Continue } else { Flow::Close }
            } else {
                session.kick_code = Some(code);
                Flow::Close
            }
        }
    }
}
