//! Admin authentication: every `/api` operation needs the admin token; the OpenAPI document,
//! the docs, health, readiness and (unless a metrics token is set) metrics do not.

use crate::api_support;

use api_support::{Api, TOKEN, server, server_with};
use hongyan_server::BearerToken;
use hongyan_tests::TestServer;

#[tokio::test]
async fn a_request_without_a_token_is_refused_with_a_bearer_challenge() {
    let server = server().await;
    let reply = Api::anonymous(server.http).get("/api/stats").await;
    reply.assert_error(401, "unauthorized");
    assert_eq!(
        reply.headers["www-authenticate"],
        "Bearer realm=\"hongyan\""
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_right_one_accepted() {
    let server = server().await;
    let wrong = Api::with_token(server.http, Some("not-the-token"))
        .get("/api/stats")
        .await;
    wrong.assert_error(401, "unauthorized");
    let prefix = Api::with_token(server.http, Some(&TOKEN[..TOKEN.len() - 1]))
        .get("/api/stats")
        .await;
    prefix.assert_error(401, "unauthorized");
    let right = Api::new(server.http).get("/api/stats").await;
    assert_eq!(right.status, 200, "{right:?}");
}

#[tokio::test]
async fn a_token_in_another_scheme_is_refused() {
    let server = server().await;
    let client = reqwest::Client::new();
    let reply = client
        .get(format!("http://{}/api/stats", server.http))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
}

#[tokio::test]
async fn without_an_admin_token_the_api_is_disabled_not_open() {
    let server = TestServer::start().await;
    let reply = Api::new(server.http).get("/api/stats").await;
    reply.assert_error(503, "api_disabled");
    let reply = Api::anonymous(server.http)
        .post(
            "/api/messages",
            serde_json::json!({"to": "alice", "content": "hi"}),
        )
        .await;
    reply.assert_error(503, "api_disabled");
}

#[tokio::test]
async fn the_document_docs_and_probes_need_no_token() {
    let server = server().await;
    let api = Api::anonymous(server.http);
    for path in [
        "/api/openapi.json",
        "/api/docs/",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        let reply = api.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

#[tokio::test]
async fn a_metrics_token_protects_metrics_but_not_the_other_probes() {
    let server = server_with(|c| {
        c.metrics_token = Some(BearerToken::new("scraper").unwrap());
    })
    .await;
    Api::anonymous(server.http)
        .get("/metrics")
        .await
        .assert_error(401, "unauthorized");
    Api::new(server.http)
        .get("/metrics")
        .await
        .assert_error(401, "unauthorized");
    let scraped = Api::with_token(server.http, Some("scraper"))
        .get("/metrics")
        .await;
    assert_eq!(scraped.status, 200);
    assert_eq!(
        Api::anonymous(server.http).get("/healthz").await.status,
        200
    );
}

#[tokio::test]
async fn an_unknown_api_path_is_a_json_404_even_without_a_token() {
    let server = server().await;
    Api::new(server.http)
        .get("/api/nope")
        .await
        .assert_error(404, "not_found");
    Api::anonymous(server.http)
        .get("/api/users/alice/nope")
        .await
        .assert_error(404, "not_found");
}
