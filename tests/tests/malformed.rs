//! Malformed, truncated, oversized and garbage input on every transport: the offender gets
//! the reference's reaction, the server stays up and other users are unaffected.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hongyan_shared::{Packet, PacketType, Transport};
use hongyan_tests::{Event, Peer, TestServer, on_each_transport};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const GARBAGE: &[&str] = &[
    "not json at all",
    "null",
    "[1,2,3]",
    r#"{"type":1"#,
    r#"{"type":"two"}"#,
    r#"{"type":2,"dataContent":{"an":"object"}}"#,
    r#"{"type":2,"QoS":1}"#,
    r#"{"type":1} trailing"#,
];

/// Proves the server still serves others after `offender` misbehaved.
async fn others_still_chat(server: &TestServer, t: Transport) {
    let mut alice = server.logged_in(t, "alice").await;
    let mut bob = server.logged_in(t, "bob").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "still here",
            Some("ok".into()),
            1,
        ))
        .await;
    bob.expect(PacketType::CommonData).await;
    alice.expect(PacketType::Ack).await;
}

async fn garbage_closes_the_offending_session_only(t: Transport) {
    let server = TestServer::start().await;
    for (i, garbage) in GARBAGE.iter().enumerate() {
        let user = format!("bad{i}");
        let mut offender = server.logged_in(t, &user).await;
        offender.send_json(garbage).await;
        // The offender's session is closed, which logs the user out (§4.4).
        server
            .hooks
            .wait_for(|e| *e == Event::Logout(user.as_str().into(), None))
            .await;
        if t != Transport::Udp {
            offender.expect_closed().await;
        }
    }
    others_still_chat(&server, t).await;
}

async fn garbage_from_a_stranger_gets_no_reply(t: Transport) {
    let server = TestServer::start().await;
    let mut stranger = server.peer(t).await;
    stranger
        .send_json("\u{1}\u{2} definitely not a packet")
        .await;
    if t == Transport::Udp {
        stranger.expect_silence(Duration::from_millis(300)).await;
    } else {
        stranger.expect_closed().await;
    }
    others_still_chat(&server, t).await;
}

async fn deeply_nested_json_is_refused_without_a_crash(t: Transport) {
    let server = TestServer::start().await;
    let mut offender = server.peer(t).await;
    let nested = format!(
        r#"{{"type":1,"dataContent":{}{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    offender.send_json(&nested).await;
    if t != Transport::Udp {
        offender.expect_closed().await;
    }
    others_still_chat(&server, t).await;
}

on_each_transport!(
    garbage_closes_the_offending_session_only,
    garbage_from_a_stranger_gets_no_reply,
    deeply_nested_json_is_refused_without_a_crash,
);

#[tokio::test]
async fn tcp_oversized_header_closes_before_the_body_arrives() {
    let server = TestServer::start().await;
    for header in [[0xFF, 0xFF, 0xFF, 0xFF], [0, 0, 0x18, 0x01]] {
        let mut peer = server.logged_in(Transport::Tcp, "big").await;
        peer.send_raw(&header).await;
        peer.expect_closed().await;
    }
    others_still_chat(&server, Transport::Tcp).await;
}

#[tokio::test]
async fn tcp_zero_length_frame_closes_without_reply() {
    let server = TestServer::start().await;
    let mut peer = server.peer(Transport::Tcp).await;
    peer.send_raw(&[0, 0, 0, 0]).await;
    peer.expect_closed().await;
}

#[tokio::test]
async fn tcp_partial_and_coalesced_frames_are_reassembled() {
    let server = TestServer::start().await;
    let mut peer = server.logged_in(Transport::Tcp, "alice").await;
    let body = Packet::keep_alive("alice").to_json();
    let mut wire = Vec::new();
    for _ in 0..3 {
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(body.as_bytes());
    }
    let (first, rest) = wire.split_at(7);
    peer.send_raw(first).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.send_raw(rest).await;
    for _ in 0..3 {
        peer.expect(PacketType::KeepAliveResponse).await;
    }
}

#[tokio::test]
async fn tcp_truncated_frame_then_disconnect_logs_the_user_out() {
    let server = TestServer::start().await;
    let mut peer = server.logged_in(Transport::Tcp, "alice").await;
    peer.send_raw(&[0, 0, 0, 100, b'{']).await;
    drop(peer);
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("alice".into(), None))
        .await;
}

