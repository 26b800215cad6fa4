//! [`TlsStream`] against a rustls client over loopback: records split and joined every way,
//! large writes, `close_notify` both ways, and no buffer held while idle.

use std::sync::Arc;

use rustls::version::{TLS12, TLS13};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::{TestCert, client_config, localhost};
use crate::tls::stream::TlsStream;

/// A server stream and the client connected to it, over `version`.
async fn pair(
    version: &'static rustls::SupportedProtocolVersion,
) -> (TlsStream, tokio_rustls::client::TlsStream<TcpStream>) {
    let cert = TestCert::new(&["localhost"]);
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(
        rustls_pki_types::pem::PemObject::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
    );
    let server = rustls::ServerConfig::builder_with_provider(crate::tls::provider::provider())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der()], key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = client_config(&cert.cert_pem, &[version], true);
        tokio_rustls::TlsConnector::from(config)
            .connect(localhost(), tcp)
            .await
            .unwrap()
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let server = TlsStream::accept(Arc::new(server), tcp).await.unwrap();
    (server, client.await.unwrap())
}

#[tokio::test]
async fn large_writes_cross_many_records_both_ways() {
    for version in [&TLS13, &TLS12] {
        let (mut server, mut client) = pair(version).await;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            server.write_all(&sent).await.unwrap();
            server.flush().await.unwrap();
            let mut back = vec![0; sent.len()];
            server.read_exact(&mut back).await.unwrap();
            assert_eq!(back, sent);
            server
        });
        let mut got = vec![0; data.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data);
        client.write_all(&data).await.unwrap();
        client.flush().await.unwrap();
        writer.await.unwrap();
    }
}

/// Records that arrive a byte at a time, and several records in one read, both decrypt.
#[tokio::test]
async fn records_split_and_joined_in_the_socket_are_read_whole() {
    let (mut server, client) = pair(&TLS13).await;
    let (tcp, mut conn) = client.into_inner();
    let mut records = Vec::new();
    for message in [&b"first"[..], b"second", b"third"] {
        std::io::Write::write_all(&mut conn.writer(), message).unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut records).unwrap();
        }
    }
    let mut tcp = tcp;
    // The first record a byte at a time, the other two in one write.
    let first_len = 5 + u16::from_be_bytes([records[3], records[4]]) as usize;
    for byte in &records[..first_len] {
        tcp.write_all(&[*byte]).await.unwrap();
        tcp.flush().await.unwrap();
    }
    tcp.write_all(&records[first_len..]).await.unwrap();
    let mut got = vec![0; "firstsecondthird".len()];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"firstsecondthird");
}

#[tokio::test]
async fn shutdown_sends_close_notify_and_the_peers_close_notify_ends_the_stream() {
    let (mut server, mut client) = pair(&TLS13).await;
    server.write_all(b"bye").await.unwrap();
    server.shutdown().await.unwrap();
    let mut got = Vec::new();
    // A rustls client reports an end without close_notify as an error; this one is clean.
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
    client.write_all(b"last").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last");
    assert!(
        server.write_all(b"more").await.is_err(),
        "written after shutdown"
    );
}

#[tokio::test]
async fn a_peer_gone_without_close_notify_ends_the_stream_like_plain_tcp() {
    let (mut server, client) = pair(&TLS12).await;
    let (tcp, _) = client.into_inner();
    drop(tcp);
    let mut got = Vec::new();
    assert_eq!(server.read_to_end(&mut got).await.unwrap(), 0);
}

#[tokio::test]
async fn an_idle_stream_holds_no_buffer() {
    let (mut server, mut client) = pair(&TLS13).await;
    assert_eq!(server.buffered(), 0, "after the handshake");
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0; 4];
    server.read_exact(&mut got).await.unwrap();
    server.write_all(b"pong").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"pong");
    assert_eq!(server.buffered(), 0, "after a message each way");
}

/// Garbage where a record should be: the stream fails (it does not hang or panic), and the
/// client is told with an alert (TLS 1.2, where an alert record says so in its header).
#[tokio::test]
async fn a_corrupt_record_fails_the_stream() {
    let (mut server, client) = pair(&TLS12).await;
    let (mut tcp, _) = client.into_inner();
    tcp.write_all(&[23, 3, 3, 0, 20]).await.unwrap();
    tcp.write_all(&[0x55; 20]).await.unwrap();
    let mut got = [0; 8];
    let error = server.read(&mut got).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    let again = server.read(&mut got).await.unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::InvalidData, "{again}");
    server.shutdown().await.unwrap();
    let mut alert = [0; 8];
    let n = tcp.read(&mut alert).await.unwrap();
    assert!(
        n > 0 && alert[0] == 21,
        "an alert record: {:?}",
        &alert[..n]
    );
}
