//! Where hongyan deliberately differs from the reference server (§8.1), each rule tested.
//! Real MobileIMSDK clients never notice: they only ever do what these rules allow.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hongyan_server::Config;
use hongyan_shared::{Fingerprint, Packet, PacketType, SenseMode, Transport};
use hongyan_tests::proxy::{Faults, LossyProxy};
use hongyan_tests::{Event, Peer, Recv, TestServer, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;

#[tokio::test]
async fn sender_identity_comes_from_the_session_not_the_packet() {
    let server = TestServer::start().await;
    let mut mallory = server.logged_in(Transport::Tcp, "mallory").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    mallory
        .send(&Packet::common_data(
            "alice",
            "bob",
            "it's me, alice",
            Some("f1".into()),
            1,
        ))
        .await;
    assert_eq!(
        bob.expect(PacketType::CommonData).await.from_str(),
        "mallory"
    );
    mallory
        .send(&Packet::common_data("alice", "0", "c2s as alice", None, 1))
        .await;
    let Event::C2s(c2s) = server.hooks.wait_for(|e| matches!(e, Event::C2s(_))).await else {
        unreachable!()
    };
    assert_eq!(c2s.from_str(), "mallory");
}

#[tokio::test]
async fn an_ack_settles_only_a_message_sent_to_the_acknowledging_user() {
    let server = TestServer::with(|c| {
        c.s2c_schedule.check_interval = Duration::from_millis(300);
        c.s2c_schedule.just_sent = Duration::from_millis(100);
    })
    .await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    let mut eve = server.logged_in(Transport::Tcp, "eve").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "for bob",
            Some("secret-fp".into()),
            1,
        ))
        .await;
    bob.expect(PacketType::CommonData).await;
    eve.send(&Packet::ack(
        "eve",
        "alice",
        &Fingerprint::from("secret-fp"),
        false,
    ))
    .await;
    // Eve's ACK changed nothing: Bob still gets the retransmission and the loss is reported.
    bob.expect(PacketType::CommonData).await;
    server
        .hooks
        .wait_for(|e| matches!(e, Event::S2cLost(_)))
        .await;
    assert_eq!(
        server.hooks.count(|e| matches!(e, Event::S2cReceived(..))),
        0
    );
}

#[tokio::test]
async fn logging_in_as_someone_else_logs_the_first_user_out_and_verifies_again() {
    let server = TestServer::start().await;
    let mut peer = server.logged_in(Transport::Tcp, "alice").await;
    assert_eq!(peer.login("bob", 0).await.code, 0);
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("alice".into(), None))
        .await;
    assert_eq!(server.hooks.count(|e| *e == Event::Verify("bob".into())), 1);
    assert!(!server.handle.is_online(&"alice".into()));
    assert!(server.handle.is_online(&"bob".into()));
    // Re-login as the same user skips verification, as in the reference.
    assert_eq!(peer.login("bob", 0).await.code, 0);
    assert_eq!(server.hooks.count(|e| *e == Event::Verify("bob".into())), 1);
}

#[tokio::test]
async fn reserved_user_ids_cannot_log_in() {
    let server = TestServer::start().await;
    for id in ["0", "-1", ""] {
        let mut peer = server.peer(Transport::Tcp).await;
        let info = hongyan_shared::LoginInfo::new(id, Some("t"), None);
        peer.send(&Packet::login(&info)).await;
        peer.expect_closed().await;
    }
}

