//! Statistics and probes: `GET /api/stats`, `/metrics` in the OpenMetrics text format that
//! Prometheus scrapes, `/healthz` and `/readyz`.

use crate::api_support;

use api_support::{Api, ack, fast_schedule, next_data, server_with};
use hongyan_shared::{Packet, PacketType, Transport};
use hongyan_tests::{Event, Peer};
use serde_json::json;

/// The value of the series `name` (with its labels, exactly as exported) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// Traffic touching every counter: logins on each transport, a refused login, C2S (with a
/// duplicate), C2C to an online and an offline user, a push delivered, a push lost.
async fn traffic(server: &hongyan_tests::TestServer) -> (Peer, Peer, Peer) {
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut bob = server.logged_in(Transport::Udp, "bob").await;
    let carol = server.logged_in(Transport::WebSocket, "carol").await;
    let mut refused = server.peer(Transport::Tcp).await;
    assert_eq!(
        refused.login_with("mallory", "refuse-1025", 0).await.code,
        1025
    );

    let c2s = Packet::common_data("alice", "0", "to the server", Some("c2s-1".into()), -1);
    alice.send(&c2s).await;
    alice.expect(PacketType::Ack).await;
    alice.send(&c2s).await;
    alice.expect(PacketType::Ack).await;

    let c2c = Packet::common_data("alice", "bob", "hi bob", Some("c2c-1".into()), -1);
    alice.send(&c2c).await;
    let forwarded = next_data(&mut bob).await;
    ack(&mut bob, "bob", &forwarded).await;
    alice
        .send(&Packet::common_data(
            "alice",
            "zed",
            "hi zed",
            Some("c2c-2".into()),
            -1,
        ))
        .await;
    server
        .hooks
        .wait_for(|e| matches!(e, Event::Offline(_)))
        .await;

    let api = Api::new(server.http);
    let push = tokio::spawn(async move {
        api.post(
            "/api/messages",
            json!({"to": "bob", "content": "ok?", "wait": true}),
        )
        .await
        .ok()
    });
    let pushed = loop {
        // Skip a retransmission of the C2C message should one race the acknowledgement.
        let packet = next_data(&mut bob).await;
        if packet.data_content.as_deref() == Some("ok?") {
            break packet;
        }
    };
    ack(&mut bob, "bob", &pushed).await;
    assert_eq!(push.await.unwrap()["outcome"], "delivered");
    let lost = Api::new(server.http)
        .post(
            "/api/messages",
            json!({"to": "carol", "content": "hello?", "wait": true}),
        )
        .await
        .ok();
    assert_eq!(lost["outcome"], "lost");
    (alice, bob, carol)
}

#[tokio::test]
async fn stats_count_sessions_users_messages_and_qos() {
    let server = server_with(|c| c.s2c_schedule = fast_schedule()).await;
    let _peers = traffic(&server).await;
    let stats = Api::new(server.http).get("/api/stats").await.ok();

    assert_eq!(
        stats["onlineUsers"],
        json!({"tcp": 1, "udp": 1, "ws": 1, "http": 0, "total": 3})
    );
    // The refused TCP login closed its connection; the three online sessions remain.
    assert_eq!(
        stats["connections"],
        json!({"tcp": 1, "udp": 1, "ws": 1, "http": 0, "total": 3})
    );
    assert_eq!(stats["messages"], json!({"c2s": 1, "c2c": 2, "s2c": 2}));
    assert_eq!(
        stats["logins"],
        json!({"accepted": 3, "refused": 1, "stale": 0})
    );
    let qos = &stats["qos"];
    assert_eq!(qos["inFlight"], 0);
    assert_eq!(
        qos["delivered"], 2,
        "the forwarded C2C and the push were acknowledged"
    );
    assert_eq!(qos["lost"], 1);
    assert!(
        qos["retransmissions"].as_u64().unwrap() >= 1,
        "the lost push was resent"
    );
    assert!(stats["uptimeSeconds"].is_u64());
}

