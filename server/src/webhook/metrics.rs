//! The webhook series in `/metrics`: request latency, retries, failures and event drops.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::client::Endpoint;

type Label = [(&'static str, &'static str); 1];
type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The queue was full: the backend is slower than the events arrive.
    QueueFull,
    /// Every delivery attempt of the batch failed.
    DeliveryFailed,
}

/// Shared by the hooks, the caller and the event task; the series are created once, so
/// updating one is an atomic add.
#[derive(Clone)]
pub(crate) struct WebhookMetrics {
    durations: HistogramFamily,
    duration: [Histogram; 3],
    retries: Family<Label, Counter>,
    retry: [Counter; 3],
    failures: Family<Label, Counter>,
    failure: [Counter; 3],
    dropped: Family<Label, Counter>,
    drop: [Counter; 2],
    delivered: Counter,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl WebhookMetrics {
    pub(crate) fn new() -> Self {
        let durations: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let retries = Family::<Label, Counter>::default();
        let failures = Family::<Label, Counter>::default();
        let dropped = Family::<Label, Counter>::default();
        let by_endpoint = Endpoint::ALL.map(|e| [("endpoint", e.name())]);
        Self {
            duration: by_endpoint.map(|l| durations.get_or_create(&l).clone()),
            retry: by_endpoint.map(|l| retries.get_or_create(&l).clone()),
            failure: by_endpoint.map(|l| failures.get_or_create(&l).clone()),
            drop: ["queue_full", "delivery_failed"]
                .map(|reason| dropped.get_or_create(&[("reason", reason)]).clone()),
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
        self.duration[endpoint as usize].observe(seconds);
    }

    pub(crate) fn retry(&self, endpoint: Endpoint) {
        self.retry[endpoint as usize].inc();
    }

    pub(crate) fn failure(&self, endpoint: Endpoint) {
        self.failure[endpoint as usize].inc();
    }

    pub(crate) fn dropped(&self, why: DropReason, count: usize) {
        self.drop[why as usize].inc_by(count as u64);
    }

    pub(crate) fn delivered(&self, count: usize) {
        self.delivered.inc_by(count as u64);
    }
}
