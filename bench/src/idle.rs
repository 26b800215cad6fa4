//! `idle`: log in N connections as fast as the server takes them, hold them with keepalives,
//! and measure logins/s and the server's memory per connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hongyan_shared::{ClientEvent, ClientSession};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::peer::{Failure, Peer, Role, no_surprise};
use crate::report::{IdleReport, Latency, Report, micros_histogram};
use crate::target::{Target, seed};
use crate::{BenchError, BenchOptions, IdleOptions, Progress, source_ip};

/// How long logged-out connections get to close before the run ends anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Holds a logged-in connection: the session's own timers send the keepalives.
struct Hold;

impl Role for Hold {
    fn on_event(
        &mut self,
        event: ClientEvent,
        _session: &mut ClientSession,
        _now: Instant,
    ) -> Result<bool, Failure> {
        no_surprise(event).map(|()| false)
    }
}

enum Outcome {
    Held,
    LoginFailed(String),
    DroppedLater(String),
}

struct Logins {
    latency: hdrhistogram::Histogram<u64>,
    last: Option<Instant>,
}

pub(crate) async fn run(
    args: &BenchOptions,
    idle: &IdleOptions,
    target: &Target,
    file_limit: u64,
    progress: &Progress,
) -> Result<Report, BenchError> {
    let n = idle.connections;
    let needed = n * target.fds_per_connection() + 64;
    if needed as u64 > file_limit {
        return Err(BenchError::FileLimit {
            what: format!("{n} connections"),
            needed,
            limit: file_limit,
            hint: "; run the server as its own process or spread the connections over several \
                   generators",
        });
    }
    let rss_before = target.rss();
    let stop = CancellationToken::new();
    let limiter = Arc::new(Semaphore::new(idle.concurrency.max(1)));
    let logged_in = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let logins = Arc::new(Mutex::new(Logins {
        latency: micros_histogram(),
        last: None,
    }));
    let login_timeout = Duration::from_secs(idle.login_timeout);
    let start = Instant::now();
    let login_cpu = target.cpu_mark();

    let spawner = {
        let (stop, limiter, logged_in, failed, logins) = (
            stop.clone(),
            limiter.clone(),
            logged_in.clone(),
            failed.clone(),
            logins.clone(),
        );
        let dial = target.dial(args, login_timeout);
        let prefix = args.user_prefix.clone();
        let sources: Vec<_> = (0..n).map(|i| source_ip(args, i)).collect();
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            for (i, source) in sources.into_iter().enumerate() {
                let Ok(permit) = limiter.clone().acquire_owned().await else {
                    break;
                };
                if stop.is_cancelled() {
                    break;
                }
                let (stop, logged_in, failed, logins) = (
                    stop.clone(),
                    logged_in.clone(),
                    failed.clone(),
                    logins.clone(),
                );
                let (user, dial) = (format!("{prefix}{i}"), dial.clone());
                tasks.spawn(async move {
                    let begun = Instant::now();
                    let login = Peer::login(dial, source, &user, seed(i)).await;
                    drop(permit);
                    let mut peer = match login {
                        Ok(peer) => peer,
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return Outcome::LoginFailed(e.kind());
                        }
                    };
                    let now = Instant::now();
                    {
                        let mut l = logins.lock().expect("login stats lock is never poisoned");
                        let micros = u64::try_from((now - begun).as_micros()).unwrap_or(u64::MAX);
                        let _ = l.latency.record(micros.max(1));
                        l.last = Some(l.last.map_or(now, |t| t.max(now)));
                    }
                    logged_in.fetch_add(1, Ordering::Relaxed);
                    match peer.pump(&mut Hold, &stop, None).await {
                        Ok(()) => {
                            peer.logout().await;
                            Outcome::Held
                        }
                        Err(e) => {
                            logged_in.fetch_sub(1, Ordering::Relaxed);
                            Outcome::DroppedLater(e.kind())
                        }
                    }
                });
            }
            tasks
        })
    };

    // Logins.
    let login_deadline =
        start + login_timeout + Duration::from_secs(u64::try_from(n / 1000).unwrap_or(0) + 5);
    loop {
        let (ok, bad) = (
            logged_in.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        #[allow(clippy::cast_precision_loss)]
        let rate = ok as f64 / start.elapsed().as_secs_f64();
        progress.show(&format!(
            "[idle {}] logging in: {ok}/{n} ok, {bad} failed, {rate:.0}/s",
            target.run_info(file_limit).transport
        ));
        if ok + bad >= n || Instant::now() >= login_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login_cpu = target.cpu_since(login_cpu);
    let (login_latency, last_login) = {
        let l = logins.lock().expect("login stats lock is never poisoned");
        (Latency::from_micros(&l.latency), l.last)
    };
    let ok = logged_in.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let logins_per_s = last_login.map_or(0.0, |t| ok as f64 / (t - start).as_secs_f64());

    // Hold.
    let hold_cpu = target.cpu_mark();
    let hold_end = Instant::now() + Duration::from_secs(idle.hold);
    while Instant::now() < hold_end {
        progress.show(&format!(
            "[idle] holding {} connections, {} s left",
            logged_in.load(Ordering::Relaxed),
            (hold_end - Instant::now()).as_secs()
        ));
        tokio::time::sleep(Duration::from_millis(250).min(hold_end - Instant::now())).await;
    }
    let hold_cpu = target.cpu_since(hold_cpu);
    let rss_after = target.rss();
    let held_now = logged_in.load(Ordering::Relaxed);

    stop.cancel();
    limiter.close();
    let mut failures = BTreeMap::new();
    let mut held = 0;
    let mut tasks = spawner.await?;
    let closing = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(outcome) = tasks.join_next().await {
            match outcome {
                Ok(Outcome::Held) => held += 1,
                Ok(Outcome::LoginFailed(kind)) => *failures.entry(kind).or_insert(0) += 1,
                Ok(Outcome::DroppedLater(kind)) => {
                    *failures.entry(format!("after login: {kind}")).or_insert(0) += 1;
                }
                Err(_) => *failures.entry("task panicked".into()).or_insert(0) += 1,
            }
        }
    })
    .await;
    if closing.is_err() {
        tasks.abort_all();
        held = held.max(held_now);
    }
    let not_started = n.saturating_sub(ok + failed.load(Ordering::Relaxed));
    if not_started > 0 {
        failures.insert("not attempted before the deadline".into(), not_started);
    }
    let rss_per_connection = match (rss_before, rss_after) {
        (Some(b), Some(a)) if ok > 0 => Some(a.saturating_sub(b) / ok as u64),
        _ => None,
    };
    Ok(Report::Idle(IdleReport {
        run: target.run_info(file_limit),
        connections: n,
        source_ips: n.div_ceil(args.per_source_ip),
        logged_in: ok,
        logins_per_s,
        login_latency_ms: login_latency,
        held,
        hold_s: idle.hold,
        failures,
        rss_before,
        rss_after,
        rss_per_connection,
        login_cpu,
        hold_cpu,
    }))
}
