//! The protocol's observable behaviour (docs/PROTOCOL.md §3–§6), scenario by scenario, over
//! TCP, UDP and WebSocket. Where UDP or a hardening rule deliberately differs, the scenario
//! says so.

use std::time::Duration;

use hongyan_shared::{
    ErrorResponse, Fingerprint, Kickout, LoginResponse, Packet, PacketType, Transport,
};
use hongyan_tests::{Event, Recv, TestServer, WAIT, on_each_transport};

fn fp(s: &str) -> Option<Fingerprint> {
    Some(Fingerprint::from(s))
}

/// TCP and WebSocket sessions are closed after a 301; UDP pseudo-sessions stay (§4.5).
async fn keepalive_before_login_gets_301(t: Transport) {
    let server = TestServer::start().await;
    let mut peer = server.peer(t).await;
    let keepalive = Packet::keep_alive("ju3");
    peer.send(&keepalive).await;
    let error = peer.expect(PacketType::Error).await;
    assert_eq!(error.to_str(), "-1");
    let payload = ErrorResponse::decode(error.data_content.as_deref().unwrap()).unwrap();
    assert_eq!(payload.error_code, 301);
    if t == Transport::Udp {
        // Hardening: an unauthenticated UDP address gets no reply larger than its request.
        assert_eq!(payload.error_msg, None);
        peer.send(&keepalive).await;
        peer.expect(PacketType::Error).await;
    } else {
        assert_eq!(
            payload.error_msg.as_deref(),
            Some(keepalive.to_json().as_str())
        );
        peer.expect_closed().await;
    }
}

async fn echo_before_login_is_answered_and_session_kept(t: Transport) {
    let server = TestServer::start().await;
    let mut peer = server.peer(t).await;
    let echo = Packet::new(PacketType::Echo, Some("ping-echo".into()), "alice", "0");
    peer.send(&echo).await;
    if t == Transport::Udp {
        // Hardening: UDP echo needs a login (the reply would outgrow a spoofable request).
        peer.expect_silence(Duration::from_millis(300)).await;
        peer.login("alice", 0).await;
        peer.send(&echo).await;
    }
    let reply = peer.expect(PacketType::EchoResponse).await;
    assert_eq!(
        reply.to_json(),
        r#"{"bridge":false,"type":53,"dataContent":"ping-echo","from":"alice","to":"0","QoS":false,"typeu":-1,"sm":-1}"#
    );
    peer.send(&echo).await;
    peer.expect(PacketType::EchoResponse).await;
}

async fn first_login_is_answered_with_the_server_time(t: Transport) {
    let server = TestServer::start().await;
    let mut peer = server.peer(t).await;
    let before = now_ms();
    let response = peer.login("alice", 0).await;
    assert_eq!(response.code, 0);
    assert!((before..=now_ms()).contains(&response.first_login_time));
    server
        .hooks
        .wait_for(|e| *e == Event::Login("alice".into()))
        .await;
    assert!(server.handle.is_online(&"alice".into()));
}

async fn duplicate_c2s_is_acked_again_but_delivered_once(t: Transport) {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(t, "alice").await;
    let msg = Packet::common_data("alice", "0", "to server", fp("c2s-1"), 11);
    for _ in 0..2 {
        alice.send(&msg).await;
        let ack = alice.expect(PacketType::Ack).await;
        assert_eq!(
            ack.to_json(),
            r#"{"bridge":false,"type":4,"dataContent":"c2s-1","from":"0","to":"alice","QoS":false,"typeu":-1,"sm":-1}"#
        );
    }
    server.hooks.wait_for(|e| matches!(e, Event::C2s(_))).await;
    alice.send(&Packet::keep_alive("alice")).await;
    alice.expect(PacketType::KeepAliveResponse).await;
    assert_eq!(server.hooks.count(|e| matches!(e, Event::C2s(_))), 1);
}

async fn c2s_without_qos_gets_no_ack(t: Transport) {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(t, "alice").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "0",
            "fire and forget",
            None,
            1,
        ))
        .await;
    server.hooks.wait_for(|e| matches!(e, Event::C2s(_))).await;
    alice.expect_silence(Duration::from_millis(300)).await;
}

