//! The receiver side of QoS (§6.3): remember recently seen fingerprints so a retransmitted
//! message is acknowledged again but delivered once.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use web_time::Instant;

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
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(300),
            capacity: 100_000,
        }
    }
}

/// A bounded set of recently seen keys, driven by the `now` its owner passes in.
#[derive(Debug)]
pub struct DedupWindow<K> {
    config: DedupConfig,
    seen: HashMap<K, Instant>,
    next_sweep: Instant,
}

impl<K: Hash + Eq> DedupWindow<K> {
    /// An empty window whose first sweep is one interval after `now`.
    pub fn new(config: DedupConfig, now: Instant) -> Self {
        Self {
            config,
            seen: HashMap::new(),
            next_sweep: now + config.sweep_interval,
        }
    }

    /// Records `key` as seen at `now`. Returns true the first time (deliver it) and false for a
    /// duplicate (acknowledge it again, do not deliver); either way its time is refreshed.
    pub fn observe(&mut self, key: K, now: Instant) -> bool {
        if self.config.capacity == 0 {
            return true;
        }
        if let Some(seen) = self.seen.get_mut(&key) {
            *seen = now;
            return false;
        }
        if self.seen.len() >= self.config.capacity {
            self.evict_oldest();
        }
        self.seen.insert(key, now);
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

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Re-stamps every key with `now` and restarts the sweep clock, as the Java clients do at
    /// each successful login.
    pub fn restart(&mut self, now: Instant) {
        for seen in self.seen.values_mut() {
            *seen = now;
        }
        self.next_sweep = now + self.config.sweep_interval;
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    /// The next sweep.
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    /// Sweeps expired keys if the sweep is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        let lifetime = self.config.lifetime;
        self.seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < lifetime);
        self.next_sweep = now + self.config.sweep_interval;
    }

    /// Forgets the oldest eighth of the window in one pass, so a full window costs amortised
    /// O(1) per insert instead of a scan each time. The window is not empty (it is full and
    /// its capacity is not 0).
    fn evict_oldest(&mut self) {
        let mut times: Vec<Instant> = self.seen.values().copied().collect();
        let cut = (times.len() / 8).max(1).min(times.len()) - 1;
        let (_, threshold, _) = times.select_nth_unstable(cut);
        let threshold = *threshold;
        let mut budget = cut + 1;
        self.seen.retain(|_, seen| {
            if budget > 0 && *seen <= threshold {
                budget -= 1;
                false
            } else {
                true
            }
        });
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
        assert!(w.len() <= 16);
        assert!(!w.contains(&0), "the oldest key goes first");
        assert!(w.contains(&15) && w.contains(&100));
    }
}
