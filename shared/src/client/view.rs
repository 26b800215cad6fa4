//! [`HistoryView`]: what an application keeps of its conversations, built from a session's
//! events, so a user interface (the H5 client, `hongyan chat`) only renders it.

use std::collections::{BTreeMap, HashSet};

use super::event::{ClientEvent, HistoryEvent, ReceivedMessage};
use crate::history::{ConversationInfo, HistoryMessage};
use crate::packet::{Fingerprint, UserId};

/// One conversation as the application knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationView {
    /// Its numbers (newest seq, read position, unread count), once the session reported them.
    pub info: Option<ConversationInfo>,
    /// The messages learned from the history, live or in pages, by seq.
    pub messages: BTreeMap<u64, HistoryMessage>,
    /// Messages that arrived without a seq, in arrival order, until a page brings each with
    /// its seq (matched by sender and fingerprint).
    pub unsequenced: Vec<ReceivedMessage>,
}

impl ConversationView {
    fn knows(&self, from: &UserId, fp: &Fingerprint) -> bool {
        self.messages
            .values()
            .rev()
            .any(|m| &m.from == from && m.fp.as_ref() == Some(fp))
            || self
                .unsequenced
                .iter()
                .any(|m| &m.from == from && m.fp.as_ref() == Some(fp))
    }

    /// Takes `message`'s unsequenced copy out, if there is one.
    fn sequenced(&mut self, message: &HistoryMessage) -> bool {
        let Some(fp) = &message.fp else {
            return false;
        };
        let before = self.unsequenced.len();
        self.unsequenced
            .retain(|m| !(m.from == message.from && m.fp.as_ref() == Some(fp)));
        self.unsequenced.len() != before
    }
}

/// A message the view did not know before an event, for an application that shows what is
/// new (a notification, `hongyan chat`'s output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    /// A message with its place in the history.
    Message {
        /// The conversation's other member.
        peer: UserId,
        /// The message.
        message: HistoryMessage,
    },
    /// A message that arrived live without a seq.
    Unsequenced {
        /// The conversation's other member.
        peer: UserId,
        /// The message.
        message: ReceivedMessage,
    },
}

/// Every conversation an application knows, kept up to date by [`apply`](Self::apply)ing each
/// [`ClientEvent`] of a session that syncs history: live messages, pages, acknowledgements of
/// sent messages with their seq, read positions, and a reset when the server's history epoch
/// changes. Once the session has caught up, each conversation's messages from the session's
/// [`complete_from`](super::SyncState::complete_from) through its newest seq are exactly the
/// server's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryView {
    epoch: Option<u64>,
    conversations: BTreeMap<UserId, ConversationView>,
}

impl HistoryView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server's history epoch the view was built in.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The conversation with `peer`.
    pub fn conversation(&self, peer: &UserId) -> Option<&ConversationView> {
        self.conversations.get(peer)
    }

    /// Every conversation, in peer-id order.
    pub fn conversations(&self) -> impl Iterator<Item = (&UserId, &ConversationView)> {
        self.conversations.iter()
    }

    /// Applies one event of the session; returns the messages it made known for the first
    /// time (a message already shown, live or from an earlier page, is not repeated).
    pub fn apply(&mut self, event: &ClientEvent) -> Vec<Learned> {
        match event {
            ClientEvent::MessageReceived(message) => self.received(message),
            ClientEvent::History(event) => self.history(event),
            _ => Vec::new(),
        }
    }

    fn received(&mut self, message: &ReceivedMessage) -> Vec<Learned> {
        let peer = message.from.clone();
        let conversation = self.conversations.entry(peer.clone()).or_default();
        if let Some(tag) = &message.seq {
            // The first tag names the epoch, as it does for the session.
            if *self.epoch.get_or_insert(tag.epoch) != tag.epoch {
                return Vec::new();
            }
            let sequenced = HistoryMessage {
                seq: tag.seq,
                from: message.from.clone(),
                fp: message.fp.clone(),
                typeu: message.typeu,
                at: tag.at,
                content: Some(message.content.clone()),
            };
            let known =
                conversation.messages.contains_key(&tag.seq) | conversation.sequenced(&sequenced);
            conversation.messages.insert(tag.seq, sequenced.clone());
            return if known {
                Vec::new()
            } else {
                vec![Learned::Message {
                    peer,
                    message: sequenced,
                }]
            };
        }
        if let Some(fp) = &message.fp
            && conversation.knows(&message.from, fp)
        {
            return Vec::new();
        }
        conversation.unsequenced.push(message.clone());
        vec![Learned::Unsequenced {
            peer,
            message: message.clone(),
        }]
    }

    fn history(&mut self, event: &HistoryEvent) -> Vec<Learned> {
        match event {
            HistoryEvent::Reset { epoch } => {
                self.conversations.clear();
                self.epoch = Some(*epoch);
                Vec::new()
            }
            HistoryEvent::Conversations {
                epoch,
                conversations,
            } => {
                if self.epoch.is_some_and(|e| e != *epoch) {
                    self.conversations.clear();
                }
                self.epoch = Some(*epoch);
                for info in conversations {
                    self.conversations
                        .entry(info.peer.clone())
                        .or_default()
                        .info = Some(info.clone());
                }
                Vec::new()
            }
            HistoryEvent::Updated(info) => {
                self.conversations
                    .entry(info.peer.clone())
                    .or_default()
                    .info = Some(info.clone());
                Vec::new()
            }
            HistoryEvent::Sent { peer, message } => {
                let conversation = self.conversations.entry(peer.clone()).or_default();
                conversation.sequenced(message);
                conversation.messages.insert(message.seq, message.clone());
                Vec::new()
            }
            HistoryEvent::Page {
                peer,
                from,
                through,
                messages,
                ..
            } => {
                let conversation = self.conversations.entry(peer.clone()).or_default();
                let listed: HashSet<u64> = messages.iter().map(|m| m.seq).collect();
                // A seq the page covers but does not list is gone from the server's history.
                if from <= through {
                    conversation
                        .messages
                        .retain(|seq, _| !(*from..=*through).contains(seq) || listed.contains(seq));
                }
                let mut learned = Vec::new();
                for message in messages {
                    let known = conversation.messages.contains_key(&message.seq)
                        | conversation.sequenced(message);
                    conversation.messages.insert(message.seq, message.clone());
                    if !known {
                        learned.push(Learned::Message {
                            peer: peer.clone(),
                            message: message.clone(),
                        });
                    }
                }
                learned
            }
            HistoryEvent::Unavailable => Vec::new(),
        }
    }
}
