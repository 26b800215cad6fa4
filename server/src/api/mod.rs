//! The HTTP API for application backends, under `/api`: push messages, list and kick online
//! users, read statistics. JSON in and out; every operation needs the admin token
//! (`Authorization: Bearer <token>`). The OpenAPI document is generated from the handlers
//! (so it cannot drift from the routes), served at `/api/openapi.json` and browsable at
//! `/api/docs` (Swagger UI, served from the binary). Both are public: they describe the API
//! but grant nothing.
//!
//! - `auth.rs`: the bearer-token checks.
//! - `error.rs`: [`AppError`](error::AppError), the one error type, and its JSON body.
//! - `extract.rs`: JSON, query and path extractors that fail with an `AppError`.
//! - `messages.rs`: `POST /api/messages`, `POST /api/messages/batch`.
//! - `users.rs`: `GET /api/users`, `GET /api/users/{userId}`, `POST /api/users/{userId}/kick`.
//! - `stored.rs`: `GET` and `DELETE /api/users/{userId}/stored` (stored messages).
//! - `history.rs`: `GET /api/users/{userId}/conversations` and
//!   `GET /api/users/{userId}/conversations/{peer}/messages` (conversation history).
//! - `stats.rs`: `GET /api/stats`.
//! - `exempt.rs`: `POST`, `GET` and `DELETE /api/limits/exempt` (lifting the limits for an
//!   address).
//! - `throttle.rs`: the API's own limits: requests per second per address, body size.
//!
//! The operations that act as a user (`/api/messages/c2c`, `/api/sessions`) are in
//! `as_user`, registered here.

pub(crate) mod auth;
pub(crate) mod defaults;
pub(crate) mod error;
mod exempt;
pub(crate) mod extract;
mod history;
mod messages;
mod stats;
mod stored;
mod throttle;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::any;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use self::error::AppError;
use crate::as_user;
use crate::http::state::HttpState;

/// Where the OpenAPI document is served.
pub(crate) const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where the Swagger UI is served.
pub(crate) const DOCS_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hongyan HTTP API",
        description = "Integrate hongyan with an application backend: push server-to-client \
            messages, act as a user (send in a user's name, receive as a user over an HTTP \
            session streamed as Server-Sent Events), list and kick online users, count and \
            erase users' stored messages, read conversation history, read statistics. Every operation needs the admin \
            token as `Authorization: Bearer <token>`, but for those of an open HTTP session, \
            which its session token in the path authorises. See docs/INTEGRATION.md for the \
            webhooks hongyan calls and the metrics it exports."
    ),
    modifiers(&AdminToken),
    security(("admin_token" = [])),
    tags(
        (name = "messages", description = "Messages: pushed by the server (S2C, from \"0\"), or sent in a user's name (C2C)"),
        (name = "sessions", description = "HTTP sessions: receive as a user, as Server-Sent Events"),
        (name = "users", description = "Online users, and users' stored messages"),
        (name = "history", description = "Conversation history: a user's conversations, a conversation's messages by seq"),
        (name = "server", description = "The server itself, and its abuse limits"),
    )
)]
struct ApiDoc;

/// Declares the `admin_token` bearer scheme the operations require.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token: --admin-token, HONGYAN_ADMIN_TOKEN, admin_token in the \
                         config file, or the one generated at first start",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document and the operations it describes, nested under `/api`: behind the
/// admin token, but for those of an open HTTP session, which its token authorises.
fn operations(state: &HttpState) -> (Router<HttpState>, utoipa::openapi::OpenApi) {
    let api = OpenApiRouter::new()
        .routes(routes!(messages::push))
        .routes(routes!(messages::push_batch))
        .routes(routes!(users::list))
        .routes(routes!(users::get))
        .routes(routes!(users::kick))
        .routes(routes!(stored::count, stored::erase))
        .routes(routes!(history::conversations))
        .routes(routes!(history::messages))
        .routes(routes!(stats::stats))
        .routes(routes!(exempt::add, exempt::list, exempt::remove))
        .merge(as_user::admin_routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        // A session's routes carry its own token, not the admin's.
        .merge(as_user::session_routes())
        // Outside the token check, so a flood of bad tokens is limited too.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            throttle::limit_requests,
        ))
        .route_layer(DefaultBodyLimit::max(state.core.config.api_max_body_bytes));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api", api)
        .split_for_parts()
}

/// Everything under `/api`: the operations, the OpenAPI document, the Swagger UI, and a JSON
/// 404 for any other `/api` path.
pub(crate) fn router(state: &HttpState) -> Router<HttpState> {
    let (operations, doc) = operations(state);
    operations
        .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, doc))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
}

async fn not_found() -> AppError {
    AppError::NotFound
}
