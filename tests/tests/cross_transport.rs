//! Users on different transports chat with QoS: one registry and one logic core serve all.

use hongyan_shared::{Fingerprint, Packet, PacketType, Transport};
use hongyan_tests::{Event, TestServer};

#[tokio::test]
async fn tcp_websocket_and_udp_users_chat_in_a_ring_with_acknowledgements() {
    let server = TestServer::start().await;
    let users = [
        ("tina", Transport::Tcp),
        ("wendy", Transport::WebSocket),
        ("uma", Transport::Udp),
    ];
    let mut peers = Vec::new();
    for (user, t) in users {
        peers.push(server.logged_in(t, user).await);
    }
    for i in 0..users.len() {
        let (from, _) = users[i];
        let (to, _) = users[(i + 1) % users.len()];
        let fp = Fingerprint::from(format!("ring-{i}"));
        let msg = Packet::common_data(from, to, format!("{from} → {to} ✓"), Some(fp.clone()), 3);
        peers[i].send(&msg).await;
        let j = (i + 1) % users.len();
        let got = peers[j].expect(PacketType::CommonData).await;
        assert_eq!(got, msg);
        peers[j].send(&Packet::ack(to, from, &fp, false)).await;
        let ack = peers[i].expect(PacketType::Ack).await;
        assert_eq!(
            (ack.from_str(), ack.data_content.as_deref()),
            (to, Some(fp.as_str()))
        );
        server
            .hooks
            .wait_for(|e| *e == Event::S2cReceived(to.into(), fp.clone()))
            .await;
    }
    assert_eq!(server.handle.in_flight(), 0);
}

#[tokio::test]
async fn shutdown_closes_every_session_and_reports_logouts() {
    let server = TestServer::start().await;
    let mut ws = server.logged_in(Transport::WebSocket, "w").await;
    let mut tcp = server.logged_in(Transport::Tcp, "t").await;
    let hooks = server.hooks.clone();
    server.stop().await;
    ws.expect_closed().await;
    tcp.expect_closed().await;
    assert_eq!(hooks.count(|e| matches!(e, Event::Logout(..))), 2);
}
