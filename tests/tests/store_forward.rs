//! Store and forward end to end (issue 11), on a real server keeping messages in SQLite: an
//! unmodified MobileIMSDK client that was offline receives what was sent to it when it logs
//! in, on TCP, UDP and WebSocket (raw, MobileIMSDK-framed peers); the HTTP API says `stored`,
//! counts and erases; a full disk means no acknowledgement, `/readyz` not ready, and recovery
//! once there is room again.

use crate::api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::{Api, TOKEN};
use hongyan_server::hongyan_store::{Limits, SqliteStore, StoreConfig, StoreSpec};
use hongyan_server::{BearerToken, Config, Delivery, Outgoing};
use hongyan_shared::{Fingerprint, Packet, PacketType, Transport, UserId};
use hongyan_tests::{Event, Peer, Recv, TestServer, WAIT, on_each_transport};
use serde_json::json;

/// A server keeping messages in SQLite in `dir`, with [`TOKEN`] as its admin token.
async fn sqlite_server(dir: &tempfile::TempDir) -> TestServer {
    let path = dir.path().join("hongyan.db");
    TestServer::with(|c| {
        c.store = StoreSpec::Sqlite(Some(path));
        c.admin_token = Some(BearerToken::new(TOKEN).expect("a valid token"));
    })
    .await
}

/// A QoS message from `from` to `to`, as a MobileIMSDK client sends it.
fn message(from: &str, to: &str, fp: &str, typeu: i32, content: &str) -> Packet {
    let mut packet = Packet::common_data(from, to, content, Some(Fingerprint::new(fp)), typeu);
    packet.qos = true;
    packet
}

/// Sends `packet` and waits for its (pseudo-)ACK.
async fn send_acked(peer: &mut Peer, packet: &Packet) {
    peer.send(packet).await;
    let ack = peer.expect(PacketType::Ack).await;
    assert_eq!(
        ack.data_content.as_deref(),
        packet.fp.as_ref().map(Fingerprint::as_str)
    );
    assert_eq!(
        ack.from.as_ref(),
        packet.to.as_ref(),
        "in the receiver's name"
    );
}

/// Waits until the store keeps `expected` messages for `user`.
async fn wait_stored(server: &TestServer, user: &str, expected: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let count = server
            .handle
            .stored_count(&UserId::from(user))
            .await
            .unwrap();
        if count == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} has {count} stored messages, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn an_offline_client_gets_its_messages_when_it_logs_in(transport: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir).await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    for i in 0..5 {
        let m = message(
            "alice",
            "bob",
            &format!("fp-{i}"),
            i,
            &format!("message {i}"),
        );
        send_acked(&mut alice, &m).await;
    }
    let pushed = server
        .handle
        .send(Outgoing::new("bob", "from the server").with_fingerprint(Fingerprint::new("p-1")))
        .await
        .unwrap();
    assert_eq!(pushed.settled(), Some(Delivery::Stored));
    wait_stored(&server, "bob", 6).await;
    server
        .hooks
        .wait_for(|e| matches!(e, Event::Stored(p) if p.fp.as_ref().is_some_and(|f| f.as_str() == "fp-4")))
        .await;

    let mut bob = server.logged_in(transport, "bob").await;
    for i in 0..5 {
        let got = bob.expect(PacketType::CommonData).await;
        assert_eq!(
            (got.from_str(), got.to_str(), got.typeu, got.qos),
            ("alice", "bob", i, true),
            "{got:?}"
        );
        assert_eq!(
            got.fp.as_ref().map(Fingerprint::as_str),
            Some(format!("fp-{i}").as_str())
        );
        assert_eq!(
            got.data_content.as_deref(),
            Some(format!("message {i}").as_str())
        );
        bob.send(&Packet::ack(
            "bob",
            "alice",
            got.fp.as_ref().unwrap(),
            false,
        ))
        .await;
    }
    let got = bob.expect(PacketType::CommonData).await;
    assert_eq!(
        (got.from_str(), got.data_content.as_deref()),
        ("0", Some("from the server"))
    );
    bob.send(&Packet::ack("bob", "0", got.fp.as_ref().unwrap(), false))
        .await;
    wait_stored(&server, "bob", 0).await;

    // Delivered once: logging in again replays nothing.
    drop(bob);
    let mut bob = server.logged_in(transport, "bob").await;
    assert_eq!(bob.next(Duration::from_millis(500)).await, Recv::Timeout);
}

