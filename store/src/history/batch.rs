//! [`HistoryBatch`]: the messages of one conversation that one history write carries, packed
//! into bytes as they are numbered.
//!
//! One server writes a conversation's history a batch at a time, every flush delay: under
//! load that is tens of messages per conversation and write. Packing them as they are
//! numbered, rather than keeping each as a [`HistoryEntry`] of owned strings, costs the
//! session that numbers a message one copy into a growing buffer and no allocation of its
//! own, and lets SQLite keep the batch as one row (see `schema`): per write, the store's work
//! is per conversation, not per message.
//!
//! # Format
//! The entries follow each other, oldest first, each in
//! [postcard](https://postcard.jamesmunns.com/wire-format) (varints, zigzag for signed numbers,
//! strings as a varint length and UTF-8 bytes):
//! `seq` (u64), `from_low` (bool: the member whose id sorts first sent it), `fp`
//! (`Option<str>`), `typeu` (i32), `accepted_at` (i64), `content` (str). Its fields are the
//! [`HistoryEntry`] ones but the conversation, which the batch holds once, and the sender,
//! which is always one of its members.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use hongyan_shared::{Fingerprint, UserId};
use serde::{Deserialize, Serialize};

use super::{Conversation, HistoryEntry};
use crate::StoreError;

/// One entry as the batch packs it; the strings are borrowed both ways.
#[derive(Serialize, Deserialize)]
struct Packed<'a> {
    seq: u64,
    from_low: bool,
    fp: Option<&'a str>,
    typeu: i32,
    accepted_at: i64,
    content: &'a str,
}

/// What a batch says about its conversation once written: the newest seq and when it was
/// accepted, and the newest seq each member sent (which that member has read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// The first seq in the batch (0 if it is empty or unnumbered).
    pub first: u64,
    /// The newest seq in the batch (0 if it is empty or unnumbered).
    pub newest: u64,
    /// When the newest entry was accepted, in milliseconds since the Unix epoch.
    pub newest_at: i64,
    /// When the oldest entry was accepted (the earliest time, whatever the order).
    pub oldest_at: i64,
    /// The newest seq the member whose id sorts first sent.
    pub sent_by_low: u64,
    /// The newest seq the other member sent.
    pub sent_by_high: u64,
}

impl BatchSummary {
    /// The summary of a batch of `entry` alone.
    pub(crate) fn of_entry(entry: &HistoryEntry) -> Self {
        let (seq, at) = (entry.seq, entry.accepted_at);
        let sent_by = |member: &UserId| if &entry.sender == member { seq } else { 0 };
        Self {
            first: seq,
            newest: seq,
            newest_at: at,
            oldest_at: at,
            sent_by_low: sent_by(entry.conversation.low()),
            sent_by_high: sent_by(entry.conversation.high()),
        }
    }
}

/// Messages of one conversation, oldest first, packed as they are numbered: what one history
/// write holds of a conversation, and what SQLite keeps as one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryBatch {
    conversation: Conversation,
    len: u32,
    /// The entries' content bytes, unpacked: what a writer that bounds the content it holds
    /// counts.
    content_len: usize,
    summary: BatchSummary,
    bytes: Vec<u8>,
}

/// Whether `id` can be kept: no backend keeps a NUL in an id faithfully.
fn check_id(id: &str, what: &str) -> Result<(), StoreError> {
    if id.contains('\0') {
        return Err(StoreError::InvalidMessage(format!(
            "a history entry's {what} contains a NUL character"
        )));
    }
    Ok(())
}

impl HistoryBatch {
    /// An empty batch of `conversation`; refused if a member's id holds a NUL character.
    pub fn new(conversation: Conversation) -> Result<Self, StoreError> {
        check_id(conversation.low().as_str(), "conversation")?;
        check_id(conversation.high().as_str(), "conversation")?;
        Ok(Self {
            conversation,
            len: 0,
            content_len: 0,
            summary: BatchSummary::default(),
            bytes: Vec::new(),
        })
    }

