//! The HTTP listener's bounds (§8.1 item 8, docs/PROTOCOL.md §3.3): request heads and idle
//! keep-alive connections time out, HTTP connections count in `max_connections` (a WebSocket
//! once), probes still answer beyond it, WebSocket upgrades from other Origins are refused
//! when `ws_allowed_origins` is set, and the H5 client carries its security headers.

use std::net::SocketAddr;
use std::time::Duration;

use hongyan_server::config::AllowedOrigins;
use hongyan_shared::Transport;
use hongyan_tests::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Waits until the server closes `stream` (end of stream or reset), failing after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {within:?}"),
        }
    }
}

/// One `GET path` on a fresh connection, closed after the answer: status line and headers.
async fn get(http: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(http).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The value of the sample `series` in `/metrics`, 0 when absent.
async fn metric(http: SocketAddr, series: &str) -> f64 {
    let text = get(http, "/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let server = TestServer::with(|c| c.http_header_timeout = Duration::from_secs(1)).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.http).await.unwrap();
        stream.write_all(b"GET / HT").await.unwrap();
        slow.push(stream);
    }
    let mut silent = TcpStream::connect(server.http).await.unwrap();
    for stream in slow.iter_mut().chain([&mut silent]) {
        closed_within(stream, WAIT).await;
    }
    assert_eq!(
        metric(
            server.http,
            "hongyan_refused_total{reason=\"header_timeout\"}"
        )
        .await,
        21.0
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::with(|c| {
        c.http_header_timeout = Duration::from_secs(30);
        c.http_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(server.http).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.http);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    // Kept alive, then idle: closed after the idle timeout, long before the header timeout.
    closed_within(&mut stream, WAIT).await;
}

#[tokio::test]
async fn http_connections_count_in_the_limit_and_probes_still_answer_beyond_it() {
    let server = TestServer::with(|c| c.max_connections = Some(3)).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.http).await.unwrap());
    }
    // The limit is full of HTTP connections, so the TCP gateway refuses.
    let mut tcp = server.peer(Transport::Tcp).await;
    tcp.expect_closed().await;
    // Beyond the limit, probes answer; anything else is told why it is refused.
    assert!(
        get(server.http, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let page = get(server.http, "/").await;
    assert!(page.starts_with("HTTP/1.1 503"), "{page}");
    assert!(page.contains("connection limit reached"), "{page}");
    let upgrade = tokio_tungstenite::connect_async(server.ws_url()).await;
    assert!(upgrade.is_err(), "a websocket beyond the limit is refused");
    assert!(
        metric(
            server.http,
            "hongyan_refused_total{reason=\"connection_limit\"}"
        )
        .await
            >= 4.0
    );

    // Once they close, their places are free again.
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while tokio_tungstenite::connect_async(server.ws_url())
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the closed connections were never released"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_websocket_counts_once_in_the_connection_limit() {
    let server = TestServer::with(|c| c.max_connections = Some(2)).await;
    let _ws = server.logged_in(Transport::WebSocket, "w").await;
    let _tcp = server.logged_in(Transport::Tcp, "t").await;
    let mut third = server.peer(Transport::Tcp).await;
    third.expect_closed().await;
}

/// A WebSocket upgrade to `server` with `origin`: the HTTP status it got (101 if upgraded).
async fn upgrade_with_origin(server: &TestServer, origin: Option<&str>) -> u16 {
    let mut request = server.ws_url().into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn websocket_upgrades_from_other_origins_are_refused_when_origins_are_listed() {
    let server = TestServer::with(|c| {
        c.ws_allowed_origins = Some(
            "self,https://chat.example.com"
                .parse::<AllowedOrigins>()
                .unwrap(),
        );
    })
    .await;
    let own = format!("http://{}", server.http);
    assert_eq!(upgrade_with_origin(&server, Some(&own)).await, 101);
    assert_eq!(
        upgrade_with_origin(&server, Some("https://chat.example.com")).await,
        101
    );
    assert_eq!(
        upgrade_with_origin(&server, None).await,
        101,
        "native clients send none"
    );
    assert_eq!(
        upgrade_with_origin(&server, Some("https://evil.example")).await,
        403
    );
    assert_eq!(upgrade_with_origin(&server, Some("null")).await, 403);
    assert_eq!(
        metric(server.http, "hongyan_refused_total{reason=\"ws_origin\"}").await,
        2.0
    );

    // Off by default: MobileIMSDK's script clients send all sorts of Origins.
    let open = TestServer::start().await;
    assert_eq!(
        upgrade_with_origin(&open, Some("https://evil.example")).await,
        101
    );
}

/// The value of `name` in an HTTP answer's head, if present.
fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn the_h5_client_is_served_with_its_security_headers() {
    let dir = std::env::temp_dir().join(format!("hongyan-web-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = "\nimport init from '/app.js';\nawait init();\n";
    std::fs::write(
        dir.join("index.html"),
        format!("<!doctype html><script type=\"module\">{script}</script><body></body>"),
    )
    .unwrap();
    std::fs::write(dir.join("app.js"), "export default async function () {}").unwrap();
    let server = TestServer::with(|c| c.web_dir = Some(dir.clone())).await;

    for path in ["/", "/index.html", "/some/client/route"] {
        let answer = get(server.http, path).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        let csp = header(&answer, "content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP in {answer}"));
        for directive in [
            "script-src 'self' 'wasm-unsafe-eval' 'sha256-",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(header(&answer, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(&answer, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    let js = get(server.http, "/app.js").await;
    assert_eq!(header(&js, "x-content-type-options"), Some("nosniff"));

    // Without a built client, the page that says so is framed by nobody either.
    let bare = TestServer::start().await;
    let answer = get(bare.http, "/").await;
    assert_eq!(header(&answer, "x-frame-options"), Some("DENY"));
    assert!(
        header(&answer, "content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
