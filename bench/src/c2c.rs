//! `c2c`: P sender/receiver pairs; each sender keeps W QoS messages in flight (optionally
//! paced), each receiver checks what arrives. Measures throughput, ACK and delivery latency,
//! duplicates, losses and CPU per 10,000 delivered messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hongyan_shared::{ClientEvent, ClientSession, Fingerprint, Outgoing};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::peer::{Failure, Peer, Role, no_surprise};
use crate::report::{C2cReport, Latency, Report, micros_histogram};
use crate::seqset::SeqSet;
use crate::target::{Target, seed};
use crate::{BenchError, BenchOptions, C2cOptions, Progress, source_ip};

/// Logins in progress at once while setting up the pairs.
const LOGIN_CONCURRENCY: usize = 256;

/// Counters every peer updates, read by the progress line and the end-of-run check.
pub(crate) struct Shared {
    pub(crate) base: Instant,
    pub(crate) sending: AtomicBool,
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) reported_lost: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Keeps `window` QoS messages in flight, to its receivers in turn.
pub(crate) struct Sender {
    to: Vec<String>,
    window: usize,
    size: usize,
    pacing: Option<Duration>,
    next_send: Instant,
    shared: Arc<Shared>,
    in_flight: HashMap<Fingerprint, Instant>,
    seq: u64,
    ack: Histogram<u64>,
    acked: u64,
    lost: u64,
}

impl Sender {
    /// A sender to `to` (in turn), `window` in flight, `size`-byte messages, `pacing` apart
    /// from `next_send` on.
    pub(crate) fn new(
        to: Vec<String>,
        window: usize,
        size: usize,
        pacing: Option<Duration>,
        next_send: Instant,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            to,
            window,
            size,
            pacing,
            next_send,
            shared,
            in_flight: HashMap::new(),
            seq: 0,
            ack: micros_histogram(),
            acked: 0,
            lost: 0,
        }
    }

    fn content(&self, now: Instant) -> String {
        content(self.seq, self.shared.base, now, self.size)
    }

    fn fill(&mut self, session: &mut ClientSession, now: Instant) -> Result<(), Failure> {
        while self.in_flight.len() < self.window
            && self.shared.sending.load(Ordering::Relaxed)
            && self.next_send <= now
        {
            let content = self.content(now);
            let to = &self.to[usize::try_from(self.seq).unwrap_or(0) % self.to.len()];
            let fp = session
                .send(Outgoing::new(to.as_str(), content).with_typeu(0), now)
                .map_err(|e| Failure::Send(e.to_string()))?;
            self.in_flight.insert(fp, now);
            self.seq += 1;
            self.shared.sent.fetch_add(1, Ordering::Relaxed);
            if let Some(interval) = self.pacing {
                self.next_send += interval;
            }
        }
        Ok(())
    }
}

