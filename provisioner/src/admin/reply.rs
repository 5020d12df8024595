//! The answers every API route shares: JSON results, and refusals as `{"error": "..."}` with
//! the status code the store's error calls for.
//!
//! Bodies are parsed here rather than by axum's `Json` extractor so that a bad body gets
//! the same `{"error": "<field>: <reason>"}` answer as every other refusal.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::store::{Store, StoreError};
use crate::template::FieldError;

pub(super) type Shared = State<Arc<Store>>;

/// A refusal or failure, answered as `{"error": "..."}`.
pub(super) struct ApiError(StoreError);

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self(error)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self(StoreError::Invalid(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self.0 {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) | StoreError::Report(_) => StatusCode::CONFLICT,
            StoreError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            StoreError::Database(_) | StoreError::Corrupt(_) => {
                tracing::error!("store failed: {}", self.0);
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            code,
            axum::Json(serde_json::json!({ "error": self.0.to_string() })),
        )
            .into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn created(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

pub(super) fn found(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

pub(super) fn deleted() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body as `T`; a value of the wrong type or shape is named by its path
/// (`macs[0]: invalid type: integer, expected a string`), anything else by `body`.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FieldError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        // No known segment (`.` or `?`): the body is not JSON, or not an object at all.
        let located = error
            .path()
            .iter()
            .any(|segment| !matches!(segment, serde_path_to_error::Segment::Unknown));
        let path = error.path().to_string();
        let error = error.into_inner();
        if !located {
            FieldError::new("body", format!("not the expected JSON: {error}"))
        } else {
            FieldError::new(path, error.to_string())
        }
    })?;
    // Trailing text after the value (`{..} x`): `serde_json::from_slice` refused it too.
    deserializer
        .end()
        .map_err(|error| FieldError::new("body", format!("not the expected JSON: {error}")))?;
    Ok(value)
}
