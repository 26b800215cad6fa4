//! The API against the H5 client in headless Chromium: a push the browser acknowledges is
//! `delivered` and shows in the system conversation, and an administrator's kick through the
//! API leaves the page kicked out. Needs `dist/` (scripts/test builds it).

use crate::api_support;

use api_support::{Api, server_with};
use hongyan_tests::browser::{Driver, serve_web_client};
use serde_json::json;

#[tokio::test]
async fn a_push_to_a_browser_is_delivered_and_shown_and_a_kick_ends_its_session() {
    let server = server_with(serve_web_client).await;
    let url = format!("http://{}/", server.http);
    let mut driver = Driver::start().await;
    let alice = driver.open(&url).await;
    alice.log_in_online("alice").await;

    let api = Api::new(server.http);
    let notice = "Your order has shipped";
    let body = api
        .post(
            "/api/messages",
            json!({"to": "alice", "content": notice, "typeu": 1, "wait": true}),
        )
        .await
        .ok();
    assert_eq!(
        body["outcome"], "delivered",
        "the browser acknowledges: {body}"
    );
    alice.click("li.conversation.system[data-peer=\"0\"]").await;
    alice.wait_for_message(notice).await;

    let user = api.get("/api/users/alice").await.ok();
    assert_eq!(user["transport"], "ws");

    api.post("/api/users/alice/kick", json!({"reason": "maintenance"}))
        .await
        .ok();
    alice.wait_for_status("kicked-out").await;
    api.get("/api/users/alice")
        .await
        .assert_error(404, "not_online");
    alice.close().await;
}
