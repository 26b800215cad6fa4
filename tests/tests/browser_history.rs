//! The H5 client remembers (issue 12): with the server keeping history, the conversation
//! list (last message, unread count) and the thread's history are there after a reload and
//! in a second browser; scrolling to the top loads earlier messages; messages written while
//! the user was away arrive in order with the rest; reading moves the read position on the
//! server. Needs `dist/` (scripts/test builds it).

use hongyan_client::{Client, ClientConfig, ClientEvent, ConnectionState, Endpoint, Events};
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_shared::LoginInfo;
use hongyan_tests::TestServer;
use hongyan_tests::browser::{BROWSER_WAIT, Driver, page_url, serve_web_client};

/// The messages the H5 client catches up with at once (`hongyan_web::session::CATCH_UP`);
/// older ones load on scrolling up.
const CATCH_UP: usize = 100;

/// Logs `user` in with the native TCP client.
async fn native(server: &TestServer, user: &str) -> (Client, Events) {
    let config = ClientConfig::new(Endpoint::Tcp(server.tcp.to_string()));
    let (client, events) =
        Client::connect(config, LoginInfo::new(user, Some("t"), None)).expect("connects");
    tokio::time::timeout(BROWSER_WAIT, client.wait_for(ConnectionState::Online))
        .await
        .expect("logs in in time")
        .expect("logs in");
    (client, events)
}

/// Sends `texts` to `to` one after the other, each acknowledged (delivered or stored)
/// before the next, so the server accepts them in this order.
async fn send_in_order(client: &Client, events: &mut Events, to: &str, texts: &[String]) {
    for text in texts {
        let fp = client.send_c2c(to, text.as_str(), 0).await.expect("sends");
        tokio::time::timeout(BROWSER_WAIT, async {
            loop {
                match events.recv().await.expect("the client runs") {
                    ClientEvent::MessageDelivered(acked) if acked == fp => break,
                    ClientEvent::MessagesLost(lost) => panic!("{text:?} was lost: {lost:?}"),
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{text:?} is acknowledged in time"));
    }
}

#[tokio::test]
async fn conversations_and_history_survive_a_reload_and_show_in_a_second_browser() {
    let server = TestServer::with(|config| {
        serve_web_client(config);
        config.store = StoreSpec::Memory;
    })
    .await;
    let url = page_url(&server);
    let (bob, mut bob_events) = native(&server, "bob").await;
    let bob_row = "li.conversation[data-peer=\"bob\"]";
    let unread = format!("{bob_row} .unread");
    let preview = format!("{bob_row} .preview");

    // alice chats in a first browser, reading as bob writes.
    let mut driver = Driver::start().await;
    let first = driver.open(&url).await;
    first.log_in_online("alice").await;
    first.open_chat("bob").await;
    let fp = first.send("hello bob").await;
    first.wait_for_delivery(&fp, &["delivered"]).await;
    let answers: Vec<String> = (1..=120).map(|n| format!("bob {n:03}")).collect();
    send_in_order(&bob, &mut bob_events, "alice", &answers).await;
    let mut history = vec!["hello bob".to_owned()];
    history.extend(answers);
    first.wait_for_thread(&history).await;

    // A reload starts the page from nothing but the tab's login: it logs in again by itself,
    // the list and the newest messages come back from the server, and nothing is unread.
    first.reload().await;
    first.wait_for_status("online").await;
    first.wait_for_text(&preview, "bob 120").await;
    assert_eq!(first.count(&unread).await, 0, "alice read everything");
    first.click(bob_row).await;
    first
        .wait_for_thread(&history[history.len() - CATCH_UP..])
        .await;
    assert_eq!(
        first.count("#thread li.message[data-author=\"me\"]").await,
        0,
        "alice's own message is older than the newest {CATCH_UP}"
    );
    // Scrolling to the top loads the rest, and the view stays on what the reader saw.
    first.scroll_thread_to_top().await;
    first.wait_for_thread(&history).await;
    // The earlier page went above the view, not under the reader's eyes.
    first.wait_for_thread_scrolled_down().await;
    assert_eq!(
        first
            .count("#thread li.message[data-author=\"me\"][data-status=\"delivered\"]")
            .await,
        1
    );
    assert_eq!(
        first.count("#load-earlier").await,
        0,
        "nothing before seq 1"
    );
    first.close().await;

    // bob writes while alice is away: the server stores it for her.
    let while_away: Vec<String> = (1..=5)
        .map(|n| format!("while you were away {n}"))
        .collect();
    send_in_order(&bob, &mut bob_events, "alice", &while_away).await;
    history.extend(while_away);

    // A second browser: the conversation is there with its unread count, and the thread
    // shows the stored messages once each, in order after the rest.
    let second = driver.open(&url).await;
    second.log_in_online("alice").await;
    second.wait_for_text(&unread, "5").await;
    second
        .wait_for_text(&preview, "while you were away 5")
        .await;
    second.click(bob_row).await;
    second
        .wait_for_thread(&history[history.len() - CATCH_UP..])
        .await;
    // Every message has its place in the history (the replayed ones, which came without a
    // seq, once the catch-up numbered them).
    second
        .wait_for_count("#thread li.message:not([data-seq])", 0)
        .await;
    assert_eq!(second.count(&unread).await, 0, "opening it reads it");
    // The same history as the first browser's, back to the first message.
    second.scroll_thread_to_top().await;
    second.wait_for_thread(&history).await;
    assert_eq!(
        second
            .count("#thread li.message[data-author=\"me\"][data-seq=\"1\"]")
            .await,
        1
    );

    // Reading it told the server: after another reload nothing is unread.
    second.reload().await;
    second.wait_for_status("online").await;
    second
        .wait_for_text(&preview, "while you were away 5")
        .await;
    assert_eq!(second.count(&unread).await, 0, "the read position was kept");

    // After a logout a reload shows the login screen: the tab forgot the login.
    second.click("#logout").await;
    second.wait_for("#login").await;
    second.reload().await;
    second.wait_for("#login").await;
    assert_eq!(second.count("#status").await, 0);

    bob.logout().await;
    second.close().await;
}