impl Role for Sender {
    fn on_event(
        &mut self,
        event: ClientEvent,
        session: &mut ClientSession,
        now: Instant,
    ) -> Result<bool, Failure> {
        match event {
            ClientEvent::MessageDelivered(fp) => {
                if let Some(sent) = self.in_flight.remove(&fp) {
                    let _ = self.ack.record(micros(now - sent));
                    self.acked += 1;
                    self.shared.acked.fetch_add(1, Ordering::Relaxed);
                }
                self.fill(session, now)?;
            }
            ClientEvent::MessagesLost(packets) => {
                for packet in packets {
                    if let Some(fp) = packet.fp
                        && self.in_flight.remove(&fp).is_some()
                    {
                        self.lost += 1;
                        self.shared.reported_lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.fill(session, now)?;
            }
            other => no_surprise(other)?,
        }
        Ok(false)
    }

    fn wake_at(&self) -> Option<Instant> {
        (self.in_flight.len() < self.window && self.shared.sending.load(Ordering::Relaxed))
            .then_some(self.next_send)
    }

    fn on_wake(&mut self, session: &mut ClientSession, now: Instant) {
        // A failed send surfaces as `Failure::Send` on the next event; here it only stops
        // this sender from sending more.
        if self.fill(session, now).is_err() {
            self.window = 0;
        }
    }
}

/// Checks what arrives from `from`: content `"<seq> <nanos since base> …"`, each seq once.
pub(crate) struct Receiver {
    from: String,
    shared: Arc<Shared>,
    pub(crate) seen: SeqSet,
    pub(crate) latency: Histogram<u64>,
    pub(crate) foreign: u64,
}

impl Role for Receiver {
    fn on_event(
        &mut self,
        event: ClientEvent,
        _session: &mut ClientSession,
        now: Instant,
    ) -> Result<bool, Failure> {
        match event {
            ClientEvent::MessageReceived(m) => {
                let mut words = m.content.split(' ');
                let seq = words.next().and_then(|w| w.parse::<u64>().ok());
                let nanos = words.next().and_then(|w| w.parse::<u64>().ok());
                let first = match (seq, nanos) {
                    (Some(seq), Some(nanos)) if m.from.as_str() == self.from => {
                        self.seen.insert(seq).map(|first| (first, nanos))
                    }
                    _ => None,
                };
                match first {
                    Some((true, nanos)) => {
                        let sent = self.shared.base + Duration::from_nanos(nanos);
                        let _ = self
                            .latency
                            .record(micros(now.saturating_duration_since(sent)));
                        self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some((false, _)) => {
                        self.shared.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    None => self.foreign += 1,
                }
            }
            other => no_surprise(other)?,
        }
        Ok(false)
    }
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            sending: AtomicBool::new(true),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            reported_lost: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }
}

impl Shared {
    /// The progress line while sending: `[label] 3/10 s  sent 123  delivered 120 (40/s)  dup 0`.
    pub(crate) fn progress(&self, label: &str, sent: &str, elapsed: Duration, of: u64) -> String {
        let delivered = self.delivered.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let rate = delivered as f64 / elapsed.as_secs_f64().max(0.001);
        format!(
            "[{label}] {:.0}/{of} s  {sent} {}  delivered {delivered} ({rate:.0}/s)  dup {}",
            elapsed.as_secs_f64(),
            self.sent.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
        )
    }
}

impl Receiver {
    pub(crate) fn new(from: String, shared: Arc<Shared>) -> Self {
        Self {
            from,
            shared,
            seen: SeqSet::default(),
            latency: micros_histogram(),
            foreign: 0,
        }
    }
}

/// Message content: the sequence number, the send time, padding to `size` bytes.
pub(crate) fn content(seq: u64, base: Instant, now: Instant, size: usize) -> String {
    let nanos = (now - base).as_nanos();
    let mut content = format!("{seq} {nanos} ");
    let pad = size.saturating_sub(content.len());
    content.extend(std::iter::repeat_n('x', pad));
    content
}

/// What the senders of a run sent, added up.
pub(crate) struct Sent {
    /// Messages sent (first transmissions).
    pub(crate) sent: u64,
    /// Messages acknowledged.
    pub(crate) acked: u64,
    /// Messages the senders' sessions reported lost.
    pub(crate) reported_lost: u64,
    /// Send to acknowledgement, microseconds.
    pub(crate) ack: Histogram<u64>,
}

/// Waits for the senders and adds up what they sent; failed connections go into `failures`.
pub(crate) async fn collect_senders(
    mut sending: JoinSet<(Sender, Result<(), Failure>)>,
    failures: &mut BTreeMap<String, usize>,
) -> Sent {
    let mut total = Sent {
        sent: 0,
        acked: 0,
        reported_lost: 0,
        ack: micros_histogram(),
    };
    while let Some(joined) = sending.join_next().await {
        let Ok((role, result)) = joined else { continue };
        failed_after_login(failures, result);
        total.sent += role.seq;
        total.acked += role.acked;
        total.reported_lost += role.lost;
        total.ack.add(&role.ack).expect("histograms share bounds");
    }
    total
}

/// Counts a connection that failed after its login.
pub(crate) fn failed_after_login(
    failures: &mut BTreeMap<String, usize>,
    result: Result<(), Failure>,
) {
    if let Err(e) = result {
        *failures
            .entry(format!("after login: {}", e.kind()))
            .or_insert(0) += 1;
    }
}

/// Waits for the receivers and adds up what they saw: distinct messages delivered and their
/// latencies. Failed connections and messages from an unexpected sender (`foreign`) go into
/// `failures`.
pub(crate) async fn collect(
    mut receiving: JoinSet<(Receiver, Result<(), Failure>)>,
    foreign: &str,
    failures: &mut BTreeMap<String, usize>,
) -> (u64, Histogram<u64>) {
    let mut delivery = micros_histogram();
    let (mut delivered, mut unexpected) = (0, 0);
    while let Some(joined) = receiving.join_next().await {
        let Ok((role, result)) = joined else { continue };
        failed_after_login(failures, result);
        delivered += role.seen.len();
        unexpected += role.foreign;
        delivery
            .add(&role.latency)
            .expect("histograms share bounds");
    }
    if unexpected > 0 {
        failures.insert(
            format!("messages {foreign}"),
            usize::try_from(unexpected).unwrap_or(usize::MAX),
        );
    }
    (delivered, delivery)
}

pub(crate) async fn log_in_all(
    target: &Target,
    users: Vec<(usize, String)>,
    args: &BenchOptions,
    timeout: Duration,
) -> (Vec<(usize, Peer)>, BTreeMap<String, usize>) {
    let limiter = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (i, user) in users {
        let limiter = limiter.clone();
        let (dial, source) = (target.dial(args, timeout), source_ip(args, i));
        tasks.spawn(async move {
            let _permit = limiter.acquire_owned().await;
            let peer = Peer::login(dial, source, &user, seed(i)).await;
            (i, peer)
        });
    }
    let mut peers = Vec::new();
    let mut failures = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(peer))) => peers.push((i, peer)),
            Ok((_, Err(e))) => *failures.entry(e.kind()).or_insert(0) += 1,
            Err(_) => *failures.entry("task panicked".into()).or_insert(0) += 1,
        }
    }
    peers.sort_by_key(|(i, _)| *i);
    (peers, failures)
}

