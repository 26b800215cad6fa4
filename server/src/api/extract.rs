//! Axum's JSON, query and path extractors, answering malformed input with an [`AppError`]
//! (JSON, stable code) instead of axum's plain-text rejection.

use axum::extract::{FromRequest, FromRequestParts};

use super::error::AppError;

/// A JSON request body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub(crate) struct Json<T>(pub(crate) T);

/// A query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub(crate) struct Query<T>(pub(crate) T);

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub(crate) struct Path<T>(pub(crate) T);