async fn c2c_to_offline_user_stored_by_the_app_is_acked_in_the_receivers_name(t: Transport) {
    let server = TestServer::start().await;
    server
        .hooks
        .store_offline
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut alice = server.logged_in(t, "alice").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "carol",
            "later",
            fp("off-1"),
            1,
        ))
        .await;
    let ack = alice.expect(PacketType::Ack).await;
    assert_eq!((ack.from_str(), ack.to_str()), ("carol", "alice"));
    assert_eq!(ack.data_content.as_deref(), Some("off-1"));
    server
        .hooks
        .wait_for(|e| matches!(e, Event::Offline(_)))
        .await;
}

async fn c2c_to_offline_user_not_stored_gets_no_ack(t: Transport) {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(t, "alice").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "carol",
            "lost",
            fp("off-2"),
            1,
        ))
        .await;
    server
        .hooks
        .wait_for(|e| matches!(e, Event::Offline(_)))
        .await;
    alice.expect_silence(Duration::from_millis(300)).await;
}

async fn c2c_to_online_user_is_forwarded_acked_and_retransmitted_until_lost(t: Transport) {
    let server = TestServer::with(|c| c.s2c_schedule = fast_schedule()).await;
    let mut alice = server.logged_in(t, "alice").await;
    let mut bob = server.logged_in(t, "bob").await;
    let msg = Packet::common_data("alice", "bob", "hello B, from A", fp("c2c-1"), 7);
    alice.send(&msg).await;
    let forwarded = bob.expect(PacketType::CommonData).await;
    assert_eq!(
        forwarded.to_json(),
        msg.to_json(),
        "identical packet, same fp and typeu"
    );
    let ack = alice.expect(PacketType::Ack).await;
    assert_eq!((ack.from_str(), ack.to_str()), ("bob", "alice"));
    server
        .hooks
        .wait_for(|e| matches!(e, Event::C2cDelivered(_)))
        .await;
    // Bob never acknowledges: one retransmission, then the server reports it lost.
    let resent = bob.expect(PacketType::CommonData).await;
    assert_eq!(resent.fp, msg.fp);
    let lost = server
        .hooks
        .wait_for(|e| matches!(e, Event::S2cLost(_)))
        .await;
    assert_eq!(lost, Event::S2cLost(msg.clone()));
    bob.expect_silence(Duration::from_millis(400)).await;
    alice.expect_silence(Duration::from_millis(10)).await;
}

async fn acked_c2c_is_not_retransmitted(t: Transport) {
    let server = TestServer::with(|c| c.s2c_schedule = fast_schedule()).await;
    let mut alice = server.logged_in(t, "alice").await;
    let mut bob = server.logged_in(t, "bob").await;
    alice
        .send(&Packet::common_data("alice", "bob", "hi", fp("c2c-2"), 7))
        .await;
    bob.expect(PacketType::CommonData).await;
    bob.send(&Packet::ack(
        "bob",
        "alice",
        &Fingerprint::from("c2c-2"),
        false,
    ))
    .await;
    server
        .hooks
        .wait_for(|e| *e == Event::S2cReceived("bob".into(), "c2c-2".into()))
        .await;
    bob.expect_silence(Duration::from_millis(800)).await;
    assert_eq!(server.hooks.count(|e| matches!(e, Event::S2cLost(_))), 0);
    alice.expect(PacketType::Ack).await;
    alice.expect_silence(Duration::from_millis(10)).await;
}

async fn fresh_login_elsewhere_kicks_the_old_session(t: Transport) {
    let server = TestServer::start().await;
    let mut old = server.logged_in(t, "bob").await;
    let mut new = server.logged_in(t, "bob").await;
    let kick = old.expect(PacketType::Kickout).await;
    assert_eq!(
        kick.to_json(),
        r#"{"bridge":false,"type":54,"dataContent":"{\"code\":1}","from":"0","to":"bob","QoS":false,"typeu":-1,"sm":-1}"#
    );
    if t != Transport::Udp {
        old.expect_closed().await;
    }
    new.send(&Packet::keep_alive("bob")).await;
    new.expect(PacketType::KeepAliveResponse).await;
    // A kicked session is no longer mapped, so it produces no logout (§4.3).
    assert_eq!(server.hooks.count(|e| matches!(e, Event::Logout(..))), 0);
}

