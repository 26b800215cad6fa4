//! Online users through the API: pages of `GET /api/users`, `GET /api/users/{userId}`, and the
//! administrator's kick (code 2, §7.3).

use crate::api_support;

use std::time::{SystemTime, UNIX_EPOCH};

use api_support::{Api, server};
use hongyan_shared::{Kickout, PacketType, Transport};
use hongyan_tests::{Event, Peer};
use serde_json::{Value, json};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ids(page: &Value) -> Vec<&str> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn online_users_are_listed_in_id_order_a_page_at_a_time() {
    let server = server().await;
    let mut peers = Vec::new();
    for (user, transport) in [
        ("carol", Transport::Udp),
        ("alice", Transport::Tcp),
        ("dave", Transport::WebSocket),
        ("bob", Transport::Tcp),
    ] {
        peers.push(server.logged_in(transport, user).await);
    }
    let api = Api::new(server.http);

    let first = api.get("/api/users?limit=3").await.ok();
    assert_eq!(ids(&first), ["alice", "bob", "carol"]);
    assert_eq!(first["next"], "carol");
    assert_eq!(first["total"], 4);
    let second = api.get("/api/users?limit=3&after=carol").await.ok();
    assert_eq!(ids(&second), ["dave"]);
    assert!(second["next"].is_null(), "the last page has no next");

    let all = api.get("/api/users").await.ok();
    assert_eq!(ids(&all), ["alice", "bob", "carol", "dave"]);
    assert_eq!(all["users"][2]["transport"], "udp");
    assert_eq!(all["users"][3]["transport"], "ws");
}

#[tokio::test]
async fn a_user_lookup_tells_transport_address_and_login_times() {
    let server = server().await;
    let before = now_ms();
    let mut alice = Peer::connect(Transport::WebSocket, &server).await;
    let response = alice.login("alice", 1_700_000_000_000).await;
    assert_eq!(response.code, 0);

    let user = Api::new(server.http).get("/api/users/alice").await.ok();
    assert_eq!(user["userId"], "alice");
    assert_eq!(user["transport"], "ws");
    assert_eq!(user["firstLoginTime"], 1_700_000_000_000_i64);
    assert!(
        user["peerAddr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{user}"
    );
    assert!(
        user["sessionId"].as_str().unwrap().starts_with('s'),
        "{user}"
    );
    let since = user["since"].as_i64().unwrap();
    assert!(
        since >= before && since <= now_ms(),
        "{since} not within the test"
    );
}

#[tokio::test]
async fn looking_up_or_kicking_an_offline_user_is_a_404() {
    let server = server().await;
    let api = Api::new(server.http);
    api.get("/api/users/nobody")
        .await
        .assert_error(404, "not_online");
    api.post("/api/users/nobody/kick", json!({}))
        .await
        .assert_error(404, "not_online");
}

async fn a_kicked_user_gets_code_2_with_the_reason_and_goes_offline(transport: Transport) {
    let server = server().await;
    let mut alice = server.logged_in(transport, "alice").await;
    let api = Api::new(server.http);

    let body = api
        .post(
            "/api/users/alice/kick",
            json!({"reason": "account suspended"}),
        )
        .await
        .ok();
    assert_eq!(body, json!({"userId": "alice", "kickCode": 2}));
    let kickout = alice.expect(PacketType::Kickout).await;
    let kickout = Kickout::decode(kickout.data_content.as_deref().unwrap()).unwrap();
    assert_eq!(kickout.code, 2);
    assert_eq!(kickout.reason.as_deref(), Some("account suspended"));

    server
        .hooks
        .wait_for(|e| *e == Event::Logout("alice".into(), Some(2)))
        .await;
    api.get("/api/users/alice")
        .await
        .assert_error(404, "not_online");
}

hongyan_tests::on_each_transport!(a_kicked_user_gets_code_2_with_the_reason_and_goes_offline);

#[tokio::test]
async fn a_kick_needs_no_body() {
    let server = server().await;
    let mut alice = server.logged_in(Transport::Tcp, "alice").await;
    let reply = Api::new(server.http)
        .post_raw("/api/users/alice/kick", None, "")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let kickout = alice.expect(PacketType::Kickout).await;
    let kickout = Kickout::decode(kickout.data_content.as_deref().unwrap()).unwrap();
    assert_eq!(kickout.code, 2);
}

#[tokio::test]
async fn malformed_user_requests_say_what_is_wrong() {
    let server = server().await;
    let _alice = server.logged_in(Transport::Tcp, "alice").await;
    let api = Api::new(server.http);
    api.get("/api/users?limit=0")
        .await
        .assert_error(422, "invalid_request");
    api.get("/api/users?limit=1001")
        .await
        .assert_error(422, "invalid_request");
    api.get("/api/users?limit=many")
        .await
        .assert_error(400, "invalid_query");
    api.get("/api/users?colour=red")
        .await
        .assert_error(400, "invalid_query");
    api.post_raw(
        "/api/users/alice/kick",
        Some("application/json"),
        "{\"reason\":",
    )
    .await
    .assert_error(422, "invalid_request");
    api.post("/api/users/alice/kick", json!({"reason": "x".repeat(600)}))
        .await
        .assert_error(422, "invalid_request");
    api.post("/api/users/alice/kick", json!({"why": "x"}))
        .await
        .assert_error(422, "invalid_request");
    assert!(
        server.handle.is_online(&"alice".into()),
        "no bad request kicked anyone"
    );
}
