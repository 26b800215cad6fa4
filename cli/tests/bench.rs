//! A small bounded `hongyan bench --spawn` run per transport, as a user runs it (the real
//! binary, its one spawn adapter, the JSON report): every QoS message arrives exactly once and
//! every connection logs in. No timing is asserted: CI machines are shared.

use std::process::Command;

use serde_json::Value;

/// Runs `hongyan bench --spawn -q --json <args>` and returns its report.
fn bench(args: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["bench", "--spawn", "-q", "--json"])
        .args(args.split_whitespace())
        .env_remove("HONGYAN_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hongyan bench {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON report")
}

fn c2c_delivers_every_message_exactly_once_over(transport: &str) {
    // 100 pairs = 200 connections, 2 s of sending with 4 messages in flight per sender.
    let r = bench(&format!(
        "-t {transport} c2c --pairs 100 --window 4 --duration 2 --drain 20"
    ));
    assert_eq!(r["scenario"], "c2c", "{r:#}");
    assert!(r["sent"].as_u64() > Some(0), "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert_eq!(r["lost"], 0, "{r:#}");
    assert_eq!(r["reported_lost"], 0, "{r:#}");
    assert_eq!(r["acked"], r["sent"], "{r:#}");
    assert_eq!(r["delivered"], r["sent"], "{r:#}");
    assert_eq!(r["failures"], serde_json::json!({}), "{r:#}");
    assert!(
        r["cpu"]["server_s"].is_f64(),
        "server CPU is read from its threads: {r:#}"
    );
}

#[test]
fn c2c_over_tcp_loses_and_duplicates_nothing() {
    c2c_delivers_every_message_exactly_once_over("tcp");
}

#[test]
fn c2c_over_udp_loses_and_duplicates_nothing() {
    c2c_delivers_every_message_exactly_once_over("udp");
}

#[test]
fn c2c_over_websocket_loses_and_duplicates_nothing() {
    c2c_delivers_every_message_exactly_once_over("ws");
}

#[test]
fn idle_connections_all_log_in_and_stay() {
    for transport in ["tcp", "udp", "ws"] {
        let r = bench(&format!("-t {transport} idle -n 200 --hold 1"));
        assert_eq!(r["scenario"], "idle", "{r:#}");
        assert_eq!(r["logged_in"], 200, "{r:#}");
        assert_eq!(r["held"], 200, "{r:#}");
        assert_eq!(r["failures"], serde_json::json!({}), "{r:#}");
    }
}

#[test]
fn s2c_pushes_through_the_api_arrive_exactly_once() {
    // The spawned server's API takes the given token, or one generated for the run.
    for args in ["-t tcp --api-token bench-smoke-token s2c", "-t ws s2c"] {
        let r = bench(&format!(
            "{args} --receivers 50 --concurrency 4 --duration 2"
        ));
        assert_eq!(r["scenario"], "s2c", "{r:#}");
        assert!(r["pushed"].as_u64() > Some(0), "{r:#}");
        assert_eq!(r["delivered"], r["pushed"], "{r:#}");
        assert_eq!(r["duplicates"], 0, "{r:#}");
        assert_eq!(r["lost"], 0, "{r:#}");
        assert_eq!(r["failures"], serde_json::json!({}), "{r:#}");
    }
}

/// The `offline` scenario's report: every message stored was replayed once.
fn offline_stores_and_replays_every_message_once(args: &str) {
    let r = bench(&format!(
        "{args} offline --senders 10 --receivers 40 --window 4 --duration 1 --drain 30"
    ));
    assert_eq!(r["scenario"], "offline", "{r:#}");
    assert!(r["stored"].as_u64() > Some(0), "{r:#}");
    assert_eq!(r["stored"], r["sent"], "{r:#}");
    assert_eq!(r["replayed"], r["stored"], "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert_eq!(r["lost"], 0, "{r:#}");
    assert_eq!(r["failures"], serde_json::json!({}), "{r:#}");
    assert!(r["server_cpu_s_per_10k_stored"].is_f64(), "{r:#}");
}

#[test]
fn offline_messages_are_stored_then_replayed_on_sqlite_and_memory() {
    offline_stores_and_replays_every_message_once("-t tcp");
    offline_stores_and_replays_every_message_once("-t udp --store memory");
}

#[test]
fn offline_messages_are_stored_then_replayed_on_postgres() {
    let pg = hongyan_store::testing::TempPostgres::start()
        .expect("PostgreSQL starts (scripts/setup installs it)");
    let url = pg.create_database("bench").unwrap();
    offline_stores_and_replays_every_message_once(&format!("-t ws --store {url}"));
}
