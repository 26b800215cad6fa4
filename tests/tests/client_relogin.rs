//! Link loss, server restarts and kickouts, end to end: the client logs in again with the
//! `firstLoginTime` of its first login (so the server never kicks the client's own new
//! session), and a kickout by a second login stops auto-relogin for good.

use crate::client_support;

use std::time::Duration;

use client_support::{collect_for, endpoint, fast, next_matching, online, until_end};
use hongyan_client::{ClientEvent, ConnectionState, Endpoint};
use hongyan_shared::{Kickout, Transport, UserId};
use hongyan_tests::proxy::{Faults, LossyProxy};
use hongyan_tests::{Event, TestServer, WAIT, on_each_transport};

fn alice() -> UserId {
    UserId::from("alice")
}

fn first_login_time(server: &TestServer) -> i64 {
    server
        .handle
        .online_info(&alice())
        .expect("alice online")
        .first_login_time
}

async fn relogin_after_a_cut_link_keeps_the_first_login_time(transport: Transport) {
    let server = TestServer::start().await;
    let (proxy, endpoint) = match transport {
        Transport::Tcp => {
            let proxy = LossyProxy::tcp(server.tcp, Faults::none()).await;
            let endpoint = Endpoint::Tcp(proxy.addr.to_string());
            (proxy, endpoint)
        }
        _ => {
            let proxy = LossyProxy::udp(server.udp, Faults::none()).await;
            let endpoint = Endpoint::Udp(proxy.addr.to_string());
            (proxy, endpoint)
        }
    };
    let (client, mut events) = online(fast(endpoint), "alice").await;
    let first = first_login_time(&server);

    proxy.cut();
    // TCP notices the closed connection at once; UDP through its keepalive timeout or the
    // server's 301 for the unknown new source port.
    next_matching(&mut events, WAIT, |e| {
        *e == ClientEvent::StateChanged(ConnectionState::Reconnecting)
    })
    .await;
    let relogin = next_matching(&mut events, WAIT, |e| {
        matches!(e, ClientEvent::LoginResponse { .. })
    })
    .await;
    assert_eq!(
        relogin,
        ClientEvent::LoginResponse {
            code: 0,
            first_login_time: first
        },
        "the relogin carried the saved firstLoginTime"
    );
    client.wait_for(ConnectionState::Online).await.unwrap();
    assert_eq!(first_login_time(&server), first);
    let later = collect_for(&mut events, Duration::from_secs(2)).await;
    assert!(
        !later.iter().any(|e| matches!(e, ClientEvent::Kickout(_))),
        "no self-kick: {later:?}"
    );
    assert_eq!(client.state(), ConnectionState::Online);
}

#[tokio::test]
async fn tcp_relogin_after_a_cut_link_keeps_the_first_login_time() {
    relogin_after_a_cut_link_keeps_the_first_login_time(Transport::Tcp).await;
}

#[tokio::test]
async fn udp_relogin_after_a_cut_link_keeps_the_first_login_time() {
    relogin_after_a_cut_link_keeps_the_first_login_time(Transport::Udp).await;
}

async fn relogin_after_the_server_restarts(t: Transport) {
    let server = TestServer::start().await;
    let (tcp, udp, http) = (server.tcp, server.udp, server.http);
    let (client, mut events) = online(fast(endpoint(&server, t)), "alice").await;
    let first = first_login_time(&server);
    server.stop().await;

    next_matching(&mut events, WAIT, |e| {
        *e == ClientEvent::StateChanged(ConnectionState::Reconnecting)
    })
    .await;
    let server = TestServer::with(|c| {
        c.tcp_addr = Some(tcp);
        c.udp_addr = Some(udp);
        c.http_addr = Some(http);
    })
    .await;
    next_matching(&mut events, WAIT, |e| {
        *e == ClientEvent::StateChanged(ConnectionState::Online)
    })
    .await;
    assert_eq!(client.state(), ConnectionState::Online);
    assert_eq!(
        first_login_time(&server),
        first,
        "the restarted server sees the saved firstLoginTime"
    );
    server.hooks.wait_for(|e| *e == Event::Login(alice())).await;
    let fp = client.send_c2s("after the restart", 0).await.unwrap();
    next_matching(&mut events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;
}

async fn a_kickout_by_a_second_login_stops_auto_relogin(t: Transport) {
    let server = TestServer::start().await;
    let (first, mut first_events) = online(fast(endpoint(&server, t)), "alice").await;
    let (second, mut second_events) = online(fast(endpoint(&server, t)), "alice").await;

    let seen = until_end(&mut first_events, WAIT).await;
    assert!(
        seen.contains(&ClientEvent::Kickout(Kickout {
            code: 1,
            reason: None
        })),
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&ClientEvent::StateChanged(ConnectionState::Offline))
    );
    assert_eq!(first.state(), ConnectionState::Offline);

    // Ten relogin intervals later the kicked client has not come back.
    let later = collect_for(&mut second_events, Duration::from_secs(3)).await;
    assert!(
        !later.iter().any(|e| matches!(e, ClientEvent::Kickout(_))),
        "{later:?}"
    );
    assert_eq!(second.state(), ConnectionState::Online);
    assert_eq!(server.hooks.count(|e| *e == Event::Login(alice())), 2);
}

on_each_transport!(
    relogin_after_the_server_restarts,
    a_kickout_by_a_second_login_stops_auto_relogin,
);
