//! rustls client configurations (ring provider only) for the agents' channels and for the
//! tink-worker's registry client. Each caller adds what its protocol needs on top (ALPN `h2`
//! for gRPC) and decides where its CA bundle comes from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{ClientIdentity, ServerTls};

/// CA bundles of the common distributions, for when no bundle is configured.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Why a CA bundle cannot be trusted; callers put the bundle's path in front of it.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    /// The file cannot be read (missing, unreadable).
    #[error("cannot be read")]
    Unreadable(#[source] pem::Error),
    /// The file is not PEM.
    #[error("is not valid PEM")]
    NotPem(#[source] pem::Error),
    /// The PEM holds no certificate rustls accepts as a trust anchor.
    #[error("holds no usable certificate")]
    NoUsableCertificate,
}

/// Why a TLS client configuration cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// Verification asks for the system CAs and none of [`SYSTEM_CA_BUNDLES`] exists.
    #[error("no CA bundle is configured and none of {SYSTEM_CA_BUNDLES:?} exists")]
    NoSystemCaBundle,
    /// The configured CA bundle cannot be trusted.
    #[error("the CA bundle {}", path.display())]
    CaBundle {
        /// The bundle's path, as configured.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CaBundleError,
    },
    /// rustls refuses the configuration (for example no protocol version the provider supports).
    #[error("the TLS client cannot be configured")]
    Rustls(#[source] rustls::Error),
    /// The client certificate or its key cannot be used.
    #[error("the client certificate {} with key {}", identity.cert_chain.display(), identity.key.display())]
    ClientIdentity {
        /// The files, as configured.
        identity: ClientIdentity,
        /// What is wrong with them.
        #[source]
        source: ClientIdentityError,
    },
}

pub use bootkit_common::tls_pin::ClientIdentityError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The first of [`SYSTEM_CA_BUNDLES`] that exists.
pub fn system_ca_bundle() -> Option<&'static Path> {
    SYSTEM_CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
}

/// The certificates of the PEM file `bundle`; an error when it holds none, since trusting
/// nothing would only fail later with a less helpful handshake error.
pub fn roots_from_bundle(bundle: &Path) -> Result<RootCertStore, CaBundleError> {
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
pub fn verified_config(roots: RootCertStore) -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The roots for `ca_bundle`, or for the system's bundle when none is given.
fn roots_for(ca_bundle: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let bundle = match ca_bundle {
        Some(path) => path,
        None => system_ca_bundle().ok_or(TlsSetupError::NoSystemCaBundle)?,
    };
    roots_from_bundle(bundle).map_err(|source| TlsSetupError::CaBundle {
        path: bundle.to_path_buf(),
        source,
    })
}

/// The client configuration for one of the TLS modes of `tls` (None for
/// [`ServerTls::Plaintext`]), presenting `identity` when one is given.
pub(crate) fn config_for(
    tls: &ServerTls,
    identity: Option<&ClientIdentity>,
) -> Result<Option<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match tls {
        ServerTls::Plaintext => return Ok(None),
        ServerTls::Verified { ca_bundle } => WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots_for(ca_bundle.as_deref())?),
            provider.clone(),
        )
        .build()
        .map_err(|error| TlsSetupError::Rustls(rustls::Error::General(error.to_string())))?,
        ServerTls::Pinned { ca_sha256 } => Arc::new(PinnedCa::new(*ca_sha256, provider.clone())),
        ServerTls::InsecureSkipVerify => Arc::new(AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Rustls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (chain, key) =
                load_identity(identity).map_err(|source| TlsSetupError::ClientIdentity {
                    identity: identity.clone(),
                    source,
                })?;
            builder.with_client_auth_cert(chain, key).map_err(|error| {
                TlsSetupError::ClientIdentity {
                    identity: identity.clone(),
                    source: ClientIdentityError::Refused(error),
                }
            })?
        }
    };
    Ok(Some(config))
}

/// The certificate chain (leaf first) and the private key of `identity`'s PEM files.
fn load_identity(
    identity: &ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientIdentityError> {
    bootkit_common::tls_pin::load_client_identity(&identity.cert_chain, &identity.key)
}

/// Accepts any server certificate: only for servers the operator explicitly marked insecure.
pub fn unverified_config() -> Result<ClientConfig, rustls::Error> {
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

use bootkit_common::tls_pin::PinnedCa;
pub use bootkit_common::tls_pin::certificate_sha256;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_bundle_with_a_ca_certificate_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, format!("{}{}", ca_pem(), ca_pem())).unwrap();

        let roots = roots_from_bundle(&bundle).unwrap();

        assert_eq!(roots.len(), 2);
        let tls = ServerTls::Verified {
            ca_bundle: Some(bundle),
        };
        assert!(config_for(&tls, None).unwrap().is_some());
    }

    #[test]
    fn a_missing_bundle_is_named_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("absent.pem");

        let tls = ServerTls::Verified {
            ca_bundle: Some(bundle.clone()),
        };
        let message = bootkit_common::error_chain(&config_for(&tls, None).unwrap_err());

        assert!(message.contains(&bundle.display().to_string()), "{message}");
        assert!(message.contains("cannot be read"), "{message}");
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, "not a certificate\n").unwrap();

        let error = roots_from_bundle(&bundle).unwrap_err();

        assert!(
            matches!(error, CaBundleError::NoUsableCertificate),
            "{error}"
        );
    }

    #[test]
    fn a_broken_pem_block_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(
            &bundle,
            "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();

        let error = roots_from_bundle(&bundle).unwrap_err();

        assert!(matches!(error, CaBundleError::NotPem(_)), "{error}");
    }
}
