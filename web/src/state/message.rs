//! One line of a thread, as the view renders it.

use hongyan_shared::Fingerprint;

/// A message this client keeps outside the history: one of ours not yet numbered by the
/// server, or one received without a seq. Stable for the life of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(super) u64);

impl MessageId {
    /// The number, for DOM ids and keys.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What identifies a line of a thread for as long as it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKey {
    /// A message of the conversation's history, by its seq.
    Seq(u64),
    /// A message only this client knows of yet.
    Local(MessageId),
}

impl MessageKey {
    /// The key as a DOM id: `s12` for seq 12, `l3` for local message 3.
    pub fn dom_id(self) -> String {
        match self {
            Self::Seq(seq) => format!("s{seq}"),
            Self::Local(id) => format!("l{}", id.get()),
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// This user (from this browser or another of their clients).
    Me,
    /// The conversation's peer.
    Peer,
    /// The server (user `"0"`): shown as a system message.
    Server,
}

impl Author {
    /// A short machine-readable name, used as the `data-author` attribute.
    pub fn key(self) -> &'static str {
        match self {
            Self::Me => "me",
            Self::Peer => "peer",
            Self::Server => "server",
        }
    }
}

/// Where one of our messages is on its way to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Sent and waiting for the acknowledgement (retransmitted meanwhile).
    Sending,
    /// Acknowledged by the server: handed to the peer or stored for them (every message of
    /// ours in the history is).
    Delivered,
    /// Never acknowledged; the user may retry.
    Lost,
}

impl Delivery {
    /// A short machine-readable name, used as the `data-status` attribute.
    pub fn key(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Lost => "lost",
        }
    }
}

/// One line of a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// What identifies it in the thread.
    pub key: MessageKey,
    /// The wire fingerprint, when the message travelled with QoS.
    pub fp: Option<Fingerprint>,
    /// Who wrote it.
    pub author: Author,
    /// The text, exactly as sent.
    pub text: String,
    /// For our own messages, how far they got; `None` for received ones.
    pub delivery: Option<Delivery>,
}

impl ChatMessage {
    /// Its seq in the conversation's history, once it has one.
    pub fn seq(&self) -> Option<u64> {
        match self.key {
            MessageKey::Seq(seq) => Some(seq),
            MessageKey::Local(_) => None,
        }
    }

    /// Its local id, while it has no seq.
    pub fn local_id(&self) -> Option<MessageId> {
        match self.key {
            MessageKey::Local(id) => Some(id),
            MessageKey::Seq(_) => None,
        }
    }
}
