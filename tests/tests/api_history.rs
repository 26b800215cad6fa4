//! The history API (issue 12): a user's conversations and a conversation's messages by seq,
//! paged, for the application's backend; refused with `history_off` where no history is kept.

use crate::api_support;

use std::time::Duration;

use api_support::{Api, server, server_with};
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_tests::WAIT;
use serde_json::{Value, json};

/// Waits until `user`'s conversations list is `expected` (messages are numbered as soon as
/// their conversation's counter is loaded by the store chores).
async fn conversations_become(api: &Api, user: &str, expected: Value) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = api
            .get(&format!("/api/users/{user}/conversations"))
            .await
            .ok();
        let summary: Vec<Value> = page["conversations"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| json!([c["peer"], c["newest"]]))
            .collect();
        if Value::from(summary.clone()) == expected {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user}'s conversations stayed {summary:?}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["seq"].as_u64().expect("a seq"))
        .collect()
}

#[tokio::test]
async fn a_users_conversations_and_their_messages_are_read_by_seq_a_page_at_a_time() {
    let server = server_with(|c| c.store = StoreSpec::Memory).await;
    let api = Api::new(server.http);
    for i in 1..=3 {
        let sent = api
            .post(
                "/api/messages/c2c",
                json!({"from": "alice", "to": "bob", "content": format!("hi {i}"), "fp": format!("m-{i}")}),
            )
            .await
            .ok();
        assert_eq!(sent["outcome"], "stored", "bob is offline");
    }
    let pushed = api
        .post("/api/messages", json!({"to": "bob", "content": "welcome"}))
        .await
        .ok();
    assert_eq!(pushed["outcome"], "stored");

    let bobs = conversations_become(&api, "bob", json!([["0", 1], ["alice", 3]])).await;
    assert_eq!(
        bobs["conversations"][1],
        json!({"peer": "alice", "newest": 3, "read": 0, "unread": 3, "at": bobs["conversations"][1]["at"]})
    );
    assert!(bobs["conversations"][1]["at"].as_i64().unwrap() > 0);
    assert_eq!(bobs["next"], Value::Null);
    // Sending moved alice's read position: she has read her own messages.
    let alices = conversations_become(&api, "alice", json!([["bob", 3]])).await;
    assert_eq!(alices["conversations"][0]["unread"], 0);

    // One conversation per page, then the next from `next`.
    let first = api.get("/api/users/bob/conversations?limit=1").await.ok();
    assert_eq!(first["conversations"][0]["peer"], "0");
    assert_eq!(first["next"], "0");
    let second = api
        .get("/api/users/bob/conversations?limit=1&after=0")
        .await
        .ok();
    assert_eq!(second["conversations"][0]["peer"], "alice");
    assert_eq!(second["next"], Value::Null);

    // Reading forward from the start, two at a time.
    let path = "/api/users/bob/conversations/alice/messages";
    let page = api.get(&format!("{path}?after=0&limit=2")).await.ok();
    assert_eq!(seqs(&page), [1, 2]);
    assert_eq!(
        (page["newest"].as_u64(), page["more"].as_bool()),
        (Some(3), Some(true))
    );
    let message = &page["messages"][0];
    assert_eq!(
        (
            &message["from"],
            &message["fp"],
            &message["content"],
            &message["typeu"]
        ),
        (&json!("alice"), &json!("m-1"), &json!("hi 1"), &json!(-1))
    );
    let page = api.get(&format!("{path}?after=2&limit=2")).await.ok();
    assert_eq!(
        (seqs(&page), page["more"].as_bool()),
        (vec![3], Some(false))
    );
    // Reading back from the newest, and before a seq.
    let page = api.get(&format!("{path}?limit=2")).await.ok();
    assert_eq!(
        (seqs(&page), page["more"].as_bool()),
        (vec![2, 3], Some(true))
    );
    let page = api.get(&format!("{path}?before=2")).await.ok();
    assert_eq!(
        (seqs(&page), page["more"].as_bool()),
        (vec![1], Some(false))
    );
    // The same conversation from alice's side; the server's pushes as peer "0".
    let page = api
        .get("/api/users/alice/conversations/bob/messages")
        .await
        .ok();
    assert_eq!(seqs(&page), [1, 2, 3]);
    let page = api
        .get("/api/users/bob/conversations/0/messages")
        .await
        .ok();
    assert_eq!(page["messages"][0]["from"], "0");
    assert_eq!(page["messages"][0]["content"], "welcome");
    // A conversation that does not exist is empty.
    let page = api
        .get("/api/users/bob/conversations/carol/messages")
        .await
        .ok();
    assert_eq!((seqs(&page), page["newest"].as_u64()), (vec![], Some(0)));

    api.get(&format!("{path}?limit=0"))
        .await
        .assert_error(422, "invalid_request");
    api.get("/api/users/bob/conversations?limit=1001")
        .await
        .assert_error(422, "invalid_request");
    server.stop().await;
}

#[tokio::test]
async fn without_a_store_or_with_no_retention_there_is_no_history_to_read() {
    let without_store = server().await;
    let api = Api::new(without_store.http);
    api.get("/api/users/bob/conversations")
        .await
        .assert_error(409, "history_off");
    api.get("/api/users/bob/conversations/alice/messages")
        .await
        .assert_error(409, "history_off");
    without_store.stop().await;

    let no_retention = server_with(|c| {
        c.store = StoreSpec::Memory;
        c.history_retention = Duration::ZERO;
    })
    .await;
    Api::new(no_retention.http)
        .get("/api/users/bob/conversations")
        .await
        .assert_error(409, "history_off");
    no_retention.stop().await;
}
