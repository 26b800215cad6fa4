//! Writing on a session's own pipe, within what its peer may be answered, and what a session
//! does after the server refused it.

use bytes::Bytes;
use hongyan_shared::Packet;

use super::state::{Core, Flow};
use crate::log_limit::LogLimit;
use crate::metrics::Refusal;
use crate::pipe::Pipe;
use crate::session::Session;

static TOO_LARGE: LogLimit = LogLimit::warn("reply exceeds the client's limit; not sent");

/// How many bytes may still be written in answer to one packet (§8.1, item 6): no limit on a
/// connection or for a logged-in peer; for a peer that may be spoofed and has not logged in,
/// the size of the packet itself, so that the server cannot be used to send anyone more than
/// was sent in their name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowance {
    /// Bytes left, `None` for no limit.
    left: Option<usize>,
    /// Bytes kept back for an answer still to come.
    kept: usize,
}

impl Allowance {
    /// The allowance of a `request_len`-byte packet that arrived on `session`.
    pub(crate) fn of(session: &Session, request_len: usize) -> Self {
        let spoofable = session.properties.spoofable && session.user.is_none();
        Self {
            left: spoofable.then_some(request_len),
            kept: 0,
        }
    }

    /// Whether the answers are limited at all.
    pub(crate) fn is_limited(&self) -> bool {
        self.left.is_some()
    }

    /// Whether `len` more bytes may be written now, beside what is kept back.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.left
            .is_none_or(|left| len.saturating_add(self.kept) <= left)
    }

    /// Keeps `len` bytes back for an answer that may follow.
    pub(crate) fn keep(&mut self, len: usize) {
        self.kept = len;
    }

    /// Lets go of what was kept back: the answer it was for is next.
    pub(crate) fn release(&mut self) {
        self.kept = 0;
    }

    fn spend(&mut self, len: usize) {
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(len);
        }
    }
}

impl Core {
    /// Sends a server-made packet on this session's own pipe; a packet over the pipe's limit
    /// is dropped rather than truncated.
    pub(crate) async fn reply<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        mut packet: Packet,
    ) -> Flow {
        let body = self.encode(&mut packet);
        self.reply_bytes(session, pipe, body).await
    }

    /// Sends `full` on this session's own pipe if it fits both the pipe's limit and
    /// `allowance`; else its compact form, `compact(full)` (§4.5, §3.2), if that fits; else
    /// nothing, and `None`. What is sent is taken from the allowance.
    pub(crate) async fn reply_within<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        mut full: Packet,
        compact: impl FnOnce(Packet) -> Packet,
        allowance: &mut Allowance,
    ) -> Option<Flow> {
        let max = session.properties.max_outbound;
        let fits = |len: usize, allowance: &Allowance| len <= max && allowance.fits(len);
        let mut body = self.encode(&mut full);
        if !fits(body.len(), allowance) {
            body = Bytes::from(compact(full).to_compact_json());
            if !fits(body.len(), allowance) {
                if allowance.is_limited() && body.len() <= max {
                    self.metrics.refused(Refusal::udp_amplification);
                }
                return None;
            }
        }
        allowance.spend(body.len());
        Some(self.reply_bytes(session, pipe, body).await)
    }

    /// Sends an encoded body on this session's own pipe, unless it is over the pipe's limit.
    /// A failed write closes the session.
    pub(crate) async fn reply_bytes<P: Pipe>(
        &self,
        session: &Session,
        pipe: &mut P,
        body: Bytes,
    ) -> Flow {
        let max = session.properties.max_outbound;
        if body.len() > max {
            if TOO_LARGE.allow() {
                tracing::warn!(
                    len = body.len(),
                    max,
                    "reply exceeds the client's limit; not sent"
                );
            }
            return Flow::Continue;
        }
        match pipe.send(body).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }
}

/// After a refusal, a 301, an unusable login or a kickout (`flow` says whether writing it
/// worked): a connection is closed once what was written is flushed, a connection-less
/// pseudo-session stays (§4.2, §4.3, §4.5).
pub(crate) async fn end_unless_connectionless<P: Pipe>(
    session: &Session,
    pipe: &mut P,
    flow: Flow,
) -> Flow {
    if session.properties.connectionless {
        flow
    } else {
        let _ = pipe.flush().await;
        Flow::Close
    }
}
