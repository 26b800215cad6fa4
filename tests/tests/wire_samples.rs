//! The captured MobileIMSDK sessions (docs/PROTOCOL.md §1.4), replayed: every `C>S`
//! packet is sent byte for byte, and every `S>C` answer is checked field by field (only the
//! server clock in `firstLoginTime` differs).
//!
//! Each is replayed twice: against the default server, and against one keeping conversation
//! history (§9.4), where a client that never asks for history must see exactly the same
//! packets: no new type, no history key. The one difference is the message store's (§6.4):
//! a message for an offline user is stored, so its sender is acknowledged.

use std::time::Duration;

use hongyan_server::hongyan_store::StoreSpec;
use hongyan_shared::{LoginResponse, Packet, Transport};
use hongyan_tests::{Peer, TestServer};

/// The default server, or one keeping conversation history (a memory store, the default
/// retention).
async fn server(history: bool) -> TestServer {
    if history {
        let server = TestServer::with(|c| c.store = StoreSpec::Memory).await;
        assert!(
            server.handle.keeps_history(),
            "history is on by default with a store"
        );
        server
    } else {
        TestServer::start().await
    }
}

/// Checks `got` against the captured `expected` packet. Login responses carry the server's
/// clock, so there only the code and the presence of a time are compared.
fn assert_matches(got: &Packet, expected: &str) {
    let expected = Packet::decode(expected.as_bytes()).expect("captured packet decodes");
    if expected.kind == hongyan_shared::PacketType::LoginResponse {
        let want = LoginResponse::decode(expected.data_content.as_deref().unwrap()).unwrap();
        let have = LoginResponse::decode(got.data_content.as_deref().unwrap()).unwrap();
        assert_eq!(have.code, want.code);
        assert!(have.first_login_time > 0);
        let (mut got, mut expected) = (got.clone(), expected);
        got.data_content = None;
        expected.data_content = None;
        assert_eq!(got, expected);
    } else {
        assert_eq!(got, &expected);
        assert_eq!(got.to_json(), expected.to_json());
    }
}

async fn expect(peer: &mut Peer, captured: &str) {
    let got = peer.packet().await;
    assert_matches(&got, captured);
}

#[tokio::test]
async fn tcp_capture_replays_with_the_same_answers() {
    tcp_capture(false).await;
}

#[tokio::test]
async fn tcp_capture_replays_with_the_same_answers_with_history_on() {
    tcp_capture(true).await;
}