async fn stale_instance_is_answered_then_kicked_and_the_online_one_kept(t: Transport) {
    let server = TestServer::start().await;
    let mut online = server.peer(t).await;
    let first = online.login("bob", 0).await.first_login_time;
    let mut stale = server.peer(t).await;
    let response = stale.login("bob", first - 1000).await;
    assert_eq!(
        response,
        LoginResponse {
            code: 0,
            first_login_time: first - 1000
        }
    );
    let kick = stale.expect(PacketType::Kickout).await;
    assert_eq!(
        Kickout::decode(kick.data_content.as_deref().unwrap())
            .unwrap()
            .code,
        1
    );
    if t != Transport::Udp {
        stale.expect_closed().await;
    }
    online.send(&Packet::keep_alive("bob")).await;
    online.expect(PacketType::KeepAliveResponse).await;
}

async fn same_instance_reconnecting_does_not_kick_its_old_session(t: Transport) {
    let server = TestServer::start().await;
    let mut old = server.peer(t).await;
    let first = old.login("bob", 0).await.first_login_time;
    let mut new = server.peer(t).await;
    assert_eq!(new.login("bob", first).await.first_login_time, first);
    old.expect_silence(Duration::from_millis(300)).await;
    // Keepalives from the displaced session are answered on the online one (§4.1).
    old.send(&Packet::keep_alive("bob")).await;
    new.expect(PacketType::KeepAliveResponse).await;
}

async fn refused_login_gets_the_code_and_tcp_ws_close(t: Transport) {
    let server = TestServer::start().await;
    let mut peer = server.peer(t).await;
    let response = peer.login_with("mallory", "refuse-1025", 0).await;
    assert_eq!(
        response,
        LoginResponse {
            code: 1025,
            first_login_time: -1
        }
    );
    if t == Transport::Udp {
        // The pseudo-session stays, unauthenticated.
        peer.send(&Packet::keep_alive("mallory")).await;
        peer.expect(PacketType::Error).await;
    } else {
        peer.expect_closed().await;
    }
    assert!(!server.handle.is_online(&"mallory".into()));
}

async fn login_without_user_id_or_payload_gets_no_reply(t: Transport) {
    let server = TestServer::start().await;
    for body in [
        r#"{"type":0,"dataContent":"{\"loginToken\":\"t\"}","from":"x","to":"0"}"#,
        r#"{"type":0,"from":"x","to":"0"}"#,
    ] {
        let mut peer = server.peer(t).await;
        peer.send_json(body).await;
        if t == Transport::Udp {
            peer.expect_silence(Duration::from_millis(300)).await;
        } else {
            peer.expect_closed().await;
        }
    }
}

async fn idle_session_is_closed_at_the_sense_mode_expiry(t: Transport) {
    // MODE_3S, the shortest mode: TCP and WebSocket expire after 7 s, UDP after 10 s.
    let server = TestServer::with(|c| {
        c.tcp_sense_mode = Some(hongyan_shared::SenseMode::S3);
        c.ws_sense_mode = Some(hongyan_shared::SenseMode::S3);
        c.udp_sense_mode = Some(hongyan_shared::SenseMode::S3);
    })
    .await;
    let mut peer = server.logged_in(t, "sleepy").await;
    let started = tokio::time::Instant::now();
    let expiry = hongyan_shared::SenseMode::S3.timing(t).server_expire;
    server
        .hooks
        .wait_for_within(expiry + WAIT, |e| {
            *e == Event::Logout("sleepy".into(), None)
        })
        .await;
    let took = started.elapsed();
    assert!(
        took >= expiry - Duration::from_millis(100),
        "closed after {took:?}"
    );
    if t != Transport::Udp {
        peer.expect_closed().await;
    }
}

async fn admin_kick_sends_code_2_closes_and_reports_logout(t: Transport) {
    let server = TestServer::start().await;
    let mut carol = server.logged_in(t, "carol").await;
    assert!(server.handle.kick(&"carol".into(), Some("admin says bye")));
    let kick = carol.expect(PacketType::Kickout).await;
    assert_eq!(
        kick.data_content.as_deref(),
        Some(r#"{"code":2,"reason":"admin says bye"}"#)
    );
    if t != Transport::Udp {
        carol.expect_closed().await;
    }
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("carol".into(), Some(2)))
        .await;
    assert!(!server.handle.is_online(&"carol".into()));
}

