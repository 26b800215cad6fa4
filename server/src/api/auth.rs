//! Bearer-token checks: the admin token in front of every `/api` operation, and the optional
//! metrics token in front of `/metrics`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::AppError;
use crate::http::state::HttpState;
use crate::token::BearerToken;

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether `headers` carry `token`.
pub(crate) fn authorized(headers: &HeaderMap, token: &BearerToken) -> bool {
    presented(headers).is_some_and(|p| token.matches(p))
}

/// Middleware: lets the request through only with the admin token.
pub(crate) async fn require_admin(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let Some(token) = &state.core.config.admin_token else {
        return Err(AppError::ApiDisabled);
    };
    if !authorized(request.headers(), token) {
        return Err(AppError::Unauthorized);
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_bearer_scheme_with_the_right_token_is_authorized() {
        let token = BearerToken::new("t0ken").unwrap();
        assert!(authorized(&with("Bearer t0ken"), &token));
        assert!(authorized(&with("bearer t0ken"), &token));
        assert!(!authorized(&with("Bearer t0ke"), &token));
        assert!(!authorized(&with("Basic t0ken"), &token));
        assert!(!authorized(&with("t0ken"), &token));
        assert!(!authorized(&HeaderMap::new(), &token));
    }
}
