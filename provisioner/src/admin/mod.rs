//! The admin surface: REST API with its OpenAPI document, the status page, Prometheus metrics,
//! and their authentication (token or client certificate).

mod audit;
mod auth;
mod bounded;
mod enrollment;
mod fleet;
mod nodes;
mod page;
mod records;
mod reply;

pub use audit::token_actor;
pub use nodes::progress_text;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use tokio::net::TcpListener;

use crate::https::TlsFiles;
use crate::limits::AdminLimits;
use crate::metrics::Metrics;
use crate::store::Store;

pub use auth::{Auth, bearer_value};

/// How the admin listener authenticates and whether it speaks TLS.
#[derive(Clone, Default)]
pub struct AdminOptions {
    /// Clients send it as `Authorization: Bearer <token>`. Never logged.
    pub token: Option<String>,
    /// PEM CA whose client certificates are accepted instead of the token (needs `tls`).
    pub client_ca: Option<PathBuf>,
    /// Serve HTTPS with this certificate; plain HTTP without it.
    pub tls: Option<TlsFiles>,
    /// Serve without any authentication (tests and development only).
    pub insecure_no_auth: bool,
}

impl fmt::Debug for AdminOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AdminOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("client_ca", &self.client_ca)
            .field("tls", &self.tls)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish()
    }
}

/// Serves the admin API, page and metrics on `listener` until `shutdown` completes. Refuses to
/// start without authentication unless `options.insecure_no_auth` says so.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: &AdminOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_limited(
        listener,
        store,
        metrics,
        options,
        &AdminLimits::default(),
        shutdown,
    )
    .await
}

/// [`serve`] with `limits` on body size, time per request and template nesting.
pub async fn serve_limited(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: &AdminOptions,
    limits: &AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let auth = Auth::from_options(options)?;
    let router = router(store, metrics, auth, limits);
    match &options.tls {
        Some(files) => {
            let config =
                crate::https::server_config(&files.cert, &files.key, options.client_ca.as_deref())?;
            crate::https::serve_tls(listener, router, config, shutdown).await
        }
        None => {
            warn_if_exposed(&listener);
            // The client's address, for the audit log (the TLS path adds it itself).
            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
                .context("the admin HTTP server failed")
        }
    }
}

/// Plain HTTP beyond loopback sends the token in clear: allowed (a lab behind a firewall), but
/// said.
fn warn_if_exposed(listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(
            %addr,
            "the admin API is served over plain HTTP beyond loopback: tokens cross the network in \
             clear; give --admin-tls-cert and --admin-tls-key (provisioner init makes them)"
        );
    }
}

/// The OpenAPI 3.0 description of `/api/v1`, written by hand next to the routes: a derive
/// crate would put a macro on every handler for a document this small.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Every admin route: the page's files openly, the API, OpenAPI document and metrics behind
/// `auth`; all of them within `limits`.
pub fn router(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    auth: Auth,
    limits: &AdminLimits,
) -> Router {
    let store_for_metrics = Arc::clone(&store);
    let store_for_audit = Arc::clone(&store);
    let protected = records::routes()
        .merge(nodes::routes())
        .merge(fleet::routes())
        .merge(enrollment::routes())
        .merge(audit::routes())
        .with_state(store)
        .route("/api/v1/openapi.json", get(openapi))
        .route(
            "/metrics",
            get(move || render_metrics(Arc::clone(&store_for_metrics), Arc::clone(&metrics))),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        ))
        // Outside the authentication: refused requests are recorded too.
        .route_layer(axum::middleware::from_fn_with_state(
            store_for_audit,
            audit::record,
        ));
    protected
        .merge(page::routes())
        .layer(axum::Extension(limits.clone()))
        .layer(axum::extract::DefaultBodyLimit::max(limits.body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            bounded::within_limits,
        ))
}

/// One kind of record's routes: the collection at `path` and one record at `path/{key}`,
/// so every kind is addressed the same way. (admin_openapi's test reads these calls.)
fn record_routes(
    path: &str,
    key: &str,
    collection: MethodRouter<Arc<Store>>,
    record: MethodRouter<Arc<Store>>,
) -> Router<Arc<Store>> {
    Router::new()
        .route(path, collection)
        .route(&format!("{path}/{{{key}}}"), record)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn render_metrics(store: Arc<Store>, metrics: Arc<Metrics>) -> Response {
    // Reads the whole fleet from SQLite: off the async threads.
    let rendered = tokio::task::spawn_blocking(move || metrics.render(&store)).await;
    let Ok(rendered) = rendered else {
        return reply::error_response(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics failed; see the provisioner's log".into(),
        );
    };
    match rendered {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => reply::ApiError::from(error).into_response(),
    }
}
