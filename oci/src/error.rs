//! What can go wrong talking to a registry, each error saying what failed and what to do.

use std::path::PathBuf;

use reqwest::StatusCode;

/// Why a registry operation (pull, push, client set-up) failed. [`RegistryError::is_retryable`]
/// tells which are worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference does not parse.
    #[error("invalid image reference {reference:?}: {why}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it and how to write it.
        why: String,
    },
    /// The configured CA bundle cannot be used.
    #[error("the CA bundle {path} {why}; give a PEM file with the registry's CA certificate")]
    CaBundle {
        /// The bundle's path.
        path: PathBuf,
        /// What is wrong with it (unreadable, not PEM, no certificate).
        why: String,
    },
    /// A registry hosts file (containerd's `hosts.toml`) is not usable.
    #[error(
        "registry hosts file {}: {}{why}; fix the file (containerd's docs/hosts.md describes its keys) or remove it",
        file.display(),
        if key.is_empty() { String::new() } else { format!("key {key} ") }
    )]
    HostsFile {
        /// The file.
        file: PathBuf,
        /// The key at fault (`host."https://mirror".ca`), empty for the whole file.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// A registry hosts directory (or a file in it) cannot be read.
    #[error("cannot read the registry hosts configuration {}: {why}", path.display())]
    HostsDir {
        /// The directory or file.
        path: PathBuf,
        /// The system's reason.
        why: String,
    },
    /// A client certificate or key named in a hosts file cannot be used.
    #[error(
        "the client certificate {} for registry host {host} {why}; give PEM files with the certificate and its private key",
        path.display()
    )]
    ClientCertificate {
        /// The registry host it is for.
        host: String,
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// No configured host may do what is asked (for example every host is pull-only and a tag
    /// must be resolved).
    #[error(
        "no registry host for {registry} may {operation}: {why}; give one of the hosts in its hosts.toml the capability (capabilities = [\"pull\", \"resolve\"])"
    )]
    NoHost {
        /// The registry namespace.
        registry: String,
        /// `resolve a tag` or `pull`.
        operation: &'static str,
        /// The hosts configured, for the reader.
        why: String,
    },
    /// rustls refuses the TLS client configuration.
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    /// reqwest cannot build the HTTP client.
    #[error("cannot create the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The registry's certificate is not trusted (or the handshake failed otherwise).
    #[error(
        "TLS handshake with registry {host} failed: {detail}; check the CA bundle (it must hold the CA that signed the registry's certificate) or list the host in insecure_registries"
    )]
    TlsHandshake {
        /// The registry host.
        host: String,
        /// The TLS library's reason.
        detail: String,
    },
    /// The registry cannot be connected to (DNS, refused, timed out).
    #[error("cannot reach registry {host}: {detail}; check that it is up and reachable")]
    Unreachable {
        /// The registry host.
        host: String,
        /// The transport's reason.
        detail: String,
    },
    /// The registry answered 401 or 403.
    #[error(
        "registry {host} refused the credentials ({status}) for {what}; check registry_username and registry_password"
    )]
    Unauthorized {
        /// The registry host.
        host: String,
        /// What was asked for (`manifest of repo:tag`, `blob sha256:...`).
        what: String,
        /// 401 or 403.
        status: StatusCode,
    },
    /// The registry answered 404.
    #[error("registry {host} has no {what} (404); check the image name and tag")]
    NotFound {
        /// The registry host.
        host: String,
        /// What was asked for.
        what: String,
    },
    /// The registry answered another unexpected status.
    #[error("registry {host} answered {status} for {what}: {body}")]
    Status {
        /// The registry host.
        host: String,
        /// What was asked for.
        what: String,
        /// The status it answered.
        status: StatusCode,
        /// The start of the response body, for the registry's own reason.
        body: String,
    },
    /// The registry's `WWW-Authenticate` challenge is neither Basic nor Bearer.
    #[error("registry {host} asked for authentication with an unsupported challenge {header:?}")]
    UnsupportedChallenge {
        /// The registry host.
        host: String,
        /// The `WWW-Authenticate` header as sent.
        header: String,
    },
    /// The token server refused or gave an unusable answer.
    #[error("the token server {realm} gave no token: {detail}")]
    Token {
        /// The token server's URL, from the challenge.
        realm: String,
        /// Its status and answer, or why the answer is unusable.
        detail: String,
    },
    /// A manifest, index or config does not parse as JSON of its kind.
    #[error("invalid {what} document from the registry")]
    InvalidDocument {
        /// Which document (`manifest`, `index`, `config`).
        what: &'static str,
        /// serde's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The manifest's media type is not one this crate reads.
    #[error("unsupported manifest type {media_type:?}: only OCI and Docker schema 2 are pulled")]
    UnsupportedManifest {
        /// The media type as sent.
        media_type: String,
    },
    /// The image index lists no image for
    /// [`crate::manifest::PLATFORM_OS`]/[`crate::manifest::PLATFORM_ARCH`].
    #[error("the image index of {reference} has no linux/amd64 image")]
    NoMatchingPlatform {
        /// The image reference pulled.
        reference: String,
    },
    /// Downloaded bytes do not hash to the digest they were asked for by.
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was downloaded.
        what: String,
        /// The digest asked for, `sha256:<hex>`.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A download or upload broke off midway.
    #[error("reading {what} from registry {host} failed: {detail}")]
    Transfer {
        /// The registry host.
        host: String,
        /// What was being transferred.
        what: String,
        /// The transport's reason.
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
