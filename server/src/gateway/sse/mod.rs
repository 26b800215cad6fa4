//! HTTP sessions: a backend receives as a user through the API (`/api/sessions`). Each is a
//! real session of the core on a pipe ([`pipe::SsePipe`]) whose outbound side is a stream of
//! Server-Sent Events and whose inbound side is fed by HTTP requests (the login at creation,
//! acknowledgements, keepalives, logout), so login verification, the duplicate-login rules,
//! kicks, QoS, store replay and idle expiry are the socket sessions' own code, run by the same
//! session loop (`driver`).
//!
//! - `event`: what the user receives, as SSE events.
//! - `link`: what the pipe shares with the requests and the stream: events not yet streamed,
//!   those streamed and not acknowledged, the stream attached, the end.
//! - `pipe`: [`pipe::SsePipe`].
//! - `stream`: the SSE response body, with the heartbeat that keeps an open stream's session.
//! - `table`: the live sessions by token; opening one.

pub(crate) mod event;
pub(crate) mod link;
pub(crate) mod pipe;
pub(crate) mod stream;
pub(crate) mod table;
