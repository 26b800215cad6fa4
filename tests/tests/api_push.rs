//! Pushing server → client messages through `POST /api/messages` and
//! `POST /api/messages/batch`: what the client receives, and the outcomes `delivered`, `lost`,
//! `offline`, `sent` and `tooLarge`.

use crate::api_support;

use api_support::{Api, ack, fast_schedule, next_data, server, server_with};
use hongyan_shared::{PacketType, Transport, UserId};
use hongyan_tests::{Event, on_each_transport};
use serde_json::json;

async fn a_push_awaited_is_delivered_once_the_client_acknowledges(transport: Transport) {
    let server = server().await;
    let mut alice = server.logged_in(transport, "alice").await;
    let api = Api::new(server.http);
    let reply = tokio::spawn(async move {
        api.post(
            "/api/messages",
            json!({"to": "alice", "content": "hello", "typeu": 7, "wait": true}),
        )
        .await
    });

    let packet = next_data(&mut alice).await;
    assert_eq!(packet.from.as_ref().map(UserId::as_str), Some("0"));
    assert_eq!(packet.to.as_ref().map(UserId::as_str), Some("alice"));
    assert_eq!(packet.data_content.as_deref(), Some("hello"));
    assert_eq!(packet.typeu, 7);
    assert!(packet.qos, "QoS is on by default");
    ack(&mut alice, "alice", &packet).await;

    let body = reply.await.unwrap().ok();
    assert_eq!(body["outcome"], "delivered");
    assert_eq!(body["to"], "alice");
    assert_eq!(
        body["fp"].as_str(),
        packet.fp.as_ref().map(|fp| fp.as_str())
    );
}

on_each_transport!(a_push_awaited_is_delivered_once_the_client_acknowledges);

#[tokio::test]
async fn a_push_to_an_offline_user_reports_offline() {
    let server = server().await;
    let body = Api::new(server.http)
        .post(
            "/api/messages",
            json!({"to": "nobody", "content": "hi", "wait": true}),
        )
        .await
        .ok();
    assert_eq!(body["outcome"], "offline");
    assert!(body["fp"].is_null());
}

#[tokio::test]
async fn a_push_the_client_never_acknowledges_is_lost_after_one_retransmission() {
    let server = server_with(|c| c.s2c_schedule = fast_schedule()).await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let body = Api::new(server.http)
        .post(
            "/api/messages",
            json!({"to": "alice", "content": "anyone?", "wait": true}),
        )
        .await
        .ok();
    assert_eq!(body["outcome"], "lost");

    let first = next_data(&mut alice).await;
    let again = next_data(&mut alice).await;
    assert_eq!(
        first.fp, again.fp,
        "the retransmission repeats the fingerprint"
    );
    assert_eq!(first.fp.as_ref().map(|fp| fp.as_str()), body["fp"].as_str());
    server
        .hooks
        .wait_for(|e| matches!(e, Event::S2cLost(p) if p.fp == first.fp))
        .await;
}

#[tokio::test]
async fn a_push_not_awaited_is_sent_with_the_fingerprint_the_caller_chose() {
    let server = server().await;
    let mut alice = server.logged_in(Transport::WebSocket, "alice").await;
    let body = Api::new(server.http)
        .post(
            "/api/messages",
            json!({"to": "alice", "content": "hi", "fp": "order-42"}),
        )
        .await
        .ok();
    assert_eq!(
        body,
        json!({"to": "alice", "fp": "order-42", "outcome": "sent"})
    );
    let packet = next_data(&mut alice).await;
    assert_eq!(packet.fp.as_ref().map(|fp| fp.as_str()), Some("order-42"));
    assert_eq!(packet.typeu, -1, "typeu defaults to unset");
}

#[tokio::test]
async fn a_chosen_fingerprint_still_awaiting_acknowledgement_is_a_conflict() {
    let server = server().await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let api = Api::new(server.http);
    let push = json!({"to": "alice", "content": "once", "fp": "order-7"});
    assert_eq!(
        api.post("/api/messages", push.clone()).await.ok()["outcome"],
        "sent"
    );
    let packet = next_data(&mut alice).await;
    api.post("/api/messages", push.clone())
        .await
        .assert_error(409, "fp_in_flight");
    ack(&mut alice, "alice", &packet).await;
    let deadline = tokio::time::Instant::now() + hongyan_tests::WAIT;
    while server.handle.in_flight() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the ACK settles it");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        api.post("/api/messages", push).await.ok()["outcome"],
        "sent"
    );
}

#[tokio::test]
async fn a_push_without_qos_is_sent_and_never_awaited() {
    let server = server().await;
    let mut alice = server.logged_in(Transport::Udp, "alice").await;
    let body = Api::new(server.http)
        .post(
            "/api/messages",
            json!({"to": "alice", "content": "fire and forget", "qos": false, "wait": true}),
        )
        .await
        .ok();
    assert_eq!(body["outcome"], "sent");
    let packet = next_data(&mut alice).await;
    assert!(!packet.qos);
    assert_eq!(server.handle.in_flight(), 0);
}

