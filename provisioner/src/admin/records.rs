//! `/api/v1/templates`, `/api/v1/hardware` and `/api/v1/workflows`: the same operations as the
//! CLI; and `/api/v1/objects/apply`, Tinkerbell's objects as `provisioner apply` takes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use super::record_routes;
use super::reply::{ApiError, ApiResult, Shared, blocking, created, deleted, found, parse_body};
use crate::limits::{AdminLimits, check_yaml_depth};
use crate::store::{HardwareSpec, Store};
use crate::template::FieldError;
use crate::tinkerbell::convert::{apply_document, nothing_applied};

/// The records' routes, for the admin router to add its own to.
pub(super) fn routes() -> Router<Arc<Store>> {
    record_routes(
        "/api/v1/templates",
        "id",
        get(list_templates).post(create_template),
        get(get_template).delete(delete_template),
    )
    .merge(record_routes(
        "/api/v1/hardware",
        "id",
        get(list_hardware).post(create_hardware),
        get(get_hardware).delete(delete_hardware),
    ))
    .merge(record_routes(
        "/api/v1/workflows",
        "id",
        get(list_workflows).post(create_workflow),
        get(get_workflow).delete(delete_workflow),
    ))
    .route("/api/v1/objects/apply", post(apply_objects))
}

/// The body is Tinkerbell YAML (or JSON) objects, as `provisioner apply -f` reads them.
async fn apply_objects(State(store): Shared, body: Bytes) -> ApiResult {
    // Parsing and rendering templates: off the async threads.
    blocking(move || {
        let text = std::str::from_utf8(&body)
            .map_err(|error| FieldError::new("body", format!("not UTF-8 text: {error}")))?;
        let report = apply_document(&store, text).map_err(|errors| {
            ApiError::Status(StatusCode::BAD_REQUEST, nothing_applied(&errors))
        })?;
        found(report)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateRequest {
    name: Option<String>,
    /// The template's YAML.
    data: Option<String>,
}

async fn create_template(
    State(store): Shared,
    Extension(limits): Extension<AdminLimits>,
    body: Bytes,
) -> ApiResult {
    blocking(move || {
        let request: TemplateRequest = parse_body(&body)?;
        let data = request
            .data
            .ok_or_else(|| FieldError::new("data", "missing: the template's YAML"))?;
        // Before the parser: deep flow nesting costs it quadratic time (see crate::limits).
        check_yaml_depth(&data, limits.yaml_depth)
            .map_err(|error| FieldError::new("data", error.to_string()))?;
        created(store.create_template(&data, request.name.as_deref())?)
    })
    .await
}

async fn get_template(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || found(store.get_template(&id)?)).await
}

async fn list_templates(State(store): Shared) -> ApiResult {
    blocking(move || found(store.list_templates()?)).await
}

async fn delete_template(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        store.delete_template(&id)?;
        deleted()
    })
    .await
}

async fn create_hardware(State(store): Shared, body: Bytes) -> ApiResult {
    blocking(move || {
        let spec: HardwareSpec = parse_body(&body)?;
        created(store.create_hardware(&spec)?)
    })
    .await
}

async fn get_hardware(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || found(store.get_hardware(&id)?)).await
}

async fn list_hardware(State(store): Shared) -> ApiResult {
    blocking(move || found(store.list_hardware()?)).await
}

async fn delete_hardware(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        store.delete_hardware(&id)?;
        deleted()
    })
    .await
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
    // Rendering and parsing the template run here, off the async threads.
    blocking(move || {
        let request: WorkflowRequest = parse_body(&body)?;
        let template = request
            .template
            .ok_or_else(|| FieldError::new("template", "missing: the template's id"))?;
        created(store.create_workflow(&template, &request.hardware)?)
    })
    .await
}

async fn get_workflow(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || found(store.get_workflow(&id)?)).await
}

async fn list_workflows(State(store): Shared) -> ApiResult {
    blocking(move || found(store.list_workflows()?)).await
}

async fn delete_workflow(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        store.delete_workflow(&id)?;
        deleted()
    })
    .await
}
