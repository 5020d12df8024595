//! Which certificate authorities an https download trusts, and what a failed handshake means
//! for the user.

use std::io;
use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{HttpError, HttpOptions};

/// System CA bundles, in the order they are looked for: Debian/Ubuntu, Fedora/Azure Linux (EMT),
/// Alpine/macOS-style. No bundle is compiled in: trust comes from the machine or the user.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The TLS client configuration and where its trust came from (for error messages).
pub(super) struct Trust {
    pub config: Arc<ClientConfig>,
    /// e.g. "the CA file /etc/ca.pem" or "the system CA bundle /etc/ssl/certs/ca-certificates.crt".
    pub source: String,
}

/// The trust for https downloads: the CA certificates the user gave, or else the system
/// bundle; `None` when neither exists (an error only once an https URL is met).
pub(super) fn load(options: &HttpOptions) -> Result<Option<Trust>, HttpError> {
    if options.ca_file.is_some() || options.ca_pem.is_some() {
        return given_roots(options).map(Some);
    }
    for bundle in SYSTEM_BUNDLES {
        if let Ok(pem) = std::fs::read(bundle) {
            let mut roots = RootCertStore::empty();
            // A system bundle may hold a certificate webpki cannot parse; skip it like curl does.
            let (added, _skipped) = roots.add_parsable_certificates(
                CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok),
            );
            if added > 0 {
                return trust(roots, format!("the system CA bundle {bundle}")).map(Some);
            }
        }
    }
    Ok(None)
}

/// The user's CA certificates (file, inline PEM or both). Unlike the system bundle, every
/// certificate must be usable: a typo in a CA file should fail loudly, not shrink the trust.
fn given_roots(options: &HttpOptions) -> Result<Trust, HttpError> {
    let mut roots = RootCertStore::empty();
    let mut sources = Vec::new();
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path).map_err(|source| HttpError::CaFileUnreadable {
            path: path.clone(),
            source,
        })?;
        add_all(&mut roots, &pem).map_err(|reason| HttpError::CaInvalid {
            source_name: format!("CA file {}", path.display()),
            reason,
        })?;
        sources.push(format!("the CA file {}", path.display()));
    }
    if let Some(pem) = &options.ca_pem {
        add_all(&mut roots, pem).map_err(|reason| HttpError::CaInvalid {
            source_name: "CA certificate given inline (TLS_CA_CERT)".to_owned(),
            reason,
        })?;
        sources.push("the CA certificate given inline (TLS_CA_CERT)".to_owned());
    }
    trust(roots, sources.join(" and "))
}

fn add_all(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|error| format!("bad PEM: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("certificate {} is not usable: {error}", count + 1))?;
        count += 1;
    }
    if count == 0 {
        return Err("no PEM CERTIFICATE block in it".to_owned());
    }
    Ok(())
}

fn trust(roots: RootCertStore, source: String) -> Result<Trust, HttpError> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(HttpError::TlsSetup)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Trust {
        config: Arc::new(config),
        source,
    })
}

/// Turns a failed handshake with `server` into the error a user can act on.
pub(super) fn handshake_error(server: &str, trust: &Trust, error: io::Error) -> HttpError {
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let failed = |detail: String, hint| HttpError::Tls {
        server: server.to_owned(),
        detail,
        hint,
    };
    match tls_error {
        Some(rustls::Error::InvalidCertificate(rejected)) => {
            certificate_error(server, trust, rejected)
        }
        Some(other) => failed(
            other.to_string(),
            "check that the server speaks TLS 1.2 or 1.3 on this port",
        ),
        None => failed(
            error.to_string(),
            "the connection failed during the TLS handshake: check the network and the port",
        ),
    }
}

fn certificate_error(server: &str, trust: &Trust, rejected: &CertificateError) -> HttpError {
    let failed = |hint| HttpError::Tls {
        server: server.to_owned(),
        detail: rejected.to_string(),
        hint,
    };
    let not_trusted = |detail: String| HttpError::CertificateNotTrusted {
        server: server.to_owned(),
        trust: trust.source.clone(),
        detail,
    };
    match rejected {
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            failed("check the system clock (is the time set?) and the server's certificate dates")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            failed("the certificate is for another host name: use the name it was issued for")
        }
        CertificateError::UnknownIssuer => not_trusted("issued by a CA not among them".to_owned()),
        other => not_trusted(other.to_string()),
    }
}