pub(crate) async fn run(
    args: &BenchOptions,
    c2c: &C2cOptions,
    target: &Target,
    file_limit: u64,
    progress: &Progress,
) -> Result<Report, BenchError> {
    let pairs = c2c.pairs;
    let needed = 2 * pairs * target.fds_per_connection() + 64;
    if needed as u64 > file_limit {
        return Err(BenchError::FileLimit {
            what: format!("{pairs} pairs"),
            needed,
            limit: file_limit,
            hint: "",
        });
    }
    let prefix = &args.user_prefix;
    let login_timeout = Duration::from_secs(c2c.login_timeout);
    progress.show(&format!(
        "[c2c] logging in {pairs} receivers and {pairs} senders"
    ));
    // Receivers first, so no message finds its receiver offline.
    let (receivers, mut failures) = log_in_all(
        target,
        (0..pairs)
            .map(|i| (pairs + i, format!("{prefix}r{i}")))
            .collect(),
        args,
        login_timeout,
    )
    .await;
    let (senders, sender_failures) = log_in_all(
        target,
        (0..pairs).map(|i| (i, format!("{prefix}s{i}"))).collect(),
        args,
        login_timeout,
    )
    .await;
    for (kind, n) in sender_failures {
        *failures.entry(kind).or_insert(0) += n;
    }
    if receivers.len() != pairs || senders.len() != pairs {
        return Err(BenchError::Logins {
            logged_in: receivers.len() + senders.len(),
            wanted: 2 * pairs,
            failures,
        });
    }

    let shared = Arc::new(Shared::new());
    let stop = CancellationToken::new();
    let pacing = (c2c.rate > 0).then(|| Duration::from_secs_f64(pairs as f64 / c2c.rate as f64));
    let start = Instant::now();
    let cpu = target.cpu_mark();
    let mut receiving = JoinSet::new();
    for (i, mut peer) in receivers {
        let mut role = Receiver::new(format!("{prefix}s{}", i - pairs), shared.clone());
        let stop = stop.clone();
        receiving.spawn(async move {
            let result = peer.pump(&mut role, &stop, None).await;
            (role, result)
        });
    }
    let mut sending = JoinSet::new();
    for (i, mut peer) in senders {
        // Spread paced senders over one interval so they do not send in lockstep.
        let next_send =
            start + pacing.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / pairs as f64));
        let mut role = Sender::new(
            vec![format!("{prefix}r{i}")],
            c2c.window,
            c2c.size,
            pacing,
            next_send,
            shared.clone(),
        );
        let stop = stop.clone();
        sending.spawn(async move {
            let result = peer.pump(&mut role, &stop, None).await;
            (role, result)
        });
    }

    // Sending.
    let send_end = start + Duration::from_secs(c2c.duration);
    let transport = target.run_info(file_limit).transport;
    let label = format!("c2c {transport}");
    progress
        .until(send_end, |now| {
            shared.progress(&label, "sent", now - start, c2c.duration)
        })
        .await;
    shared.sending.store(false, Ordering::Relaxed);
    let delivered_in_interval = shared.delivered.load(Ordering::Relaxed);
    let cpu = target.cpu_since(cpu);

    // Draining: until every message is acknowledged or reported lost and has arrived, or the
    // drain time is up.
    let drain_end = Instant::now() + Duration::from_secs(c2c.drain);
    loop {
        let sent = shared.sent.load(Ordering::Relaxed);
        let settled =
            shared.acked.load(Ordering::Relaxed) + shared.reported_lost.load(Ordering::Relaxed);
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if (settled >= sent && delivered >= sent) || Instant::now() >= drain_end {
            break;
        }
        progress.show(&format!(
            "[c2c] draining: {} unacknowledged, {} undelivered",
            sent.saturating_sub(settled),
            sent.saturating_sub(delivered)
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();

    let Sent {
        sent,
        acked,
        reported_lost,
        ack,
    } = collect_senders(sending, &mut failures).await;
    let (delivered, delivery) =
        collect(receiving, "from an unexpected sender", &mut failures).await;
    let duration = c2c.duration as f64;
    #[allow(clippy::cast_precision_loss)]
    let per_10k = |cpu_s: f64| {
        (delivered_in_interval > 0).then(|| cpu_s * 10_000.0 / delivered_in_interval as f64)
    };
    Ok(Report::C2c(C2cReport {
        run: target.run_info(file_limit),
        pairs,
        window: c2c.window,
        rate: c2c.rate,
        size: c2c.size,
        duration_s: duration,
        sent,
        acked,
        delivered,
        #[allow(clippy::cast_precision_loss)]
        delivered_per_s: delivered_in_interval as f64 / cpu.wall_s.max(0.001),
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        lost: sent.saturating_sub(delivered),
        reported_lost,
        ack_latency_ms: Latency::from_micros(&ack),
        delivery_latency_ms: Latency::from_micros(&delivery),
        failures,
        server_cpu_s_per_10k: cpu.server_s.and_then(per_10k),
        generator_cpu_s_per_10k: per_10k(cpu.generator_s),
        cpu,
    }))
}
