//! The REST/JSON API: the same operations as the CLI, under `/api/v1`.
//!
//! Bodies are parsed here rather than by axum's `Json` extractor so that a bad body gets
//! the same `{"error": "<field>: <reason>"}` answer as every other refusal.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::store::{HardwareSpec, Store, StoreError};
use crate::template::FieldError;

type Shared = State<Arc<Store>>;

/// The API's routes on `store`.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route(
            "/api/v1/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/templates/{id}",
            get(get_template).delete(delete_template),
        )
        .route("/api/v1/hardware", get(list_hardware).post(create_hardware))
        .route(
            "/api/v1/hardware/{id}",
            get(get_hardware).delete(delete_hardware),
        )
        .route(
            "/api/v1/workflows",
            get(list_workflows).post(create_workflow),
        )
        .route(
            "/api/v1/workflows/{id}",
            get(get_workflow).delete(delete_workflow),
        )
        .with_state(store)
}

/// A refusal or failure, answered as `{"error": "..."}`.
struct ApiError(StoreError);

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

type ApiResult = Result<Response, ApiError>;

fn created(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

fn found(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

fn deleted() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FieldError> {
    serde_json::from_slice(body)
        .map_err(|error| FieldError::new("body", format!("not the expected JSON: {error}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateRequest {
    name: Option<String>,
    /// The template's YAML.
    data: Option<String>,
}

async fn create_template(State(store): Shared, body: Bytes) -> ApiResult {
    let request: TemplateRequest = parse_body(&body)?;
    let data = request
        .data
        .ok_or_else(|| FieldError::new("data", "missing: the template's YAML"))?;
    created(store.create_template(&data, request.name.as_deref())?)
}

async fn get_template(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    found(store.get_template(&id)?)
}

async fn list_templates(State(store): Shared) -> ApiResult {
    found(store.list_templates()?)
}

async fn delete_template(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    store.delete_template(&id)?;
    deleted()
}

async fn create_hardware(State(store): Shared, body: Bytes) -> ApiResult {
    let spec: HardwareSpec = parse_body(&body)?;
    created(store.create_hardware(&spec)?)
}

async fn get_hardware(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    found(store.get_hardware(&id)?)
}

async fn list_hardware(State(store): Shared) -> ApiResult {
    found(store.list_hardware()?)
}

async fn delete_hardware(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    store.delete_hardware(&id)?;
    deleted()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowRequest {
    /// The template's id.
    template: Option<String>,
    #[serde(default)]
    hardware: BTreeMap<String, String>,
}

async fn create_workflow(State(store): Shared, body: Bytes) -> ApiResult {
    let request: WorkflowRequest = parse_body(&body)?;
    let template = request
        .template
        .ok_or_else(|| FieldError::new("template", "missing: the template's id"))?;
    created(store.create_workflow(&template, &request.hardware)?)
}

async fn get_workflow(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    found(store.get_workflow(&id)?)
}

async fn list_workflows(State(store): Shared) -> ApiResult {
    found(store.list_workflows()?)
}

async fn delete_workflow(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    store.delete_workflow(&id)?;
    deleted()
}
