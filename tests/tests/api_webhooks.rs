//! The webhooks against a stub backend: login verification (accept, refuse, backend down or
//! slow), offline hand-off (stored or not), and event notifications (which, in what shape,
//! retried, never holding up a session).

use crate::api_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use api_support::{
    Api, Backend, ack, fast_schedule, hooked, login, next_data, stop_and_flush, unreachable_url,
};
use hongyan_server::BearerToken;
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_server::webhook::VERIFY_UNAVAILABLE;
use hongyan_shared::{Packet, PacketType, Transport, UserId};
use serde_json::{Value, json};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_login_is_verified_by_the_backend_which_learns_who_and_from_where() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.token = Some(BearerToken::new("hook-secret").unwrap());
    let server = hooked(config, |_| {}).await;

    let (_alice, code) = login(&server, "alice", "t-alice").await;
    assert_eq!(code, 0);
    let call = backend.wait_for_call(|c| c.endpoint == "verify").await;
    assert_eq!(call.authorization.as_deref(), Some("Bearer hook-secret"));
    let body = &call.body;
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["token"], "t-alice");
    assert_eq!(body["extra"], Value::Null);
    assert_eq!(body["transport"], "tcp");
    assert!(
        body["peerAddr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{body}"
    );
    assert!(
        body["sessionId"].as_str().unwrap().starts_with('s'),
        "{body}"
    );
    assert!(server.handle.is_online(&UserId::from("alice")));
}

#[tokio::test]
async fn a_login_the_backend_refuses_gets_the_backends_code_and_is_closed() {
    let backend = Backend::start().await;
    let server = hooked(backend.config(), |_| {}).await;
    let (mut mallory, code) = login(&server, "mallory", "refuse-1031").await;
    assert_eq!(code, 1031);
    mallory.expect_closed().await;
    assert!(!server.handle.is_online(&UserId::from("mallory")));
}

