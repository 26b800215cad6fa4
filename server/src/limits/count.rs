//! How many connections (or UDP pseudo-sessions) each address holds at once: a count per
//! address, taken when one opens and given back when it ends ([`AddressSlot`]). Not a rate, so
//! not governor's: a semaphore per address. The table holds only addresses with something
//! open, so it is bounded by the connection and pseudo-session limits themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::address::AddressKey;

/// Counts per address, at most `max` each.
#[derive(Debug)]
pub(crate) struct AddressCounts {
    max: u32,
    counts: Mutex<HashMap<AddressKey, u32>>,
}

/// One connection's or pseudo-session's place in its address's count, given back on drop.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    counts: Arc<AddressCounts>,
    key: AddressKey,
}

impl AddressCounts {
    /// Counts of at most `max` per address (`max` is at least 1).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: u32::try_from(max).unwrap_or(u32::MAX).max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AddressKey, u32>> {
        self.counts
            .lock()
            .expect("the address counts' lock is never held across a panic-prone section")
    }

    /// A place for one more at `key`; `None` if it already holds `max`.
    pub(crate) fn acquire(self: &Arc<Self>, key: AddressKey) -> Option<AddressSlot> {
        let mut counts = self.lock();
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            key,
        })
    }

    /// What `key` holds now.
    #[cfg(test)]
    pub(crate) fn held(&self, key: AddressKey) -> u32 {
        self.lock().get(&key).copied().unwrap_or(0)
    }

    /// Addresses holding anything.
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_gets_its_places_back() {
        let counts = AddressCounts::new(2);
        let (a, b) = (AddressKey::V4(1), AddressKey::V4(2));
        let first = counts.acquire(a).unwrap();
        let second = counts.acquire(a).unwrap();
        assert!(counts.acquire(a).is_none());
        let other = counts.acquire(b).unwrap();
        drop(first);
        assert_eq!(counts.held(a), 1);
        let third = counts.acquire(a).unwrap();
        drop((second, third, other));
        assert_eq!(
            counts.addresses(),
            0,
            "an address with nothing open is forgotten"
        );
    }
}
