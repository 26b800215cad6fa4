//! `s2c`: the application pushes messages to online users through the server's HTTP API
//! (`POST /api/messages`, admin token); R receivers check what arrives. Measures pushes/s,
//! the API's answer time, delivery latency, duplicates, losses and CPU per 10,000 delivered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::c2c::{Receiver, Shared, collect, content, log_in_all};
use crate::report::{Latency, Report, S2cReport, micros_histogram};
use crate::target::Target;
use crate::{BenchError, BenchOptions, Progress, S2cOptions};

struct Pusher {
    sent: u64,
    latency: Histogram<u64>,
    failures: BTreeMap<String, usize>,
}

#[derive(serde::Deserialize)]
struct PushResult {
    outcome: String,
}

pub(crate) async fn run(
    args: &BenchOptions,
    s2c: &S2cOptions,
    target: &Target,
    file_limit: u64,
    progress: &Progress,
) -> Result<Report, BenchError> {
    let Some(token) = args.api_token.clone() else {
        return Err(BenchError::Options(
            "s2c pushes through the HTTP API: give the server's admin token with --api-token"
                .into(),
        ));
    };
    let n = s2c.receivers;
    let needed = n * target.fds_per_connection() + s2c.concurrency + 64;
    if needed as u64 > file_limit {
        return Err(BenchError::FileLimit {
            what: format!("{n} receivers"),
            needed,
            limit: file_limit,
            hint: "",
        });
    }
    let prefix = &args.user_prefix;
    progress.show(&format!("[s2c] logging in {n} receivers"));
    let (receivers, mut failures) = log_in_all(
        target,
        (0..n).map(|i| (i, format!("{prefix}r{i}"))).collect(),
        args,
        Duration::from_secs(s2c.login_timeout),
    )
    .await;
    if receivers.len() != n {
        return Err(BenchError::Logins {
            logged_in: receivers.len(),
            wanted: n,
            failures,
        });
    }
    let Some(http) = target.http else {
        return Err(BenchError::NoListener("HTTP (API)"));
    };
    // With TLS the whole server speaks it, the API included; its certificate is not checked
    // (see `BenchOptions::tls`).
    let scheme = if args.tls { "https" } else { "http" };
    let url = format!("{scheme}://{http}/api/messages");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s2c.concurrency)
        .danger_accept_invalid_certs(args.tls)
        .build()
        .map_err(|e| BenchError::Setup {
            what: "the HTTP client",
            source: e.into(),
        })?;

    let shared = Arc::new(Shared::new());
    let stop = CancellationToken::new();
    let start = Instant::now();
    let cpu = target.cpu_mark();
    let mut receiving = JoinSet::new();
    for (_, mut peer) in receivers {
        let mut role = Receiver::new("0".into(), shared.clone());
        let stop = stop.clone();
        receiving.spawn(async move {
            let result = peer.pump(&mut role, &stop, None).await;
            (role, result)
        });
    }
    let next_seq = Arc::new(AtomicU64::new(0));
    let send_end = start + Duration::from_secs(s2c.duration);
    let mut pushing = JoinSet::new();
    for _ in 0..s2c.concurrency {
        let (client, url, token, shared, next_seq) = (
            client.clone(),
            url.clone(),
            token.clone(),
            shared.clone(),
            next_seq.clone(),
        );
        let (prefix, size) = (prefix.clone(), s2c.size);
        pushing.spawn(async move {
            let mut me = Pusher {
                sent: 0,
                latency: micros_histogram(),
                failures: BTreeMap::new(),
            };
            while Instant::now() < send_end {
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let to = format!("{prefix}r{}", seq % n as u64);
                let now = Instant::now();
                let body = serde_json::json!({
                    "to": to,
                    "content": content(seq, shared.base, now, size),
                    "qos": true,
                });
                let answer = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let micros = u64::try_from(now.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = me.latency.record(micros.max(1));
                let kind = match answer {
                    Ok(r) if r.status().is_success() => match r.json::<PushResult>().await {
                        Ok(p) if p.outcome == "sent" || p.outcome == "delivered" => None,
                        Ok(p) => Some(format!("push answered {}", p.outcome)),
                        Err(_) => Some("push answer unreadable".to_owned()),
                    },
                    Ok(r) => Some(format!("push HTTP {}", r.status().as_u16())),
                    Err(e) if e.is_connect() => Some("push connect".to_owned()),
                    Err(_) => Some("push request failed".to_owned()),
                };
                match kind {
                    None => {
                        me.sent += 1;
                        shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(kind) => *me.failures.entry(kind).or_insert(0) += 1,
                }
            }
            me
        });
    }

    progress
        .until(send_end, |now| {
            shared.progress("s2c", "pushed", now - start, s2c.duration)
        })
        .await;
    let mut http = micros_histogram();
    let mut pushed = 0;
    while let Some(joined) = pushing.join_next().await {
        let Ok(me) = joined else { continue };
        pushed += me.sent;
        http.add(&me.latency).expect("histograms share bounds");
        for (kind, k) in me.failures {
            *failures.entry(kind).or_insert(0) += k;
        }
    }
    let delivered_in_interval = shared.delivered.load(Ordering::Relaxed);
    let cpu = target.cpu_since(cpu);

    let drain_end = Instant::now() + Duration::from_secs(s2c.drain);
    while shared.delivered.load(Ordering::Relaxed) < pushed && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let (delivered, delivery) = collect(receiving, "not from the server", &mut failures).await;
    #[allow(clippy::cast_precision_loss)]
    let per_10k = |cpu_s: f64| {
        (delivered_in_interval > 0).then(|| cpu_s * 10_000.0 / delivered_in_interval as f64)
    };
    #[allow(clippy::cast_precision_loss)]
    let pushes_per_s = pushed as f64 / cpu.wall_s.max(0.001);
    Ok(Report::S2c(S2cReport {
        run: target.run_info(file_limit),
        receivers: n,
        concurrency: s2c.concurrency,
        size: s2c.size,
        duration_s: cpu.wall_s,
        pushed,
        pushes_per_s,
        delivered,
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        lost: pushed.saturating_sub(delivered),
        api_latency_ms: Latency::from_micros(&http),
        delivery_latency_ms: Latency::from_micros(&delivery),
        failures,
        server_cpu_s_per_10k: cpu.server_s.and_then(per_10k),
        generator_cpu_s_per_10k: per_10k(cpu.generator_s),
        cpu,
    }))
}
