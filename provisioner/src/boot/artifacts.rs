//! `/artifacts/profiles/{name}/{kernel,initramfs,os-image}`: a profile's files from the
//! provisioner's artifact roots, with Range, If-Range and HEAD (tower-http's ServeFile).
//!
//! The file is opened beneath its root with `openat2(RESOLVE_BENEATH)` ([`ArtifactRoots`]),
//! and ServeFile reads that very file through `/proc/self/fd/N`: a symlink leading out of the
//! root, or a profile of an older database naming a file outside, is refused (403) and
//! logged, never served.

use std::os::fd::AsRawFd;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::served::{Served, store_failed};
use crate::store::{ArtifactError, Profile, StoreError, is_url};

/// The field and location of `profile` that `file` names, or why there is none to serve.
fn file_of<'a>(profile: &'a Profile, file: &str) -> Result<(&'static str, &'a str), String> {
    match file {
        "kernel" => Ok(("kernel", &profile.kernel)),
        "initramfs" => Ok(("initramfs", &profile.initramfs)),
        "os-image" if is_url(&profile.os_image) => Err(format!(
            "profile {}'s OS image is not served here: fetch it from {}\n",
            profile.name, profile.os_image
        )),
        "os-image" => Ok(("os_image", &profile.os_image)),
        _ => Err(format!(
            "no artifact {file:?}: a profile has kernel, initramfs and os-image\n"
        )),
    }
}

pub(super) async fn serve(
    State(served): State<Served>,
    Path((name, file)): Path<(String, String)>,
    request: Request,
) -> Response {
    let store = &served.context.store;
    let profile = match store.get_profile(&name) {
        Ok(profile) => profile,
        Err(StoreError::NotFound { .. }) => {
            return served.not_found(format!("no profile {name:?}\n"));
        }
        Err(error) => return store_failed(&format!("reading profile {name}"), &error),
    };
    let (field, location) = match file_of(&profile, &file) {
        Ok(found) => found,
        Err(why) => return served.not_found(why),
    };
    let roots = match store.artifact_roots() {
        Ok(roots) => roots,
        Err(error) => return store_failed("reading the artifact roots", &error),
    };
    let opened = match roots.open(field, location) {
        // A kernel or initramfs published elsewhere: iPXE follows the redirect.
        Ok(None) => return Redirect::temporary(location).into_response(),
        Ok(Some((opened, _size))) => opened,
        Err(error @ ArtifactError::Missing { .. }) => {
            tracing::error!("profile {name}'s {file}: {error}");
            return served.not_found(format!("profile {name}'s {file} is missing\n"));
        }
        Err(error) => {
            tracing::error!("profile {name}'s {file} is refused: {error}");
            served.count(|counters| &counters.not_found);
            return (
                StatusCode::FORBIDDEN,
                format!("profile {name}'s {file} is not served: see the provisioner's log\n"),
            )
                .into_response();
        }
    };
    let is_head = request.method() == Method::HEAD;
    // ServeFile reopens the file that was opened beneath its root, through its descriptor
    // (a plain reopen of the same inode, not a path lookup); `opened` stays open until it
    // has. Its error type is Infallible: failures are answered as 404/500 responses.
    let through = format!("/proc/self/fd/{}", opened.as_raw_fd());
    let Ok(response) = ServeFile::new(through).oneshot(request).await;
    drop(opened);
    let response = response.map(Body::new);
    if response.status() == StatusCode::NOT_FOUND {
        tracing::error!("profile {name}'s {file} {location} vanished while being opened");
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
