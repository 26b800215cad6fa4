//! The H5 client's session in headless Chromium: kickout by a second login, a server restart
//! (reconnecting, online again, nothing silently dropped), and a refused login.
//! Needs `dist/` (scripts/test builds it).

use hongyan_tests::TestServer;
use hongyan_tests::browser::{Driver, page_url, serve_web_client};

#[tokio::test]
async fn logging_in_from_a_second_browser_kicks_the_first_which_says_so() {
    let server = TestServer::with(serve_web_client).await;
    let url = page_url(&server);
    let mut driver = Driver::start().await;
    let first = driver.open(&url).await;
    first.log_in_online("alice").await;

    let second = driver.open(&url).await;
    second.log_in_online("alice").await;

    first.wait_for_status("kicked-out").await;
    first
        .wait_for_text("#status", "You logged in elsewhere")
        .await;
    assert_eq!(first.text("#logout").await, "Log in again");
    assert!(
        first.count("#send:disabled").await == 1 || first.count("#send").await == 0,
        "a kicked-out client cannot send"
    );
    // The first browser stays out: no automatic re-login takes the session back.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    second.wait_for_status("online").await;
    first.wait_for_status("kicked-out").await;

    first.click("#logout").await;
    first.wait_for("#login").await;
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn server_restart_shows_reconnecting_then_online_and_drops_nothing() {
    let server = TestServer::with(serve_web_client).await;
    let http = server.http;
    let url = page_url(&server);
    let mut driver = Driver::start().await;
    let alice = driver.open(&url).await;
    let bob = driver.open(&url).await;
    alice.log_in_online("alice").await;
    bob.log_in_online("bob").await;
    alice.open_chat("bob").await;
    let before = alice.send("before the restart").await;
    alice.wait_for_delivery(&before, &["delivered"]).await;

    server.stop().await;
    alice.wait_for_status("reconnecting").await;
    bob.wait_for_status("reconnecting").await;

    let meanwhile = "sent while the server was down";
    let fp = alice.send(meanwhile).await;
    assert_eq!(
        alice.wait_for_delivery(&fp, &["sending"]).await,
        "sending",
        "a message written while offline waits, it is not refused"
    );

    let _server = TestServer::with(|config| {
        serve_web_client(config);
        config.http_addr = Some(http);
    })
    .await;
    alice.wait_for_status("online").await;
    bob.wait_for_status("online").await;

    // Delivered once the session is back, or reported lost (retries ran out) and then
    // delivered by the retry button: never silently dropped.
    if alice.wait_for_delivery(&fp, &["delivered", "lost"]).await == "lost" {
        alice
            .click(&format!("li.message[data-fp=\"{fp}\"] .retry"))
            .await;
        alice.wait_for_delivery(&fp, &["delivered"]).await;
    }
    bob.click("li.conversation[data-peer=\"alice\"]").await;
    bob.wait_for_message(meanwhile).await;
    let texts = bob.thread_texts().await;
    assert_eq!(
        texts.iter().filter(|t| *t == meanwhile).count(),
        1,
        "the message appears exactly once: {texts:?}"
    );
    // The conversation survived the reconnect on both sides.
    assert_eq!(
        alice.thread_texts().await,
        ["before the restart", meanwhile]
    );
    assert_eq!(texts, ["before the restart", meanwhile]);

    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn refused_login_returns_to_the_form_with_the_code() {
    let server = TestServer::with(serve_web_client).await;
    let mut driver = Driver::start().await;
    let browser = driver.open(&page_url(&server)).await;
    // The recording hooks refuse tokens of the form `refuse-N` with code N.
    browser.log_in("mallory", "refuse-1031").await;
    browser
        .wait_for_text("#login-error", "Login refused (code 1031)")
        .await;
    browser.wait_for("#login").await;
    browser.close().await;
}
