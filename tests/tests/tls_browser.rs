//! The H5 client in headless Chromium against the real server over HTTPS: the page comes over
//! HTTPS, connects with `wss://` by itself (derived from the page's own URL), and chats with
//! the native client over TLS TCP. The test CA is not in Chromium's store, so this browser
//! instance ignores certificate errors. Needs `dist/` (scripts/test builds it).

use hongyan_client::{ClientConfig, ClientEvent, Endpoint, TlsOptions, Trust};
use hongyan_tests::TestServer;
use hongyan_tests::browser::{BROWSER_WAIT, Driver, serve_web_client};
use hongyan_tests::tls::TestPki;

use crate::client_support;

use client_support::{next_matching, online};

#[tokio::test]
async fn the_browser_on_an_https_page_chats_over_wss_with_a_tls_client() {
    let pki = TestPki::new();
    let server = TestServer::with(|c| {
        pki.configure(c);
        serve_web_client(c);
    })
    .await;
    let mut config =
        ClientConfig::new(Endpoint::TcpTls(format!("localhost:{}", server.tcp.port())));
    config.tls = TlsOptions {
        trust: Trust::CaFile(pki.ca_file.clone()),
        server_name: None,
    };
    let (bob, mut bob_events) = online(config, "bob").await;

    let mut driver = Driver::start().await;
    let page = format!("https://localhost:{}/", server.http.port());
    let alice = driver.open_ignoring_certificate_errors(&page).await;
    let server_url: String = alice
        .client()
        .execute(
            "return document.getElementById('server').value;",
            Vec::new(),
        )
        .await
        .expect("the login form's server field")
        .as_str()
        .expect("a string")
        .to_owned();
    assert_eq!(server_url, server.wss_url(), "wss:// from an https:// page");
    alice.log_in_online("alice").await;

    alice.open_chat("bob").await;
    let fp = alice.send("from an https page 🔒").await;
    alice.wait_for_delivery(&fp, &["delivered"]).await;
    next_matching(
        &mut bob_events,
        BROWSER_WAIT,
        |e| matches!(e, ClientEvent::MessageReceived(m) if m.content == "from an https page 🔒"),
    )
    .await;
    bob.send_c2c("alice", "back over TLS TCP", 0).await.unwrap();
    alice.wait_for_message("back over TLS TCP").await;

    alice.close().await;
    bob.logout().await;
}
