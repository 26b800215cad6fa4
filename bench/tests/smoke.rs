//! A small bounded `hongyan bench` run per transport against an in-process server: every QoS
//! message arrives exactly once and every connection logs in. No timing is asserted: CI
//! machines are shared.

use std::sync::Arc;

use clap::Parser;
use hongyan_bench::{BenchArgs, Report, SpawnedServer, Targets};
use hongyan_server::{BearerToken, Config, Hooks, Server};
use tokio_util::sync::CancellationToken;

/// The admin token of the spawned server, for `s2c`.
const ADMIN_TOKEN: &str = "bench-smoke-token";

struct AcceptAll;

impl Hooks for AcceptAll {}

fn spawn(
    stop: CancellationToken,
) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<SpawnedServer>> + Send>> {
    Box::pin(async move {
        let config = Config {
            admin_token: Some(BearerToken::new(ADMIN_TOKEN)?),
            ..Config::loopback()
        };
        let bound = Server::bind(config, Arc::new(AcceptAll)).await?;
        let targets = Targets {
            tcp: bound.tcp_addr(),
            udp: bound.udp_addr(),
            ws: bound.http_addr(),
        };
        let serve = Box::pin(async move {
            bound
                .serve(stop.cancelled_owned())
                .await
                .expect("the bench server runs until stopped");
        });
        Ok(SpawnedServer { targets, serve })
    })
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

async fn bench(line: &str) -> Report {
    let args = Cli::try_parse_from(line.split_whitespace())
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .bench;
    hongyan_bench::measure(args, Some(spawn))
        .await
        .unwrap_or_else(|e| panic!("{line}: {e:#}"))
}

async fn c2c_delivers_every_message_exactly_once_over(transport: &str) {
    // 100 pairs = 200 connections, 2 s of sending with 4 messages in flight per sender.
    let line = format!(
        "bench --spawn -q -t {transport} c2c --pairs 100 --window 4 --duration 2 --drain 20"
    );
    let Report::C2c(r) = bench(&line).await else {
        panic!("c2c gives a c2c report")
    };
    assert!(r.sent > 0, "{r:?}");
    assert_eq!(r.duplicates, 0, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.reported_lost, 0, "{r:?}");
    assert_eq!(r.acked, r.sent, "{r:?}");
    assert_eq!(r.delivered, r.sent, "{r:?}");
    assert!(r.failures.is_empty(), "{r:?}");
    assert!(
        r.cpu.server_s.is_some(),
        "server CPU is read from its threads: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2c_over_tcp_loses_and_duplicates_nothing() {
    c2c_delivers_every_message_exactly_once_over("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2c_over_udp_loses_and_duplicates_nothing() {
    c2c_delivers_every_message_exactly_once_over("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2c_over_websocket_loses_and_duplicates_nothing() {
    c2c_delivers_every_message_exactly_once_over("ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_all_log_in_and_stay() {
    for transport in ["tcp", "udp", "ws"] {
        let line = format!("bench --spawn -q -t {transport} idle -n 200 --hold 1");
        let Report::Idle(r) = bench(&line).await else {
            panic!("idle gives an idle report")
        };
        assert_eq!(r.logged_in, 200, "{r:?}");
        assert_eq!(r.held, 200, "{r:?}");
        assert!(r.failures.is_empty(), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2c_pushes_through_the_api_arrive_exactly_once() {
    for transport in ["tcp", "ws"] {
        let line = format!(
            "bench --spawn -q -t {transport} --api-token {ADMIN_TOKEN} s2c --receivers 50 --concurrency 4 --duration 2"
        );
        let Report::S2c(r) = bench(&line).await else {
            panic!("s2c gives an s2c report")
        };
        assert!(r.pushed > 0, "{r:?}");
        assert_eq!(r.delivered, r.pushed, "{r:?}");
        assert_eq!(r.duplicates, 0, "{r:?}");
        assert_eq!(r.lost, 0, "{r:?}");
        assert!(r.failures.is_empty(), "{r:?}");
    }
}
