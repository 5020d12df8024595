//! The pinned-CA server certificate verifier (rustls, ring only) shared by the agents' gRPC
//! channel and the init's syslog forwarder: both trust the site CA by the SHA-256 the boot
//! script puts on the kernel line (`tinkerbell_ca_sha256=`), since the provisioner presents the
//! same chain on gRPC and on syslog TLS. Also the one loader of the node's client
//! certificate and key ([`load_client_identity`]) that both present.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// Why a client certificate and key cannot be presented; callers put the files in front.
#[derive(Debug, thiserror::Error)]
pub enum ClientIdentityError {
    /// The certificate file cannot be read or is not PEM.
    #[error("the certificate file cannot be read as PEM")]
    Certificate(#[source] pem::Error),
    /// The certificate file holds no certificate.
    #[error("the certificate file holds no certificate")]
    NoCertificate,
    /// The key file cannot be read or holds no PEM private key.
    #[error("the key file holds no readable PEM private key")]
    Key(#[source] pem::Error),
    /// rustls refuses the pair (the key is not the certificate's, or of an unsupported kind).
    #[error("the key does not fit the certificate or is of an unsupported kind")]
    Refused(#[source] rustls::Error),
}

/// The certificate chain (leaf first) of the PEM file `cert_chain` and the private key
/// (PKCS#8, SEC1 or PKCS#1) of the PEM file `key`.
pub fn load_client_identity(
    cert_chain: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientIdentityError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
        .map_err(ClientIdentityError::Certificate)?
        .collect::<Result<_, _>>()
        .map_err(ClientIdentityError::Certificate)?;
    if chain.is_empty() {
        return Err(ClientIdentityError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(ClientIdentityError::Key)?;
    Ok((chain, key))
}

/// The SHA-256 of a certificate's DER, as `sha256sum` of the DER file and
/// `openssl x509 -outform der | sha256sum` print it.
pub fn certificate_sha256(certificate: &[u8]) -> [u8; 32] {
    Sha256::digest(certificate).into()
}

fn hex(digest: &[u8; 32]) -> String {
    crate::checksum::Sha256Digest(*digest).to_hex()
}

/// The server's chain holds no certificate with the pinned hash.
struct PinNotPresented {
    pinned: [u8; 32],
    presented: Vec<[u8; 32]>,
}

/// rustls shows a certificate error's cause with Debug: the sentence, not the byte arrays.
impl fmt::Debug for PinNotPresented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PinNotPresented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let presented: Vec<String> = self.presented.iter().map(hex).collect();
        write!(
            f,
            "the server presented no certificate whose SHA-256 is the pinned CA's {} (it presented {}); the pin must be the SHA-256 of the site CA's DER, and the server must send its chain with that CA",
            hex(&self.pinned),
            presented.join(", ")
        )
    }
}

impl std::error::Error for PinNotPresented {}

/// Trusts exactly one CA, known by the SHA-256 of its DER: the CA must be in the chain the
/// server presents, and the leaf must verify (webpki: signature, validity, server name) with
/// that CA as the only root. Why a hash rather than a file: the boot script carries it on the
/// kernel command line, so nothing needs to be in the image for a site's own CA.
#[derive(Debug)]
pub struct PinnedCa {
    ca_sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCa {
    /// A verifier trusting the CA whose DER has SHA-256 `ca_sha256`, checking signatures
    /// with `provider`'s algorithms.
    pub fn new(ca_sha256: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        PinnedCa {
            ca_sha256,
            provider,
        }
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: Vec<&CertificateDer<'_>> =
            std::iter::once(end_entity).chain(intermediates).collect();
        let Some(ca) = presented
            .iter()
            .find(|certificate| certificate_sha256(certificate) == self.ca_sha256)
        else {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinNotPresented {
                    pinned: self.ca_sha256,
                    presented: presented
                        .iter()
                        .map(|certificate| certificate_sha256(certificate))
                        .collect(),
                })),
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.to_vec()))?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|error| rustls::Error::General(error.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
