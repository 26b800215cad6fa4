//! The TCP gateway in TLS against the real server, with the clients MobileIMSDK ships and the
//! native client: TLS from the first byte, the frames unchanged inside; a plain client on the
//! TLS port turned away cleanly; a plain migration port beside it; floods of silent and of
//! stalled handshakes that do not keep a real login out. Certificates are made in the test.

use std::time::{Duration, Instant};

use hongyan_client::{ClientConfig, ClientEvent, Endpoint, TlsOptions, Trust};
use hongyan_shared::{Fingerprint, Packet, PacketType};
use hongyan_tests::tls::{TestPki, java_like_client};
use hongyan_tests::{Peer, Recv, TestServer, WAIT};
use rustls::ProtocolVersion;
use rustls::version::{TLS12, TLS13};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client_support;

use client_support::{next_matching, online};

/// The metrics page over HTTPS.
async fn metrics(server: &TestServer, pki: &TestPki) -> String {
    let url = format!("https://localhost:{}/metrics", server.http.port());
    let response = hongyan_tests::tls::https_client(pki)
        .get(url)
        .send()
        .await
        .expect("/metrics over HTTPS");
    assert_eq!(response.status(), 200);
    response.text().await.expect("the metrics text")
}

/// Waits until `/metrics` shows `line`.
async fn wait_for_metric(server: &TestServer, pki: &TestPki, line: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics(server, pki).await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no {line:?} in\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A C2C message from `from` to `to`, raw peers both, delivered inside TLS as it would be in
/// plain TCP.
async fn c2c(from: &mut Peer, from_id: &str, to: &mut Peer, to_id: &str) {
    let fp = Fingerprint::new(format!("{from_id}-to-{to_id}"));
    from.send(&Packet::common_data(
        from_id,
        to_id,
        "through TLS",
        Some(fp.clone()),
        9,
    ))
    .await;
    let got = to.expect(PacketType::CommonData).await;
    assert_eq!(got.data_content.as_deref(), Some("through TLS"));
    assert_eq!(got.fp.as_ref(), Some(&fp));
    to.send(&Packet::ack(to_id, from_id, &fp, false)).await;
    let ack = from.expect(PacketType::Ack).await;
    assert_eq!(ack.data_content.as_deref(), Some(fp.as_str()));
}

/// iOS clients (GCDAsyncSocket `startTLS`) may speak TLS 1.2 only.
#[tokio::test]
async fn a_tls12_only_client_logs_in_and_chats_with_frames_unchanged() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let mut alice = Peer::tls(server.tcp, pki.client(&[&TLS12], true)).await;
    let Peer::Tls { stream, .. } = &alice else {
        unreachable!()
    };
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(alice.login("alice", 0).await.code, 0);
    let mut bob = Peer::tls(server.tcp, pki.client(&[&TLS13], true)).await;
    assert_eq!(bob.login("bob", 0).await.code, 0);
    c2c(&mut alice, "alice", &mut bob, "bob").await;
    c2c(&mut bob, "bob", &mut alice, "alice").await;
    alice.send(&Packet::keep_alive("alice")).await;
    alice.expect(PacketType::KeepAliveResponse).await;
}

/// MobileIMSDK's Java/Android client with the demo's `sslContext`: TLS 1.2 on Java 8, P-256,
/// no SNI, any certificate. The server presents its one certificate without being asked.
#[tokio::test]
async fn a_java_like_client_without_sni_logs_in() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let mut peer = Peer::tls(server.tcp, java_like_client()).await;
    assert_eq!(peer.login("java", 0).await.code, 0);
    // A client that checks the certificate but sends no SNI (one connecting by address)
    // gets the same certificate, valid for `localhost`.
    let mut checking = Peer::tls(server.tcp, pki.client(&[&TLS13, &TLS12], false)).await;
    assert_eq!(checking.login("checking", 0).await.code, 0);
}

