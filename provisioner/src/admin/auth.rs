//! Who may use the admin listener: a bearer token, or a client certificate that the TLS
//! handshake verified against the configured CA.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AdminOptions;
use crate::https::PeerCertificates;

/// The admin listener's authentication, checked on every request.
#[derive(Clone)]
pub struct Auth {
    token: Option<Arc<[u8]>>,
    client_certificates: bool,
    open: bool,
}

impl Auth {
    /// Refuses options that would leave the admin API open by accident or could never
    /// authenticate anyone.
    pub fn from_options(options: &AdminOptions) -> anyhow::Result<Self> {
        if options.client_ca.is_some() && options.tls.is_none() {
            anyhow::bail!(
                "an admin client CA needs the admin listener to speak TLS: \
                 give --admin-tls-cert and --admin-tls-key as well"
            );
        }
        let token = options.token.as_deref().map(str::trim);
        if token.is_some_and(str::is_empty) {
            anyhow::bail!(
                "the admin token is empty: put a random token in the token file (provisioner init writes one)"
            );
        }
        let client_certificates = options.client_ca.is_some();
        let open = token.is_none() && !client_certificates;
        if open && !options.insecure_no_auth {
            anyhow::bail!(
                "the admin API has no authentication configured: give --admin-token-file and/or \
                 --admin-client-ca (provisioner init creates both), or --admin-insecure-no-auth \
                 for a test setup"
            );
        }
        if open {
            tracing::warn!(
                "the admin API accepts every client without authentication (--admin-insecure-no-auth)"
            );
        }
        Ok(Self {
            token: token.map(|token| Arc::from(token.as_bytes())),
            client_certificates,
            open,
        })
    }

    fn admits(&self, request: &Request) -> bool {
        self.open
            || (self.client_certificates
                && request.extensions().get::<PeerCertificates>().is_some())
            || self.admits_token(bearer(request.headers()))
    }

    /// Whether `given` (a bearer token, if the caller sent one) is the admin token, compared
    /// in constant time; always true when the admin API is open (--admin-insecure-no-auth).
    /// Also for admin calls outside the admin listener (onboarding's CreateNodes).
    pub fn admits_token(&self, given: Option<&[u8]>) -> bool {
        self.open
            || self
                .token
                .as_deref()
                .zip(given)
                .is_some_and(|(expected, given)| bool::from(expected.ct_eq(given)))
    }
}

/// The `Authorization: Bearer` value, if the request sends one.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    bearer_value(headers.get(header::AUTHORIZATION)?.as_bytes())
}

/// The token of an `authorization` value `Bearer <token>` (HTTP header or gRPC metadata).
pub fn bearer_value(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value.get(7..))
        .flatten()
}

/// Middleware: lets admitted requests through, answers 401 to the others.
pub(super) async fn require(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    if auth.admits(&request) {
        return next.run(request).await;
    }
    let how = if auth.client_certificates {
        "send `Authorization: Bearer <token>` (the serve --admin-token-file's content) or connect with a client certificate signed by the admin client CA"
    } else {
        "send `Authorization: Bearer <token>` with the content of serve's --admin-token-file"
    };
    let error = if request.headers().contains_key(header::AUTHORIZATION) {
        format!("the admin API refused the credentials: {how}")
    } else {
        format!("the admin API needs authentication: {how}")
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": error })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"provisioner admin\""),
    );
    response
}
