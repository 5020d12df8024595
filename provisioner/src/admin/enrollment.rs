//! `/api/v1/registrations` and `/api/v1/profiles`: which node gets which OS.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use super::record_routes;
use super::reply::{ApiResult, Shared, blocking, created, deleted, found, parse_body};
use crate::store::{ProfileSpec, RegistrationSpec, Store};
use crate::template::FieldError;

pub(super) fn routes() -> Router<Arc<Store>> {
    record_routes(
        "/api/v1/registrations",
        "id",
        get(list_registrations).post(register),
        delete(delete_registration),
    )
    .route("/api/v1/registrations/import", post(import_registrations))
    .merge(record_routes(
        "/api/v1/profiles",
        "name",
        get(list_profiles).post(create_profile),
        get(get_profile).delete(delete_profile),
    ))
    .route(
        "/api/v1/profiles/default",
        get(get_default_profile).put(set_default_profile),
    )
}

async fn list_registrations(State(store): Shared) -> ApiResult {
    blocking(move || found(store.list_registrations()?)).await
}

async fn register(State(store): Shared, body: Bytes) -> ApiResult {
    blocking(move || {
        let spec: RegistrationSpec = parse_body(&body)?;
        created(store.register(&spec)?)
    })
    .await
}

/// The body is OEP's registration CSV as text.
async fn import_registrations(State(store): Shared, body: Bytes) -> ApiResult {
    // Thousands of rows parsed and inserted: off the async threads.
    blocking(move || {
        let csv = std::str::from_utf8(&body)
            .map_err(|error| FieldError::new("body", format!("not UTF-8 text: {error}")))?;
        created(store.import_registrations(csv)?)
    })
    .await
}

async fn delete_registration(State(store): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(move || {
        store.delete_registration(&id)?;
        deleted()
    })
    .await
}

async fn list_profiles(State(store): Shared) -> ApiResult {
    blocking(move || found(store.list_profiles()?)).await
}

async fn create_profile(State(store): Shared, body: Bytes) -> ApiResult {
    blocking(move || {
        let spec: ProfileSpec = parse_body(&body)?;
        created(store.create_profile(&spec)?)
    })
    .await
}

async fn get_profile(State(store): Shared, Path(name): Path<String>) -> ApiResult {
    blocking(move || found(store.get_profile(&name)?)).await
}

async fn delete_profile(State(store): Shared, Path(name): Path<String>) -> ApiResult {
    blocking(move || {
        store.delete_profile(&name)?;
        deleted()
    })
    .await
}

/// The profile of unregistered nodes, by name; `null` refuses them.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultProfile {
    name: Option<String>,
}

async fn get_default_profile(State(store): Shared) -> ApiResult {
    blocking(move || {
        let name = store.default_profile()?.map(|profile| profile.name);
        found(DefaultProfile { name })
    })
    .await
}

async fn set_default_profile(State(store): Shared, body: Bytes) -> ApiResult {
    blocking(move || {
        let request: DefaultProfile = parse_body(&body)?;
        store.set_default_profile(request.name.as_deref())?;
        found(request)
    })
    .await
}
