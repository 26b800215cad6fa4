//! How fast a store takes and gives back messages: `--messages` puts from `--tasks`
//! concurrent tasks (each waiting for its acknowledgement before the next, as senders do),
//! then a replay that pages every receiver's messages and removes them, as logins do.
//!
//! ```text
//! cargo run --release -p hongyan-store --example throughput -- \
//!     --store sqlite --messages 200000 --tasks 400
//! cargo run --release -p hongyan-store --example throughput -- \
//!     --store temp-postgres
//! ```
//!
//! `--store` takes any store setting (`sqlite`, `sqlite:PATH`, `postgres://…`, `memory`), or
//! `temp-postgres` for a throwaway PostgreSQL server of its own. `sqlite` is a file in a
//! temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use hongyan_store::testing::TempPostgres;
use hongyan_store::{Limits, MessageStore, NewMessage, StoreConfig, StoreSpec, StoreStats};

#[derive(Parser)]
struct Args {
    /// A store setting, or `temp-postgres`.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// Messages to put, then replay.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Concurrent tasks putting (and replaying).
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Distinct receivers the messages go to.
    #[arg(long, default_value_t = 1_000)]
    receivers: usize,
    /// Bytes of content per message.
    #[arg(long, default_value_t = 100)]
    content_bytes: usize,
    /// Messages per replay page (the server's replay window).
    #[arg(long, default_value_t = 256)]
    page: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path().join("hongyan.db")).with_limits(Limits::UNLIMITED);
    config.timeout = Duration::from_secs(30);
    let (spec, _postgres) = if args.store == "temp-postgres" {
        let pg = tokio::task::spawn_blocking(TempPostgres::start).await??;
        let url = pg.create_database("throughput")?;
        (StoreSpec::Postgres(url), Some(pg))
    } else {
        (args.store.parse()?, None)
    };
    let store = spec
        .open(&config)
        .await?
        .context("`off` has nothing to measure")?;

    let load_before = load_average();
    let started = Instant::now();
    put_all(&store, &args).await?;
    let put_time = started.elapsed();
    let after_put = store.stats();

    let started = Instant::now();
    let replayed = replay_all(&store, &args).await?;
    let replay_time = started.elapsed();
    anyhow::ensure!(
        replayed == args.messages,
        "replayed {replayed} of {} messages",
        args.messages
    );
    let total = store.stats();
    store.close().await;

    report(
        &args,
        &spec,
        put_time,
        replay_time,
        after_put,
        total,
        load_before,
    );
    Ok(())
}

/// Every task puts its share, one acknowledged message after the other.
async fn put_all(store: &Arc<dyn MessageStore>, args: &Args) -> anyhow::Result<()> {
    let content = "x".repeat(args.content_bytes);
    let tasks: Vec<_> = (0..args.tasks)
        .map(|task| {
            let store = Arc::clone(store);
            let content = content.clone();
            let (tasks, messages, receivers) = (args.tasks, args.messages, args.receivers);
            tokio::spawn(async move {
                for n in (task..messages).step_by(tasks) {
                    store
                        .put(NewMessage {
                            receiver: format!("user-{}", n % receivers).into(),
                            sender: format!("sender-{task}").into(),
                            fp: n.to_string().into(),
                            typeu: 0,
                            content: content.clone(),
                            accepted_at: 1_700_000_000_000,
                            expires_at: None,
                        })
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Every receiver's messages, page by page, each page removed once "acknowledged".
async fn replay_all(store: &Arc<dyn MessageStore>, args: &Args) -> anyhow::Result<usize> {
    let tasks: Vec<_> = (0..args.tasks.min(args.receivers))
        .map(|task| {
            let store = Arc::clone(store);
            let (tasks, receivers, page) =
                (args.tasks.min(args.receivers), args.receivers, args.page);
            tokio::spawn(async move {
                let mut replayed = 0;
                for r in (task..receivers).step_by(tasks) {
                    let receiver = format!("user-{r}").into();
                    let mut after = None;
                    loop {
                        let messages = store
                            .pending(&receiver, after, 1_700_000_000_000, page)
                            .await?;
                        let Some(last) = messages.last() else { break };
                        after = Some(last.id);
                        let ids: Vec<_> = messages.iter().map(|m| m.id).collect();
                        replayed += store.remove(&receiver, &ids).await? as usize;
                    }
                }
                anyhow::Ok(replayed)
            })
        })
        .collect();
    let mut replayed = 0;
    for task in tasks {
        replayed += task.await??;
    }
    Ok(replayed)
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)] // The example's output is its result.
fn report(
    args: &Args,
    spec: &StoreSpec,
    put_time: Duration,
    replay_time: Duration,
    after_put: StoreStats,
    total: StoreStats,
    load_before: String,
) {
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let mean = |ops: u64, commits: u64| ops as f64 / commits.max(1) as f64;
    println!(
        "store {spec}: {} messages of {} bytes, {} tasks, {} receivers, replay pages of {}",
        args.messages, args.content_bytes, args.tasks, args.receivers, args.page
    );
    println!(
        "put:    {:>9.0} msgs/s  ({:.2} s; {} commits, {:.0} writes per commit, {:.2} ms per commit)",
        rate(args.messages, put_time),
        put_time.as_secs_f64(),
        after_put.commits,
        mean(after_put.commit_ops, after_put.commits),
        after_put.commit_time.as_secs_f64() * 1e3 / after_put.commits.max(1) as f64,
    );
    let replay_commits = total.commits - after_put.commits;
    println!(
        "replay: {:>9.0} msgs/s  ({:.2} s; pending + remove, {} commits, {:.0} removes per commit)",
        rate(args.messages, replay_time),
        replay_time.as_secs_f64(),
        replay_commits,
        mean(total.commit_ops - after_put.commit_ops, replay_commits),
    );
    println!(
        "load average before: {load_before}; after: {}",
        load_average()
    );
}

/// The machine's 1/5/15-minute load averages, to judge how much else was running.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}