/// The native client over `tls://`, checking the certificate against the test CA, chats with a
/// client on the plain migration port; and the Java client's way (by address, any
/// certificate) logs in too.
#[tokio::test]
async fn the_native_client_over_tls_chats_with_a_client_on_the_plain_migration_port() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| {
        pki.configure(c);
        c.tcp_plain_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let plain = server.tcp_plain.expect("the plain port is bound");
    let mut config =
        ClientConfig::new(Endpoint::TcpTls(format!("localhost:{}", server.tcp.port())));
    config.tls = TlsOptions {
        trust: Trust::CaFile(pki.ca_file.clone()),
        server_name: None,
    };
    let (alice, mut alice_events) = online(config, "alice").await;
    let (bob, mut bob_events) =
        online(ClientConfig::new(Endpoint::Tcp(plain.to_string())), "bob").await;

    let fp = alice.send_c2c("bob", "from TLS", 1).await.unwrap();
    next_matching(
        &mut bob_events,
        WAIT,
        |e| matches!(e, ClientEvent::MessageReceived(m) if m.content == "from TLS"),
    )
    .await;
    next_matching(&mut alice_events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;
    let fp = bob
        .send_c2c("alice", "from the plain port", 1)
        .await
        .unwrap();
    next_matching(
        &mut alice_events,
        WAIT,
        |e| matches!(e, ClientEvent::MessageReceived(m) if m.content == "from the plain port"),
    )
    .await;
    next_matching(&mut bob_events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;

    let mut by_address = ClientConfig::new(Endpoint::TcpTls(server.tcp.to_string()));
    by_address.tls.trust = Trust::DangerAcceptInvalidCerts;
    let (carol, _events) = online(by_address, "carol").await;
    carol.logout().await;
    alice.logout().await;
    bob.logout().await;
}

/// A certificate the client cannot verify ends the connection before a byte of the protocol:
/// the native client does not log in (and reports why in its log), where MobileIMSDK's
/// trust-all demo would have.
#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_never_logs_in() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let config = other.client(&[&TLS13], true);
    let tcp = TcpStream::connect(server.tcp).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(config)
        .connect(hongyan_tests::tls::localhost(), tcp)
        .await;
    assert!(refused.is_err(), "the handshake fails");
    assert!(
        server.hooks.events().is_empty(),
        "nothing reached the server's hooks"
    );
}

/// MobileIMSDK's plain TCP client sends its login frame at once. On the TLS port it gets an
/// orderly close, no bytes, no reset, at once rather than at a deadline, and is counted.
#[tokio::test]
async fn a_plain_client_on_the_tls_port_is_closed_cleanly_and_counted() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let mut plain = Peer::Tcp {
        stream: TcpStream::connect(server.tcp).await.unwrap(),
        buf: Default::default(),
    };
    let started = Instant::now();
    plain
        .send(&Packet::login(&hongyan_shared::LoginInfo::new(
            "plain",
            Some("t"),
            None,
        )))
        .await;
    assert_eq!(plain.next(WAIT).await, Recv::Closed);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Peer::Tcp { mut stream, .. } = plain else {
        unreachable!()
    };
    let mut rest = Vec::new();
    assert_eq!(
        stream.read_to_end(&mut rest).await.unwrap(),
        0,
        "an orderly end of stream, not a reset"
    );
    wait_for_metric(
        &server,
        &pki,
        "hongyan_tls_handshakes_total{result=\"not_tls\"} 1",
    )
    .await;
    assert!(
        server.hooks.events().is_empty(),
        "{:?}",
        server.hooks.events()
    );
}

/// A flood of connections that never send a byte, forty times the handshake bound, does not
/// keep a real client out: silent connections take no handshake slot, so the login is answered
/// at once, long before the flood's connections reach their deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_does_not_keep_a_login_out() {
    const BOUND: usize = 8;
    const FLOOD: usize = 40 * BOUND;
    let pki = TestPki::new();
    let server = TestServer::with(|c| {
        pki.configure(c);
        c.max_tls_handshakes = BOUND;
        c.tls_handshake_timeout = Duration::from_secs(20);
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(server.tcp).await.unwrap());
    }
    let started = Instant::now();
    let mut peer = Peer::tls(server.tcp, pki.client(&[&TLS13], true)).await;
    assert_eq!(peer.login("alice", 0).await.code, 0);
    let took = started.elapsed();
    eprintln!("login during a flood of {FLOOD} silent connections: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let text = metrics(&server, &pki).await;
    assert!(
        text.contains("hongyan_tls_handshakes_total{result=\"timed_out\"} 0"),
        "{text}"
    );
    drop(flood);
}

/// Clients that start a handshake and stall hold every handshake slot, each until the
/// deadline: a real client waits for a free slot, is served after at most one deadline with
/// its own full deadline for the handshake, and the stalled ones are counted. (More stalls
/// than slots: `server/src/tls/tests`, with the handshake stage alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_cut_off_at_the_deadline_and_a_login_follows() {
    const BOUND: usize = 4;
    let deadline = Duration::from_secs(1);
    let pki = TestPki::new();
    let server = TestServer::with(|c| {
        pki.configure(c);
        c.max_tls_handshakes = BOUND;
        c.tls_handshake_timeout = deadline;
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..BOUND {
        let mut stream = TcpStream::connect(server.tcp).await.unwrap();
        // The first byte of a ClientHello, and nothing more.
        stream.write_all(&[0x16]).await.unwrap();
        stalled.push(stream);
    }
    let in_progress = format!("hongyan_tls_handshakes_in_progress {BOUND}");
    wait_for_metric(&server, &pki, &in_progress).await;
    let started = Instant::now();
    let mut peer = Peer::tls(server.tcp, pki.client(&[&TLS13], true)).await;
    assert_eq!(peer.login("alice", 0).await.code, 0);
    let took = started.elapsed();
    eprintln!("login behind {BOUND} stalled handshakes: {took:?}");
    assert!(took < deadline + Duration::from_secs(2), "{took:?}");
    wait_for_metric(
        &server,
        &pki,
        &format!("hongyan_tls_handshakes_total{{result=\"timed_out\"}} {BOUND}"),
    )
    .await;
    for mut stream in stalled {
        // Closed by the server: an end of stream (or a reset, for the unread byte).
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
            .await
            .expect("closed by the server at the deadline")
            .ok();
        assert!(rest.is_empty(), "nothing sent to a stalled handshake");
    }
}
