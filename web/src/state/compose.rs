//! What the composer accepts: the rules a message must pass before it is sent.

use hongyan_shared::client::SERVER_WS_MAX_FRAME;
use hongyan_shared::{Outgoing, PacketTooLarge, UserId};

/// Why a message cannot be sent as typed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// The text is empty or only white space.
    #[error("type a message first")]
    Empty,
    /// The encoded packet would exceed the server's frame limit.
    #[error("the message is too long ({} bytes encoded, the limit is {})", .0.len, .0.max)]
    TooLong(#[from] PacketTooLarge),
    /// No conversation is open.
    #[error("choose someone to talk to")]
    NoPeer,
    /// The peer id cannot receive messages (empty or `"-1"`).
    #[error("{0:?} is not a user id")]
    BadPeer(String),
}

/// Checks that `message` can be sent by `me` as typed: to a real peer, not blank, and in one
/// WebSocket frame. The size rule is the shared session's own
/// ([`Outgoing::check_size`] against the limit of a WebSocket session), so the composer tells
/// the user at once what the session would refuse.
pub fn check_outgoing(me: &UserId, message: &Outgoing) -> Result<(), ComposeError> {
    let peer = &message.to;
    if peer.as_str().is_empty() || peer.as_str() == UserId::UNSET {
        return Err(ComposeError::BadPeer(peer.to_string()));
    }
    if message.content.trim().is_empty() {
        return Err(ComposeError::Empty);
    }
    message.check_size(me, SERVER_WS_MAX_FRAME)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use hongyan_shared::Fingerprint;

    use super::*;

    #[test]
    fn outgoing_text_must_fit_one_frame() {
        let me = UserId::from("alice");
        let to_bob =
            |text: &str| Outgoing::new("bob", text).with_fingerprint(Fingerprint::from_random(1));
        assert_eq!(
            check_outgoing(&me, &to_bob("  \n")),
            Err(ComposeError::Empty)
        );
        assert_eq!(check_outgoing(&me, &to_bob("你好 👋")), Ok(()));
        // '<' is escaped to six bytes by the Gson-compatible encoder.
        let angle_brackets = "<".repeat(SERVER_WS_MAX_FRAME / 6);
        assert!(matches!(
            check_outgoing(&me, &to_bob(&angle_brackets)),
            Err(ComposeError::TooLong(PacketTooLarge {
                max: SERVER_WS_MAX_FRAME,
                ..
            }))
        ));
        assert_eq!(
            check_outgoing(&me, &Outgoing::new("", "x")),
            Err(ComposeError::BadPeer(String::new()))
        );
    }
}
