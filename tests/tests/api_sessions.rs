//! Receiving as a user over HTTP (issue 15): an HTTP session is created through the API,
//! verified by the login hooks, counted as the user's online session, and streams what the
//! user receives as Server-Sent Events, acknowledged by HTTP requests. Its counterparts are
//! raw MobileIMSDK-framed sockets: the seed's `loginConnect` / `sendMsg` flow end to end, the
//! duplicate-login rule both ways, kicks, idle expiry, reconnection, and QoS (an event not
//! acknowledged is retransmitted, then stored, then replayed to the next session).

use crate::api_support;

use std::time::Duration;

use api_support::sse::{self, EventStream, Item};
use api_support::{Api, Backend, TOKEN, fast_schedule, hooked, next_data, server, server_with};
use hongyan_server::BearerToken;
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_shared::{Fingerprint, Kickout, Packet, PacketType, Transport, UserId};
use hongyan_tests::{Event, TestServer, WAIT};
use serde_json::json;

/// A QoS message from `from` to `to`, as a MobileIMSDK client sends it.
fn message(from: &str, to: &str, fp: &str, content: &str) -> Packet {
    let mut packet = Packet::common_data(from, to, content, Some(Fingerprint::from(fp)), 3);
    packet.qos = true;
    packet
}

/// Waits until `user`'s online session is over `transport`, or they are offline (`None`).
async fn wait_online(server: &TestServer, user: &str, transport: Option<Transport>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = server
            .handle
            .online_info(&UserId::from(user))
            .map(|info| info.session.transport);
        if now == transport {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} is online over {now:?}, expected {transport:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the server no longer awaits `user`'s acknowledgement of `fp`.
async fn wait_settled(server: &TestServer, user: &str, fp: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while server
        .handle
        .is_in_flight(&UserId::from(user), &Fingerprint::from(fp))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{fp} still awaits {user}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_seeds_flow_over_http_alice_logs_in_sends_to_a_tcp_client_and_hears_back() {
    let server = server().await;
    let api = Api::new(server.http);
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;

    // loginConnect: alice logs in over HTTP with her credentials, verified by the hooks.
    let created = sse::create(&api, "alice", "alice-secret").await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json["userId"], "alice");
    assert!(created.json["firstLoginTime"].as_i64().unwrap() > 0);
    let token = created.json["sessionToken"].as_str().unwrap().to_owned();
    server
        .hooks
        .wait_for(|e| *e == Event::Verify(UserId::from("alice")))
        .await;
    wait_online(&server, "alice", Some(Transport::Http)).await;
    let users = api.get("/api/users/alice").await.ok();
    assert_eq!(users["transport"], "http");
    let mut alice = EventStream::open(server.http, &token, None).await;

    // sendMsg: alice's message reaches bob's socket from alice; bob acknowledges it.
    let sent = tokio::spawn({
        let api = Api::new(server.http);
        async move {
            api.post(
                "/api/messages/c2c",
                json!({"from": "alice", "to": "bob", "content": "hello bob", "typeu": 1, "wait": true}),
            )
            .await
        }
    });
    let packet = next_data(&mut bob).await;
    assert_eq!(packet.from.as_ref().map(UserId::as_str), Some("alice"));
    assert_eq!(packet.data_content.as_deref(), Some("hello bob"));
    assert_eq!(packet.typeu, 1);
    assert!(packet.qos);
    let fp = packet.fp.clone().expect("a QoS message has a fingerprint");
    bob.send(&Packet::ack("bob", "alice", &fp, false)).await;
    let sent = sent.await.unwrap().ok();
    assert_eq!(
        sent,
        json!({"from": "alice", "to": "bob", "fp": fp.as_str(), "outcome": "delivered"})
    );

    // bob answers over TCP: the server acknowledges in alice's name, alice's stream has it.
    bob.send(&message("bob", "alice", "answer-1", "hi alice"))
        .await;
    let ack = bob.expect(PacketType::Ack).await;
    assert_eq!(ack.from.as_ref().map(UserId::as_str), Some("alice"));
    assert_eq!(ack.data_content.as_deref(), Some("answer-1"));
    let event = alice.message().await;
    assert_eq!(event.id.as_deref(), Some("answer-1"));
    assert_eq!(
        event.data,
        json!({"from": "bob", "to": "alice", "fp": "answer-1", "content": "hi alice", "typeu": 3, "qos": true})
    );

    // alice acknowledges: the server stops retransmitting and tells the hooks.
    assert!(
        server
            .handle
            .is_in_flight(&UserId::from("alice"), &Fingerprint::from("answer-1"))
    );
    sse::ack(&api, &token, &["answer-1"]).await;
    wait_settled(&server, "alice", "answer-1").await;
    server
        .hooks
        .wait_for(|e| {
            *e == Event::S2cReceived(UserId::from("alice"), Fingerprint::from("answer-1"))
        })
        .await;
}

#[tokio::test]
async fn a_login_the_hooks_refuse_answers_403_with_their_code_and_nobody_is_online() {
    let server = server().await;
    let api = Api::new(server.http);
    let refused = sse::create(&api, "alice", "refuse-1025").await;
    refused.assert_error(403, "login_refused");
    assert_eq!(refused.json["loginCode"], 1025);
    assert!(!server.handle.is_online(&UserId::from("alice")));

    for user in ["", "0", "-1"] {
        sse::create(&api, user, "token")
            .await
            .assert_error(422, "invalid_request");
    }
    Api::anonymous(server.http)
        .post("/api/sessions", json!({"userId": "alice"}))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn the_verify_webhook_checks_the_users_credentials_and_sees_an_http_session() {
    let backend = Backend::start().await;
    let server = hooked(backend.config(), |_| {}).await;
    let api = Api::new(server.http);
    let refused = sse::create(&api, "alice", "refuse-1030").await;
    refused.assert_error(403, "login_refused");
    assert_eq!(refused.json["loginCode"], 1030);

    let created = sse::create(&api, "alice", "alice-secret").await;
    assert_eq!(created.status, 201, "{created:?}");
    let verify = backend
        .wait_for_call(|c| c.endpoint == "verify" && c.body["token"] == "alice-secret")
        .await;
    assert_eq!(verify.body["userId"], "alice");
    assert_eq!(verify.body["transport"], "http");
    backend
        .wait_for_event(|e| e["type"] == "login" && e["transport"] == "http")
        .await;
}

#[tokio::test]
async fn sessions_are_bounded_and_an_ended_one_makes_room() {
    let server = server_with(|c| c.max_http_sessions = 1).await;
    let api = Api::new(server.http);
    let token = sse::session(&api, "alice").await;
    sse::create(&api, "bob", "token")
        .await
        .assert_error(503, "too_many_sessions");
    let reply = api.call("delete", &format!("/api/sessions/{token}")).await;
    assert_eq!(reply.status, 204);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = sse::create(&api, "bob", "token").await;
        if reply.status == 201 {
            break;
        }
        reply.assert_error(503, "too_many_sessions");
        assert!(tokio::time::Instant::now() < deadline, "room once it ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_http_session_kicks_the_users_socket_session() {
    let server = server().await;
    let mut tcp = server.logged_in(Transport::Tcp, "alice").await;
    let _token = sse::session(&Api::new(server.http), "alice").await;
    let kickout = tcp.expect(PacketType::Kickout).await;
    let kickout = Kickout::decode(kickout.data_content.as_deref().unwrap()).unwrap();
    assert_eq!(kickout.code, 1, "a duplicate login");
    tcp.expect_closed().await;
    wait_online(&server, "alice", Some(Transport::Http)).await;
}

#[tokio::test]
async fn a_socket_login_kicks_the_users_http_session_and_ends_its_stream() {
    let server = server().await;
    let api = Api::new(server.http);
    let token = sse::session(&api, "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    let _tcp = server.logged_in(Transport::Tcp, "alice").await;
    let kickout = stream.event().await.expect("the kickout");
    assert_eq!(kickout.event, "kickout");
    assert_eq!(kickout.data, json!({"code": 1, "reason": null}));
    stream.expect_end().await;
    wait_online(&server, "alice", Some(Transport::Tcp)).await;
    let gone = api
        .call("post", &format!("/api/sessions/{token}/keepalive"))
        .await;
    gone.assert_error(404, "no_such_session");
}

#[tokio::test]
async fn an_administrators_kick_ends_the_stream_with_the_kickout_event() {
    let server = server().await;
    let api = Api::new(server.http);
    let token = sse::session(&api, "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    let kicked = api
        .post("/api/users/alice/kick", json!({"reason": "suspended"}))
        .await
        .ok();
    assert_eq!(kicked["kickCode"], 2);
    let kickout = stream.event().await.expect("the kickout");
    assert_eq!(kickout.event, "kickout");
    assert_eq!(kickout.data, json!({"code": 2, "reason": "suspended"}));
    stream.expect_end().await;
    server
        .hooks
        .wait_for(|e| *e == Event::Logout(UserId::from("alice"), Some(2)))
        .await;
    assert!(!server.handle.is_online(&UserId::from("alice")));
}

#[tokio::test]
async fn a_logout_ends_the_session_and_its_stream_with_a_logout_event() {
    let server = server().await;
    let api = Api::new(server.http);
    let token = sse::session(&api, "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    let reply = api.call("delete", &format!("/api/sessions/{token}")).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let logout = stream.event().await.expect("the logout event");
    assert_eq!(logout.event, "logout");
    assert_eq!(logout.data, json!({"reason": "logout"}));
    stream.expect_end().await;
    server
        .hooks
        .wait_for(|e| *e == Event::Logout(UserId::from("alice"), None))
        .await;
    assert!(!server.handle.is_online(&UserId::from("alice")));
    api.call("delete", &format!("/api/sessions/{token}"))
        .await
        .assert_error(404, "no_such_session");
    let reply = reqwest::get(format!(
        "http://{}/api/sessions/{token}/events",
        server.http
    ))
    .await
    .unwrap();
    assert_eq!(reply.status(), 404);
}

#[tokio::test]
async fn a_shutdown_ends_the_stream_with_a_logout_event_and_logs_the_user_out() {
    let server = server().await;
    let token = sse::session(&Api::new(server.http), "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    let hooks = server.hooks.clone();
    let stopping = tokio::spawn(server.stop());
    let logout = stream.event().await.expect("the logout event");
    assert_eq!(logout.event, "logout");
    assert_eq!(logout.data, json!({"reason": "shutdown"}));
    stream.expect_end().await;
    stopping.await.unwrap();
    assert!(
        hooks
            .events()
            .contains(&Event::Logout(UserId::from("alice"), None))
    );
}

#[tokio::test]
async fn a_session_with_no_stream_and_no_request_idles_out() {
    let server = server_with(|c| c.http_session_idle = Duration::from_secs(1)).await;
    let api = Api::new(server.http);
    let token = sse::session(&api, "alice").await;
    server
        .hooks
        .wait_for(|e| *e == Event::Logout(UserId::from("alice"), None))
        .await;
    assert!(!server.handle.is_online(&UserId::from("alice")));
    api.call("post", &format!("/api/sessions/{token}/keepalive"))
        .await
        .assert_error(404, "no_such_session");
}

#[tokio::test]
async fn an_open_stream_keeps_its_session_past_the_idle_expiry() {
    let server = server_with(|c| c.http_session_idle = Duration::from_secs(1)).await;
    let token = sse::session(&Api::new(server.http), "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    // Heartbeats come every third of the expiry: six of them span two expiries.
    for _ in 0..6 {
        assert_eq!(stream.item().await, Some(Item::Comment("keepalive".into())));
    }
    assert_eq!(
        server
            .handle
            .online_info(&UserId::from("alice"))
            .map(|i| i.session.transport),
        Some(Transport::Http)
    );
    assert_eq!(server.hooks.count(|e| matches!(e, Event::Logout(..))), 0);
}

#[tokio::test]
async fn a_new_stream_replaces_the_old_and_gets_again_what_was_not_acknowledged() {
    let server = server().await;
    let api = Api::new(server.http);
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let token = sse::session(&api, "alice").await;
    let mut first = EventStream::open(server.http, &token, None).await;
    for i in 1..=3 {
        bob.send(&message("bob", "alice", &format!("m{i}"), "hi"))
            .await;
        bob.expect(PacketType::Ack).await;
        assert_eq!(first.message().await.id, Some(format!("m{i}")));
    }

    // Reconnecting with the id of the first: the other two come again, in order, at once.
    let mut second = EventStream::open(server.http, &token, Some("m1")).await;
    first.expect_end().await;
    assert_eq!(second.message().await.id.as_deref(), Some("m2"));
    assert_eq!(second.message().await.id.as_deref(), Some("m3"));
    sse::ack(&api, &token, &["m1", "m2", "m3"]).await;
    for fp in ["m1", "m2", "m3"] {
        wait_settled(&server, "alice", fp).await;
    }

    // Nothing unacknowledged is left to send again.
    bob.send(&message("bob", "alice", "m4", "later")).await;
    let mut third = EventStream::open(server.http, &token, None).await;
    assert_eq!(third.message().await.id.as_deref(), Some("m4"));
}

#[tokio::test]
async fn an_event_not_acknowledged_is_retransmitted_then_stored_and_replayed_to_the_next_session() {
    let server = TestServer::with(|c| {
        c.admin_token = Some(BearerToken::new(TOKEN).unwrap());
        c.store = StoreSpec::Memory;
        c.s2c_schedule = fast_schedule();
    })
    .await;
    let api = Api::new(server.http);
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let token = sse::session(&api, "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    bob.send(&message("bob", "alice", "unread", "are you there?"))
        .await;
    bob.expect(PacketType::Ack).await;

    // Sent, sent again by the server's retransmission, then stored when it ran out.
    assert_eq!(stream.message().await.id.as_deref(), Some("unread"));
    assert_eq!(stream.message().await.id.as_deref(), Some("unread"));
    wait_stored(&server, "alice", 1).await;

    // The session ends without acknowledging it; the next one is sent it, from bob.
    let reply = api.call("delete", &format!("/api/sessions/{token}")).await;
    assert_eq!(reply.status, 204);
    let token = sse::session(&api, "alice").await;
    let mut stream = EventStream::open(server.http, &token, None).await;
    let replayed = stream.message().await;
    assert_eq!(replayed.id.as_deref(), Some("unread"));
    assert_eq!(replayed.data["from"], "bob");
    assert_eq!(replayed.data["content"], "are you there?");
    sse::ack(&api, &token, &["unread"]).await;
    wait_stored(&server, "alice", 0).await;
}

#[tokio::test]
async fn requests_of_a_session_that_does_not_exist_or_are_malformed_are_refused() {
    let server = server().await;
    let api = Api::new(server.http);
    api.post("/api/sessions/nope/acks", json!({"fps": ["x"]}))
        .await
        .assert_error(404, "no_such_session");
    let token = sse::session(&api, "alice").await;
    for fps in [json!([]), json!([""])] {
        api.post(&format!("/api/sessions/{token}/acks"), json!({"fps": fps}))
            .await
            .assert_error(422, "invalid_request");
    }
    let keepalive = api
        .call("post", &format!("/api/sessions/{token}/keepalive"))
        .await;
    assert_eq!(keepalive.status, 204);
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
