//! The receiver side of QoS (§6.3): remember recently seen fingerprints so a retransmitted
//! message is acknowledged again but delivered once.

use std::hash::Hash;
use std::time::Duration;

use hashlink::LinkedHashMap;
use web_time::Instant;

/// What one remembered key costs besides its own bytes, for [`DedupConfig::max_bytes`]: its
/// node in the window (links, time, size) and its slot in the hash table.
pub const DEDUP_ENTRY_OVERHEAD: usize = 96;

/// Bytes a window allows per entry of its capacity ([`DedupConfig::with_capacity`]): room for
/// a 36-character UUID fingerprint, a user id of a few dozen bytes and the entry overhead, so
/// a window of ordinary keys fills by count, and one of longer keys by bytes first.
pub const DEDUP_BYTES_PER_ENTRY: usize = 176;

/// How long fingerprints are remembered and how many at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupConfig {
    /// A fingerprint is forgotten once it has not been seen for this long (reference: 10 min).
    pub lifetime: Duration,
    /// How often expired fingerprints are swept (reference: 5 min), so a fingerprint is
    /// remembered between `lifetime` and `lifetime + sweep_interval`.
    pub sweep_interval: Duration,
    /// At most this many fingerprints are kept; when full, the oldest are forgotten first.
    /// The reference has no bound. 0 remembers nothing: every copy is delivered.
    pub capacity: usize,
    /// At most this many bytes are kept, counting each key's own bytes (as its owner sizes
    /// it) plus [`DEDUP_ENTRY_OVERHEAD`]; when full, the oldest are forgotten first. The
    /// reference has no bound.
    pub max_bytes: usize,
}

impl DedupConfig {
    /// The reference's lifetimes, at most `capacity` keys and
    /// `capacity ×` [`DEDUP_BYTES_PER_ENTRY`] bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            lifetime: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(300),
            capacity,
            max_bytes: capacity.saturating_mul(DEDUP_BYTES_PER_ENTRY),
        }
    }
}

impl Default for DedupConfig {
    /// 100,000 keys, 17.6 MB.
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

/// When a key was last seen, and what it costs.
#[derive(Debug)]
struct Seen {
    at: Instant,
    bytes: usize,
}

/// A bounded set of recently seen keys, driven by the `now` its owner passes in.
///
/// Keys are kept in the order they were last seen, so forgetting the oldest (when full) and
/// sweeping the expired (from the old end) cost O(1) per key forgotten, never a scan.
#[derive(Debug)]
pub struct DedupWindow<K> {
    config: DedupConfig,
    seen: LinkedHashMap<K, Seen>,
    bytes: usize,
    next_sweep: Instant,
}

impl<K: Hash + Eq> DedupWindow<K> {
    /// An empty window whose first sweep is one interval after `now`.
    pub fn new(config: DedupConfig, now: Instant) -> Self {
        Self {
            config,
            seen: LinkedHashMap::new(),
            bytes: 0,
            next_sweep: now + config.sweep_interval,
        }
    }

    /// Records `key` as seen at `now`, counting it as zero bytes of its own. Returns true the
    /// first time (deliver it) and false for a duplicate (acknowledge it again, do not
    /// deliver); either way its time is refreshed.
    pub fn observe(&mut self, key: K, now: Instant) -> bool {
        self.observe_sized(key, 0, now)
    }

    /// [`observe`](Self::observe) for a key whose own bytes (its strings) are `key_bytes`,
    /// which count towards [`DedupConfig::max_bytes`].
    pub fn observe_sized(&mut self, key: K, key_bytes: usize, now: Instant) -> bool {
        if self.config.capacity == 0 {
            return true;
        }
        if let Some(seen) = self.seen.to_back(&key) {
            seen.at = now;
            return false;
        }
        let bytes = key_bytes + DEDUP_ENTRY_OVERHEAD;
        while !self.seen.is_empty()
            && (self.seen.len() >= self.config.capacity
                || self.bytes + bytes > self.config.max_bytes)
        {
            self.forget_oldest();
        }
        self.bytes += bytes;
        self.seen.insert(key, Seen { at: now, bytes });
        debug_assert!(self.seen.len() <= self.config.capacity);
        true
    }

    /// Whether `key` is remembered.
    pub fn contains(&self, key: &K) -> bool {
        self.seen.contains_key(key)
    }

