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
pub(super) enum ApiError {
    /// The store refused or failed; the code follows from its error.
    Store(StoreError),
    /// Anything else, with its code and message.
    Status(StatusCode, String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::Store(StoreError::Invalid(error))
    }
}

/// Runs a handler's work on the blocking pool: parsing, rendering, hashing and SQLite calls
/// must not hold an async worker thread, or one slow request delays every other one.
pub(super) async fn blocking(work: impl FnOnce() -> ApiResult + Send + 'static) -> ApiResult {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            tracing::error!("an admin request's work failed: {error}");
            Err(ApiError::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request's work failed ({error}); see the provisioner's log"),
            ))
        })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::Store(error) => error,
            ApiError::Status(code, message) => return error_response(code, message),
        };
        let code = match &error {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) | StoreError::Report(_) => StatusCode::CONFLICT,
            StoreError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            StoreError::Database(_) | StoreError::Corrupt(_) => {
                tracing::error!("store failed: {error}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        error_response(code, error.to_string())
    }
}

/// `{"error": message}` with `code`.
pub(super) fn error_response(code: StatusCode, message: String) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message }))).into_response()
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
