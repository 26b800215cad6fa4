//! The client's state as plain data: no DOM, no sockets, no clock. Components render it and
//! the session driver updates it, so every rule here is tested with ordinary `#[test]`s.

mod chat;
mod connection;
mod login;

pub use chat::{
    Author, ChatMessage, ChatState, ComposeError, Conversation, Delivery, MessageId, SessionUpdate,
    check_outgoing, display_name,
};
pub use connection::ConnectionStatus;
pub use login::{LoginForm, LoginFormError, LoginRequest, WEBSOCKET_PATH, default_server_url};
