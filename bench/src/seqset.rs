//! Which sequence numbers a receiver has seen: one bit each, since a sender numbers its
//! messages densely from 0. A hash set cost the generator ~12% of its CPU in a 1.3-million
//! message run (hashing, and page faults each time the table doubled).

/// Sequence numbers at or above this are not ours (a run ends long before), so a corrupt or
/// hostile number cannot make the set allocate without bound: at most 16 MiB.
const LIMIT: u64 = 1 << 27;

/// A set of dense sequence numbers.
#[derive(Debug, Default)]
pub(crate) struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`: `Some(true)` if it is new, `Some(false)` if seen before, `None` if it is
    /// out of range.
    pub(crate) fn insert(&mut self, seq: u64) -> Option<bool> {
        if seq >= LIMIT {
            return None;
        }
        let word = usize::try_from(seq / 64).ok()?;
        if word >= self.words.len() {
            self.words.resize((word + 1).next_power_of_two(), 0);
        }
        let bit = 1 << (seq % 64);
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += u64::from(new);
        Some(new)
    }

    /// How many distinct numbers were inserted.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_number_once_and_refuses_absurd_ones() {
        let mut set = SeqSet::default();
        assert_eq!(set.insert(0), Some(true));
        assert_eq!(set.insert(64), Some(true));
        assert_eq!(set.insert(0), Some(false));
        assert_eq!(set.insert(1000), Some(true));
        assert_eq!(set.insert(1000), Some(false));
        assert_eq!(set.insert(u64::MAX), None);
        assert_eq!(set.len(), 3);
    }
}
