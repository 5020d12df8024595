//! What can go wrong talking to a registry, each error saying what failed and what to do.

use std::path::PathBuf;

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {reference:?}: {why}")]
    InvalidReference { reference: String, why: String },
    #[error("the CA bundle {path} {why}; give a PEM file with the registry's CA certificate")]
    CaBundle { path: PathBuf, why: String },
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(
        "TLS handshake with registry {host} failed: {detail}; check the CA bundle (it must hold the CA that signed the registry's certificate) or list the host in insecure_registries"
    )]
    TlsHandshake { host: String, detail: String },
    #[error("cannot reach registry {host}: {detail}; check that it is up and reachable")]
    Unreachable { host: String, detail: String },
    #[error(
        "registry {host} refused the credentials ({status}) for {what}; check registry_username and registry_password"
    )]
    Unauthorized {
        host: String,
        what: String,
        status: StatusCode,
    },
    #[error("registry {host} has no {what} (404); check the image name and tag")]
    NotFound { host: String, what: String },
    #[error("registry {host} answered {status} for {what}: {body}")]
    Status {
        host: String,
        what: String,
        status: StatusCode,
        body: String,
    },
    #[error("registry {host} asked for authentication with an unsupported challenge {header:?}")]
    UnsupportedChallenge { host: String, header: String },
    #[error("the token server {realm} gave no token: {detail}")]
    Token { realm: String, detail: String },
    #[error("invalid {what} document from the registry: {source}")]
    InvalidDocument {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported manifest type {media_type:?}: only OCI and Docker schema 2 are pulled")]
    UnsupportedManifest { media_type: String },
    #[error("the image index of {reference} has no linux/amd64 image")]
    NoMatchingPlatform { reference: String },
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("reading {what} from registry {host} failed: {detail}")]
    Transfer {
        host: String,
        what: String,
        detail: String,
    },
}

impl RegistryError {
    /// Whether trying again later can help (the registry down or overloaded, a broken
    /// transfer), as opposed to a mistake that only a change of configuration fixes.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } | RegistryError::Transfer { .. } => true,
            RegistryError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}
