//! What a run measured: one [`Report`] per run, printed as a table or serialized as JSON.

use std::collections::BTreeMap;
use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The result of one `hongyan bench` run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "scenario", rename_all = "snake_case")]
pub enum Report {
    /// `hongyan bench idle`.
    Idle(IdleReport),
    /// `hongyan bench c2c`.
    C2c(C2cReport),
    /// `hongyan bench s2c`.
    S2c(S2cReport),
    /// `hongyan bench offline`.
    Offline(OfflineReport),
}

/// Facts every report carries.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `tcp`, `tls` (TCP in TLS), `udp`, `ws` or `wss`.
    pub transport: String,
    /// The address measured.
    pub target: String,
    /// Whether the server ran in the generator's process.
    pub spawned: bool,
    /// Whether clients answered a burst with one write (false: one write per packet).
    pub batched_clients: bool,
    /// The generator's soft limit on open files.
    pub file_limit: u64,
}

/// CPU seconds (user + system) over the measured interval.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    /// The server's, when known (`--spawn` or `--server-pid`).
    pub server_s: Option<f64>,
    /// The generator's own.
    pub generator_s: f64,
    /// Wall-clock seconds of the interval.
    pub wall_s: f64,
}

/// `hongyan bench idle`.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// What was measured and how.
    pub run: RunInfo,
    /// Connections asked for.
    pub connections: usize,
    /// Source addresses used.
    pub source_ips: usize,
    /// Logins that succeeded.
    pub logged_in: usize,
    /// Logins per second, first connect to last login answer.
    pub logins_per_s: f64,
    /// Login latency (connect to login answer), milliseconds.
    pub login_latency_ms: Latency,
    /// Connections still logged in at the end of the hold.
    pub held: usize,
    /// Seconds the connections were held.
    pub hold_s: u64,
    /// Failures by kind.
    pub failures: BTreeMap<String, usize>,
    /// Server resident memory before the first connection, bytes.
    pub rss_before: Option<u64>,
    /// Server resident memory with every connection logged in and held, bytes.
    pub rss_after: Option<u64>,
    /// `(rss_after - rss_before) / logged_in`, bytes.
    pub rss_per_connection: Option<u64>,
    /// CPU during the logins.
    pub login_cpu: CpuUse,
    /// CPU during the hold (keepalives only).
    pub hold_cpu: CpuUse,
}

/// `hongyan bench c2c`.
#[derive(Debug, Clone, Serialize)]
pub struct C2cReport {
    /// What was measured and how.
    pub run: RunInfo,
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// QoS messages in flight per sender.
    pub window: usize,
    /// Messages per second asked for (0 = as fast as the window allows).
    pub rate: u64,
    /// `dataContent` bytes per message.
    pub size: usize,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Messages sent (first transmissions).
    pub sent: u64,
    /// Messages the server acknowledged to their sender.
    pub acked: u64,
    /// Distinct messages that reached their receiver.
    pub delivered: u64,
    /// Deliveries during the sending interval per second of it.
    pub delivered_per_s: f64,
    /// Messages that reached their receiver more than once (the session filters duplicates,
    /// so anything here is a bug).
    pub duplicates: u64,
    /// Messages sent that never reached their receiver.
    pub lost: u64,
    /// Messages the sender's session reported lost (retries ran out).
    pub reported_lost: u64,
    /// Send to the server's acknowledgement, milliseconds.
    pub ack_latency_ms: Latency,
    /// Send to arrival at the receiver, milliseconds.
    pub delivery_latency_ms: Latency,
    /// Logins that failed, and connections that failed later, by kind.
    pub failures: BTreeMap<String, usize>,
    /// CPU during the sending interval.
    pub cpu: CpuUse,
    /// Server CPU seconds per 10,000 messages delivered in the sending interval.
    pub server_cpu_s_per_10k: Option<f64>,
    /// Generator CPU seconds per 10,000 messages delivered in the sending interval.
    pub generator_cpu_s_per_10k: Option<f64>,
}

