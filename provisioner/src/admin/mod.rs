//! The admin surface: REST API with its OpenAPI document, the status page, Prometheus metrics,
//! and their authentication (token or client certificate). PLACEHOLDER: being written.

/// How the admin listener authenticates and whether it speaks TLS.
#[derive(Debug, Clone, Default)]
pub struct AdminOptions {}
