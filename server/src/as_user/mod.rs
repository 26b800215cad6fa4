//! The backend as a user (the seed's `loginConnect` / `sendMsg`, without a socket client in
//! the backend): send in a user's name, with the C2C rules and an outcome, and receive as a
//! user through an HTTP session streamed as Server-Sent Events. Both are parts of the HTTP
//! API under `/api`, in its OpenAPI document; the session itself is the `gateway::sse` pipe.
//!
//! - `send`: `POST /api/messages/c2c`, `POST /api/messages/c2c/batch` (admin token).
//! - `sessions`: `POST /api/sessions` (admin token), then, with the session's token,
//!   `GET /api/sessions/{sessionToken}/events`, `POST …/acks`, `POST …/keepalive`,
//!   `DELETE /api/sessions/{sessionToken}`.

mod send;
mod sessions;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::state::HttpState;

/// The operations that need the admin token.
pub(crate) fn admin_routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(send::send))
        .routes(routes!(send::send_batch))
        .routes(routes!(sessions::create))
}

/// The operations of an open session, authorised by its token alone (so an SSE reader that
/// cannot set headers, such as a browser's `EventSource`, can use them).
pub(crate) fn session_routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(sessions::events))
        .routes(routes!(sessions::acknowledge))
        .routes(routes!(sessions::keep_alive))
        .routes(routes!(sessions::logout))
}
