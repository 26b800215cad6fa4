//! The H5 client in headless Chromium against a real server: two browsers chat, and a browser
//! chats with the native TCP client. Needs `dist/` (scripts/test builds it).

use std::time::Duration;

use hongyan_client::{Client, ClientConfig, ClientEvent, ConnectionState, Endpoint};
use hongyan_server::Outgoing;
use hongyan_shared::LoginInfo;
use hongyan_tests::TestServer;
use hongyan_tests::browser::{BROWSER_WAIT, Driver, page_url, serve_web_client};

#[tokio::test]
async fn two_browsers_chat_both_ways_with_delivered_ticks() {
    let server = TestServer::with(serve_web_client).await;
    let url = page_url(&server);
    let mut driver = Driver::start().await;
    let alice = driver.open(&url).await;
    let bob = driver.open(&url).await;
    alice.log_in_online("alice").await;
    bob.log_in_online("bob").await;

    alice.open_chat("bob").await;
    let hello = "你好 bob 👋🏽 <b>&' \"quoted\"";
    let fp = alice.send(hello).await;
    alice.wait_for_delivery(&fp, &["delivered"]).await;

    // bob sees a new conversation with one unread message, then reads it.
    let unread = "li.conversation[data-peer=\"alice\"] .unread";
    assert_eq!(bob.text(unread).await, "1");
    bob.click("li.conversation[data-peer=\"alice\"]").await;
    bob.wait_for_message(hello).await;
    assert_eq!(
        bob.count(unread).await,
        0,
        "opening a conversation reads it"
    );

    let reply = format!("hi alice! {}", "a rather long reply ".repeat(40).trim_end());
    let fp = bob.send(&reply).await;
    bob.wait_for_delivery(&fp, &["delivered"]).await;
    alice.wait_for_message(&reply).await;
    assert_eq!(
        alice.thread_texts().await,
        [hello.to_owned(), reply.clone()]
    );
    assert_eq!(bob.thread_texts().await, [hello.to_owned(), reply]);

    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn browser_and_native_tcp_client_chat_with_each_other() {
    let server = TestServer::with(serve_web_client).await;
    let config = ClientConfig::new(Endpoint::Tcp(server.tcp.to_string()));
    let (bob, mut bob_events) =
        Client::connect(config, LoginInfo::new("bob", Some("t"), None)).expect("bob connects");
    tokio::time::timeout(BROWSER_WAIT, bob.wait_for(ConnectionState::Online))
        .await
        .expect("bob logs in in time")
        .expect("bob logs in");

    let mut driver = Driver::start().await;
    let alice = driver.open(&page_url(&server)).await;
    alice.log_in_online("alice").await;
    alice.open_chat("bob").await;
    let from_browser = "from the browser 🌏 漢字";
    let fp = alice.send(from_browser).await;
    alice.wait_for_delivery(&fp, &["delivered"]).await;

    let received = tokio::time::timeout(BROWSER_WAIT, async {
        loop {
            match bob_events.recv().await.expect("bob's client runs") {
                ClientEvent::MessageReceived(m) if m.content == from_browser => break m,
                _ => {}
            }
        }
    })
    .await
    .expect("bob receives the browser's message");
    assert_eq!(received.from.as_str(), "alice");
    assert_eq!(
        received.fp.map(|fp| fp.to_string()).as_deref(),
        Some(fp.as_str())
    );

    let from_native = "from the TCP client 🦀";
    let sent = bob
        .send_c2c("alice", from_native, 0)
        .await
        .expect("bob sends");
    tokio::time::timeout(BROWSER_WAIT, async {
        loop {
            match bob_events.recv().await.expect("bob's client runs") {
                ClientEvent::MessageDelivered(fp) if fp == sent => break,
                ClientEvent::MessagesLost(lost) => panic!("bob's message was lost: {lost:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("bob's message is acknowledged");
    alice.wait_for_message(from_native).await;
    assert_eq!(
        alice.thread_texts().await,
        [from_browser.to_owned(), from_native.to_owned()]
    );

    bob.logout().await;
    alice.close().await;
}

#[tokio::test]
async fn server_messages_show_as_system_messages_once() {
    let server = TestServer::with(serve_web_client).await;
    let mut driver = Driver::start().await;
    let alice = driver.open(&page_url(&server)).await;
    alice.log_in_online("alice").await;

    let notice = "Maintenance at 03:00 UTC";
    let sent = server
        .handle
        .send(Outgoing::new("alice", notice))
        .await
        .expect("alice is online");
    assert!(
        matches!(
            tokio::time::timeout(Duration::from_secs(15), sent.outcome()).await,
            Ok(hongyan_server::Delivery::Delivered)
        ),
        "the browser acknowledges the server's QoS message"
    );
    alice.click("li.conversation.system[data-peer=\"0\"]").await;
    alice.wait_for_message(notice).await;
    assert_eq!(
        alice
            .count("#thread li.message[data-author=\"server\"]")
            .await,
        1
    );
    assert_eq!(alice.text("#peer-name").await, "System");
    alice.close().await;
}
