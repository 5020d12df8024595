//! rustls client configurations shared by the workflow channel and the registry client (ring
//! provider only). Each caller adds what its protocol needs on top (ALPN `h2` for gRPC) and
//! decides where its CA bundle comes from.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a CA bundle cannot be trusted; callers put the bundle's path in front of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaBundleError {
    #[error("cannot be read: {0}")]
    Unreadable(#[source] pem::Error),
    #[error("is not valid PEM: {0}")]
    NotPem(#[source] pem::Error),
    #[error("holds no usable certificate")]
    NoUsableCertificate,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The certificates of the PEM file `bundle`; an error when it holds none, since trusting
/// nothing would only fail later with a less helpful handshake error.
pub(crate) fn roots_from_bundle(bundle: &Path) -> Result<RootCertStore, CaBundleError> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(bundle)
        .map_err(CaBundleError::Unreadable)?
        .collect::<Result<_, _>>()
        .map_err(CaBundleError::NotPem)?;
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(CaBundleError::NoUsableCertificate);
    }
    Ok(roots)
}

/// Verifies the server's certificate chain against `roots`.
pub(crate) fn verified_config(roots: RootCertStore) -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Accepts any server certificate: only for servers the operator explicitly marked insecure.
pub(crate) fn unverified_config() -> Result<ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = Arc::new(AcceptAnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts any certificate chain; handshake signatures are still checked, so the connection
/// is at least encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
