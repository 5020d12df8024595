//! What every node-facing HTTP handler shares: the boot context, the listener's base URL, the
//! request counters, and the answers common to all routes (404, 503 on a store failure).
//!
//! Its own module so that the router (`http`) and the routes it mounts (`artifacts`,
//! `metadata`) all depend on it, and none of them on another.

use bootkit_common::error_chain;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Advertised, KernelOptions};
use crate::store::{Store, StoreError};

/// What every node-facing listener shares.
pub struct BootContext {
    /// Nodes, profiles and registrations.
    pub store: Arc<Store>,
    /// Where nodes reach each service, for URLs in scripts.
    pub advertised: Advertised,
    /// The parameters put on every node's kernel command line.
    pub kernel: KernelOptions,
    /// Counted here, exported by the admin API's Prometheus metrics.
    pub counters: Arc<HttpCounters>,
    /// Metadata for requests without a node certificate, by source address
    /// ([`super::BootOptions::metadata_by_address`]).
    pub metadata_by_address: bool,
    /// The site's UKI served to UEFI HTTP boot clients ([`super::BootOptions::http_boot_uki`]).
    pub http_boot_uki: Option<std::path::PathBuf>,
    /// UEFI x86-64 iPXE clients chain that UKI instead of kernel and initramfs
    /// ([`super::BootOptions::ipxe_uki`]).
    pub ipxe_uki: bool,
}

/// Node-facing HTTP requests, by what they asked for.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// iPXE scripts served.
    pub scripts: AtomicU64,
    /// Artifact downloads (kernel, initramfs, OS image) started.
    pub artifacts: AtomicU64,
    /// Artifact bytes sent.
    pub artifact_bytes: AtomicU64,
    /// Metadata requests (Hegel-style `/metadata`) answered.
    pub metadata: AtomicU64,
    /// Requests answered 404.
    pub not_found: AtomicU64,
}

/// One listener's view: the context and the base URL nodes reached it at, so that a script
/// fetched over HTTPS points at HTTPS artifacts.
#[derive(Clone)]
pub(super) struct Served {
    pub context: Arc<BootContext>,
    pub base: Arc<str>,
}

impl Served {
    /// Adds `amount` to the counter `counter` picks.
    pub fn add(&self, counter: fn(&HttpCounters) -> &AtomicU64, amount: u64) {
        counter(&self.context.counters).fetch_add(amount, Ordering::Relaxed);
    }

    pub fn count(&self, counter: fn(&HttpCounters) -> &AtomicU64) {
        self.add(counter, 1);
    }

    pub fn not_found(&self, why: String) -> Response {
        self.count(|counters| &counters.not_found);
        (StatusCode::NOT_FOUND, why).into_response()
    }
}

/// 503 for a store failure while answering `what`, logged: the node retries, the operator
/// sees why.
pub(super) fn store_failed(what: &str, error: &StoreError) -> Response {
    tracing::error!("{what} failed: {error}", error = error_chain(error));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the provisioner's store failed: {error}\n",
            error = error_chain(error)
        ),
    )
        .into_response()
}
