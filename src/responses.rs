//! The HTTP error bodies the REST paths and the agent endpoints share: the
//! shapes Obico's clients and agents parse. Both edges use this module;
//! neither imports the other.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `{"detail": "..."}`, the error body Obico's clients parse.
pub fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"detail": message}))).into_response()
}

/// `{"<field>": ["<message>"]}` with 400: a refused field.
pub fn field_error(field: &str, message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ field: [message] }))).into_response()
}