#[tokio::test]
async fn an_unreachable_backend_refuses_logins_with_the_unavailable_code() {
    let mut config = hongyan_server::WebhookConfig::new(
        hongyan_server::WebhookConfig::parse_url(&unreachable_url()).unwrap(),
    );
    config.timeout = Duration::from_secs(2);
    let server = hooked(config, |_| {}).await;
    let (_peer, code) = login(&server, "alice", "t").await;
    assert_eq!(code, VERIFY_UNAVAILABLE);
    assert_eq!(VERIFY_UNAVAILABLE, 1024);

    let text = Api::anonymous(server.http).get("/metrics").await.text;
    assert_eq!(
        metric(&text, "hongyan_webhook_failures_total{endpoint=\"verify\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "hongyan_webhook_retries_total{endpoint=\"verify\"}"),
        1.0,
        "a refused connection is retried once"
    );
    assert_eq!(
        metric(&text, "hongyan_logins_total{result=\"refused\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_backend_that_does_not_answer_in_time_refuses_the_login_without_a_retry() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.timeout = Duration::from_millis(300);
    let server = hooked(config, |_| {}).await;
    let started = Instant::now();
    let (_peer, code) = login(&server, "alice", "slow").await;
    assert_eq!(code, VERIFY_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let text = Api::anonymous(server.http).get("/metrics").await.text;
    assert_eq!(
        metric(&text, "hongyan_webhook_retries_total{endpoint=\"verify\"}"),
        0.0
    );
    assert!(
        text.contains("hongyan_webhook_request_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test]
async fn an_offline_message_the_backend_stores_is_acknowledged_to_the_sender() {
    let backend = Backend::start().await;
    backend
        .behaviour()
        .store_offline
        .store(true, Ordering::SeqCst);
    let server = hooked(backend.config(), |_| {}).await;
    let (mut alice, _) = login(&server, "alice", "t").await;

    let message = Packet::common_data("alice", "bob", "see you", Some("fp-off".into()), 9);
    alice.send(&message).await;
    let acked = alice.expect(PacketType::Ack).await;
    assert_eq!(acked.data_content.as_deref(), Some("fp-off"));
    assert_eq!(
        acked.from.as_ref().map(UserId::as_str),
        Some("bob"),
        "the pseudo-ACK"
    );

    let call = backend.wait_for_call(|c| c.endpoint == "offline").await;
    assert_eq!(
        call.body,
        json!({"from": "alice", "to": "bob", "fp": "fp-off", "content": "see you",
               "typeu": 9, "qos": true})
    );
}

/// With a message store the message is kept before the backend hears of it, and the
/// notification is sent in the background: a backend that takes its time (or its whole
/// timeout) must not hold up the sender's session, whose next messages would time out.
#[tokio::test]
async fn with_a_store_a_slow_offline_backend_never_holds_up_the_sender() {
    let backend = Backend::start().await;
    backend
        .behaviour()
        .offline_stall
        .store(true, Ordering::SeqCst);
    let server = hooked(backend.config(), |c| c.store = StoreSpec::Memory).await;
    let (mut alice, _) = login(&server, "alice", "t").await;
    for i in 0..3 {
        let fp = format!("fp-{i}");
        let message = Packet::common_data("alice", "bob", "see you", Some(fp.as_str().into()), 9);
        alice.send(&message).await;
        let acked = alice.expect(PacketType::Ack).await;
        assert_eq!(acked.data_content.as_deref(), Some(fp.as_str()));
    }
    let call = backend.wait_for_call(|c| c.endpoint == "offline").await;
    assert_eq!(call.body["fp"], "fp-0", "notified, for a push notification");
}

/// The notifications wait in a bounded queue: beyond it (the backend keeps falling behind)
/// they are dropped and counted, and the senders still hear at once.
#[tokio::test]
async fn stored_message_notifications_beyond_their_queue_are_dropped_and_counted() {
    let backend = Backend::start().await;
    backend
        .behaviour()
        .offline_stall
        .store(true, Ordering::SeqCst);
    let mut config = backend.config();
    config.event_queue = 2;
    config.concurrency = 1;
    let server = hooked(config, |c| c.store = StoreSpec::Memory).await;
    let (mut alice, _) = login(&server, "alice", "t").await;
    for i in 0..8 {
        let fp = format!("fp-{i}");
        let message = Packet::common_data("alice", "bob", "hi", Some(fp.as_str().into()), 9);
        alice.send(&message).await;
        let acked = alice.expect(PacketType::Ack).await;
        assert_eq!(acked.data_content.as_deref(), Some(fp.as_str()));
    }
    let text = Api::anonymous(server.http).get("/metrics").await.text;
    assert!(
        metric(
            &text,
            "hongyan_webhook_events_dropped_total{reason=\"queue_full\"}"
        ) >= 4.0,
        "at most one call in flight, one waiting for its slot and two queued: {text}"
    );
}

#[tokio::test]
async fn an_offline_message_the_backend_does_not_store_is_not_acknowledged() {
    let backend = Backend::start().await;
    let server = hooked(backend.config(), |_| {}).await;
    let (mut alice, _) = login(&server, "alice", "t").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "hello?",
            Some("fp-2".into()),
            -1,
        ))
        .await;
    backend.wait_for_call(|c| c.endpoint == "offline").await;
    alice.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn events_tell_the_backend_about_logins_messages_deliveries_losses_and_logouts() {
    let backend = Backend::start().await;
    let server = hooked(backend.config(), |c| c.s2c_schedule = fast_schedule()).await;
    let (mut alice, _) = login(&server, "alice", "t").await;
    let mut bob = server.peer(Transport::WebSocket).await;
    assert_eq!(bob.login_with("bob", "t", 0).await.code, 0);

    alice
        .send(&Packet::common_data(
            "alice",
            "0",
            "for the server",
            Some("c2s-1".into()),
            4,
        ))
        .await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "hi bob",
            Some("c2c-1".into()),
            -1,
        ))
        .await;
    let forwarded = next_data(&mut bob).await;
    ack(&mut bob, "bob", &forwarded).await;
    let lost = Api::new(server.http)
        .post(
            "/api/messages",
            json!({"to": "bob", "content": "ignored", "fp": "s2c-1", "wait": true}),
        )
        .await
        .ok();
    assert_eq!(lost["outcome"], "lost");
    Api::new(server.http)
        .post("/api/users/bob/kick", json!({"reason": "bye"}))
        .await
        .ok();

    let login = backend
        .wait_for_event(|e| e["type"] == "login" && e["userId"] == "bob")
        .await;
    assert_eq!(login["transport"], "ws");
    assert!(
        login["sessionId"].is_string() && login["peerAddr"].is_string(),
        "{login}"
    );
    let c2s = backend.wait_for_event(|e| e["type"] == "c2s").await;
    assert_eq!(
        (
            &c2s["from"],
            &c2s["to"],
            &c2s["fp"],
            &c2s["content"],
            &c2s["typeu"]
        ),
        (
            &json!("alice"),
            &json!("0"),
            &json!("c2s-1"),
            &json!("for the server"),
            &json!(4)
        )
    );
    assert_eq!(c2s["transport"], "tcp");
    let delivered = backend
        .wait_for_event(|e| e["type"] == "c2cDelivered")
        .await;
    assert_eq!(
        (&delivered["from"], &delivered["to"]),
        (&json!("alice"), &json!("bob"))
    );
    let acked = backend
        .wait_for_event(|e| e["type"] == "s2cDelivered" && e["fp"] == "c2c-1")
        .await;
    assert_eq!(acked["userId"], "bob");
    let s2c_lost = backend.wait_for_event(|e| e["type"] == "s2cLost").await;
    assert_eq!(
        (&s2c_lost["from"], &s2c_lost["to"], &s2c_lost["fp"]),
        (&json!("0"), &json!("bob"), &json!("s2c-1"))
    );
    let logout = backend
        .wait_for_event(|e| e["type"] == "logout" && e["userId"] == "bob")
        .await;
    assert_eq!(logout["kickCode"], 2);

    let batches: Vec<_> = backend
        .calls()
        .into_iter()
        .filter(|c| c.endpoint == "events")
        .collect();
    let instance = batches[0].body["instance"].as_str().unwrap().to_owned();
    assert!(
        batches
            .iter()
            .all(|b| b.body["instance"] == instance.as_str())
    );
    let events = backend.events();
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(
        events
            .iter()
            .all(|e| e["time"].as_i64().unwrap() > 1_600_000_000_000)
    );
    drop(alice);
    stop_and_flush(server).await;
    backend
        .wait_for_event(|e| {
            e["type"] == "logout" && e["userId"] == "alice" && e["kickCode"].is_null()
        })
        .await;
}

#[tokio::test]
async fn only_the_configured_events_are_sent() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.events = "logout".parse().unwrap();
    let server = hooked(config, |_| {}).await;
    let (alice, _) = login(&server, "alice", "t").await;
    drop(alice);
    backend.wait_for_event(|e| e["type"] == "logout").await;
    stop_and_flush(server).await;
    assert!(
        backend.events().iter().all(|e| e["type"] == "logout"),
        "{:?}",
        backend.events()
    );
}

#[tokio::test]
async fn a_failed_event_batch_is_retried_with_the_same_ids() {
    let backend = Backend::start().await;
    backend
        .behaviour()
        .events_fail
        .store(true, Ordering::SeqCst);
    let server = hooked(backend.config(), |_| {}).await;
    let (_alice, _) = login(&server, "alice", "t").await;
    let refused = backend
        .wait_for_call(|c| c.endpoint == "events refused")
        .await;
    backend
        .behaviour()
        .events_fail
        .store(false, Ordering::SeqCst);
    let delivered = backend.wait_for_call(|c| c.endpoint == "events").await;
    assert_eq!(
        delivered.body, refused.body,
        "the same batch, ids and all, again"
    );
    let text = Api::anonymous(server.http).get("/metrics").await.text;
    assert!(metric(&text, "hongyan_webhook_retries_total{endpoint=\"events\"}") >= 1.0);
    assert_eq!(metric(&text, "hongyan_webhook_events_delivered_total"), 1.0);
}

#[tokio::test]
async fn a_stalled_events_backend_never_holds_up_sessions_and_drops_are_counted() {
    let backend = Backend::start().await;
    backend
        .behaviour()
        .events_stall
        .store(true, Ordering::SeqCst);
    let mut config = backend.config();
    config.event_queue = 2;
    let server = hooked(config, |_| {}).await;
    let started = Instant::now();
    let mut peers = Vec::new();
    for i in 0..8 {
        let (peer, code) = login(&server, &format!("user{i}"), "t").await;
        assert_eq!(code, 0);
        peers.push(peer);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let text = Api::anonymous(server.http).get("/metrics").await.text;
    assert!(
        metric(
            &text,
            "hongyan_webhook_events_dropped_total{reason=\"queue_full\"}"
        ) >= 5.0,
        "{text}"
    );
}
