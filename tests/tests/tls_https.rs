//! The HTTP listener in TLS against the real server: the native client over `wss://`, the API
//! and probes over HTTPS with ALPN `http/1.1`, a plain HTTP client on the HTTPS port turned
//! away, and certificate reloads (the file watch) while connections stay up. Certificates are
//! made in the test.

use std::time::{Duration, Instant};

use hongyan_client::{ClientConfig, ClientEvent, Endpoint, TlsOptions, Trust};
use hongyan_server::Outgoing;
use hongyan_shared::PacketType;
use hongyan_tests::tls::{TestPki, connect, https_client, presented};
use hongyan_tests::{Peer, TestServer, WAIT};
use rustls::version::TLS13;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client_support;

use client_support::{next_matching, online};

fn trusting(pki: &TestPki, endpoint: Endpoint) -> ClientConfig {
    let mut config = ClientConfig::new(endpoint);
    config.tls = TlsOptions {
        trust: Trust::CaFile(pki.ca_file.clone()),
        server_name: None,
    };
    config
}

/// The native client over `wss://` chats with one over TLS TCP, and receives a push the API
/// was asked for over HTTPS.
#[tokio::test]
async fn the_native_client_chats_over_wss_and_the_api_answers_over_https() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let (alice, mut alice_events) = online(
        trusting(&pki, Endpoint::WebSocket(server.wss_url())),
        "alice",
    )
    .await;
    let tls_tcp = Endpoint::TcpTls(format!("localhost:{}", server.tcp.port()));
    let (bob, mut bob_events) = online(trusting(&pki, tls_tcp), "bob").await;

    let fp = alice.send_c2c("bob", "over wss", 1).await.unwrap();
    next_matching(
        &mut bob_events,
        WAIT,
        |e| matches!(e, ClientEvent::MessageReceived(m) if m.content == "over wss"),
    )
    .await;
    next_matching(&mut alice_events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;
    let fp = bob.send_c2c("alice", "back over TLS", 1).await.unwrap();
    next_matching(
        &mut alice_events,
        WAIT,
        |e| matches!(e, ClientEvent::MessageReceived(m) if m.content == "back over TLS"),
    )
    .await;
    next_matching(&mut bob_events, WAIT, |e| {
        *e == ClientEvent::MessageDelivered(fp.clone())
    })
    .await;

    let client = https_client(&pki);
    let base = format!("https://localhost:{}", server.http.port());
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    // The API needs a token this test server does not have: 503 says the route is there.
    let api = client
        .post(format!("{base}/api/messages"))
        .json(&serde_json::json!({"to": "alice", "content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 503);
    server
        .handle
        .send(Outgoing::new("alice", "pushed"))
        .await
        .unwrap();
    next_matching(
        &mut alice_events,
        WAIT,
        |e| matches!(e, ClientEvent::MessageReceived(m) if m.content == "pushed"),
    )
    .await;
    alice.logout().await;
    bob.logout().await;
}

/// Browsers offer `h2` first; the listener serves HTTP/1.1 only (the version browsers open
/// WebSockets over) and says so with ALPN.
#[tokio::test]
async fn https_negotiates_http_1_1() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let mut config = (*pki.client(&[&TLS13], true)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut stream = connect(server.http, config.into()).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// A plain HTTP request on the HTTPS port gets no answer, only an orderly close.
#[tokio::test]
async fn plain_http_on_the_https_port_is_closed() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| pki.configure(c)).await;
    let mut plain = TcpStream::connect(server.http).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, plain.read_to_end(&mut reply))
        .await
        .expect("closed at once")
        .expect("an orderly end of stream");
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
}

/// A renewed certificate (files replaced the way certbot renews) is noticed by the file watch:
/// new connections on both listeners get it, while a session that began before the renewal
/// carries on.
#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections_while_old_ones_carry_on() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| {
        pki.configure(c);
        c.tls_watch_interval = Duration::from_millis(50);
    })
    .await;
    let client = pki.client(&[&TLS13], true);
    let before = connect(server.tcp, client.clone()).await;
    let old = presented(&before);
    drop(before);
    let mut alice = Peer::tls(server.tcp, client.clone()).await;
    assert_eq!(alice.login("alice", 0).await.code, 0);

    let new = pki.issue();
    assert_ne!(new, old);
    let deadline = Instant::now() + WAIT;
    loop {
        let probe = connect(server.tcp, client.clone()).await;
        if presented(&probe) == new {
            break;
        }
        assert!(Instant::now() < deadline, "the watch did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let https = connect(server.http, client.clone()).await;
    assert_eq!(presented(&https), new, "the HTTP listener presents it too");

    // The session from before the renewal is still up and served.
    alice
        .send(&hongyan_shared::Packet::keep_alive("alice"))
        .await;
    alice.expect(PacketType::KeepAliveResponse).await;
    let mut bob = Peer::tls(server.tcp, client).await;
    assert_eq!(bob.login("bob", 0).await.code, 0);
    let fp = hongyan_shared::Fingerprint::new("renewed");
    bob.send(&hongyan_shared::Packet::common_data(
        "bob",
        "alice",
        "after the renewal",
        Some(fp),
        0,
    ))
    .await;
    let got = alice.expect(PacketType::CommonData).await;
    assert_eq!(got.data_content.as_deref(), Some("after the renewal"));
}

/// A renewal caught half-way (a key that does not match the certificate) keeps the old
/// certificate in use.
#[tokio::test]
async fn a_broken_renewal_keeps_the_old_certificate() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| {
        pki.configure(c);
        c.tls_watch_interval = Duration::from_millis(50);
    })
    .await;
    let client = pki.client(&[&TLS13], true);
    let old = presented(&connect(server.tcp, client.clone()).await);
    std::fs::write(&pki.key, rcgen_key_pem()).unwrap();
    let deadline = Instant::now() + WAIT;
    let https = https_client(&pki);
    let metrics = format!("https://localhost:{}/metrics", server.http.port());
    loop {
        let text = https
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("hongyan_tls_certificate_reloads_total{result=\"failed\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the watch did not try: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(presented(&connect(server.tcp, client).await), old);
}

/// A private key of no certificate here.
fn rcgen_key_pem() -> String {
    rcgen::KeyPair::generate().unwrap().serialize_pem()
}