#[tokio::test]
async fn a_batch_reports_each_receivers_outcome_in_request_order() {
    let server = server_with(|c| c.s2c_schedule = fast_schedule()).await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let _bob = server.logged_in(Transport::WebSocket, "bob").await;
    let api = Api::new(server.http);
    let reply = tokio::spawn(async move {
        api.post(
            "/api/messages/batch",
            json!({"to": ["nobody", "bob", "alice"], "content": "news", "typeu": 3, "wait": true}),
        )
        .await
    });
    let packet = next_data(&mut alice).await;
    assert_eq!(packet.data_content.as_deref(), Some("news"));
    ack(&mut alice, "alice", &packet).await;

    let body = reply.await.unwrap().ok();
    let results = body["results"].as_array().unwrap();
    let outcomes: Vec<_> = results
        .iter()
        .map(|r| (r["to"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("nobody", "offline"),
            ("bob", "lost"),
            ("alice", "delivered")
        ]
    );
    assert_ne!(
        results[1]["fp"], results[2]["fp"],
        "each receiver gets its own fingerprint"
    );
}

#[tokio::test]
async fn a_batch_not_awaited_reports_sent_and_offline() {
    let server = server().await;
    let mut alice = server.logged_in(Transport::Udp, "alice").await;
    let body = Api::new(server.http)
        .post(
            "/api/messages/batch",
            json!({"to": ["alice", "nobody"], "content": "hi"}),
        )
        .await
        .ok();
    assert_eq!(body["results"][0]["outcome"], "sent");
    assert_eq!(body["results"][1]["outcome"], "offline");
    next_data(&mut alice).await;
}

#[tokio::test]
async fn a_message_too_large_for_the_receivers_transport_is_refused() {
    let server = server().await;
    let _alice = server.logged_in(Transport::Udp, "alice").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let big = "x".repeat(2000);
    let api = Api::new(server.http);
    api.post("/api/messages", json!({"to": "alice", "content": big}))
        .await
        .assert_error(413, "too_large");

    let body = api
        .post(
            "/api/messages/batch",
            json!({"to": ["alice", "bob"], "content": big}),
        )
        .await
        .ok();
    assert_eq!(body["results"][0]["outcome"], "tooLarge");
    assert_eq!(body["results"][1]["outcome"], "sent");
    assert_eq!(
        bob.expect(PacketType::CommonData).await.data_content,
        Some(big)
    );
}

#[tokio::test]
async fn malformed_push_requests_say_what_is_wrong() {
    let server = server().await;
    let api = Api::new(server.http);
    let json_type = Some("application/json");
    api.post_raw("/api/messages", json_type, "{\"to\": \"alice\",")
        .await
        .assert_error(400, "invalid_body");
    let missing = api
        .post_raw("/api/messages", json_type, "{\"to\": \"alice\"}")
        .await;
    missing.assert_error(422, "invalid_body");
    assert!(
        missing.json["message"]
            .as_str()
            .unwrap()
            .contains("content"),
        "{missing:?}"
    );
    api.post_raw(
        "/api/messages",
        Some("text/plain"),
        "{\"to\":\"a\",\"content\":\"b\"}",
    )
    .await
    .assert_error(415, "invalid_body");
    let unknown = api
        .post(
            "/api/messages",
            json!({"to": "alice", "content": "x", "colour": "red"}),
        )
        .await;
    unknown.assert_error(422, "invalid_body");
    assert!(
        unknown.json["message"].as_str().unwrap().contains("colour"),
        "{unknown:?}"
    );
    api.post("/api/messages", json!({"to": 42, "content": "x"}))
        .await
        .assert_error(422, "invalid_body");
    for to in ["", "0", "-1"] {
        api.post("/api/messages", json!({"to": to, "content": "x"}))
            .await
            .assert_error(422, "invalid_request");
    }
    api.post(
        "/api/messages",
        json!({"to": "alice", "content": "x", "fp": ""}),
    )
    .await
    .assert_error(422, "invalid_request");
}

#[tokio::test]
async fn malformed_batches_say_what_is_wrong() {
    let server = server().await;
    let api = Api::new(server.http);
    api.post("/api/messages/batch", json!({"to": [], "content": "x"}))
        .await
        .assert_error(422, "invalid_request");
    let twice = api
        .post(
            "/api/messages/batch",
            json!({"to": ["a", "b", "a"], "content": "x"}),
        )
        .await;
    twice.assert_error(422, "invalid_request");
    assert!(
        twice.json["message"].as_str().unwrap().contains("\"a\""),
        "{twice:?}"
    );
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    api.post("/api/messages/batch", json!({"to": many, "content": "x"}))
        .await
        .assert_error(422, "invalid_request");
    api.post(
        "/api/messages/batch",
        json!({"to": ["a", "0"], "content": "x"}),
    )
    .await
    .assert_error(422, "invalid_request");
    api.post("/api/messages/batch", json!({"to": "a", "content": "x"}))
        .await
        .assert_error(422, "invalid_body");
}
