//! Sending in a user's name through `POST /api/messages/c2c` and its batch (issue 15): the
//! message takes a client's C2C path — the `before_c2c` hook, forwarding with QoS and
//! retransmission, store and forward — and the caller hears the outcome: `delivered`,
//! `stored`, `lost`, `refused`, or `sent` when it does not wait.

use crate::api_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::{Api, TOKEN, fast_schedule, next_data, server, server_with};
use async_trait::async_trait;
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_server::{BearerToken, Hooks, SessionInfo};
use hongyan_shared::{Packet, PacketType, Transport, UserId};
use hongyan_tests::{Event, Peer, TestServer, on_each_transport};
use serde_json::{Value, json};

/// Sends `body` to `/api/messages/c2c` and returns the 200 answer.
async fn c2c(server_http: std::net::SocketAddr, body: Value) -> Value {
    Api::new(server_http)
        .post("/api/messages/c2c", body)
        .await
        .ok()
}

/// Acknowledges `packet` as its receiver's client does: to its sender.
async fn acknowledge(peer: &mut Peer, packet: &Packet) {
    let fp = packet.fp.as_ref().expect("a QoS message");
    let (from, to) = (packet.to.as_ref().unwrap(), packet.from.as_ref().unwrap());
    peer.send(&Packet::ack(from.as_str(), to.as_str(), fp, false))
        .await;
}

async fn a_message_awaited_is_delivered_once_the_receiver_acknowledges(transport: Transport) {
    let server = server().await;
    let mut bob = server.logged_in(transport, "bob").await;
    let http = server.http;
    let reply = tokio::spawn(async move {
        c2c(
            http,
            json!({"from": "alice", "to": "bob", "content": "hi", "fp": "m-1", "wait": true}),
        )
        .await
    });
    let packet = next_data(&mut bob).await;
    assert_eq!(packet.from.as_ref().map(UserId::as_str), Some("alice"));
    assert_eq!(packet.fp.as_ref().map(|fp| fp.as_str()), Some("m-1"));
    acknowledge(&mut bob, &packet).await;
    assert_eq!(
        reply.await.unwrap(),
        json!({"from": "alice", "to": "bob", "fp": "m-1", "outcome": "delivered"})
    );
    // The C2C hooks ran as for a client's message.
    server
        .hooks
        .wait_for(|e| matches!(e, Event::C2cDelivered(p) if p.fp == packet.fp))
        .await;
}

on_each_transport!(a_message_awaited_is_delivered_once_the_receiver_acknowledges);

#[tokio::test]
async fn a_message_for_an_offline_user_is_stored_and_replayed_from_its_sender() {
    let server = TestServer::with(|c| {
        c.admin_token = Some(BearerToken::new(TOKEN).unwrap());
        c.store = StoreSpec::Memory;
    })
    .await;
    let reply = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "while you were out", "typeu": 4}),
    )
    .await;
    assert_eq!(reply["outcome"], "stored");
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let packet = next_data(&mut bob).await;
    assert_eq!(packet.from.as_ref().map(UserId::as_str), Some("alice"));
    assert_eq!(packet.data_content.as_deref(), Some("while you were out"));
    assert_eq!(packet.typeu, 4);
    assert_eq!(
        packet.fp.as_ref().map(|fp| fp.as_str()),
        reply["fp"].as_str()
    );
}

#[tokio::test]
async fn without_a_store_the_offline_hook_decides_between_stored_and_lost() {
    let server = server().await;
    let lost = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "hello?", "wait": true}),
    )
    .await;
    assert_eq!(lost["outcome"], "lost");
    server
        .hooks
        .wait_for(|e| matches!(e, Event::Offline(p) if p.data_content.as_deref() == Some("hello?")))
        .await;

    server
        .hooks
        .store_offline
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let kept = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "kept"}),
    )
    .await;
    assert_eq!(kept["outcome"], "stored");
}

