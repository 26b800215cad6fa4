//! The API's one error type: every failure becomes a JSON body with a stable `code` and a
//! `message` that says what is wrong, logged once, here.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable, machine-readable: `unauthorized`, `api_disabled`, `invalid_body`,
    /// `invalid_query`, `invalid_path`, `invalid_request`, `not_online`, `fp_in_flight`,
    /// `too_large`, `not_found`, `store_off`, `store_unavailable`, `rate_limited`,
    /// `body_too_large`, `not_exempt`, `login_refused`, `login_unavailable`,
    /// `no_such_session`, `too_many_sessions`.
    #[schema(example = "not_online")]
    code: &'static str,
    /// For people: what is wrong and, where it helps, how to fix it.
    #[schema(example = "user \"alice\" is not online")]
    message: String,
    /// With `login_refused`: the code the login was refused with, as a client's login
    /// response carries it (1024: the verify webhook was unavailable; 1025 and up: the
    /// application's).
    #[serde(rename = "loginCode", skip_serializing_if = "Option::is_none")]
    #[schema(example = 1025)]
    login_code: Option<i32>,
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// No `Authorization: Bearer` header, or the wrong token.
    #[error("missing or invalid bearer token (send Authorization: Bearer <admin token>)")]
    Unauthorized,
    /// The server has no admin token, so the API is off.
    #[error("the HTTP API is disabled: no admin token is configured")]
    ApiDisabled,
    /// The body is not JSON of the expected shape.
    #[error("{}", .0.body_text())]
    Body(#[from] JsonRejection),
    /// The query string does not parse.
    #[error("{}", .0.body_text())]
    Query(#[from] QueryRejection),
    /// A path parameter does not parse.
    #[error("{}", .0.body_text())]
    Path(#[from] PathRejection),
    /// The request parses but a value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The user is not online.
    #[error("user {0:?} is not online")]
    NotOnline(String),
    /// A message with the chosen fingerprint still awaits the receiver's acknowledgement.
    #[error(
        "a message with fp {fp:?} still awaits {to:?}'s acknowledgement; choose another fp or wait"
    )]
    InFlight {
        /// The receiver.
        to: String,
        /// The fingerprint.
        fp: String,
    },
    /// The message is larger than the receiver's transport carries.
    #[error("the message encodes to {len} bytes; the receiver's transport carries at most {max}")]
    TooLarge {
        /// The encoded packet size.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// No such endpoint.
    #[error("no such API endpoint; the API is described at /api/openapi.json")]
    NotFound,
    /// The server keeps no messages.
    #[error("this server keeps no messages: its store setting is off")]
    NoStore,
    /// The message store failed.
    #[error("{0}")]
    Store(hongyan_store::StoreError),
    /// The caller's address made more requests than `api_requests_per_sec_per_ip` allows.
    #[error("too many API requests from your address; slow down (api_requests_per_sec_per_ip)")]
    RateLimited,
    /// No exemption of that range was added through the API.
    #[error("no exemption of {0} was added through the API")]
    NotExempt(String),
    /// Verification refused the login of an HTTP session.
    #[error("the login was refused with code {0}")]
    LoginRefused(i32),
    /// An HTTP session ended before its login completed.
    #[error(
        "the session ended before its login completed: verification did not answer within \
         login_timeout_secs, or the server is shutting down"
    )]
    LoginUnavailable,
    /// No HTTP session has this token.
    #[error(
        "no such session: it ended (logout, kickout, idle expiry) or never existed; create a \
         new one with POST /api/sessions"
    )]
    NoSuchSession,
    /// `max_http_sessions` are open.
    #[error("the server holds as many HTTP sessions as it may (max_http_sessions)")]
    TooManySessions,
}

/// Marks an answer to a body over `api_max_body_bytes`, for the limits to count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTooLarge;

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ApiDisabled => StatusCode::SERVICE_UNAVAILABLE,
            Self::Body(rejection) => rejection.status(),
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::NotExempt(_) => StatusCode::NOT_FOUND,
            Self::Query(rejection) => rejection.status(),
            Self::Path(rejection) => rejection.status(),
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotOnline(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::InFlight { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoStore => StatusCode::CONFLICT,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::LoginRefused(_) => StatusCode::FORBIDDEN,
            Self::LoginUnavailable | Self::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoSuchSession => StatusCode::NOT_FOUND,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::ApiDisabled => "api_disabled",
            Self::Body(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                "body_too_large"
            }
            Self::Body(_) => "invalid_body",
            Self::RateLimited => "rate_limited",
            Self::NotExempt(_) => "not_exempt",
            Self::Query(_) => "invalid_query",
            Self::Path(_) => "invalid_path",
            Self::Invalid(_) => "invalid_request",
            Self::NotOnline(_) => "not_online",
            Self::InFlight { .. } => "fp_in_flight",
            Self::TooLarge { .. } => "too_large",
            Self::NotFound => "not_found",
            Self::NoStore => "store_off",
            Self::Store(_) => "store_unavailable",
            Self::LoginRefused(_) => "login_refused",
            Self::LoginUnavailable => "login_unavailable",
            Self::NoSuchSession => "no_such_session",
            Self::TooManySessions => "too_many_sessions",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
            login_code: match self {
                Self::LoginRefused(code) => Some(code),
                _ => None,
            },
        };
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), code = body.code, message = %body.message, "api error");
        } else {
            tracing::debug!(status = status.as_u16(), code = body.code, message = %body.message, "api request refused");
        }
        let mut response = (status, Json(body)).into_response();
        match self {
            Self::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hongyan\""),
                );
            }
            Self::RateLimited => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Body(_) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                response.extensions_mut().insert(BodyTooLarge);
            }
            _ => {}
        }
        response
    }
}
