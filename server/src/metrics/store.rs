//! The message store's series, `hongyan_store_*`: what the server did with the store (puts by
//! result, how long each kind of call took, replays) and the store's own counters (messages
//! stored, removed, erased, expired; group commits), read from it when scraped.

use std::sync::Arc;
use std::time::Duration;

use hongyan_store::{MessageStore, StoreError, StoreStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::labels::{ByPutResult, ByStoreOp, PerValue, PutResult, StoreOp};

/// The server's side of the store's series. Created only when the server has a store.
pub(crate) struct StoreMetrics {
    puts: PerValue<PutResult, Counter>,
    latency: PerValue<StoreOp, Histogram>,
    replays: Counter,
    replayed: Counter,
}

impl StoreMetrics {
    /// Registers the series under `hongyan_store_` in `registry`, `store`'s own counters
    /// included.
    pub(crate) fn new(registry: &mut Registry, store: Arc<dyn MessageStore>) -> Self {
        let r = registry.sub_registry_with_prefix("store");
        let puts_family = Family::<ByPutResult, Counter>::default();
        r.register(
            "puts",
            "Messages handed to the store for users who could not take them, by result",
            puts_family.clone(),
        );
        let latency_family = Family::<ByStoreOp, Histogram>::new_with_constructor(|| {
            // 50 µs to about 3.3 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
        });
        r.register_with_unit(
            "operation",
            "How long the server waited for the store, by call",
            Unit::Seconds,
            latency_family.clone(),
        );
        let replays = Counter::default();
        r.register(
            "replays",
            "Replays of stored messages started (at a login, or when a message was stored for \
             an online user)",
            replays.clone(),
        );
        let replayed = Counter::default();
        r.register(
            "replayed",
            "Stored messages sent to their receivers (first sends; retransmissions count in \
             hongyan_qos_retransmissions)",
            replayed.clone(),
        );
        r.register_collector(Box::new(StatsCollector(store)));
        Self {
            puts: PerValue::new(|result| {
                puts_family.get_or_create(&ByPutResult { result }).clone()
            }),
            latency: PerValue::new(|op| latency_family.get_or_create(&ByStoreOp { op }).clone()),
            replays,
            replayed,
        }
    }

    /// A put ended with `result`.
    pub(crate) fn put(&self, result: &Result<hongyan_store::Put, StoreError>) {
        let label = match result {
            Ok(hongyan_store::Put::Stored(_)) => PutResult::stored,
            Ok(hongyan_store::Put::AlreadyStored(_)) => PutResult::duplicate,
            Err(StoreError::QuotaExceeded { .. }) => PutResult::quota,
            Err(StoreError::TooLarge { .. }) => PutResult::too_large,
            Err(StoreError::InvalidMessage(_)) => PutResult::invalid,
            Err(StoreError::Overloaded { .. }) => PutResult::overloaded,
            Err(_) => PutResult::unavailable,
        };
        self.puts.get(label).inc();
    }

    /// A store call of kind `op` took `elapsed`.
    pub(crate) fn timed(&self, op: StoreOp, elapsed: Duration) {
        self.latency.get(op).observe(elapsed.as_secs_f64());
    }

    /// A replay started.
    pub(crate) fn replay(&self) {
        self.replays.inc();
    }

    /// `n` stored messages were sent to their receiver.
    pub(crate) fn replayed(&self, n: usize) {
        self.replayed.inc_by(n as u64);
    }
}

/// Reads the store's own counters when `/metrics` is scraped.
struct StatsCollector(Arc<dyn MessageStore>);

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsCollector")
            .field(&self.0.backend())
            .finish()
    }
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let StoreStats {
            stored,
            duplicates: _,
            quota_refusals: _,
            removed,
            erased,
            expired,
            overloaded,
            commits,
            commit_ops,
            commit_time,
            commit_failures,
            queued,
        } = self.0.stats();
        let counters = [
            (
                "messages_stored",
                "Messages committed to the store since it was opened",
                stored,
            ),
            (
                "messages_removed",
                "Stored messages removed once their receiver acknowledged them",
                removed,
            ),
            (
                "messages_erased",
                "Stored messages erased with their user (account deletion)",
                erased,
            ),
            (
                "messages_expired",
                "Stored messages removed because they outlived store_ttl_secs",
                expired,
            ),
            (
                "overloaded",
                "Writes refused at once because the store's write queue was full",
                overloaded,
            ),
            ("commits", "Group commits that succeeded", commits),
            (
                "commit_writes",
                "Writes those group commits carried (divided by commits: the mean batch)",
                commit_ops,
            ),
            (
                "commit_failures",
                "Group commits that failed (every write in them failed)",
                commit_failures,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let seconds = ConstCounter::new(commit_time.as_secs_f64());
        seconds.encode(encoder.encode_descriptor(
            "commit",
            "Time spent in successful group commits",
            Some(&Unit::Seconds),
            seconds.metric_type(),
        )?)?;
        let queued = ConstGauge::new(i64::try_from(queued).unwrap_or(i64::MAX));
        queued.encode(encoder.encode_descriptor(
            "queued",
            "Writes waiting for the store's writer",
            None,
            queued.metric_type(),
        )?)?;
        Ok(())
    }
}