    /// Adds an entry after the others: `seq` (0 while the store is to number it), sent by the
    /// member whose id sorts first if `from_low`. Refused if its fingerprint holds a NUL.
    pub fn push(
        &mut self,
        seq: u64,
        from_low: bool,
        fp: Option<&str>,
        typeu: i32,
        accepted_at: i64,
        content: &str,
    ) -> Result<(), StoreError> {
        if let Some(fp) = fp {
            check_id(fp, "fingerprint")?;
        }
        let packed = Packed {
            seq,
            from_low,
            fp,
            typeu,
            accepted_at,
            content,
        };
        let bytes = std::mem::take(&mut self.bytes);
        self.bytes = postcard::to_extend(&packed, bytes)
            .map_err(|e| StoreError::InvalidMessage(format!("history entry: {e}")))?;
        self.note(&packed);
        Ok(())
    }

    /// Adds `entry`, whose conversation must be this batch's (refused otherwise, or if its
    /// sender is not a member).
    pub fn push_entry(&mut self, entry: &HistoryEntry) -> Result<(), StoreError> {
        let from_low = if entry.conversation != self.conversation {
            None
        } else if &entry.sender == self.conversation.low() {
            Some(true)
        } else if &entry.sender == self.conversation.high() {
            Some(false)
        } else {
            None
        };
        let Some(from_low) = from_low else {
            return Err(StoreError::InvalidMessage(format!(
                "history entry from {:?} does not belong to the batch of {:?}",
                entry.sender, self.conversation
            )));
        };
        self.push(
            entry.seq,
            from_low,
            entry.fp.as_ref().map(Fingerprint::as_str),
            entry.typeu,
            entry.accepted_at,
            &entry.content,
        )
    }

    /// Groups `entries` into batches, one per conversation in the order each first appears;
    /// each batch keeps its entries' order.
    pub fn group(entries: &[HistoryEntry]) -> Result<Vec<HistoryBatch>, StoreError> {
        let mut batches: Vec<HistoryBatch> = Vec::new();
        let mut at: HashMap<&Conversation, usize> = HashMap::new();
        for entry in entries {
            let i = match at.entry(&entry.conversation) {
                Entry::Occupied(found) => *found.get(),
                Entry::Vacant(slot) => {
                    batches.push(Self::new(entry.conversation.clone())?);
                    *slot.insert(batches.len() - 1)
                }
            };
            batches[i].push_entry(entry)?;
        }
        Ok(batches)
    }

    /// A batch read back from the store: `bytes` as [`bytes`](Self::bytes) gave them. Every
    /// entry is read once to check them and to gather the summary.
    pub fn from_bytes(conversation: Conversation, bytes: Vec<u8>) -> Result<Self, StoreError> {
        let mut batch = Self::new(conversation)?;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (packed, tail) = take(rest)?;
            batch.note(&packed);
            rest = tail;
        }
        batch.bytes = bytes;
        Ok(batch)
    }

    /// Counts `packed`, just added, into the summary.
    fn note(&mut self, packed: &Packed<'_>) {
        let summary = &mut self.summary;
        if self.len == 0 {
            summary.first = packed.seq;
            summary.oldest_at = packed.accepted_at;
        }
        self.len += 1;
        self.content_len += packed.content.len();
        summary.oldest_at = summary.oldest_at.min(packed.accepted_at);
        if packed.seq >= summary.newest {
            summary.newest = packed.seq;
            summary.newest_at = packed.accepted_at;
        }
        // A user's messages to themselves were sent by both members.
        let myself = self.conversation.low() == self.conversation.high();
        if packed.from_low || myself {
            summary.sent_by_low = summary.sent_by_low.max(packed.seq);
        }
        if !packed.from_low || myself {
            summary.sent_by_high = summary.sent_by_high.max(packed.seq);
        }
    }

    /// The conversation.
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The bytes of its entries' contents (not packed).
    pub fn content_len(&self) -> usize {
        self.content_len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its seqs and times, and how far each member sent.
    pub fn summary(&self) -> BatchSummary {
        self.summary
    }

    /// The packed entries, as the store keeps them.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entries, oldest first, each with its conversation and sender.
    pub fn entries(&self) -> impl Iterator<Item = HistoryEntry> + '_ {
        let mut rest = self.bytes.as_slice();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (packed, tail) =
                take(rest).expect("a batch holds only entries it packed or checked on reading");
            rest = tail;
            Some(self.entry(&packed))
        })
    }

    /// The entries for which `keep` holds, as a batch of the same conversation.
    pub fn retain(&self, mut keep: impl FnMut(&HistoryEntry) -> bool) -> Self {
        let mut kept = Self {
            conversation: self.conversation.clone(),
            len: 0,
            content_len: 0,
            summary: BatchSummary::default(),
            bytes: Vec::new(),
        };
        for entry in self.entries().filter(|e| keep(e)) {
            kept.push_entry(&entry)
                .expect("an entry of the batch fits the batch again");
        }
        kept
    }

    fn entry(&self, packed: &Packed<'_>) -> HistoryEntry {
        let sender: &UserId = if packed.from_low {
            self.conversation.low()
        } else {
            self.conversation.high()
        };
        HistoryEntry {
            conversation: self.conversation.clone(),
            seq: packed.seq,
            sender: sender.clone(),
            fp: packed.fp.map(Fingerprint::new),
            typeu: packed.typeu,
            content: packed.content.to_owned(),
            accepted_at: packed.accepted_at,
        }
    }
}