async fn logout_closes_the_session_and_reports_it(t: Transport) {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(t, "alice").await;
    alice.send(&Packet::logout("alice")).await;
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("alice".into(), None))
        .await;
    if t != Transport::Udp {
        alice.expect_closed().await;
    }
}

async fn server_push_with_qos_is_acked_and_reported_delivered(t: Transport) {
    let server = TestServer::start().await;
    let mut bob = server.logged_in(t, "bob").await;
    let sent = server
        .handle
        .send(hongyan_server::Outgoing::new("bob", "hello from server"))
        .await
        .unwrap();
    let fp = sent.fp.clone().unwrap();
    let push = bob.expect(PacketType::CommonData).await;
    assert_eq!((push.from_str(), push.qos, push.typeu), ("0", true, -1));
    assert_eq!(push.fp.as_ref(), Some(&fp));
    bob.send(&Packet::ack("bob", "0", &fp, false)).await;
    assert_eq!(
        tokio::time::timeout(WAIT, sent.outcome()).await.unwrap(),
        hongyan_server::Delivery::Delivered
    );
}

async fn unknown_packet_types_are_ignored(t: Transport) {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(t, "alice").await;
    alice
        .send_json(r#"{"type":9,"from":"alice","to":"0"}"#)
        .await;
    alice.send(&Packet::keep_alive("alice")).await;
    alice.expect(PacketType::KeepAliveResponse).await;
}

/// The reference's server schedule (one retransmission, then lost) on a 300 ms tick.
fn fast_schedule() -> hongyan_shared::RetransmitSchedule {
    hongyan_shared::RetransmitSchedule {
        check_interval: Duration::from_millis(300),
        just_sent: Duration::from_millis(120),
        max_retries: 1,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

on_each_transport!(
    keepalive_before_login_gets_301,
    echo_before_login_is_answered_and_session_kept,
    first_login_is_answered_with_the_server_time,
    duplicate_c2s_is_acked_again_but_delivered_once,
    c2s_without_qos_gets_no_ack,
    c2c_to_offline_user_stored_by_the_app_is_acked_in_the_receivers_name,
    c2c_to_offline_user_not_stored_gets_no_ack,
    c2c_to_online_user_is_forwarded_acked_and_retransmitted_until_lost,
    acked_c2c_is_not_retransmitted,
    fresh_login_elsewhere_kicks_the_old_session,
    stale_instance_is_answered_then_kicked_and_the_online_one_kept,
    same_instance_reconnecting_does_not_kick_its_old_session,
    refused_login_gets_the_code_and_tcp_ws_close,
    login_without_user_id_or_payload_gets_no_reply,
    idle_session_is_closed_at_the_sense_mode_expiry,
    admin_kick_sends_code_2_closes_and_reports_logout,
    logout_closes_the_session_and_reports_it,
    server_push_with_qos_is_acked_and_reported_delivered,
    unknown_packet_types_are_ignored,
);

#[tokio::test]
async fn udp_keepalive_reply_never_exceeds_the_request() {
    let server = TestServer::start().await;
    let mut peer = server.peer(Transport::Udp).await;
    let tiny = r#"{"type":1}"#;
    peer.send_json(tiny).await;
    assert_eq!(peer.next(Duration::from_millis(300)).await, Recv::Timeout);
    let padded = format!(r#"{{"type":1,"from":"{}"}}"#, "x".repeat(80));
    peer.send_json(&padded).await;
    match peer.next(WAIT).await {
        Recv::Packet(body) => assert!(body.len() <= padded.len()),
        other => panic!("expected a compact 301, got {other:?}"),
    }
}

#[tokio::test]
async fn server_timestamp_stamps_every_packet_sent_and_every_retransmission() {
    let server = TestServer::with(|c| {
        c.server_timestamp = true;
        c.s2c_schedule = fast_schedule();
    })
    .await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let before = now_ms();
    alice.send(&Packet::keep_alive("alice")).await;
    assert!(alice.expect(PacketType::KeepAliveResponse).await.sm >= before);
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "stamped",
            fp("sm-1"),
            1,
        ))
        .await;
    let first = bob.expect(PacketType::CommonData).await;
    assert!(first.sm >= before);
    assert!(alice.expect(PacketType::Ack).await.sm >= before);
    let resent = bob.expect(PacketType::CommonData).await;
    assert!(resent.sm > first.sm, "re-stamped on retransmission");
    assert_eq!(resent.fp, first.fp);
}