/// `hongyan bench s2c`.
#[derive(Debug, Clone, Serialize)]
pub struct S2cReport {
    /// What was measured and how.
    pub run: RunInfo,
    /// Receivers the pushes went to, round robin.
    pub receivers: usize,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// `dataContent` bytes per message.
    pub size: usize,
    /// Seconds of pushing.
    pub duration_s: f64,
    /// Pushes the API accepted (answered `sent`).
    pub pushed: u64,
    /// Accepted pushes per second of pushing.
    pub pushes_per_s: f64,
    /// Distinct messages that reached their receiver.
    pub delivered: u64,
    /// Messages that reached their receiver more than once.
    pub duplicates: u64,
    /// Accepted pushes that never reached their receiver.
    pub lost: u64,
    /// Request to the API's answer, milliseconds.
    pub api_latency_ms: Latency,
    /// Request to arrival at the receiver, milliseconds.
    pub delivery_latency_ms: Latency,
    /// Failed logins, refused pushes and failed connections, by kind.
    pub failures: BTreeMap<String, usize>,
    /// CPU during the pushing.
    pub cpu: CpuUse,
    /// Server CPU seconds per 10,000 messages delivered while pushing.
    pub server_cpu_s_per_10k: Option<f64>,
    /// Generator CPU seconds per 10,000 messages delivered while pushing.
    pub generator_cpu_s_per_10k: Option<f64>,
}

/// `hongyan bench offline`.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineReport {
    /// What was measured and how.
    pub run: RunInfo,
    /// Senders, logged in over the run's transport.
    pub senders: usize,
    /// Receivers, offline while the senders send, then logged in to drain.
    pub receivers: usize,
    /// QoS messages in flight per sender.
    pub window: usize,
    /// `dataContent` bytes per message.
    pub size: usize,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Messages sent (first transmissions).
    pub sent: u64,
    /// Messages the server acknowledged: each one stored (committed) first.
    pub stored: u64,
    /// Acknowledged (stored) messages per second, from the first send until every message
    /// was settled.
    pub stored_per_s: f64,
    /// Messages the senders' sessions reported lost (the store refused or failed them).
    pub reported_lost: u64,
    /// Send to acknowledgement (the store's commit included), milliseconds.
    pub ack_latency_ms: Latency,
    /// CPU while storing.
    pub store_cpu: CpuUse,
    /// Server CPU seconds per 10,000 messages stored.
    pub server_cpu_s_per_10k_stored: Option<f64>,
    /// Distinct stored messages the receivers got.
    pub replayed: u64,
    /// Replayed messages per second, from the first receiver's login to the last delivery.
    pub replayed_per_s: f64,
    /// CPU while the receivers logged in and drained.
    pub replay_cpu: CpuUse,
    /// Server CPU seconds per 10,000 messages replayed (their logins included).
    pub server_cpu_s_per_10k_replayed: Option<f64>,
    /// Messages a receiver got more than once (anything here is a bug).
    pub duplicates: u64,
    /// Acknowledged messages that never reached their receiver (anything here is a bug).
    pub lost: u64,
    /// Failed logins and connections, and unexpected messages, by kind.
    pub failures: BTreeMap<String, usize>,
}

/// A latency distribution, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Summarizes a histogram of microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// A histogram of microseconds from 1 µs to 10 minutes at 3 significant digits.
pub(crate) fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}{unit}"))
}

fn kb(v: Option<u64>) -> String {
    #[allow(clippy::cast_precision_loss)]
    v.map_or_else(|| "n/a".into(), |v| format!("{:.1} KB", v as f64 / 1000.0))
}