/// The first packed entry of `bytes`, and the bytes after it.
fn take(bytes: &[u8]) -> Result<(Packed<'_>, &[u8]), StoreError> {
    postcard::take_from_bytes(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a history batch does not read back: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, sender: &str, content: &str) -> HistoryEntry {
        HistoryEntry {
            conversation: Conversation::between(&"alice".into(), &"bob".into()),
            seq,
            sender: sender.into(),
            fp: (seq % 2 == 1).then(|| Fingerprint::new(format!("fp-{seq}"))),
            typeu: -3,
            content: content.to_owned(),
            accepted_at: 1_700_000_000_000 + seq as i64,
        }
    }

    #[test]
    fn entries_come_back_exactly_as_they_went_in() {
        let entries = [
            entry(7, "alice", "hello"),
            entry(8, "bob", ""),
            entry(9, "bob", "nul \0 and 鸿雁 and \"quotes\""),
        ];
        let batches = HistoryBatch::group(&entries).unwrap();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let back: Vec<HistoryEntry> = batch.entries().collect();
        assert_eq!(back, entries);
        let summary = batch.summary();
        assert_eq!((summary.first, summary.newest), (7, 9));
        assert_eq!((summary.sent_by_low, summary.sent_by_high), (7, 9));
        assert_eq!(summary.newest_at, entries[2].accepted_at);
        assert_eq!(summary.oldest_at, entries[0].accepted_at);
        assert_eq!(
            batch.content_len(),
            "hello".len() + entries[2].content.len()
        );
        let reread =
            HistoryBatch::from_bytes(batch.conversation().clone(), batch.bytes().to_vec()).unwrap();
        assert_eq!(&reread, batch);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let batch = &HistoryBatch::group(&[entry(1, "alice", "hello")]).unwrap()[0];
        let conversation = batch.conversation().clone();
        for cut in 1..batch.bytes().len() {
            let bytes = batch.bytes()[..cut].to_vec();
            assert!(matches!(
                HistoryBatch::from_bytes(conversation.clone(), bytes),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut bad_utf8 = batch.bytes().to_vec();
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert!(HistoryBatch::from_bytes(conversation, bad_utf8).is_err());
    }

    #[test]
    fn an_entry_of_another_conversation_or_a_nul_in_an_id_is_refused() {
        let mut batch =
            HistoryBatch::new(Conversation::between(&"alice".into(), &"carol".into())).unwrap();
        assert!(batch.push_entry(&entry(1, "alice", "x")).is_err());
        assert!(batch.push(1, true, Some("f\0p"), 0, 0, "x").is_err());
        assert!(batch.is_empty());
        let nul = Conversation::between(&"al\0ice".into(), &"bob".into());
        assert!(HistoryBatch::new(nul).is_err());
    }

    #[test]
    fn retain_keeps_the_order_and_the_summary_follows() {
        let entries: Vec<HistoryEntry> = (1..=5).map(|s| entry(s, "bob", "x")).collect();
        let batch = &HistoryBatch::group(&entries).unwrap()[0];
        let kept = batch.retain(|e| e.seq > 3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept.summary().first, 4);
        assert_eq!(kept.summary().oldest_at, entries[3].accepted_at);
    }
}
