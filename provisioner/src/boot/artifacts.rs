//! `/artifacts/profiles/{name}/{kernel,initramfs,os-image}`: a profile's files from the
//! provisioner's disk, with Range, If-Range and HEAD (tower-http's ServeFile).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::served::{Served, store_failed};
use crate::store::{Profile, StoreError};

/// The file of `profile` that `file` names, or why there is none to serve.
fn file_of<'a>(profile: &'a Profile, file: &str) -> Result<&'a str, String> {
    match file {
        "kernel" => Ok(&profile.kernel),
        "initramfs" => Ok(&profile.initramfs),
        "os-image" if is_url(&profile.os_image) => Err(format!(
            "profile {}'s OS image is not served here: fetch it from {}\n",
            profile.name, profile.os_image
        )),
        "os-image" => Ok(&profile.os_image),
        _ => Err(format!(
            "no artifact {file:?}: a profile has kernel, initramfs and os-image\n"
        )),
    }
}

fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

pub(super) async fn serve(
    State(served): State<Served>,
    Path((name, file)): Path<(String, String)>,
    request: Request,
) -> Response {
    let profile = match served.context.store.get_profile(&name) {
        Ok(profile) => profile,
        Err(StoreError::NotFound { .. }) => {
            return served.not_found(format!("no profile {name:?}\n"));
        }
        Err(error) => return store_failed(&format!("reading profile {name}"), &error),
    };
    let path = match file_of(&profile, &file) {
        Ok(path) => path,
        Err(why) => return served.not_found(why),
    };
    let is_head = request.method() == Method::HEAD;
    // ServeFile's error type is Infallible: failures are answered as 404/500 responses.
    let Ok(response) = ServeFile::new(path).oneshot(request).await;
    let response = response.map(Body::new);
    if response.status() == StatusCode::NOT_FOUND {
        tracing::error!("profile {name}'s {file} {path} is missing on the provisioner's disk");
        served.count(|counters| &counters.not_found);
    } else if response.status().is_success() {
        served.count(|counters| &counters.artifacts);
        let sent = if is_head {
            0
        } else {
            content_length(&response)
        };
        served.add(|counters| &counters.artifact_bytes, sent);
    }
    response
}

/// The bytes a response carries (a 206's: its range).
fn content_length(response: &Response) -> u64 {
    response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}
