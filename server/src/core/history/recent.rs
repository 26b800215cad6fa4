//! The messages a shard kept recently, so that a sender's retransmission (after 5 and 10 s,
//! §6.1) is recognised and not numbered twice.
//!
//! Every message kept adds one and, once the shard is at capacity, the oldest goes: under
//! load that is two changes per message to a table far larger than the processor's caches.
//! The messages sit in a ring in the order they were kept, so the oldest, which goes next, is
//! always beside the one that went before it; an index by key hash finds them. The oldest
//! leaves the ring only: its number stays in the index, where a lookup passes over it (it is
//! below the ring's first), until the index holds as many gone as present and is built again
//! from the ring, in one pass in ring order, instead of a jump into the index per message. A
//! key keeps its conversation shared with the conversation's counter and a usual fingerprint
//! in place, so remembering a message allocates nothing but its place in the ring.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use hashlink::DefaultHashBuilder;
use hongyan_shared::{Fingerprint, Instant, SeqTag};
use hongyan_store::Conversation;

use super::members::Members;

/// A recently kept message, as its sender's retransmission repeats it: its conversation,
/// which member sent it (the sender is always one of the two), and its fingerprint.
pub(super) struct RecentKey {
    /// The hash of the other three, computed once, when the message arrives.
    hash: u64,
    /// Shared with the conversation's counter: no copy of its ids per message.
    conversation: Arc<Conversation>,
    from_low: bool,
    fp: KeyFingerprint,
}

impl RecentKey {
    /// Whether this is the key `probe` looks for.
    fn matches(&self, probe: &RecentProbe<'_>, members: Members<'_>) -> bool {
        self.hash == probe.hash
            && self.from_low == probe.from_low
            && self.fp.as_bytes() == probe.fp.as_str().as_bytes()
            && members.is(&self.conversation)
    }

    fn same(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.from_low == other.from_low
            && self.fp == other.fp
            && self.conversation == other.conversation
    }
}

/// The longest fingerprint a [`KeyFingerprint`] holds in place.
const INLINE_FINGERPRINT: usize = 40;

/// A fingerprint as a recent message's key holds it: in place when it is as short as the
/// usual ones (MobileIMSDK's are 36-character UUIDs), so that remembering a message
/// allocates nothing for it, and forgetting it frees nothing.
#[derive(PartialEq, Eq)]
enum KeyFingerprint {
    /// The first `len` bytes, the rest zero: equal fingerprints are equal arrays.
    Inline {
        len: u8,
        bytes: [u8; INLINE_FINGERPRINT],
    },
    /// A longer one (up to `MAX_FINGERPRINT_BYTES`).
    Boxed(Box<str>),
}