#[tokio::test]
async fn udp_datagram_over_2048_bytes_logs_the_user_out() {
    let server = TestServer::start().await;
    let mut peer = server.logged_in(Transport::Udp, "alice").await;
    peer.send_raw(&vec![b' '; 2049]).await;
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("alice".into(), None))
        .await;
    peer.send(&Packet::keep_alive("alice")).await;
    peer.expect(PacketType::Error).await;
}

async fn raw_ws(
    server: &TestServer,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap()
        .0
}

async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(hongyan_tests::WAIT, ws.next())
            .await
            .ok()?
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

#[tokio::test]
async fn websocket_binary_frame_closes_with_bye() {
    let server = TestServer::start().await;
    let mut ws = raw_ws(&server).await;
    ws.send(Message::binary(b"{\"type\":1}".to_vec()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Normal));
}

#[tokio::test]
async fn websocket_message_over_64_kib_closes_with_1009() {
    let server = TestServer::start().await;
    let mut ws = raw_ws(&server).await;
    let _ = ws.send(Message::text("x".repeat(65537))).await;
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
    // 65 000 bytes are fine (the session then closes for bad JSON, not for size).
    let mut ws = raw_ws(&server).await;
    ws.send(Message::text(format!(
        r#"{{"type":9,"x":"{}"}}"#,
        "y".repeat(65000)
    )))
    .await
    .unwrap();
    ws.send(Message::text(Packet::keep_alive("nobody").to_json()))
        .await
        .unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
}

/// A datagram over `udp_max_inbound` (2048 bytes), however much of a packet it starts with:
/// from a logged-in address it ends the pseudo-session, unanswered, and logs its user out;
/// from a stranger it opens nothing and is not answered either.
#[tokio::test]
async fn udp_datagram_over_the_limit_ends_its_pseudo_session_unanswered() {
    let server = TestServer::start().await;
    let big = Packet::common_data("alice", "bob", "x".repeat(2100), Some("big".into()), 1);
    let mut alice = server.logged_in(Transport::Udp, "alice").await;
    alice.send(&big).await;
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("alice".into(), None))
        .await;
    alice.expect_silence(Duration::from_millis(300)).await;

    let mut stranger = server.peer(Transport::Udp).await;
    stranger.send(&big).await;
    stranger.expect_silence(Duration::from_millis(300)).await;
    // Just under the limit it is a packet: answered (a 301, as it has not logged in).
    let fits = Packet::common_data("x", "bob", "x".repeat(1900), None, 1);
    stranger.send(&fits).await;
    assert_eq!(stranger.packet().await.kind, PacketType::Error);
}

#[tokio::test]
async fn websocket_pings_do_not_keep_a_session_alive() {
    let server = TestServer::with(|c| c.ws_sense_mode = Some(hongyan_shared::SenseMode::S3)).await;
    let mut ws = raw_ws(&server).await;
    let started = tokio::time::Instant::now();
    let pinger = async {
        loop {
            if ws.send(Message::Ping(vec![1].into())).await.is_err() {
                break;
            }
            if let Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) =
                tokio::time::timeout(Duration::from_secs(1), ws.next()).await
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(12), pinger)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "closed by idle expiry, not early"
    );
}

#[tokio::test]
async fn many_bad_peers_at_once_do_not_disturb_good_ones() {
    let server = TestServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..60u32 {
        let t = [Transport::Tcp, Transport::Udp, Transport::WebSocket][(i % 3) as usize];
        let mut peer = Peer::connect(t, &server).await;
        tasks.push(tokio::spawn(async move {
            let noise: Vec<u8> = (0..(i * 37 % 900 + 1))
                .map(|b| (b * 31 + i) as u8)
                .collect();
            match t {
                Transport::WebSocket => peer.send_json(&String::from_utf8_lossy(&noise)).await,
                _ => peer.send_raw(&noise).await,
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for t in [Transport::Tcp, Transport::Udp, Transport::WebSocket] {
        others_still_chat(&server, t).await;
    }
}