async fn tcp_capture(history: bool) {
    let server = server(history).await;
    let mut a = server.peer(Transport::Tcp).await;
    let mut b = server.peer(Transport::Tcp).await;

    a.send_json(r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"tcp6841A\",\"loginToken\":\"tok-tcp6841A\",\"firstLoginTime\":0}","from":"tcp6841A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    expect(&mut a, r#"{"bridge":false,"type":50,"dataContent":"{\"code\":0,\"firstLoginTime\":1795892611544}","from":"0","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;
    b.send_json(r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"tcp6841B\",\"loginToken\":\"tok-tcp6841B\",\"firstLoginTime\":0}","from":"tcp6841B","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    let _ = b.packet().await;

    // C2C with QoS: relayed unchanged to B, acknowledged to A in B's name.
    let c2c = r#"{"bridge":false,"type":2,"dataContent":"hello B, from A #tcp6841","from":"tcp6841A","to":"tcp6841B","fp":"ed00f8e8-f56f-4dbd-88ff-31c5a7a52b7b","QoS":true,"typeu":7,"sm":-1}"#;
    a.send_json(c2c).await;
    expect(&mut b, c2c).await;
    expect(&mut a, r#"{"bridge":false,"type":4,"dataContent":"ed00f8e8-f56f-4dbd-88ff-31c5a7a52b7b","from":"tcp6841B","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;
    // B's own ACK is consumed, never forwarded.
    b.send_json(r#"{"bridge":false,"type":4,"dataContent":"ed00f8e8-f56f-4dbd-88ff-31c5a7a52b7b","from":"tcp6841B","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;

    a.send_json(r#"{"bridge":false,"type":2,"dataContent":"C2S ping from tcp6841A","from":"tcp6841A","to":"0","fp":"126e8bf6-8eb8-47cd-aad8-1c3b4600463c","QoS":true,"typeu":8,"sm":-1}"#).await;
    expect(&mut a, r#"{"bridge":false,"type":4,"dataContent":"126e8bf6-8eb8-47cd-aad8-1c3b4600463c","from":"0","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;

    // To an offline user with offline storage refused: nothing comes back.
    a.send_json(r#"{"bridge":false,"type":2,"dataContent":"to offline tcp6841C","from":"tcp6841A","to":"tcp6841C","fp":"873982be-8275-4c6f-9c9b-aebc673f214f","QoS":true,"typeu":11,"sm":-1}"#).await;
    if history {
        // The store keeps it for C, so A hears C's acknowledgement, as a store-less
        // MobileIMSDK server does when its offline listener keeps a message.
        expect(&mut a, r#"{"bridge":false,"type":4,"dataContent":"873982be-8275-4c6f-9c9b-aebc673f214f","from":"tcp6841C","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;
    }

    a.send_json(r#"{"bridge":false,"type":1,"dataContent":"{}","from":"tcp6841A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    expect(&mut a, r#"{"bridge":false,"type":51,"dataContent":"{}","from":"0","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;

    let unicode = "{\"bridge\":false,\"type\":2,\"dataContent\":\"中文消息：你好，世界！😀🎉👍🏽 ZWJ:👨\u{200d}👩\u{200d}👧 «ünïcødé» тест ✓ \\\"q\\\" \\\\ / \\t tab\\nnewline\",\"from\":\"tcp6841A\",\"to\":\"tcp6841B\",\"fp\":\"33c59b97-5356-493a-8d82-8483662855da\",\"QoS\":true,\"typeu\":9,\"sm\":-1}";
    assert_eq!(unicode.len(), 277, "the captured frame length");
    a.send_json(unicode).await;
    expect(&mut a, r#"{"bridge":false,"type":4,"dataContent":"33c59b97-5356-493a-8d82-8483662855da","from":"tcp6841B","to":"tcp6841A","QoS":false,"typeu":-1,"sm":-1}"#).await;
    expect(&mut b, unicode).await;

    // A 2 KB message passes through unchanged.
    let big = Packet::common_data(
        "tcp6841A",
        "tcp6841B",
        format!("BIG[中文]{}", "abcdefghijklmnopqrstuvwxyz".repeat(78)),
        Some("00cb2def-d1ca-4073-ba58-250b4b289b48".into()),
        10,
    );
    a.send(&big).await;
    expect(&mut b, &big.to_json()).await;
    let _ack = a.packet().await;

    // B logs in again elsewhere: the new session is answered, the old one kicked and closed.
    let mut b2 = server.peer(Transport::Tcp).await;
    b2.send_json(r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"tcp6841B\",\"loginToken\":\"tok-tcp6841B\",\"firstLoginTime\":0}","from":"tcp6841B","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    expect(&mut b2, r#"{"bridge":false,"type":50,"dataContent":"{\"code\":0,\"firstLoginTime\":1795892642079}","from":"0","to":"tcp6841B","QoS":false,"typeu":-1,"sm":-1}"#).await;
    expect(&mut b, r#"{"bridge":false,"type":54,"dataContent":"{\"code\":1}","from":"0","to":"tcp6841B","QoS":false,"typeu":-1,"sm":-1}"#).await;
    b.expect_closed().await;

    a.send_json(
        r#"{"bridge":false,"type":3,"from":"tcp6841A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#,
    )
    .await;
    a.expect_closed().await;
    assert!(!server.handle.is_online(&"tcp6841A".into()));
}

#[tokio::test]
async fn udp_capture_replays_with_the_same_answers() {
    udp_capture(false).await;
}

#[tokio::test]
async fn udp_capture_replays_with_the_same_answers_with_history_on() {
    udp_capture(true).await;
}

async fn udp_capture(history: bool) {
    let server = server(history).await;
    let mut a = server.peer(Transport::Udp).await;
    a.send_json(r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"udp5620A\",\"loginToken\":\"tok-udp5620A\",\"firstLoginTime\":0}","from":"udp5620A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    let response = a.packet().await;
    assert_matches(
        &response,
        r#"{"bridge":false,"type":50,"dataContent":"{\"code\":0,\"firstLoginTime\":1795892657367}","from":"0","to":"udp5620A","QoS":false,"typeu":-1,"sm":-1}"#,
    );
    let first = LoginResponse::decode(response.data_content.as_deref().unwrap())
        .unwrap()
        .first_login_time;
    a.send_json(r#"{"bridge":false,"type":1,"dataContent":"{}","from":"udp5620A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    expect(&mut a, r#"{"bridge":false,"type":51,"dataContent":"{}","from":"0","to":"udp5620A","QoS":false,"typeu":-1,"sm":-1}"#).await;

    // A 2198-byte datagram is over the 2048-byte limit: the session is dropped and the next
    // keepalive is refused with 301, as the capture shows.
    let big = Packet::common_data(
        "udp5620A",
        "udp5620B",
        "x".repeat(2060),
        Some("big".into()),
        10,
    );
    a.send(&big).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.handle.is_online(&"udp5620A".into()));
    a.send_json(r#"{"bridge":false,"type":1,"dataContent":"{}","from":"udp5620A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    assert_eq!(
        a.expect(hongyan_shared::PacketType::Error).await.to_str(),
        "-1"
    );

    // The client re-logs in from a new port with its saved firstLoginTime, which is echoed.
    let mut again = server.peer(Transport::Udp).await;
    let relogin = format!(
        r#"{{"bridge":false,"type":0,"dataContent":"{{\"loginUserId\":\"udp5620A\",\"loginToken\":\"tok-udp5620A\",\"firstLoginTime\":{first}}}","from":"udp5620A","to":"0","QoS":false,"typeu":-1,"sm":-1}}"#
    );
    again.send_json(&relogin).await;
    let echoed = again.packet().await;
    assert_eq!(
        LoginResponse::decode(echoed.data_content.as_deref().unwrap()).unwrap(),
        LoginResponse {
            code: 0,
            first_login_time: first
        }
    );

    // Duplicate login over UDP: the new session is answered, the old one gets the kickout.
    let mut b_old = server.logged_in(Transport::Udp, "udp5620B").await;
    let mut b_new = server.peer(Transport::Udp).await;
    b_new.send_json(r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"udp5620B\",\"loginToken\":\"tok-udp5620B\",\"firstLoginTime\":0}","from":"udp5620B","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    let _ = b_new.packet().await;
    expect(&mut b_old, r#"{"bridge":false,"type":54,"dataContent":"{\"code\":1}","from":"0","to":"udp5620B","QoS":false,"typeu":-1,"sm":-1}"#).await;

    again.send_json(r#"{"bridge":false,"type":3,"from":"udp5620A","to":"0","QoS":false,"typeu":-1,"sm":-1}"#).await;
    again.expect_silence(Duration::from_millis(200)).await;
    assert!(!server.handle.is_online(&"udp5620A".into()));
}
