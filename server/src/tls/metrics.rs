//! Handshake and reload counters, for the server's `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A one-label series key.
type Label = [(&'static str, &'static str); 1];

/// The TLS layer's counters. Cheap to clone: every clone updates the same series, so the
/// acceptors and the certificate share one set, and [`register`](Self::register) exports it.
#[derive(Debug, Clone)]
pub struct TlsMetrics {
    handshakes: Family<Label, Counter>,
    reloads: Family<Label, Counter>,
    /// Handshakes that finished.
    pub done: Counter,
    /// Handshakes that failed: a TLS alert or protocol error, a reset, a client that closed
    /// before sending anything.
    pub failed: Counter,
    /// Handshakes cut off at the deadline.
    pub timed_out: Counter,
    /// Connections whose first byte was not TLS (plain clients on a TLS port), closed.
    pub not_tls: Counter,
    /// Handshakes in progress now (at most the acceptor's bound).
    pub in_progress: Gauge,
    /// Certificate reloads that took effect.
    pub reloaded: Counter,
    /// Certificate reloads that failed (the old certificate stayed).
    pub reload_failed: Counter,
}

impl Default for TlsMetrics {
    fn default() -> Self {
        let handshakes = Family::<Label, Counter>::default();
        let reloads = Family::<Label, Counter>::default();
        // Every series exists from the start (a zero is information), and the hot path adds
        // to its own handle without a lookup.
        let series = |family: &Family<Label, Counter>, value| {
            family.get_or_create(&[("result", value)]).clone()
        };
        Self {
            done: series(&handshakes, "done"),
            failed: series(&handshakes, "failed"),
            timed_out: series(&handshakes, "timed_out"),
            not_tls: series(&handshakes, "not_tls"),
            in_progress: Gauge::default(),
            reloaded: series(&reloads, "ok"),
            reload_failed: series(&reloads, "failed"),
            handshakes,
            reloads,
        }
    }
}

impl TlsMetrics {
    /// Registers the series under `registry` (which normally carries the `hongyan` prefix):
    /// `tls_handshakes_total{result="done|failed|timed_out|not_tls"}`,
    /// `tls_handshakes_in_progress`, `tls_certificate_reloads_total{result="ok|failed"}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tls_handshakes",
            "TLS handshakes by result (not_tls: a plain client on a TLS port, closed)",
            self.handshakes.clone(),
        );
        registry.register(
            "tls_handshakes_in_progress",
            "TLS handshakes in progress",
            self.in_progress.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "TLS certificate reloads by result (failed: the old certificate stayed)",
            self.reloads.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_series_are_the_ones_counted() {
        let metrics = TlsMetrics::default();
        let mut registry = Registry::with_prefix("hongyan");
        metrics.register(&mut registry);
        metrics.clone().timed_out.inc();
        metrics.reload_failed.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("hongyan_tls_handshakes_total{result=\"timed_out\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hongyan_tls_handshakes_total{result=\"done\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("hongyan_tls_certificate_reloads_total{result=\"failed\"} 1"),
            "{text}"
        );
    }
}
