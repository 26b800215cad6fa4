//! The TLS layer over real loopback sockets: the clients MobileIMSDK ships, reloads, the
//! handshake stage's bounds, plain clients on a TLS port. (The server's listeners with TLS,
//! the native client and the browser are tested end to end in `tests/tests/tls_*.rs`.)

mod stream;
pub(crate) mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rustls::ProtocolVersion;
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CertFiles, CertFingerprint, HandshakeLimits};
use support::{
    EchoServer, TempDir, TestCert, client_config, connect, echo, java8_like_client, localhost,
    presented, wait_until,
};

/// Generous bound for anything that should take milliseconds on loopback.
const PROMPTLY: Duration = Duration::from_secs(5);

fn limits() -> HandshakeLimits {
    HandshakeLimits::default()
}

#[tokio::test]
async fn a_tls13_client_gets_an_encrypted_echo() {
    let (mut server, cert) = EchoServer::start(limits()).await;
    let config = client_config(&cert.cert_pem, &[&TLS13], true);
    let mut stream = connect(server.addr, config, localhost()).await.unwrap();
    echo(&mut stream, b"\0\0\0\x02{}").await;
    let accepted = server.accepted.recv().await.unwrap();
    assert_eq!(accepted.version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(accepted.sni.as_deref(), Some("localhost"));
    assert_eq!(server.metrics.done.get(), 1);
}

/// iOS clients (GCDAsyncSocket) may offer TLS 1.2 only.
#[tokio::test]
async fn a_tls12_only_client_is_served() {
    let (mut server, cert) = EchoServer::start(limits()).await;
    let config = client_config(&cert.cert_pem, &[&TLS12], true);
    let mut stream = connect(server.addr, config, localhost()).await.unwrap();
    echo(&mut stream, b"hello").await;
    let accepted = server.accepted.recv().await.unwrap();
    assert_eq!(accepted.version, Some(ProtocolVersion::TLSv1_2));
}

/// MobileIMSDK's Java/Android client: TLS 1.2 on Java 8, P-256, no SNI, any certificate.
#[tokio::test]
async fn a_java8_like_client_without_sni_is_served() {
    let (mut server, _cert) = EchoServer::start(limits()).await;
    let mut stream = connect(server.addr, java8_like_client(), localhost())
        .await
        .unwrap();
    echo(&mut stream, b"hello").await;
    let accepted = server.accepted.recv().await.unwrap();
    assert_eq!(accepted.sni, None);
    assert_eq!(accepted.version, Some(ProtocolVersion::TLSv1_2));
}

#[tokio::test]
async fn a_verifying_client_that_sends_no_sni_gets_the_certificate() {
    let (mut server, cert) = EchoServer::start(limits()).await;
    let config = client_config(&cert.cert_pem, &[&TLS13, &TLS12], false);
    let mut stream = connect(server.addr, config, localhost()).await.unwrap();
    echo(&mut stream, b"hello").await;
    assert_eq!(server.accepted.recv().await.unwrap().sni, None);
}

/// A client that connects by IP address sends no SNI and checks the address in the
/// certificate.
#[tokio::test]
async fn a_client_connecting_by_ip_address_is_served() {
    let (mut server, cert) = EchoServer::start(limits()).await;
    let config = client_config(&cert.cert_pem, &[&TLS13, &TLS12], true);
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let mut stream = connect(server.addr, config, name).await.unwrap();
    echo(&mut stream, b"hello").await;
    assert_eq!(server.accepted.recv().await.unwrap().sni, None);
}

/// An RSA certificate with a PKCS#1 key (what many CAs still issue), to a Java 8-like client.
#[tokio::test]
async fn an_rsa_certificate_serves_ecdhe_rsa_clients() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
    let files = CertFiles::new(data.join("rsa-pkcs1.crt"), data.join("rsa-pkcs1.key"));
    let mut server = EchoServer::start_with(files, TempDir::new(), limits()).await;
    let mut stream = connect(server.addr, java8_like_client(), localhost())
        .await
        .unwrap();
    echo(&mut stream, b"hello").await;
    assert!(server.accepted.recv().await.is_some());
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_while_open_connections_carry_on() {
    let (server, old) = EchoServer::start(limits()).await;
    let mut roots = old.cert_pem.clone();
    let new = TestCert::new(&["localhost"]);
    roots.push_str(&new.cert_pem);
    let config = client_config(&roots, &[&TLS13, &TLS12], true);
    let mut before = connect(server.addr, config.clone(), localhost())
        .await
        .unwrap();
    assert_eq!(presented(&before), old.der());

    new.replace(&server.files);
    let fingerprint = server.certificate.reload().unwrap();
    assert_eq!(fingerprint, CertFingerprint::of(&new.der()));

    let mut after = connect(server.addr, config, localhost()).await.unwrap();
    assert_eq!(presented(&after), new.der());
    echo(&mut after, b"new").await;
    echo(&mut before, b"still here").await;
    assert_eq!(server.metrics.reloaded.get(), 1);
}

#[tokio::test]
async fn a_failed_reload_keeps_the_old_certificate() {
    let (server, cert) = EchoServer::start(limits()).await;
    let other = TestCert::new(&["localhost"]);
    // A renewal caught half-way: the new key, the old certificate.
    support::write(&server.files.key, &other.key_pem);
    let error = server.certificate.reload().unwrap_err();
    assert!(
        matches!(error, super::TlsError::KeyMismatch { .. }),
        "{error}"
    );
    assert_eq!(
        server.certificate.fingerprint(),
        CertFingerprint::of(&cert.der())
    );
    let config = client_config(&cert.cert_pem, &[&TLS13], true);
    let mut stream = connect(server.addr, config, localhost()).await.unwrap();
    assert_eq!(presented(&stream), cert.der());
    echo(&mut stream, b"hello").await;
    assert_eq!(server.metrics.reload_failed.get(), 1);
}

#[tokio::test]
async fn changed_files_are_picked_up_by_the_watch() {
    let (server, _old) = EchoServer::start(limits()).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(
        server
            .certificate
            .clone()
            .watch(Duration::from_millis(20), shutdown.clone()),
    );
    let new = TestCert::new(&["localhost"]);
    new.replace(&server.files);
    let expected = CertFingerprint::of(&new.der());
    wait_until(PROMPTLY, "the watch to reload", || {
        server.certificate.fingerprint() == expected
    })
    .await;
    let config = client_config(&new.cert_pem, &[&TLS13], true);
    let stream = connect(server.addr, config, localhost()).await.unwrap();
    assert_eq!(presented(&stream), new.der());
    shutdown.cancel();
}

#[tokio::test]
async fn the_watch_reports_a_broken_file_once() {
    let (server, cert) = EchoServer::start(limits()).await;
    support::write(&server.files.cert, "not a certificate");
    assert!(server.certificate.reload_if_changed());
    assert!(!server.certificate.reload_if_changed());
    assert_eq!(server.metrics.reload_failed.get(), 1);
    assert_eq!(
        server.certificate.fingerprint(),
        CertFingerprint::of(&cert.der())
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let (server, _old) = EchoServer::start(limits()).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let reloader =
        super::certificate::reload_on_sighup(server.certificate.clone(), shutdown.clone()).unwrap();
    tokio::spawn(reloader);
    let new = TestCert::new(&["localhost"]);
    new.replace(&server.files);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let expected = CertFingerprint::of(&new.der());
    wait_until(PROMPTLY, "SIGHUP to reload", || {
        server.certificate.fingerprint() == expected
    })
    .await;
    shutdown.cancel();
}

/// MobileIMSDK's plain TCP client sends its login frame at once (a zero byte first). It gets
/// an orderly close, no bytes, no reset, and does not wait for a deadline.
#[tokio::test]
async fn a_plain_client_on_the_tls_port_is_closed_cleanly_and_promptly() {
    let (server, _cert) = EchoServer::start(limits()).await;
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    let login =
        br#"{"type":0,"dataContent":"{\"loginUserId\":\"alice\"}","from":"alice","to":"0"}"#;
    let mut frame = (login.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(login);
    plain.write_all(&frame).await.unwrap();
    let mut buf = [0; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), plain.read(&mut buf))
        .await
        .expect("closed before the handshake deadline");
    assert_eq!(
        read.unwrap(),
        0,
        "an orderly end of stream, nothing before it"
    );
    wait_until(PROMPTLY, "the count", || server.metrics.not_tls.get() == 1).await;
    assert_eq!(server.metrics.done.get(), 0);
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_deadline() {
    let limits = HandshakeLimits {
        timeout: Duration::from_millis(200),
        ..limits()
    };
    let (server, _cert) = EchoServer::start(limits).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0; 16];
    let read = tokio::time::timeout(PROMPTLY, silent.read(&mut buf))
        .await
        .expect("closed by the server");
    assert_eq!(read.unwrap(), 0);
    wait_until(PROMPTLY, "the count", || {
        server.metrics.timed_out.get() == 1
    })
    .await;
}

/// A client that starts a handshake and stalls in the middle of its first record.
#[tokio::test]
async fn a_stalled_handshake_is_cut_off_at_the_deadline() {
    let limits = HandshakeLimits {
        timeout: Duration::from_millis(200),
        ..limits()
    };
    let (server, _cert) = EchoServer::start(limits).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut buf = [0; 16];
    let closed = tokio::time::timeout(PROMPTLY, slow.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    wait_until(PROMPTLY, "the count", || {
        server.metrics.timed_out.get() == 1
    })
    .await;
}

/// A burst of clients that start a handshake and stall: at most the bound are in the
/// handshake stage at any time, every one is cut off at the deadline, and a real client is
/// served afterwards.
#[tokio::test]
async fn a_burst_of_stalled_handshakes_stays_within_the_bound() {
    const BOUND: usize = 4;
    const BURST: u64 = 40;
    let limits = HandshakeLimits {
        max_in_progress: BOUND,
        timeout: Duration::from_millis(300),
    };
    let (server, cert) = EchoServer::start(limits).await;
    let mut stalled = Vec::new();
    for _ in 0..BURST {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // The first byte of a ClientHello record, and nothing more.
        stream.write_all(&[0x16]).await.unwrap();
        stalled.push(stream);
    }
    let mut peak = 0;
    wait_until(
        Duration::from_secs(20),
        "every stalled handshake to time out",
        || {
            let now = server.metrics.in_progress.get();
            assert!(now <= BOUND as i64, "{now} handshakes in progress");
            peak = peak.max(now);
            server.metrics.timed_out.get() == BURST
        },
    )
    .await;
    assert_eq!(peak, BOUND as i64, "the stage ran at its bound");
    let config = client_config(&cert.cert_pem, &[&TLS13], true);
    let mut stream = connect(server.addr, config, localhost()).await.unwrap();
    echo(&mut stream, b"still serving").await;
}

/// Connections that never send a byte take no handshake slot: with ten times the bound of
/// them open, a real client is served at once, long before they time out.
#[tokio::test]
async fn silent_connections_do_not_hold_up_a_real_client() {
    const BOUND: usize = 4;
    let limits = HandshakeLimits {
        max_in_progress: BOUND,
        timeout: Duration::from_secs(30),
    };
    let (server, cert) = EchoServer::start(limits).await;
    let mut silent = Vec::new();
    for _ in 0..BOUND * 10 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let config = client_config(&cert.cert_pem, &[&TLS13], true);
    let mut stream = tokio::time::timeout(PROMPTLY, connect(server.addr, config, localhost()))
        .await
        .expect("served while the silent connections wait")
        .unwrap();
    echo(&mut stream, b"not queued behind them").await;
    assert_eq!(server.metrics.timed_out.get(), 0);
    assert_eq!(server.metrics.in_progress.get(), 0);
}
