//! Conversation history (issue 12): what the server hands in and reads back.
//!
//! Every message the server accepts in a conversation is kept with its *seq*: its place in the
//! conversation, from 1, gapless, in the order the server accepted it. One server numbers the
//! messages itself (in memory, so online delivery never waits for the disk), packs each
//! conversation's into a [`HistoryBatch`] as it numbers them, and hands every conversation's
//! batch of a write to [`MessageStore::append_history`](crate::MessageStore::append_history),
//! which writes them (SQLite: a row per batch) and keeps, per member, the conversation's newest
//! seq and the member's read position. The nodes of a cluster, which accept messages of one
//! conversation side by side, hand them in unnumbered instead:
//! [`MessageStore::number_history`](crate::MessageStore::number_history) numbers them in the
//! transaction that writes them, so no node keeps a counter.

mod batch;

use std::collections::{HashMap, HashSet};
use std::fmt;

use hashlink::DefaultHashBuilder;
use hongyan_shared::{Fingerprint, UserId};

pub use self::batch::{BatchSummary, HistoryBatch};

/// A conversation: the unordered pair of its members. The server's pushes to a user form the
/// conversation `("0", user)`; a user's messages to themselves, `(user, user)`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conversation {
    low: UserId,
    high: UserId,
}

impl Conversation {
    /// The conversation between `a` and `b`, in either order.
    pub fn between(a: &UserId, b: &UserId) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        Self {
            low: low.clone(),
            high: high.clone(),
        }
    }

    /// The member whose id sorts first.
    pub fn low(&self) -> &UserId {
        &self.low
    }

    /// The member whose id sorts last (the same as [`low`](Self::low) for a user's messages
    /// to themselves).
    pub fn high(&self) -> &UserId {
        &self.high
    }

    /// The other member, for `member`; `None` if `member` is not in the conversation.
    pub fn peer_of(&self, member: &UserId) -> Option<&UserId> {
        if member == &self.low {
            Some(&self.high)
        } else if member == &self.high {
            Some(&self.low)
        } else {
            None
        }
    }

    /// The members that are users (not the server), each once: the ones with a read position
    /// and a conversations list.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        let high = (self.high != self.low).then_some(&self.high);
        [Some(&self.low), high]
            .into_iter()
            .flatten()
            .filter(|u| !u.is_server())
    }

    /// A member that is a user, and the other member: whose row says how far the conversation
    /// goes.
    pub fn some_user(&self) -> (&UserId, &UserId) {
        if self.low.is_server() {
            (&self.high, &self.low)
        } else {
            (&self.low, &self.high)
        }
    }
}

impl fmt::Debug for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:?}, {:?})", self.low, self.high)
    }
}

/// One message of a conversation's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The conversation.
    pub conversation: Conversation,
    /// Its place in the conversation: from 1, gapless, in acceptance order.
    pub seq: u64,
    /// Who sent it (`"0"`: the server).
    pub sender: UserId,
    /// Its fingerprint, when it had one.
    pub fp: Option<Fingerprint>,
    /// The application's message type (MobileIMSDK `typeu`).
    pub typeu: i32,
    /// The message body (MobileIMSDK `dataContent`).
    pub content: String,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    pub accepted_at: i64,
}

/// A conversation as one of its members sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The other member (`"0"`: the server's pushes).
    pub peer: UserId,
    /// The newest seq written (0 before any).
    pub newest: u64,
    /// When the newest message was accepted, in milliseconds since the Unix epoch.
    pub newest_at: i64,
    /// The member's read position: every seq up to it is read.
    pub read: u64,
}

/// What a batch moves in one member's summary.
#[derive(Default)]
pub(crate) struct SummaryChange {
    pub(crate) newest: u64,
    pub(crate) newest_at: i64,
    pub(crate) read: u64,
}

/// What a write moves in one conversation: its newest seq, and how far each member has sent.
#[derive(Default)]
struct ConversationChange {
    newest: u64,
    newest_at: i64,
    sent_by_low: u64,
    sent_by_high: u64,
}

/// The summary changes a write makes, per `(user, peer)`, from the summaries of what it
/// writes (a [`HistoryBatch`]'s, or [`BatchSummary::of_entry`]): the newest seq of each
/// conversation, and each sender's read position at its own newest message.
pub(crate) fn summary_changes<'a>(
    written: impl IntoIterator<Item = (&'a Conversation, BatchSummary)>,
) -> Vec<((&'a UserId, &'a UserId), SummaryChange)> {
    let mut conversations: HashMap<&Conversation, ConversationChange, DefaultHashBuilder> =
        HashMap::with_hasher(DefaultHashBuilder::default());
    for (conversation, summary) in written {
        let change = conversations.entry(conversation).or_default();
        if summary.newest > change.newest {
            change.newest = summary.newest;
            change.newest_at = summary.newest_at;
        }
        change.sent_by_low = change.sent_by_low.max(summary.sent_by_low);
        change.sent_by_high = change.sent_by_high.max(summary.sent_by_high);
    }
    let mut changes = Vec::with_capacity(2 * conversations.len());
    for (conversation, change) in conversations {
        for user in conversation.users() {
            let Some(peer) = conversation.peer_of(user) else {
                continue;
            };
            let read = if user == conversation.low() {
                change.sent_by_low
            } else {
                change.sent_by_high
            };
            let summary = SummaryChange {
                newest: change.newest,
                newest_at: change.newest_at,
                read,
            };
            changes.push(((user, peer), summary));
        }
    }
    changes
}

/// What recognises a message written before, when the store numbers it: a sender's
/// retransmission has the same conversation, sender and fingerprint.
pub(crate) type WrittenKey = (Conversation, UserId, Fingerprint);

/// The key of `entry`, if it has a fingerprint to recognise it by.
pub(crate) fn written_key(entry: &HistoryEntry) -> Option<WrittenKey> {
    let fp = entry.fp.clone().filter(|fp| !fp.is_empty())?;
    Some((entry.conversation.clone(), entry.sender.clone(), fp))
}

/// Numbers `entries` for [`MessageStore::number_history`](crate::MessageStore::number_history),
/// in the order given, each after its conversation's newest seq (`newest` reads it, once per
/// conversation), leaving out those already `written` and repeats within the batch. Returns the
/// seq each entry got (0: left out) and the numbered entries, ready to append.
pub(crate) fn number(
    entries: Vec<HistoryEntry>,
    mut newest: impl FnMut(&Conversation) -> u64,
    written: impl Fn(&WrittenKey) -> bool,
) -> (Vec<u64>, Vec<HistoryEntry>) {
    let mut next: HashMap<Conversation, u64> = HashMap::new();
    let mut seen: HashSet<WrittenKey> = HashSet::new();
    let mut seqs = Vec::with_capacity(entries.len());
    let mut numbered = Vec::with_capacity(entries.len());
    for mut entry in entries {
        if let Some(key) = written_key(&entry)
            && (written(&key) || !seen.insert(key))
        {
            seqs.push(0);
            continue;
        }
        let counter = next
            .entry(entry.conversation.clone())
            .or_insert_with_key(|conversation| newest(conversation) + 1);
        entry.seq = *counter;
        *counter += 1;
        seqs.push(entry.seq);
        numbered.push(entry);
    }
    (seqs, numbered)
}