#[tokio::test]
async fn a_tcp_client_never_receives_a_frame_over_its_limit() {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(Transport::WebSocket, "alice").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "x".repeat(7000),
            Some("big".into()),
            1,
        ))
        .await;
    // Not truncated, not sent: the receiver is treated as unreachable and the app decides.
    let Event::Offline(p) = server
        .hooks
        .wait_for(|e| matches!(e, Event::Offline(_)))
        .await
    else {
        unreachable!()
    };
    assert_eq!(p.fp, Some("big".into()));
    bob.expect_silence(Duration::from_millis(300)).await;
    alice.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_udp_client_never_receives_a_datagram_over_1024_bytes() {
    let server = TestServer::start().await;
    server.hooks.store_offline.store(true, Ordering::SeqCst);
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut bob = server.logged_in(Transport::Udp, "bob").await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "y".repeat(1000),
            Some("mid".into()),
            1,
        ))
        .await;
    // Stored offline by the app, so Alice is acknowledged; Bob gets nothing cut in half.
    assert_eq!(
        alice.expect(PacketType::Ack).await.data_content.as_deref(),
        Some("mid")
    );
    bob.expect_silence(Duration::from_millis(300)).await;
    alice
        .send(&Packet::common_data(
            "alice",
            "bob",
            "small",
            Some("ok".into()),
            1,
        ))
        .await;
    match bob.next(WAIT).await {
        Recv::Packet(body) => assert!(body.len() <= 1024 && body.contains("small")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn qos_without_fingerprint_is_delivered_without_qos() {
    let server = TestServer::start().await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await;
    alice
        .send_json(r#"{"type":2,"dataContent":"no fp","from":"alice","to":"bob","QoS":true}"#)
        .await;
    let got = bob.expect(PacketType::CommonData).await;
    assert!(!got.qos && got.fp.is_none());
    alice.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_receiver_that_stops_reading_is_disconnected_not_buffered() {
    let server = TestServer::with(|c| {
        c.outbox_capacity = 4;
        c.slow_consumer_stall = Duration::from_millis(200);
    })
    .await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let _bob = server.logged_in(Transport::Tcp, "bob").await; // never reads
    let filler = "z".repeat(6000);
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    // Until bob's socket buffers and queue are full and have stayed full for the stall limit.
    while server.handle.is_online(&"bob".into()) && Instant::now() < deadline {
        alice
            .send(&Packet::common_data(
                "alice",
                "bob",
                filler.as_str(),
                None,
                i,
            ))
            .await;
        i += 1;
        if i % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server
        .hooks
        .wait_for(|e| *e == Event::Logout("bob".into(), None))
        .await;
    // The sender is unaffected.
    alice.send(&Packet::keep_alive("alice")).await;
    alice.expect(PacketType::KeepAliveResponse).await;
}

/// Sends `to` 3,000 messages of 6,000 bytes from `sender` (logged in as alice) and returns the
/// count: 18 MB, more than the loopback socket buffers between the server and a receiver that
/// is not reading can hold, so its queue fills. With `qos` they carry fingerprints `m0`, `m1`, ….
async fn flood(sender: &mut Peer, to: &str, qos: bool) -> i32 {
    let filler = "z".repeat(6000);
    let count = 3000;
    for i in 0..count {
        let fp = qos.then(|| format!("m{i}").into());
        sender
            .send(&Packet::common_data("alice", to, filler.as_str(), fp, i))
            .await;
    }
    count
}

/// A receiver that falls behind for a moment keeps its session; what did not fit in its queue
/// is not acknowledged (so a QoS sender retransmits it), and everything acknowledged arrives.
#[tokio::test]
async fn a_backlogged_receiver_gets_exactly_what_its_senders_saw_acknowledged() {
    let server = TestServer::with(|c| c.outbox_capacity = 4).await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut bob = server.logged_in(Transport::Tcp, "bob").await; // reads only at the end
    let sent = flood(&mut alice, "bob", true).await;
    let mut acknowledged = HashSet::new();
    while let Recv::Packet(body) = alice.next(Duration::from_millis(500)).await {
        let ack = Packet::decode(body.as_bytes()).expect("server sends valid packets");
        assert_eq!(ack.kind, PacketType::Ack);
        acknowledged.insert(ack.data_content.expect("an ACK names its fingerprint"));
    }
    assert!(
        acknowledged.len() < sent as usize,
        "bob's queue never filled: {} of {sent} acknowledged",
        acknowledged.len()
    );
    assert!(server.handle.is_online(&"bob".into()));
    let mut received = HashSet::new();
    while let Recv::Packet(body) = bob.next(Duration::from_millis(500)).await {
        let message = Packet::decode(body.as_bytes()).expect("server sends valid packets");
        assert_eq!(message.kind, PacketType::CommonData);
        received.insert(
            message
                .fp
                .expect("QoS messages keep their fingerprint")
                .to_string(),
        );
    }
    assert_eq!(received, acknowledged);
}

/// A duplicate login must end the previous connection even when its queue is too full to
/// carry the kickout.
#[tokio::test]
async fn a_displaced_session_with_a_full_queue_is_closed() {
    let server = TestServer::with(|c| c.outbox_capacity = 4).await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let mut old_bob = server.logged_in(Transport::Tcp, "bob").await; // not reading yet
    flood(&mut alice, "bob", false).await;
    let _new_bob = server.logged_in(Transport::Tcp, "bob").await;
    let deadline = Instant::now() + WAIT;
    loop {
        match old_bob.next(WAIT).await {
            Recv::Closed => break,
            Recv::Packet(_) => assert!(Instant::now() < deadline, "still open"),
            Recv::Timeout => panic!("the displaced session stayed open"),
        }
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let server = TestServer::with(|c| c.max_connections = Some(2)).await;
    let _a = server.logged_in(Transport::Tcp, "a").await;
    let _b = server.logged_in(Transport::WebSocket, "b").await;
    let mut c = server.peer(Transport::Tcp).await;
    c.expect_closed().await;
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    assert!(refused.is_err(), "websocket upgrade is refused with 503");
}

#[tokio::test]
async fn udp_pseudo_sessions_beyond_the_limit_are_ignored() {
    let server = TestServer::with(|c| c.max_udp_sessions = 1).await;
    let _a = server.logged_in(Transport::Udp, "a").await;
    let mut b = server.peer(Transport::Udp).await;
    b.send(&Packet::login(&hongyan_shared::LoginInfo::new(
        "b", None, None,
    )))
    .await;
    b.expect_silence(Duration::from_millis(300)).await;
}

/// An unauthenticated connection that keeps echoing is still closed at its login deadline:
/// echoes count as traffic for the idle expiry, not as a login (§8.1, item 8).
#[tokio::test]
async fn a_connection_that_never_logs_in_is_closed_at_its_login_deadline() {
    let timeout = Duration::from_millis(600);
    let server = TestServer::with(|c| c.login_timeout = timeout).await;
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let mut peer = server.peer(transport).await;
        let opened = Instant::now();
        let echo = Packet::new(PacketType::Echo, Some("still here".into()), "mallory", "0");
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        let closed = loop {
            ticks.tick().await;
            peer.send(&echo).await;
            match peer.next(WAIT).await {
                Recv::Packet(_) => assert!(opened.elapsed() < WAIT, "{transport}: still open"),
                Recv::Closed => break opened.elapsed(),
                Recv::Timeout => panic!("{transport}: neither answered nor closed"),
            }
        };
        assert!(closed >= timeout, "{transport}: closed after {closed:?}");
    }
}

/// A logged-in client that sends but never reads makes the server's writes block; the idle
/// expiry still ends the session (the server does not wait on the write for ever).
#[tokio::test]
async fn a_client_that_never_reads_is_closed_at_its_idle_expiry_while_a_write_blocks() {
    let server = TestServer::with(|c| c.tcp_sense_mode = Some(SenseMode::S3)).await;
    let expiry = Config {
        tcp_sense_mode: Some(SenseMode::S3),
        ..Config::loopback()
    }
    .idle_expiry(Transport::Tcp);
    // A small receive buffer, so a few hundred KB of echoes fill the way back.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.tcp).await.expect("connect");
    let mut peer = Peer::Tcp {
        stream,
        buf: Default::default(),
    };
    assert_eq!(peer.login("mallory", 0).await.code, 0);
    let Peer::Tcp { stream, .. } = &mut peer else {
        unreachable!()
    };
    let echo = Packet::new(PacketType::Echo, Some("e".repeat(5000)), "mallory", "0");
    let mut frame = (echo.to_json().len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(echo.to_json().as_bytes());
    // Echo until the server stops reading (it is blocked writing the answers); stop there.
    let flooded = Instant::now();
    for _ in 0..20_000 {
        let write = tokio::time::timeout(Duration::from_millis(300), stream.write_all(&frame));
        if write.await.is_err() {
            break;
        }
    }
    server
        .hooks
        .wait_for_within(expiry + WAIT, |e| {
            *e == Event::Logout("mallory".into(), None)
        })
        .await;
    assert!(
        flooded.elapsed() < expiry + WAIT,
        "the session outlived its idle expiry"
    );
}

/// A UDP pseudo-session an administrator kicked stays, unauthenticated: it must log in again
/// within the login timeout, however long its sense mode lets it idle.
#[tokio::test]
async fn a_kicked_udp_pseudo_session_meets_its_login_deadline() {
    let server = TestServer::with(|c| {
        c.udp_sense_mode = Some(SenseMode::S120);
        c.login_timeout = Duration::from_millis(300);
    })
    .await;
    let mut bob = server.logged_in(Transport::Udp, "bob").await;
    // Past the first login deadline, so the session's timer is set to its idle expiry.
    tokio::time::sleep(Duration::from_millis(600)).await;
    bob.send(&Packet::keep_alive("bob")).await;
    bob.expect(PacketType::KeepAliveResponse).await;
    assert!(server.handle.kick(&"bob".into(), None));
    bob.expect(PacketType::Kickout).await;
    let metrics = format!("http://{}/metrics", server.http);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        if text.contains("hongyan_refused_total{reason=\"login_timeout\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pseudo-session is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Half-open, one way: a client that shuts down its sending side (a FIN) but could still read
/// has gone as far as the protocol is concerned. Its session is closed at once and its user
/// logged out, rather than written to until the idle expiry.
#[tokio::test]
async fn a_half_closed_connection_is_closed_and_its_user_logged_out_at_once() {
    let server = TestServer::start().await;
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let user = format!("half-{transport}");
        let mut peer = server.logged_in(transport, &user).await;
        match &mut peer {
            Peer::Tcp { stream, .. } => stream.shutdown().await.expect("shutdown"),
            Peer::Ws(ws) => match ws.get_mut() {
                MaybeTlsStream::Plain(stream) => stream.shutdown().await.expect("shutdown"),
                _ => unreachable!("the tests speak plain WebSocket"),
            },
            Peer::Udp(_) | Peer::Tls { .. } => unreachable!("TCP and WebSocket only"),
        }
        server
            .hooks
            .wait_for(|e| *e == Event::Logout(user.as_str().into(), None))
            .await;
        peer.expect_closed().await;
    }
}

/// Half-open, the other way: the client's machine vanished (no FIN, no RST), so nothing more
/// arrives from it and nothing written to it is read, while messages for it keep coming.
/// Its session is closed at its idle expiry and its user logged out: the server relies
/// neither on the TCP stack noticing nor on its writes failing.
#[tokio::test]
async fn a_vanished_peer_is_closed_at_its_idle_expiry_while_messages_for_it_pile_up() {
    let configure = |c: &mut Config| {
        c.tcp_sense_mode = Some(SenseMode::S3);
        c.ws_sense_mode = Some(SenseMode::S3);
    };
    let mut config = Config::loopback();
    configure(&mut config);
    let server = TestServer::with(configure).await;
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let expiry = config.idle_expiry(transport);
        let proxy = match transport {
            Transport::Tcp => LossyProxy::tcp(server.tcp, Faults::none()).await,
            _ => LossyProxy::ws(server.http, Faults::none()).await,
        };
        let user = format!("gone-{transport}");
        let mut peer = Peer::connect_to(transport, proxy.addr).await;
        assert_eq!(peer.login(&user, 0).await.code, 0);
        proxy.blackhole();
        let vanished = Instant::now();
        let mut sender = server
            .logged_in(Transport::Tcp, &format!("to-{user}"))
            .await;
        let logout = Event::Logout(user.as_str().into(), None);
        let mut sent = 0;
        while server.hooks.count(|e| *e == logout) == 0 {
            assert!(
                vanished.elapsed() < expiry + WAIT,
                "{transport}: still online {:?} after it vanished",
                vanished.elapsed()
            );
            let content = "m".repeat(4000);
            let fp = format!("v{sent}");
            sender
                .send(&Packet::common_data(
                    "x",
                    &user,
                    content,
                    Some(fp.into()),
                    1,
                ))
                .await;
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let closed = vanished.elapsed();
        assert!(
            closed >= expiry - Duration::from_millis(500),
            "{transport}: closed after {closed:?}, before its expiry"
        );
        assert!(
            sent > 100,
            "{transport}: only {sent} messages were sent meanwhile"
        );
    }
}

/// A client sending QoS messages to the server with ever new fingerprints fills the
/// server's de-duplication window only to its capacity: the oldest are forgotten, every
/// message is still acknowledged and handed to the application once.
#[tokio::test]
async fn a_flood_of_unique_fingerprints_keeps_the_dedup_window_at_its_capacity() {
    const CAPACITY: usize = 64;
    const MESSAGES: usize = 1000;
    let server =
        TestServer::with(|c| c.dedup = hongyan_shared::DedupConfig::with_capacity(CAPACITY)).await;
    let mut flooder = server.logged_in(Transport::Tcp, "flooder").await;
    let mut most = 0;
    for batch in 0..MESSAGES / 50 {
        for i in 0..50 {
            let fp = format!("unique-{}", batch * 50 + i);
            flooder
                .send(&Packet::common_data(
                    "flooder",
                    "0",
                    "c2s",
                    Some(fp.into()),
                    1,
                ))
                .await;
        }
        for _ in 0..50 {
            flooder.expect(PacketType::Ack).await;
        }
        most = most.max(server.handle.c2s_window().0);
    }
    assert_eq!(
        most, CAPACITY,
        "the window grew past its capacity or never filled"
    );
    let delivered = server.hooks.count(|e| matches!(e, Event::C2s(_)));
    assert_eq!(
        delivered, MESSAGES,
        "every message reaches the application once"
    );
}
