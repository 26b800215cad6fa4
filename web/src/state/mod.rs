//! The client's state as plain data: no DOM, no sockets, no clock. Components render it and
//! the session driver updates it, so every rule here is tested with ordinary `#[test]`s.
//!
//! - `chat.rs`: [`ChatState`], the conversations and threads, and the [`SessionUpdate`]s
//!   that change them.
//! - `message.rs`: one line of a thread ([`ChatMessage`]) and its delivery state.
//! - `compose.rs`: what the composer accepts ([`check_outgoing`]).
//! - `connection.rs`: the status in the header ([`ConnectionStatus`]).
//! - `login.rs`: the login form and its validation.

mod chat;
mod compose;
mod connection;
mod login;
mod message;

pub use chat::{
    BACKFILL_PAGES, ChatState, Conversation, EARLIER_PAGE, Earlier, SessionUpdate, display_name,
};
pub use compose::{ComposeError, check_outgoing};
pub use connection::ConnectionStatus;
pub use login::{LoginForm, LoginFormError, LoginRequest, WEBSOCKET_PATH, default_server_url};
pub use message::{Author, ChatMessage, Delivery, MessageId, MessageKey};