impl Report {
    /// Writes the report as an aligned two-column table.
    pub fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        let (run, failures, title) = match self {
            Self::Idle(r) => {
                row(
                    "connections",
                    format!("{} over {} source address(es)", r.connections, r.source_ips),
                );
                row("logged in", r.logged_in.to_string());
                row("logins/s", format!("{:.0}", r.logins_per_s));
                row("login latency", r.login_latency_ms.to_string());
                row("held", format!("{} for {} s", r.held, r.hold_s));
                row("server RSS before", kb(r.rss_before));
                row("server RSS after", kb(r.rss_after));
                row("server RSS / connection", kb(r.rss_per_connection));
                row("login CPU", r.login_cpu.to_string());
                row("hold CPU", r.hold_cpu.to_string());
                (&r.run, &r.failures, "idle")
            }
            Self::C2c(r) => {
                let rate = if r.rate == 0 {
                    "unpaced".to_owned()
                } else {
                    format!("{}/s", r.rate)
                };
                row(
                    "load",
                    format!(
                        "{} pairs, {} in flight, {} B, {rate}, {:.1} s",
                        r.pairs, r.window, r.size, r.duration_s
                    ),
                );
                row("sent / acked", format!("{} / {}", r.sent, r.acked));
                row("delivered", r.delivered.to_string());
                row("delivered/s", format!("{:.0}", r.delivered_per_s));
                row("duplicates", r.duplicates.to_string());
                row(
                    "lost",
                    format!("{} (reported lost by senders: {})", r.lost, r.reported_lost),
                );
                row("ACK latency", r.ack_latency_ms.to_string());
                row("delivery latency", r.delivery_latency_ms.to_string());
                row("CPU", r.cpu.to_string());
                row("server CPU / 10k msgs", opt(r.server_cpu_s_per_10k, " s"));
                row(
                    "generator CPU / 10k msgs",
                    opt(r.generator_cpu_s_per_10k, " s"),
                );
                (&r.run, &r.failures, "c2c")
            }
            Self::S2c(r) => {
                row(
                    "load",
                    format!(
                        "{} receivers, {} requests in flight, {} B, {:.1} s",
                        r.receivers, r.concurrency, r.size, r.duration_s
                    ),
                );
                row("pushed", r.pushed.to_string());
                row("pushes/s", format!("{:.0}", r.pushes_per_s));
                row("delivered", r.delivered.to_string());
                row("duplicates", r.duplicates.to_string());
                row("lost", r.lost.to_string());
                row("API answer", r.api_latency_ms.to_string());
                row("delivery latency", r.delivery_latency_ms.to_string());
                row("CPU", r.cpu.to_string());
                row("server CPU / 10k msgs", opt(r.server_cpu_s_per_10k, " s"));
                row(
                    "generator CPU / 10k msgs",
                    opt(r.generator_cpu_s_per_10k, " s"),
                );
                (&r.run, &r.failures, "s2c")
            }
            Self::Offline(r) => {
                row(
                    "load",
                    format!(
                        "{} senders, {} in flight each, to {} offline receivers, {} B, {:.1} s",
                        r.senders, r.window, r.receivers, r.size, r.duration_s
                    ),
                );
                row(
                    "sent / stored",
                    format!(
                        "{} / {} (reported lost: {})",
                        r.sent, r.stored, r.reported_lost
                    ),
                );
                row("stored/s", format!("{:.0}", r.stored_per_s));
                row("ACK latency", r.ack_latency_ms.to_string());
                row("store CPU", r.store_cpu.to_string());
                row(
                    "server CPU / 10k stored",
                    opt(r.server_cpu_s_per_10k_stored, " s"),
                );
                row("replayed", r.replayed.to_string());
                row("replayed/s", format!("{:.0}", r.replayed_per_s));
                row("replay CPU", r.replay_cpu.to_string());
                row(
                    "server CPU / 10k replayed",
                    opt(r.server_cpu_s_per_10k_replayed, " s"),
                );
                row("duplicates", r.duplicates.to_string());
                row("lost", r.lost.to_string());
                (&r.run, &r.failures, "offline")
            }
        };
        for (kind, n) in failures {
            rows.push((format!("failed: {kind}"), n.to_string()));
        }
        let spawned = if run.spawned {
            ", spawned in-process"
        } else {
            ""
        };
        let writes = if run.batched_clients {
            "batched"
        } else {
            "per-packet"
        };
        writeln!(
            out,
            "hongyan bench {title} over {} → {} ({writes} client writes{spawned})",
            run.transport, run.target
        )?;
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (k, v) in rows {
            writeln!(out, "  {k:<width$}  {v}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
            self.p50, self.p90, self.p99, self.max, self.count
        )
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server {}  generator {:.2} s  over {:.1} s wall",
            opt(self.server_s, " s"),
            self.generator_s,
            self.wall_s
        )
    }
}
