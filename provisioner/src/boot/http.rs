//! The node-facing HTTP routes: iPXE scripts, artifacts and EC2-style metadata.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::script::{self, Cmdline, Platform};
use super::served::{BootContext, Served, store_failed};
use crate::store::{BootPlan, Identity, Profile};

/// The routes of one listener reached at `base` (`http://ip:port`). EC2-style metadata is
/// answered by the requester's address (axum's `ConnectInfo`, which both listeners pass on).
pub fn router(context: Arc<BootContext>, base: String) -> Router {
    Router::new()
        .route("/ipxe/auto.ipxe", get(auto_script))
        .route("/ipxe/boot.ipxe", get(node_script))
        .route(super::http_boot::UKI_PATH, get(super::http_boot::uki))
        .route(
            super::http_boot::CMDLINE_PATH,
            get(super::http_boot::cmdline),
        )
        .route(
            "/artifacts/profiles/{name}/{file}",
            get(super::artifacts::serve),
        )
        .merge(super::metadata::routes())
        .fallback(unknown_path)
        .with_state(Served {
            context,
            base: base.into(),
        })
}

async fn unknown_path(State(served): State<Served>) -> Response {
    served.not_found("no such boot service path\n".to_string())
}

fn ipxe(script: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        script,
    )
        .into_response()
}

async fn auto_script(State(served): State<Served>) -> Response {
    served.count(|counters| &counters.scripts);
    ipxe(script::auto(&served.base))
}

/// What `auto.ipxe` sends; every field as iPXE expanded it, possibly empty.
#[derive(Debug, Deserialize)]
struct NodeQuery {
    mac: Option<String>,
    uuid: Option<String>,
    serial: Option<String>,
    platform: Option<String>,
    arch: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

async fn node_script(State(served): State<Served>, Query(query): Query<NodeQuery>) -> Response {
    served.count(|counters| &counters.scripts);
    let mac = non_empty(&query.mac).unwrap_or_default();
    let identity = Identity::new(non_empty(&query.serial), non_empty(&query.uuid), &[mac]);
    // The MAC becomes the worker id on the kernel command line: Identity keeps well-formed
    // MACs only, so nothing else reaches the script.
    let boot_mac = match identity.macs.as_slice() {
        [boot_mac] => boot_mac.clone(),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!("mac={mac:?} is not a MAC address; fetch /ipxe/auto.ipxe instead\n"),
            )
                .into_response();
        }
    };
    let platform = Platform::parse(non_empty(&query.platform));
    let store = &served.context.store;
    match store.pxe_boot(&identity) {
        Ok(BootPlan::Install { profile, .. }) => {
            let context = &served.context;
            let chains_uki = context.ipxe_uki
                && context.http_boot_uki.is_some()
                && script::runs_x64_uki(platform, non_empty(&query.arch));
            ipxe(if chains_uki {
                uki_script(&served, &boot_mac, &profile)
            } else {
                install_script(&served, &boot_mac, &profile)
            })
        }
        Ok(BootPlan::LocalDisk { node_id }) => {
            if let Err(error) = store.record_event(
                &node_id,
                "local-boot",
                &format!("PXE boot answered with its local disk ({platform:?})"),
            ) {
                tracing::error!(%node_id, "recording the local-boot event failed: {error}");
            }
            ipxe(script::local_disk(platform))
        }
        Ok(BootPlan::Refused { reason }) => {
            tracing::info!(mac = %boot_mac, "refusing to boot: {reason}");
            store.record_refusal(&identity, None, "pxe", &reason);
            ipxe(script::refused(&reason))
        }
        Err(error) => store_failed(&format!("deciding what {boot_mac} boots"), &error),
    }
}

/// The script chaining the site's UKI (`serve --ipxe-uki`), or a refusal naming the bad
/// setting.
fn uki_script(served: &Served, mac: &str, profile: &Profile) -> String {
    let uki_url = super::http_boot::url(&served.base);
    let rendered = super::http_boot::site_cmdline(&served.context)
        .and_then(|line| script::install_uki(&uki_url, &profile.name, &line));
    rendered.unwrap_or_else(|error| {
        tracing::error!(%mac, "cannot boot the site's UKI for profile {}: {error}", profile.name);
        script::refused(&error.to_string())
    })
}

/// The install script, or a refusal naming the bad setting: a node must not boot half a
/// command line.
fn install_script(served: &Served, mac: &str, profile: &Profile) -> String {
    let context = &served.context;
    let cmdline = Cmdline {
        advertised: &context.advertised,
        kernel: &context.kernel,
        mac,
        profile_name: &profile.name,
        profile_cmdline: &profile.cmdline,
    };
    let rendered = cmdline
        .render()
        .and_then(|line| script::install(&served.base, &profile.name, &line));
    rendered.unwrap_or_else(|error| {
        tracing::error!(%mac, "cannot boot profile {}: {error}", profile.name);
        script::refused(&error.to_string())
    })
}