#[tokio::test]
async fn a_message_never_acknowledged_is_lost_after_the_retransmission_or_stored_with_a_store() {
    for (store, outcome) in [(StoreSpec::Off, "lost"), (StoreSpec::Memory, "stored")] {
        let server = TestServer::with(|c| {
            c.admin_token = Some(BearerToken::new(TOKEN).unwrap());
            c.s2c_schedule = fast_schedule();
            c.store = store;
        })
        .await;
        let mut bob = server.logged_in(Transport::Tcp, "bob").await;
        let reply = c2c(
            server.http,
            json!({"from": "alice", "to": "bob", "content": "ignored", "wait": true}),
        )
        .await;
        assert_eq!(reply["outcome"], outcome);
        let first = next_data(&mut bob).await;
        let again = next_data(&mut bob).await;
        assert_eq!(first.fp, again.fp, "retransmitted with its fingerprint");
    }
}

#[tokio::test]
async fn not_waiting_or_without_qos_the_outcome_is_sent() {
    let server = server().await;
    let mut bob = server.logged_in(Transport::WebSocket, "bob").await;
    let sent = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "one"}),
    )
    .await;
    assert_eq!(sent["outcome"], "sent");
    assert!(sent["fp"].is_string(), "a fresh fingerprint: {sent}");
    next_data(&mut bob).await;

    let plain = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "two", "qos": false, "wait": true}),
    )
    .await;
    assert_eq!(
        plain,
        json!({"from": "alice", "to": "bob", "fp": null, "outcome": "sent"})
    );
    let packet = next_data(&mut bob).await;
    assert!(!packet.qos);

    let pending = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "three", "wait": true, "timeoutMs": 200}),
    )
    .await;
    assert_eq!(
        pending["outcome"], "sent",
        "not acknowledged within timeoutMs: not known yet"
    );
}

/// Hooks that drop messages whose content mentions spam, and note whom `before_c2c` saw.
#[derive(Default)]
struct Moderating {
    seen: Mutex<Vec<(String, Transport)>>,
}

#[async_trait]
impl Hooks for Moderating {
    fn before_c2c(&self, packet: &mut Packet, session: SessionInfo) -> bool {
        let from = packet.from.as_ref().map_or("", UserId::as_str).to_owned();
        self.seen.lock().unwrap().push((from, session.transport));
        !packet
            .data_content
            .as_deref()
            .unwrap_or("")
            .contains("spam")
    }
}

#[tokio::test]
async fn the_moderation_hook_sees_the_sender_over_http_and_may_refuse() {
    let hooks = Arc::new(Moderating::default());
    let server = TestServer::with_hooks(hooks.clone(), |c| {
        c.admin_token = Some(BearerToken::new(TOKEN).unwrap());
    })
    .await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let refused = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "buy spam", "fp": "s-1", "wait": true}),
    )
    .await;
    assert_eq!(
        refused,
        json!({"from": "alice", "to": "bob", "fp": "s-1", "outcome": "refused"})
    );
    let fine = c2c(
        server.http,
        json!({"from": "alice", "to": "bob", "content": "lunch?"}),
    )
    .await;
    assert_eq!(fine["outcome"], "sent");
    let packet = next_data(&mut bob).await;
    assert_eq!(
        packet.data_content.as_deref(),
        Some("lunch?"),
        "the refused one never came"
    );
    assert_eq!(
        *hooks.seen.lock().unwrap(),
        [
            ("alice".to_owned(), Transport::Http),
            ("alice".to_owned(), Transport::Http)
        ]
    );
}

