//! `offline`: S senders keep W QoS messages each in flight to R receivers who are not logged
//! in, so every message is stored before it is acknowledged; then the receivers log in and
//! drain what was stored for them. Measures stored messages/s (acknowledgements, each one a
//! durable commit), replayed messages/s (login to the last delivery), and the server's CPU per
//! 10,000 messages in each phase; and checks that every acknowledged message arrives once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hongyan_shared::{ClientEvent, ClientSession};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::c2c::{Sender, Sent, Shared, collect_senders, failed_after_login, log_in_all};
use crate::peer::{Failure, Role, no_surprise};
use crate::report::{Latency, OfflineReport, Report};
use crate::seqset::SeqSet;
use crate::target::Target;
use crate::{BenchError, BenchOptions, OfflineOptions, Progress};

/// Counts what one receiver drains: each sender's sequence numbers once.
struct Drainer {
    senders: String,
    seen: HashMap<String, SeqSet>,
    delivered: Arc<AtomicU64>,
    duplicates: Arc<AtomicU64>,
    foreign: u64,
}

impl Role for Drainer {
    fn on_event(
        &mut self,
        event: ClientEvent,
        _session: &mut ClientSession,
        _now: Instant,
    ) -> Result<bool, Failure> {
        match event {
            ClientEvent::MessageReceived(m) => {
                let seq = m
                    .content
                    .split(' ')
                    .next()
                    .and_then(|w| w.parse::<u64>().ok());
                let first = match seq {
                    Some(seq) if m.from.as_str().starts_with(&self.senders) => self
                        .seen
                        .entry(m.from.as_str().to_owned())
                        .or_default()
                        .insert(seq),
                    _ => None,
                };
                match first {
                    Some(true) => {
                        self.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(false) => {
                        self.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    None => self.foreign += 1,
                }
            }
            other => no_surprise(other)?,
        }
        Ok(false)
    }
}

pub(crate) async fn run(
    args: &BenchOptions,
    offline: &OfflineOptions,
    target: &Target,
    file_limit: u64,
    progress: &Progress,
) -> Result<Report, BenchError> {
    let (senders_n, receivers_n) = (offline.senders, offline.receivers);
    let needed = (senders_n + receivers_n) * target.fds_per_connection() + 64;
    if needed as u64 > file_limit {
        return Err(BenchError::FileLimit {
            what: format!("{senders_n} senders and {receivers_n} receivers"),
            needed,
            limit: file_limit,
            hint: "",
        });
    }
    let prefix = &args.user_prefix;
    let login_timeout = Duration::from_secs(offline.login_timeout);
    let receiver_ids: Vec<String> = (0..receivers_n).map(|i| format!("{prefix}o{i}")).collect();
    progress.show(&format!("[offline] logging in {senders_n} senders"));
    let (senders, mut failures) = log_in_all(
        target,
        (0..senders_n)
            .map(|i| (i, format!("{prefix}s{i}")))
            .collect(),
        args,
        login_timeout,
    )
    .await;
    if senders.len() != senders_n {
        return Err(BenchError::Logins {
            logged_in: senders.len(),
            wanted: senders_n,
            failures,
        });
    }

    // Storing: every receiver is offline, so each acknowledgement is a commit.
    let shared = Arc::new(Shared::new());
    let stop = CancellationToken::new();
    let start = Instant::now();
    let store_cpu = target.cpu_mark();
    let mut sending = JoinSet::new();
    for (i, mut peer) in senders {
        // Each sender starts at its own receiver, so the receivers fill evenly.
        let mut to = receiver_ids.clone();
        to.rotate_left(i % receivers_n);
        let mut role = Sender::new(
            to,
            offline.window,
            offline.size,
            None,
            start,
            shared.clone(),
        );
        let stop = stop.clone();
        sending.spawn(async move {
            let result = peer.pump(&mut role, &stop, None).await;
            (role, result)
        });
    }
    let send_end = start + Duration::from_secs(offline.duration);
    let transport = target.run_info(file_limit).transport;
    progress
        .until(send_end, |now| {
            format!(
                "[offline {transport}] storing {:.0}/{} s  sent {}  acked {}",
                (now - start).as_secs_f64(),
                offline.duration,
                shared.sent.load(Ordering::Relaxed),
                shared.acked.load(Ordering::Relaxed),
            )
        })
        .await;
    shared.sending.store(false, Ordering::Relaxed);
    let settle_end = Instant::now() + Duration::from_secs(offline.drain);
    loop {
        let sent = shared.sent.load(Ordering::Relaxed);
        let settled =
            shared.acked.load(Ordering::Relaxed) + shared.reported_lost.load(Ordering::Relaxed);
        if settled >= sent || Instant::now() >= settle_end {
            break;
        }
        progress.show(&format!(
            "[offline] {} awaiting acknowledgement",
            sent.saturating_sub(settled)
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store_cpu = target.cpu_since(store_cpu);
    stop.cancel();
    let Sent {
        sent,
        acked,
        reported_lost,
        ack,
    } = collect_senders(sending, &mut failures).await;

    // Replaying: the receivers log in and drain.
    let delivered = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let replay_start = Instant::now();
    let replay_cpu = target.cpu_mark();
    progress.show(&format!(
        "[offline] logging in {receivers_n} receivers to drain {acked} stored messages"
    ));
    let (receivers, receiver_failures) = log_in_all(
        target,
        receiver_ids
            .iter()
            .enumerate()
            .map(|(i, user)| (senders_n + i, user.clone()))
            .collect(),
        args,
        login_timeout,
    )
    .await;
    for (kind, n) in receiver_failures {
        *failures.entry(kind).or_insert(0) += n;
    }
    let stop = CancellationToken::new();
    let mut draining = JoinSet::new();
    for (_, mut peer) in receivers {
        let mut role = Drainer {
            senders: format!("{prefix}s"),
            seen: HashMap::new(),
            delivered: delivered.clone(),
            duplicates: duplicates.clone(),
            foreign: 0,
        };
        let stop = stop.clone();
        draining.spawn(async move {
            let result = peer.pump(&mut role, &stop, None).await;
            (role, result)
        });
    }
    let drain_end = Instant::now() + Duration::from_secs(offline.drain);
    let mut last_delivery = Instant::now();
    let mut seen = 0;
    loop {
        let now = Instant::now();
        let got = delivered.load(Ordering::Relaxed);
        if got != seen {
            seen = got;
            last_delivery = now;
        }
        if got >= acked || now >= drain_end {
            break;
        }
        progress.show(&format!("[offline] replayed {got} of {acked}"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replay_cpu = target.cpu_since(replay_cpu);
    let replay_wall = last_delivery.saturating_duration_since(replay_start);
    stop.cancel();
    let mut foreign = 0;
    while let Some(joined) = draining.join_next().await {
        let Ok((role, result)) = joined else { continue };
        failed_after_login(&mut failures, result);
        foreign += role.foreign;
    }
    if foreign > 0 {
        failures.insert(
            "messages from an unexpected sender (a store left over from another run?)".into(),
            usize::try_from(foreign).unwrap_or(usize::MAX),
        );
    }
    let replayed = delivered.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let per_10k =
        |cpu_s: Option<f64>, n: u64| cpu_s.and_then(|s| (n > 0).then(|| s * 10_000.0 / n as f64));
    #[allow(clippy::cast_precision_loss)]
    let rate = |n: u64, wall: f64| n as f64 / wall.max(0.001);
    Ok(Report::Offline(OfflineReport {
        run: target.run_info(file_limit),
        senders: senders_n,
        receivers: receivers_n,
        window: offline.window,
        size: offline.size,
        duration_s: offline.duration as f64,
        sent,
        stored: acked,
        stored_per_s: rate(acked, store_cpu.wall_s),
        reported_lost,
        ack_latency_ms: Latency::from_micros(&ack),
        store_cpu,
        server_cpu_s_per_10k_stored: per_10k(store_cpu.server_s, acked),
        replayed,
        replayed_per_s: rate(replayed, replay_wall.as_secs_f64()),
        replay_cpu,
        server_cpu_s_per_10k_replayed: per_10k(replay_cpu.server_s, replayed),
        duplicates: duplicates.load(Ordering::Relaxed),
        lost: acked.saturating_sub(replayed),
        failures,
    }))
}
