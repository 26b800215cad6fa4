//! The native client against `hongyan serve` on TCP, UDP and WebSocket: login, C2C, C2S and
//! S2C with delivery reports, logout and refused logins.

use crate::client_support;

use std::time::Duration;

use client_support::{endpoint, fast, next_matching, online, until_end};
use hongyan_client::{Client, ClientEvent, ConnectionState};
use hongyan_server::Outgoing;
use hongyan_shared::{LoginInfo, Transport, UserId};
use hongyan_tests::{Event, TestServer, WAIT, on_each_transport};

async fn c2c_c2s_and_s2c_arrive_and_are_reported_delivered(t: Transport) {
    let server = TestServer::start().await;
    let (alice, mut alice_events) = online(fast(endpoint(&server, t)), "alice").await;
    let (_bob, mut bob_events) = online(fast(endpoint(&server, t)), "bob").await;

    let fp = alice.send_c2c("bob", "hi bob", 7).await.unwrap();
    let received = next_matching(&mut bob_events, WAIT, |e| {
        matches!(e, ClientEvent::MessageReceived(_))
    })
    .await;
    let ClientEvent::MessageReceived(message) = received else {
        unreachable!()
    };
    assert_eq!(message.from, UserId::from("alice"));
    assert_eq!(message.content, "hi bob");
    assert_eq!(message.typeu, 7);
    assert_eq!(message.fp.as_ref(), Some(&fp));
    next_matching(&mut alice_events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;

    let fp = alice.send_c2s("to the server", 11).await.unwrap();
    next_matching(&mut alice_events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;
    let c2s = server
        .hooks
        .wait_for(|e| matches!(e, Event::C2s(p) if p.fp.as_ref() == Some(&fp)))
        .await;
    let Event::C2s(packet) = c2s else {
        unreachable!()
    };
    assert_eq!(packet.data_content.as_deref(), Some("to the server"));
    assert_eq!(packet.typeu, 11);

    let sent = server
        .handle
        .send(Outgoing::new("bob", "from the server"))
        .await
        .unwrap();
    let received = next_matching(&mut bob_events, WAIT, |e| {
        matches!(e, ClientEvent::MessageReceived(_))
    })
    .await;
    let ClientEvent::MessageReceived(message) = received else {
        unreachable!()
    };
    assert!(message.from.is_server());
    assert_eq!(message.fp, sent.fp);
    assert_eq!(sent.outcome().await, hongyan_server::Delivery::Delivered);
}

async fn logout_ends_the_session_on_both_sides(t: Transport) {
    let server = TestServer::start().await;
    let (alice, mut events) = online(fast(endpoint(&server, t)), "alice").await;
    alice.logout().await;
    let rest = until_end(&mut events, WAIT).await;
    assert_eq!(
        rest.last(),
        Some(&ClientEvent::StateChanged(ConnectionState::Offline))
    );
    server
        .hooks
        .wait_for(|e| matches!(e, Event::Logout(u, _) if u.as_str() == "alice"))
        .await;
    assert!(!server.handle.is_online(&UserId::from("alice")));
    assert!(alice.send_c2s("too late", 0).await.is_err());
}

async fn a_refused_login_is_reported_and_ends_the_session(t: Transport) {
    let server = TestServer::start().await;
    let login = LoginInfo::new("mallory", Some("refuse-1025"), None);
    let (client, mut events) = Client::connect(fast(endpoint(&server, t)), login).unwrap();
    let seen = until_end(&mut events, WAIT).await;
    assert!(
        seen.contains(&ClientEvent::LoginResponse {
            code: 1025,
            first_login_time: -1
        }),
        "{seen:?}"
    );
    assert_eq!(client.state(), ConnectionState::Offline);
}

async fn keepalives_hold_the_session_through_several_server_expiries(t: Transport) {
    // MODE_3S on the server: TCP/WS sessions expire after 7 s of silence, UDP after 10 s.
    // The client sends MODE_3S keepalives, so it must stay online, on one session.
    let server = TestServer::with(|c| {
        c.tcp_sense_mode = Some(hongyan_shared::SenseMode::S3);
        c.udp_sense_mode = Some(hongyan_shared::SenseMode::S3);
        c.ws_sense_mode = Some(hongyan_shared::SenseMode::S3);
    })
    .await;
    let config = hongyan_client::ClientConfig::new(endpoint(&server, t))
        .with_sense_mode(hongyan_shared::SenseMode::S3);
    let (alice, mut events) = online(config, "alice").await;
    let seen = client_support::collect_for(&mut events, Duration::from_secs(12)).await;
    assert!(
        !seen.contains(&ClientEvent::LinkClosed),
        "no link loss: {seen:?}"
    );
    assert_eq!(alice.state(), ConnectionState::Online);
    assert_eq!(
        server.hooks.count(|e| matches!(e, Event::Login(_))),
        1,
        "never re-logged in"
    );
}

on_each_transport!(
    c2c_c2s_and_s2c_arrive_and_are_reported_delivered,
    logout_ends_the_session_on_both_sides,
    a_refused_login_is_reported_and_ends_the_session,
    keepalives_hold_the_session_through_several_server_expiries,
);
