//! The webhook series in `/metrics`: request latency, retries, failures and event drops.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::endpoint::Endpoint;
use crate::metrics::labels::{PerValue, label_values};

label_values! {
    /// Why events were dropped.
    pub(crate) enum DropReason {
        /// The queue was full: the backend is slower than the events arrive.
        queue_full,
        /// Every delivery attempt of the batch failed.
        delivery_failed,
    }
}

/// The label set `{endpoint}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByEndpoint {
    endpoint: Endpoint,
}

/// The label set `{reason}` of dropped events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByDropReason {
    reason: DropReason,
}

type HistogramFamily = Family<ByEndpoint, Histogram, fn() -> Histogram>;

/// Shared by the hooks, the caller and the event task; the series are created once, so
/// updating one is an atomic add.
#[derive(Clone)]
pub(crate) struct WebhookMetrics {
    durations: HistogramFamily,
    duration: PerValue<Endpoint, Histogram>,
    retries: Family<ByEndpoint, Counter>,
    retry: PerValue<Endpoint, Counter>,
    failures: Family<ByEndpoint, Counter>,
    failure: PerValue<Endpoint, Counter>,
    dropped: Family<ByDropReason, Counter>,
    drop: PerValue<DropReason, Counter>,
    delivered: Counter,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl WebhookMetrics {
    pub(crate) fn new() -> Self {
        let durations: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let retries = Family::<ByEndpoint, Counter>::default();
        let failures = Family::<ByEndpoint, Counter>::default();
        let dropped = Family::<ByDropReason, Counter>::default();
        let series = |family: &Family<ByEndpoint, Counter>| {
            PerValue::new(|endpoint| family.get_or_create(&ByEndpoint { endpoint }).clone())
        };
        Self {
            duration: PerValue::new(|endpoint| {
                durations.get_or_create(&ByEndpoint { endpoint }).clone()
            }),
            retry: series(&retries),
            failure: series(&failures),
            drop: PerValue::new(|reason| dropped.get_or_create(&ByDropReason { reason }).clone()),
            durations,
            retries,
            failures,
            dropped,
            delivered: Counter::default(),
        }
    }

    /// Adds the series to a server's registry.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "webhook_request_duration",
            "Webhook HTTP attempts, from sending the request to reading the response",
            Unit::Seconds,
            self.durations.clone(),
        );
        registry.register(
            "webhook_retries",
            "Webhook requests sent again after a failed attempt",
            self.retries.clone(),
        );
        registry.register(
            "webhook_failures",
            "Webhook calls that failed after every attempt, so the failure policy applied",
            self.failures.clone(),
        );
        registry.register(
            "webhook_events_dropped",
            "Event notifications never delivered, by reason",
            self.dropped.clone(),
        );
        registry.register(
            "webhook_events_delivered",
            "Event notifications the backend accepted",
            self.delivered.clone(),
        );
    }

    pub(crate) fn observe(&self, endpoint: Endpoint, seconds: f64) {
        self.duration.get(endpoint).observe(seconds);
    }

    pub(crate) fn retry(&self, endpoint: Endpoint) {
        self.retry.get(endpoint).inc();
    }

    pub(crate) fn failure(&self, endpoint: Endpoint) {
        self.failure.get(endpoint).inc();
    }

    pub(crate) fn dropped(&self, why: DropReason, count: usize) {
        self.drop.get(why).inc_by(count as u64);
    }

    pub(crate) fn delivered(&self, count: usize) {
        self.delivered.inc_by(count as u64);
    }
}