async fn a_message_not_acknowledged_comes_again_at_the_next_login(transport: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir).await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    send_acked(&mut alice, &message("alice", "bob", "fp-1", 0, "once")).await;
    let mut bob = server.logged_in(transport, "bob").await;
    let first = bob.expect(PacketType::CommonData).await;
    // Bob's app drops before acknowledging: the message stays stored.
    drop(bob);
    wait_stored(&server, "bob", 1).await;
    let mut bob = server.logged_in(transport, "bob").await;
    let again = bob.expect(PacketType::CommonData).await;
    assert_eq!(again.fp, first.fp);
}

on_each_transport!(
    an_offline_client_gets_its_messages_when_it_logs_in,
    a_message_not_acknowledged_comes_again_at_the_next_login
);

#[tokio::test]
async fn the_api_stores_a_push_for_an_offline_user_counts_and_erases() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir).await;
    let api = Api::new(server.http);
    let body = api
        .post(
            "/api/messages",
            json!({"to": "bob", "content": "hi", "wait": true}),
        )
        .await
        .ok();
    assert_eq!(body["outcome"], "stored");
    assert!(body["fp"].is_string());
    let body = api
        .post(
            "/api/messages",
            json!({"to": "bob", "content": "no QoS", "qos": false}),
        )
        .await
        .ok();
    assert_eq!(body["outcome"], "offline", "fire and forget is not stored");
    let body = api.get("/api/users/bob/stored").await.ok();
    assert_eq!(body, json!({"userId": "bob", "stored": 1}));
    let body = api.call("delete", "/api/users/bob/stored").await.ok();
    assert_eq!(body, json!({"userId": "bob", "erased": 1}));
    let body = api.get("/api/users/bob/stored").await.ok();
    assert_eq!(body["stored"], 0);
    let metrics = api.get("/metrics").await.text;
    for series in [
        "hongyan_store_puts_total{result=\"stored\"} 1",
        "hongyan_store_messages_erased_total 1",
        "hongyan_store_operation_seconds_count{op=\"put\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
}

#[tokio::test]
async fn without_a_store_the_api_says_so() {
    let server = api_support::server().await;
    let api = Api::new(server.http);
    api.get("/api/users/bob/stored")
        .await
        .assert_error(409, "store_off");
    api.call("delete", "/api/users/bob/stored")
        .await
        .assert_error(409, "store_off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_means_no_acknowledgement_and_not_ready_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("hongyan.db")).with_limits(Limits::UNLIMITED);
    // A database that may not grow past 64 pages fails as a full disk does (SQLITE_FULL).
    config.sqlite_max_page_count = Some(64);
    let store = SqliteStore::open(dir.path().join("hongyan.db"), &config)
        .await
        .unwrap();
    let server = TestServer::with_store(Arc::new(store), |c: &mut Config| {
        c.admin_token = Some(BearerToken::new(TOKEN).expect("a valid token"));
    })
    .await;
    let api = Api::new(server.http);
    assert_eq!(api.get("/readyz").await.status, 200);
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let big = "x".repeat(1_000);
    let mut refused = None;
    for i in 0..1_000 {
        let m = message("alice", "bob", &format!("fp-{i}"), 0, &big);
        alice.send(&m).await;
        match alice.next(Duration::from_secs(2)).await {
            Recv::Packet(ack) if ack.contains("\"type\":4") => {}
            Recv::Timeout => {
                refused = Some(m);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let refused = refused.expect("64 pages fill up");
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.text.contains("message store failing"), "{ready:?}");
    let metrics = api.get("/metrics").await.text;
    assert!(
        metrics.contains("hongyan_store_puts_total{result=\"unavailable\"} 1"),
        "{metrics}"
    );

    // Room again: the account's messages are erased; the store recovers by itself, and the
    // sender's retransmission is acknowledged.
    api.call("delete", "/api/users/bob/stored").await.ok();
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get("/readyz").await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send_acked(&mut alice, &refused).await;
    wait_stored(&server, "bob", 1).await;
}
