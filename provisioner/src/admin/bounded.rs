//! The admin API's bounds on each request: its body's size (413) and its time (503), both
//! answered as `{"error": ...}` naming the limit, its value and the flag that sets it.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::reply::error_response;
use crate::limits::AdminLimits;

/// Middleware: refuses a body announced above the limit before reading it, gives the
/// request `limits.request_timeout` and rewrites the body extractor's own 413 (a chunked body
/// that grew past the limit) into the API's form.
pub(super) async fn within_limits(
    State(limits): State<AdminLimits>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = announced
        && length > limits.body_bytes as u64
    {
        return too_large(&limits, Some(length));
    }
    let Ok(response) = tokio::time::timeout(limits.request_timeout, next.run(request)).await else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than the admin API's time budget of {} and was \
                 stopped; make the request smaller (e.g. split the upload), or raise serve's \
                 --admin-request-timeout",
                humantime::format_duration(limits.request_timeout)
            ),
        );
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return too_large(&limits, None);
    }
    response
}

fn too_large(limits: &AdminLimits, length: Option<u64>) -> Response {
    let size = length.map_or_else(|| "larger".to_string(), |length| format!("{length} bytes"));
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is {size}, above the admin API's limit of {} bytes; send less \
             (e.g. split the import), or raise serve's --admin-body-limit",
            limits.body_bytes
        ),
    )
}
