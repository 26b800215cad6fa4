//! Writing on a session's own pipe, and what a session does after the server refused it.

use bytes::Bytes;
use hongyan_shared::Packet;

use super::state::{Core, Flow};
use crate::log_limit::LogLimit;
use crate::pipe::Pipe;
use crate::session::Session;

static TOO_LARGE: LogLimit = LogLimit::warn("reply exceeds the client's limit; not sent");

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
