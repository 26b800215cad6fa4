//! The UDP gateway against forged sources (§3.2, §8.1 items 6 and 8): no answer to a datagram
//! from an address that has not logged in is larger than the datagram, logins included; only
//! a login makes a lasting pseudo-session, so datagrams from any number of addresses never
//! lock logged-in users out; and real MobileIMSDK logins are still answered.

use std::net::SocketAddr;
use std::time::Duration;

use hongyan_shared::{LoginInfo, LoginResponse, Packet, PacketType, Transport};
use hongyan_tests::{Recv, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// How long a test listens for answers that must not come, or for the last of several.
const QUIET: Duration = Duration::from_millis(300);

/// A socket on a fresh port (a fresh address to the server), connected to `server`.
async fn fresh_socket(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket
}

/// Sends `datagram` from a fresh address and collects what comes back until [`QUIET`] passes
/// without anything more.
async fn answers_to(server: SocketAddr, datagram: &[u8]) -> Vec<Vec<u8>> {
    let socket = fresh_socket(server).await;
    socket.send(datagram).await.unwrap();
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(QUIET, socket.recv(&mut buf)).await {
        answers.push(buf[..n].to_vec());
    }
    answers
}

/// The value of the sample `series` in `/metrics`, 0 when absent.
async fn metric(http: SocketAddr, series: &str) -> f64 {
    let mut stream = TcpStream::connect(http).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A login as the Java UDP client sends it (the wire samples in docs/PROTOCOL.md §1.4).
fn java_login(user: &str, token: Option<&str>, first_login_time: i64) -> String {
    let mut info = LoginInfo::new(user, token, None);
    info.first_login_time = first_login_time;
    Packet::login(&info).to_json()
}

#[tokio::test]
async fn no_answer_to_an_unauthenticated_datagram_is_larger_than_it() {
    let server = TestServer::start().await;
    // A stale instance needs a newer one online.
    let mut online = server.peer(Transport::Tcp).await;
    assert_eq!(online.login("victim", 1_900_000_000_000).await.code, 0);

    let datagrams: Vec<String> = vec![
        // The probe's logins: 46 bytes answered with 139, a stale one 73 with 237.
        r#"{"type":0,"dataContent":"{\"loginUserId\":\"a\"}"}"#.into(),
        r#"{"dataContent":"{\"loginUserId\":\"victim\",\"firstLoginTime\":1}"}"#.into(),
        java_login("victim", None, 1),
        java_login("b", None, 0),
        java_login("c", Some("refuse-1025"), 0),
        r#"{"type":1}"#.into(),
        r#"{"type":1,"from":"x"}"#.into(),
        Packet::keep_alive("someone").to_json(),
        Packet::common_data("x", "y", "hi", Some("fp".into()), 0).to_json(),
        r#"{"type":4,"dataContent":"fp"}"#.into(),
        r#"{"type":5,"dataContent":"echo"}"#.into(),
        r#"{"type":3}"#.into(),
        r#"{"type":99}"#.into(),
    ];
    for datagram in &datagrams {
        let answers = answers_to(server.udp, datagram.as_bytes()).await;
        let total: usize = answers.iter().map(Vec::len).sum();
        assert!(
            total <= datagram.len(),
            "{datagram} ({} bytes) got {total} bytes: {:?}",
            datagram.len(),
            answers
                .iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        server.handle.is_online(&"victim".into()),
        "the stale logins changed nothing"
    );
    assert!(
        metric(
            server.http,
            "hongyan_refused_total{reason=\"udp_amplification\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn real_size_mobileimsdk_logins_are_still_answered() {
    let server = TestServer::start().await;
    // The captured Java UDP login (183 bytes) and its automatic re-login (195 bytes).
    let first = java_login("udp5620A", Some("tok-udp5620A"), 0);
    assert_eq!(first.len(), 183);
    let answers = answers_to(server.udp, first.as_bytes()).await;
    assert_eq!(answers.len(), 1);
    let answer = Packet::decode(&answers[0]).unwrap();
    assert_eq!(answer.kind, PacketType::LoginResponse);
    let response = LoginResponse::decode(answer.data_content.as_deref().unwrap()).unwrap();
    assert_eq!(response.code, 0);
    assert!(
        answers[0].starts_with(br#"{"bridge":false"#),
        "the full answer"
    );

    let again = java_login("udp5620A", Some("tok-udp5620A"), response.first_login_time);
    assert_eq!(again.len(), 195);
    let answers = answers_to(server.udp, again.as_bytes()).await;
    assert_eq!(answers.len(), 1);
    assert!(
        answers[0].starts_with(br#"{"bridge":false"#),
        "the full answer"
    );
}

#[tokio::test]
async fn datagrams_from_many_addresses_never_lock_logged_in_users_out() {
    let server = TestServer::with(|c| {
        c.max_udp_sessions = 8;
        c.max_udp_unauthenticated = 4;
    })
    .await;
    let mut first = server.logged_in(Transport::Udp, "first").await;

    // Keepalives from 64 addresses, as a forger would send them: each is answered (a 301 no
    // larger than it) and leaves nothing behind.
    let mut forged = Vec::new();
    let keepalive = Packet::keep_alive("nobody").to_json();
    for _ in 0..64 {
        let socket = fresh_socket(server.udp).await;
        socket.send(keepalive.as_bytes()).await.unwrap();
        forged.push(socket);
    }
    let mut buf = vec![0u8; 2048];
    let answered_by = Instant::now() + WAIT;
    for socket in &forged {
        // Some may find the share for unauthenticated addresses busy and go unanswered.
        if let Ok(Ok(n)) = tokio::time::timeout_at(answered_by, socket.recv(&mut buf)).await {
            assert!(n <= keepalive.len());
        }
    }

    // A real user still logs in, retrying as MobileIMSDK clients do (every 2 s; here sooner).
    let user = fresh_socket(server.udp).await;
    let login = java_login("legit", Some("token"), 0);
    let deadline = Instant::now() + WAIT;
    loop {
        user.send(login.as_bytes()).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(QUIET, user.recv(&mut buf)).await {
            let answer = Packet::decode(&buf[..n]).unwrap();
            assert_eq!(answer.kind, PacketType::LoginResponse);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the forged datagrams locked the user out"
        );
    }
    assert!(server.handle.is_online(&"legit".into()));
    // Only the two logins hold pseudo-sessions; the first user is still served.
    let deadline = Instant::now() + WAIT;
    while metric(server.http, "hongyan_connections{transport=\"udp\"}").await != 2.0 {
        assert!(
            Instant::now() < deadline,
            "forged addresses kept pseudo-sessions"
        );
        tokio::task::yield_now().await;
    }
    first.send(&Packet::keep_alive("first")).await;
    assert!(matches!(first.next(WAIT).await, Recv::Packet(_)));
}

#[tokio::test]
async fn a_full_unauthenticated_share_drops_new_addresses_and_counts_them() {
    let server = TestServer::with(|c| {
        c.max_udp_sessions = 2;
        c.max_udp_unauthenticated = 1;
    })
    .await;
    let _a = server.logged_in(Transport::Udp, "a").await;
    let _b = server.logged_in(Transport::Udp, "b").await;
    // The table is full of logged-in users: a new address is dropped, not answered.
    assert!(
        answers_to(server.udp, java_login("c", Some("t"), 0).as_bytes())
            .await
            .is_empty()
    );
    assert!(
        metric(
            server.http,
            "hongyan_refused_total{reason=\"udp_session_limit\"}"
        )
        .await
            >= 1.0
    );
}