impl KeyFingerprint {
    fn new(fp: &str) -> Self {
        match u8::try_from(fp.len()) {
            Ok(len) if fp.len() <= INLINE_FINGERPRINT => {
                let mut bytes = [0; INLINE_FINGERPRINT];
                bytes[..fp.len()].copy_from_slice(fp.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Boxed(fp.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Boxed(fp) => fp.as_bytes(),
        }
    }
}

/// What finds a message among the recent ones without building its key: the key's hash and
/// the parts of the message that the conversation does not give.
pub(super) struct RecentProbe<'a> {
    hash: u64,
    from_low: bool,
    fp: &'a Fingerprint,
}

impl<'a> RecentProbe<'a> {
    /// The probe of a message its conversation's member whose id sorts first sent
    /// (`from_low`) or the other, if it has a fingerprint to recognise it by;
    /// `conversation_hash` is the conversation's hash (`hasher`'s).
    pub(super) fn of(
        from_low: bool,
        fp: Option<&'a Fingerprint>,
        conversation_hash: u64,
        hasher: &DefaultHashBuilder,
    ) -> Option<Self> {
        let fp = fp.filter(|fp| !fp.is_empty())?;
        Some(Self {
            hash: hasher.hash_one((conversation_hash, from_low, fp.as_str())),
            from_low,
            fp,
        })
    }

    /// The key it looks for, in `conversation` (its counter's).
    pub(super) fn key(&self, conversation: &Arc<Conversation>) -> RecentKey {
        RecentKey {
            hash: self.hash,
            conversation: Arc::clone(conversation),
            from_low: self.from_low,
            fp: KeyFingerprint::new(self.fp.as_str()),
        }
    }
}

/// A recently kept message: its key, when it was kept, and its tag (`None` while it waits
/// for its seq).
pub(super) struct Recent {
    key: RecentKey,
    pub(super) at: Instant,
    pub(super) tag: Option<SeqTag>,
}

/// The recently kept messages of a shard, oldest first.
#[derive(Default)]
pub(super) struct RecentMessages {
    /// In the order they were kept.
    ring: VecDeque<Recent>,
    /// The number of the ring's first message (messages are numbered as they enter).
    first: u64,
    /// The messages' keys' hashes and numbers, by the hashes; numbers below `first` are of
    /// messages gone from the ring.
    index: HashTable<(u64, u64)>,
}

/// Where message `number` is in a ring that starts at message `first`.
fn slot(number: u64, first: u64) -> usize {
    usize::try_from(number - first).expect("a ring's messages fit in memory")
}

impl RecentMessages {
    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }

    /// The oldest message.
    pub(super) fn oldest(&self) -> Option<&Recent> {
        self.ring.front()
    }

    /// Forgets the oldest message.
    pub(super) fn forget_oldest(&mut self) {
        if self.ring.pop_front().is_some() {
            self.first += 1;
        }
    }

    /// The message `probe` finds in `members`' conversation.
    pub(super) fn find(&self, probe: &RecentProbe<'_>, members: Members<'_>) -> Option<&Recent> {
        let number = self.number(probe.hash, |key| key.matches(probe, members))?;
        Some(&self.ring[slot(number, self.first)])
    }

    /// The message `probe` finds in `members`' conversation, to change.
    pub(super) fn find_mut(
        &mut self,
        probe: &RecentProbe<'_>,
        members: Members<'_>,
    ) -> Option<&mut Recent> {
        let number = self.number(probe.hash, |key| key.matches(probe, members))?;
        Some(&mut self.ring[slot(number, self.first)])
    }

    fn number(&self, hash: u64, mut is_match: impl FnMut(&RecentKey) -> bool) -> Option<u64> {
        let (ring, first) = (&self.ring, self.first);
        self.index
            .find(hash, |&(h, n)| {
                h == hash && n >= first && is_match(&ring[slot(n, first)].key)
            })
            .map(|&(_, n)| n)
    }

    /// Builds the index again from the ring, without the messages gone from it.
    fn reindex(&mut self) {
        self.index.clear();
        let first = self.first;
        for (number, recent) in (first..).zip(&self.ring) {
            let hash = recent.key.hash;
            self.index.insert_unique(hash, (hash, number), |&(h, _)| h);
        }
    }

    /// Remembers a kept message's tag by its `key`, kept at `now`. The caller looked for it
    /// ([`find`](Self::find)) under the same lock and found nothing: the index is not searched
    /// again.
    pub(super) fn remember(&mut self, key: RecentKey, tag: Option<SeqTag>, now: Instant) {
        debug_assert!(
            self.number(key.hash, |k| k.same(&key)).is_none(),
            "a message is remembered once"
        );
        if self.index.len() >= 2 * self.ring.len() + 64 {
            self.reindex();
        }
        let number = self.first + self.ring.len() as u64;
        let hash = key.hash;
        self.ring.push_back(Recent { key, at: now, tag });
        self.index.insert_unique(hash, (hash, number), |&(h, _)| h);
    }

    /// Gives back the memory of a ring left mostly empty (after a busy spell).
    pub(super) fn shrink(&mut self) {
        if self.ring.len() * 4 < self.ring.capacity() {
            self.ring.shrink_to_fit();
            self.reindex();
            self.index.shrink_to_fit(|&(h, _)| h);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hongyan_shared::UserId;

    use super::*;

    fn conversation() -> Arc<Conversation> {
        Arc::new(Conversation::between(&"alice".into(), &"bob".into()))
    }

    fn tag(seq: u64) -> Option<SeqTag> {
        Some(SeqTag {
            seq,
            epoch: 1,
            at: 0,
        })
    }

    #[test]
    fn the_oldest_go_first_and_the_rest_are_still_found() {
        let hasher = DefaultHashBuilder::default();
        let c = conversation();
        let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
        let members = Members::between(&alice, &bob);
        let fps: Vec<Fingerprint> = (0..100).map(|i| format!("fp-{i}").into()).collect();
        let probe = |fp| RecentProbe::of(true, Some(fp), 7, &hasher).unwrap();
        let now = Instant::now();
        let mut recent = RecentMessages::default();
        for (i, fp) in (1..).zip(&fps) {
            recent.remember(probe(fp).key(&c), tag(i), now);
        }
        // Numbered later (its conversation's counter was loading): the tag changes in place.
        recent.find_mut(&probe(&fps[0]), members).unwrap().tag = tag(500);
        assert_eq!(recent.len(), 100);
        assert_eq!(recent.oldest().unwrap().tag, tag(500));
        for _ in 0..60 {
            recent.forget_oldest();
        }
        recent.shrink();
        for (i, fp) in (1..).zip(&fps) {
            let found = recent.find(&probe(fp), members).map(|r| r.tag);
            let kept = if i > 60 { Some(tag(i)) } else { None };
            assert_eq!(found, kept, "{fp:?}");
        }
        let later = now + Duration::from_secs(1);
        recent.remember(probe(&fps[0]).key(&c), tag(101), later);
        assert_eq!(recent.len(), 41);
        assert_eq!(recent.find(&probe(&fps[0]), members).unwrap().at, later);
    }
}