    /// Remembered keys.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// What the remembered keys cost, as [`DedupConfig::max_bytes`] counts it.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Re-stamps every key with `now` and restarts the sweep clock, as the Java clients do at
    /// each successful login. The order stays: every key is equally old now.
    pub fn restart(&mut self, now: Instant) {
        for (_, seen) in self.seen.iter_mut() {
            seen.at = now;
        }
        self.next_sweep = now + self.config.sweep_interval;
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.seen.clear();
        self.bytes = 0;
    }

    /// The next sweep.
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    /// Sweeps expired keys if the sweep is due at `now`: from the oldest, until one has not
    /// expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        let lifetime = self.config.lifetime;
        while self
            .seen
            .front()
            .is_some_and(|(_, seen)| now.saturating_duration_since(seen.at) >= lifetime)
        {
            self.forget_oldest();
        }
        self.next_sweep = now + self.config.sweep_interval;
    }

    fn forget_oldest(&mut self) {
        if let Some((_, seen)) = self.seen.pop_front() {
            self.bytes -= seen.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_reported_and_refresh_their_time() {
        let t0 = Instant::now();
        let mut w = DedupWindow::new(DedupConfig::default(), t0);
        assert!(w.observe("fp", t0));
        assert!(!w.observe("fp", t0 + Duration::from_secs(599)));
        w.handle_timeout(t0 + Duration::from_secs(900));
        assert!(
            w.contains(&"fp"),
            "refreshed at 599 s, so still young at 900 s"
        );
        w.handle_timeout(t0 + Duration::from_secs(1200));
        assert!(!w.contains(&"fp"));
    }

    #[test]
    fn a_fingerprint_is_remembered_at_least_the_lifetime() {
        let t0 = Instant::now();
        let mut w = DedupWindow::new(DedupConfig::default(), t0);
        w.observe("fp", t0 + Duration::from_secs(1));
        w.handle_timeout(t0 + Duration::from_secs(300));
        w.handle_timeout(t0 + Duration::from_secs(600));
        assert!(w.contains(&"fp"));
        w.handle_timeout(t0 + Duration::from_secs(900));
        assert!(!w.contains(&"fp"));
    }

    #[test]
    fn a_full_window_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let config = DedupConfig {
            capacity: 16,
            ..DedupConfig::default()
        };
        let mut w = DedupWindow::new(config, t0);
        for i in 0..16u32 {
            w.observe(i, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(w.observe(100, t0 + Duration::from_secs(1)));
        assert_eq!(w.len(), 16);
        assert!(!w.contains(&0), "the oldest key goes first");
        assert!(w.contains(&1) && w.contains(&15) && w.contains(&100));
    }

    #[test]
    fn seeing_a_key_again_makes_it_the_youngest() {
        let t0 = Instant::now();
        let config = DedupConfig {
            capacity: 3,
            ..DedupConfig::default()
        };
        let mut w = DedupWindow::new(config, t0);
        for i in 0..3u32 {
            w.observe(i, t0);
        }
        assert!(!w.observe(0, t0 + Duration::from_secs(1)));
        w.observe(3, t0 + Duration::from_secs(2));
        assert!(w.contains(&0), "0 was seen again, so 1 was the oldest");
        assert!(!w.contains(&1));
    }

    #[test]
    fn the_window_is_bounded_by_bytes_too() {
        let t0 = Instant::now();
        let config = DedupConfig {
            max_bytes: 4 * (100 + DEDUP_ENTRY_OVERHEAD),
            ..DedupConfig::default()
        };
        let mut w = DedupWindow::new(config, t0);
        for i in 0..10u32 {
            assert!(w.observe_sized(i, 100, t0));
            assert!(w.bytes() <= config.max_bytes);
        }
        assert_eq!(w.len(), 4);
        assert!(w.contains(&9) && !w.contains(&5));
        // A key larger than the whole window is still remembered, alone.
        assert!(w.observe_sized(99, config.max_bytes, t0));
        assert_eq!(w.len(), 1);
        w.clear();
        assert_eq!((w.len(), w.bytes()), (0, 0));
    }

    #[test]
    fn a_sweep_stops_at_the_first_key_that_has_not_expired() {
        let t0 = Instant::now();
        let config = DedupConfig::default();
        let mut w = DedupWindow::new(config, t0);
        w.observe_sized(1u32, 10, t0);
        w.observe_sized(2, 10, t0 + Duration::from_secs(400));
        w.handle_timeout(t0 + config.lifetime);
        assert!(!w.contains(&1) && w.contains(&2));
        assert_eq!(w.bytes(), 10 + DEDUP_ENTRY_OVERHEAD);
    }
}
