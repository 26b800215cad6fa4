//! The native client's history sync (§9.4) against the real server on TCP, UDP and WebSocket:
//! what was sent while it was away is fetched in pages that fit the transport (a UDP datagram
//! holds only a few of these messages), live messages carry their seq, and the read position
//! reaches the server.

use crate::client_support;

use std::time::Duration;

use client_support::{endpoint, fast, online};
use hongyan_client::ClientEvent;
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_server::{Delivery, Outgoing};
use hongyan_shared::client::{HistoryEvent, HistoryView, SyncConfig};
use hongyan_shared::{Transport, UserId};
use hongyan_tests::{TestServer, WAIT, on_each_transport};

/// Messages bob sends alice while she is away, each too large for more than two to share a
/// UDP datagram.
const AWAY: u64 = 30;

fn content(i: u64) -> String {
    format!("{i:03} {}", "x".repeat(300))
}

async fn what_was_sent_while_away_is_synced_in_pages_and_live_messages_carry_their_seq(
    t: Transport,
) {
    let server = TestServer::with(|c| c.store = StoreSpec::Memory).await;
    let bob = UserId::from("bob");
    for i in 1..=AWAY {
        let sent = server
            .handle
            .send_as(&bob, Outgoing::new("alice", content(i)))
            .await
            .expect("a valid message");
        assert_eq!(sent.outcome().await, Delivery::Stored);
    }

    let mut config = fast(endpoint(&server, t));
    config.session.sync = Some(SyncConfig {
        history_page: 50,
        ..SyncConfig::default()
    });
    let (alice, mut events) = online(config, "alice").await;
    let mut view = HistoryView::new();
    let mut pages = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    let complete = |view: &HistoryView| {
        view.conversation(&bob)
            .is_some_and(|c| c.messages.keys().copied().eq(1..=AWAY))
    };
    while !complete(&view) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{t}: not synced within {WAIT:?}: {view:#?}"))
            .expect("the session runs");
        if matches!(event, ClientEvent::History(HistoryEvent::Page { .. })) {
            pages += 1;
        }
        view.apply(&event);
    }
    let conversation = view.conversation(&bob).expect("synced");
    for (seq, message) in &conversation.messages {
        assert_eq!(message.content.as_deref(), Some(content(*seq).as_str()));
        assert_eq!(message.from, bob);
    }
    if t == Transport::Udp {
        assert!(pages >= 10, "{pages} pages of at most 1024 bytes");
    }

    server
        .handle
        .send_as(&bob, Outgoing::new("alice", "live"))
        .await
        .expect("a valid message");
    let deadline = tokio::time::Instant::now() + WAIT;
    let live = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::MessageReceived(m))) if m.content == "live" => break m,
            Ok(Some(_)) => {}
            other => panic!("{t}: no live message: {other:?}"),
        }
    };
    assert_eq!(live.seq.map(|tag| tag.seq), Some(AWAY + 1), "{t}");

    alice.mark_read("bob", AWAY + 1).await.expect("online");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (listed, _) = server
            .handle
            .conversations(&UserId::from("alice"), None, 10)
            .await
            .expect("history is on");
        if listed.first().is_some_and(|c| c.read == AWAY + 1) {
            assert_eq!(listed[0].unread, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{t}: read position not moved: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.logout().await;
    server.stop().await;
}

on_each_transport!(what_was_sent_while_away_is_synced_in_pages_and_live_messages_carry_their_seq);
