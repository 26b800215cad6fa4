//! The OpenAPI document at `/api/openapi.json`: a valid OpenAPI 3.1 document, generated from the
//! handlers, so every operation it lists is routed and guarded, and the Swagger UI that renders
//! it is served by hongyan itself.

use crate::api_support;

use api_support::{Api, server};
use serde_json::Value;

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_with_every_reference_resolved() {
    let server = server().await;
    let reply = Api::anonymous(server.http).get("/api/openapi.json").await;
    assert_eq!(reply.status, 200);
    let spec = oas3::from_json(&reply.text).expect("the document parses as OpenAPI");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert!(spec.info.title.contains("hongyan"));

    let schemes = &spec
        .components
        .as_ref()
        .expect("components")
        .security_schemes;
    assert!(schemes.contains_key("admin_token"), "{schemes:?}");
    let mut found = Vec::new();
    refs(&reply.json, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            reply.json["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
}

#[tokio::test]
async fn the_document_lists_the_integration_operations() {
    let server = server().await;
    let reply = Api::anonymous(server.http).get("/api/openapi.json").await;
    let spec = oas3::from_json(&reply.text).expect("the document parses");
    let mut operations: Vec<String> = spec
        .operations()
        .map(|(path, method, _)| format!("{method} {path}"))
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /api/limits/exempt",
            "DELETE /api/sessions/{sessionToken}",
            "DELETE /api/users/{userId}/stored",
            "GET /api/limits/exempt",
            "GET /api/sessions/{sessionToken}/events",
            "GET /api/stats",
            "GET /api/users",
            "GET /api/users/{userId}",
            "GET /api/users/{userId}/conversations",
            "GET /api/users/{userId}/conversations/{peer}/messages",
            "GET /api/users/{userId}/stored",
            "POST /api/limits/exempt",
            "POST /api/messages",
            "POST /api/messages/batch",
            "POST /api/messages/c2c",
            "POST /api/messages/c2c/batch",
            "POST /api/sessions",
            "POST /api/sessions/{sessionToken}/acks",
            "POST /api/sessions/{sessionToken}/keepalive",
            "POST /api/users/{userId}/kick",
        ]
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_needs_the_admin_token_or_a_session() {
    let server = server().await;
    let anonymous = Api::anonymous(server.http);
    let reply = anonymous.get("/api/openapi.json").await;
    let spec = oas3::from_json(&reply.text).expect("the document parses");
    assert!(
        !spec.security.is_empty(),
        "the document declares the admin token for every operation"
    );
    for (path, method, operation) in spec.operations() {
        assert!(operation.operation_id.is_some(), "{method} {path}");
        let concrete = path
            .replace("{userId}", "alice")
            .replace("{sessionToken}", "no-such-session");
        // A body every operation takes (acknowledgements need one).
        let body = serde_json::json!({"fps": ["fp"]});
        let reply = anonymous.call_with(method.as_str(), &concrete, body).await;
        if path.contains("{sessionToken}") {
            // An open session's operations need its token alone, and say so in the document;
            // a token that names no session is 404 (a missing route would answer the generic
            // `not_found`, a wrong method 405).
            assert_eq!(
                serde_json::to_value(&operation.security).unwrap(),
                serde_json::json!([{}]),
                "{method} {path} needs no admin token"
            );
            reply.assert_error(404, "no_such_session");
        } else {
            // Without the token every other operation that exists answers 401; a missing route
            // would answer 404 and a wrong method 405.
            reply.assert_error(401, "unauthorized");
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_and_points_at_the_document() {
    let server = server().await;
    let api = Api::anonymous(server.http);
    let page = api.get("/api/docs/").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no asset comes from elsewhere: {}",
        page.text
    );
    let init = api.get("/api/docs/swagger-initializer.js").await;
    assert_eq!(init.status, 200);
    assert!(init.text.contains("/api/openapi.json"), "{}", init.text);
    let bundle = api.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status, 200);
    assert!(bundle.text.len() > 100_000);
}