#[tokio::test]
async fn a_batch_answers_per_message_in_order_and_keeps_each_receivers_order() {
    let hooks = Arc::new(Moderating::default());
    let server = TestServer::with_hooks(hooks, |c| {
        c.admin_token = Some(BearerToken::new(TOKEN).unwrap());
        c.store = StoreSpec::Memory;
    })
    .await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let reply = Api::new(server.http)
        .post(
            "/api/messages/c2c/batch",
            json!({"messages": [
                {"from": "alice", "to": "bob", "content": "first", "fp": "b-1"},
                {"from": "carol", "to": "dave", "content": "offline", "fp": "b-2"},
                {"from": "alice", "to": "bob", "content": "spam", "fp": "b-3"},
                {"from": "carol", "to": "bob", "content": "second", "fp": "b-4"},
            ]}),
        )
        .await
        .ok();
    let outcomes: Vec<(&str, &str)> = reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["fp"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("b-1", "sent"),
            ("b-2", "stored"),
            ("b-3", "refused"),
            ("b-4", "sent")
        ]
    );
    let first = next_data(&mut bob).await;
    let second = next_data(&mut bob).await;
    assert_eq!(first.data_content.as_deref(), Some("first"));
    assert_eq!(second.data_content.as_deref(), Some("second"));
    assert_eq!(second.from.as_ref().map(UserId::as_str), Some("carol"));
    assert_eq!(
        bob.next(Duration::from_millis(100)).await,
        hongyan_tests::Recv::Timeout
    );

    // Awaited, a batch waits for every acknowledgement.
    let http = server.http;
    let waiting = tokio::spawn(async move {
        Api::new(http)
            .post(
                "/api/messages/c2c/batch",
                json!({"wait": true, "messages": [
                    {"from": "alice", "to": "bob", "content": "x"},
                    {"from": "alice", "to": "bob", "content": "y"},
                ]}),
            )
            .await
            .ok()
    });
    for _ in 0..2 {
        let packet = next_data(&mut bob).await;
        acknowledge(&mut bob, &packet).await;
    }
    let results = waiting.await.unwrap();
    for result in results["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "delivered", "{results}");
    }
}

#[tokio::test]
async fn bad_messages_are_refused_before_anything_is_sent() {
    let server = server_with(|_| {}).await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let api = Api::new(server.http);
    let long_fp = "f".repeat(129);
    for body in [
        json!({"from": "0", "to": "bob", "content": "x"}),
        json!({"from": "alice", "to": "", "content": "x"}),
        json!({"from": "alice", "to": "-1", "content": "x"}),
        json!({"from": "alice", "to": "bob", "content": "x", "fp": ""}),
        json!({"from": "alice", "to": "bob", "content": "x", "fp": long_fp}),
        json!({"from": "alice", "to": "bob", "content": "x", "wait": true, "timeoutMs": 0}),
        json!({"from": "alice", "to": "bob", "content": "x", "timeoutMs": 60001}),
    ] {
        api.post("/api/messages/c2c", body)
            .await
            .assert_error(422, "invalid_request");
    }
    for body in [
        json!({"messages": []}),
        json!({"messages": [
            {"from": "alice", "to": "bob", "content": "ok"},
            {"from": "alice", "to": "0", "content": "not for the server"},
        ]}),
        json!({"messages": [
            {"from": "alice", "to": "bob", "content": "a", "fp": "same"},
            {"from": "carol", "to": "bob", "content": "b", "fp": "same"},
        ]}),
    ] {
        api.post("/api/messages/c2c/batch", body)
            .await
            .assert_error(422, "invalid_request");
    }
    assert_eq!(
        bob.next(Duration::from_millis(100)).await,
        hongyan_tests::Recv::Timeout
    );

    // A chosen fingerprint still in flight to the receiver is a conflict, as for a push.
    let once = json!({"from": "alice", "to": "bob", "content": "once", "fp": "dup"});
    assert_eq!(c2c(server.http, once.clone()).await["outcome"], "sent");
    let packet = bob.expect(PacketType::CommonData).await;
    api.post("/api/messages/c2c", once)
        .await
        .assert_error(409, "fp_in_flight");
    acknowledge(&mut bob, &packet).await;
}
