//! UEFI HTTP boot (UEFI spec 2.10 §24.7): the firmware itself fetches one EFI binary by URL,
//! with no TFTP and no iPXE. DHCP hands `HTTPClient` clients [`url`]; this serves the UKI
//! named by `serve --http-boot-uki` there.
//!
//! One UKI for the whole site, its `.cmdline` baked in at build time
//! (`bootkit-build uki --cmdline "$(curl .../httpboot/cmdline)"`): the firmware loads the
//! UKI directly, so there is no script to pass arguments, and under Secure Boot systemd-stub
//! ignores any command line it is given (only the signed `.cmdline` counts). Nothing per
//! node is needed on that line: the worker id falls back to the boot interface's MAC (as in
//! HookOS), and which workflow a node runs is the provisioner's decision once it reports in.
//! A per-node UKI would need a build and a signature per node for no gain.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::script::{Cmdline, UnsafeValue};
use super::served::{BootContext, Served};

/// Where the site's UKI is served.
pub const UKI_PATH: &str = "/httpboot/bootkit.efi";
/// The site's command line to bake into that UKI, as text.
pub const CMDLINE_PATH: &str = "/httpboot/cmdline";
/// EDK2's HttpBootDxe loads a response of this type as an EFI image (it also accepts a URL
/// ending in `.efi` without a type, but an `application/octet-stream` is refused).
const EFI_CONTENT_TYPE: &str = "application/efi";

/// The URL DHCP hands UEFI HTTP boot clients, on the listener at `base` (`http://ip:port`).
pub fn url(base: &str) -> String {
    format!("{base}{UKI_PATH}")
}

/// GET/HEAD of the UKI (HttpBootDxe asks HEAD for the size first, then GET), with Range.
pub(super) async fn uki(State(served): State<Served>, request: Request) -> Response {
    let Some(path) = served.context.http_boot_uki.clone() else {
        return served.not_found(
            "UEFI HTTP boot is off: start `provisioner serve` with --http-boot-uki FILE\n"
                .to_string(),
        );
    };
    let is_head = request.method() == Method::HEAD;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let Ok(response) = ServeFile::new(&path).oneshot(request).await;
    let mut response = response.map(Body::new);
    if response.status().is_success() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(EFI_CONTENT_TYPE),
        );
        served.count(|counters| &counters.artifacts);
        if !is_head {
            let sent = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.parse().ok())
                .unwrap_or(0);
            served.add(|counters| &counters.artifact_bytes, sent);
            // Whole downloads only: a ranged one is part of a download already recorded.
            if response.status() == StatusCode::OK
                && let Some(peer) = peer
            {
                record_fetch(&served, peer, sent);
            }
        }
    } else if response.status() == StatusCode::NOT_FOUND {
        tracing::error!(
            "the UEFI HTTP boot UKI {} is missing (restore it or restart serve with another --http-boot-uki)",
            path.display()
        );
        served.count(|counters| &counters.not_found);
    }
    response
}

/// Puts the UKI download on the timeline of the node known at `peer`'s address (from its
/// last discovery), so that a node the firmware then refuses to start (under Secure Boot, a
/// UKI its db does not trust) shows this as its last event. A node never discovered has no
/// timeline yet; the boot counters still count the download.
fn record_fetch(served: &Served, peer: SocketAddr, bytes: u64) {
    let store = &served.context.store;
    let ip = peer.ip().to_string();
    let recorded = store.node_by_ip(&ip).and_then(|node| match node {
        Some(node) => store.record_event(
            &node.id,
            "uki",
            &format!("fetched the boot UKI ({bytes} bytes) from {UKI_PATH}"),
        ),
        None => Ok(()),
    });
    if let Err(error) = recorded {
        tracing::error!(
            %ip,
            "recording the UKI download on the node's timeline failed: {error}",
            error = bootkit_common::error_chain(&error)
        );
    }
}

/// The site's line to bake into the UKI: what a boot script would pass, less the per-node
/// words and the profile's (one UKI serves every profile).
pub(super) fn site_cmdline(context: &BootContext) -> Result<String, UnsafeValue> {
    Cmdline {
        advertised: &context.advertised,
        kernel: &context.kernel,
        mac: "",
        profile_name: "(the site's UKI)",
        profile_cmdline: "",
    }
    .render_site()
}

/// [`site_cmdline`] as text, for `bootkit-build uki --cmdline`.
pub(super) async fn cmdline(State(served): State<Served>) -> Response {
    match site_cmdline(&served.context) {
        Ok(line) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{line}\n"),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}