#[tokio::test]
async fn metrics_export_every_documented_series_in_openmetrics_text() {
    let server = server_with(|c| c.s2c_schedule = fast_schedule()).await;
    let (alice, _bob, _carol) = traffic(&server).await;
    let api = Api::anonymous(server.http);
    let reply = api.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        reply.headers
    );
    let text = &reply.text;
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    assert_eq!(sample(text, "hongyan_connections{transport=\"tcp\"}"), 1.0);
    assert_eq!(sample(text, "hongyan_online_users{transport=\"ws\"}"), 1.0);
    assert_eq!(
        sample(text, "hongyan_logins_total{result=\"accepted\"}"),
        3.0
    );
    assert_eq!(
        sample(text, "hongyan_logins_total{result=\"refused\"}"),
        1.0
    );
    assert_eq!(
        sample(text, "hongyan_messages_total{direction=\"c2s\"}"),
        1.0
    );
    assert_eq!(
        sample(text, "hongyan_messages_total{direction=\"c2c\"}"),
        2.0
    );
    assert_eq!(
        sample(text, "hongyan_messages_total{direction=\"s2c\"}"),
        2.0
    );
    assert_eq!(
        sample(text, "hongyan_offline_messages_total{stored=\"false\"}"),
        1.0
    );
    assert_eq!(sample(text, "hongyan_dedup_hits_total"), 1.0);
    assert_eq!(sample(text, "hongyan_qos_delivered_total"), 2.0);
    assert_eq!(sample(text, "hongyan_qos_lost_total"), 1.0);
    assert!(sample(text, "hongyan_qos_retransmissions_total") >= 1.0);
    assert_eq!(sample(text, "hongyan_qos_in_flight"), 0.0);
    assert_eq!(sample(text, "hongyan_queued_bytes"), 0.0);
    assert_eq!(
        sample(text, "hongyan_refused_total{reason=\"user_in_flight\"}"),
        0.0
    );
    assert!(sample(text, "hongyan_packets_received_total{type=\"login\"}") >= 4.0);
    assert!(sample(text, "hongyan_received_bytes_total{type=\"data\"}") > 0.0);
    assert!(sample(text, "hongyan_packets_sent_total{type=\"ack\"}") >= 3.0);
    assert!(sample(text, "hongyan_sent_bytes_total{type=\"login_response\"}") > 0.0);
    assert_eq!(
        sample(text, "hongyan_kickouts_total{reason=\"admin\"}"),
        0.0
    );
    // The scrape itself is an open HTTP connection; nothing was refused.
    assert!(sample(text, "hongyan_http_connections") >= 1.0);
    for reason in [
        "connection_limit",
        "header_timeout",
        "ws_origin",
        "udp_session_limit",
        "udp_amplification",
    ] {
        let series = format!("hongyan_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(text, &series), 0.0, "{series}");
    }

    Api::new(server.http)
        .post("/api/users/alice/kick", json!({}))
        .await
        .ok();
    drop(alice);
    let text = api.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "hongyan_kickouts_total{reason=\"admin\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_duplicate_login_counts_a_kickout_and_closing_counts_the_connection_down() {
    let server = server_with(|_| {}).await;
    let first = server.logged_in(Transport::Tcp, "alice").await;
    let _second = server.logged_in(Transport::Tcp, "alice").await;
    let api = Api::anonymous(server.http);
    let text = api.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "hongyan_kickouts_total{reason=\"duplicate_login\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "hongyan_online_users{transport=\"tcp\"}"),
        1.0
    );
    drop(first);
    let deadline = tokio::time::Instant::now() + hongyan_tests::WAIT;
    loop {
        let text = api.get("/metrics").await.text;
        if sample(&text, "hongyan_connections{transport=\"tcp\"}") == 1.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_and_readiness_answer_while_serving() {
    let server = server_with(|_| {}).await;
    let api = Api::anonymous(server.http);
    let health = api.get("/healthz").await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok\n"));
    let ready = api.get("/readyz").await;
    assert_eq!((ready.status, ready.text.as_str()), (200, "ready\n"));
}
