//! The node CA: signs the client certificates nodes enroll for (issue 15 §1).
//!
//! A node makes its key pair in RAM and sends a PKCS#10 request on the onboarding stream.
//! Only the request's public key is used: the subject is written here (CN = the node id, SAN
//! URI `urn:bootkit:node:<id>`, EKU clientAuth), so a node cannot ask for another name.
//! This CA is not the admin API's CA (`ca.pem`), so a node certificate is never an admin
//! credential.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    Certificate, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// The SAN URI prefix naming a node in its certificate: `urn:bootkit:node:<node id>`.
pub const NODE_URI_PREFIX: &str = "urn:bootkit:node:";

/// What loading the node CA or signing a node's request failed at.
#[derive(Debug, thiserror::Error)]
pub enum NodeCaError {
    /// A CA file could not be read.
    #[error(
        "reading the node CA file {path} failed (give the files `provisioner init` wrote: --node-ca-cert node-ca.pem --node-ca-key node-ca-key.pem)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA certificate or key does not parse, or the key is not the certificate's.
    #[error(
        "the node CA in {path} is not usable: {reason} (regenerate it with `provisioner init`)"
    )]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The node's certificate request is not a valid, self-signed PKCS#10 PEM.
    #[error(
        "bootkit_csr_pem is not a valid PKCS#10 certificate request signed by its own key: {0} (the node must send the PEM request its key pair signed)"
    )]
    Request(String),
    /// Signing failed.
    #[error("signing the certificate for node {node_id:?} failed: {reason}")]
    Sign {
        /// The node.
        node_id: String,
        /// Why.
        reason: String,
    },
}

/// A client certificate issued to a node.
#[derive(Debug, Clone)]
pub struct SignedCredential {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// SHA-256 of the certificate's DER, lowercase hex: its key in the store.
    pub fingerprint_hex: String,
    /// When it expires.
    pub not_after: SystemTime,
}

/// The node CA's certificate and key, loaded once at `serve`.
pub struct NodeCa {
    ca_pem: String,
    // rcgen signs with a `Certificate` made from the CA's parameters and key: same subject
    // and key identifier as the file's certificate, so chains verify against the file.
    issuer: Certificate,
    key: KeyPair,
    lifetime: Duration,
}

/// How long the certificates nodes enroll for are valid, unless `--node-cert-lifetime` says.
pub const DEFAULT_NODE_CERT_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

impl std::fmt::Debug for NodeCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("NodeCa").finish_non_exhaustive()
    }
}

impl NodeCa {
    /// Loads the CA certificate (PEM) and its private key (PEM).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, NodeCaError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| NodeCaError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let ca_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        Self::from_pem(&ca_pem, &key_pem).map_err(|(in_key, reason)| NodeCaError::Invalid {
            path: if in_key { key_path } else { cert_path }.to_path_buf(),
            reason,
        })
    }

    /// The CA from PEM text; the error says whether the key (true) or certificate is at fault.
    fn from_pem(ca_pem: &str, key_pem: &str) -> Result<Self, (bool, String)> {
        let key = KeyPair::from_pem(key_pem).map_err(|error| (true, error.to_string()))?;
        let params = CertificateParams::from_ca_cert_pem(ca_pem)
            .map_err(|error| (false, error.to_string()))?;
        let public = first_certificate_public_key(ca_pem).map_err(|reason| (false, reason))?;
        if public != key.public_key_raw() {
            return Err((
                true,
                "the private key does not belong to the CA certificate".to_string(),
            ));
        }
        let issuer = params
            .self_signed(&key)
            .map_err(|error| (true, error.to_string()))?;
        Ok(Self {
            ca_pem: ca_pem.to_string(),
            issuer,
            key,
            lifetime: DEFAULT_NODE_CERT_LIFETIME,
        })
    }

    /// The same CA issuing certificates valid for `lifetime` (`--node-cert-lifetime`).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How long the certificates enrollment issues are valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The CA certificate as PEM, handed to enrolled nodes (`bootkit_node_ca_pem`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Signs a certificate for `node_id` with the public key of `csr_pem`, valid for
    /// `lifetime` from now. The request's subject and extensions are ignored.
    pub fn sign(
        &self,
        csr_pem: &str,
        node_id: &str,
        lifetime: Duration,
    ) -> Result<SignedCredential, NodeCaError> {
        // from_pem verifies the request's self-signature: the node holds the private key.
        let request = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|error| NodeCaError::Request(error.to_string()))?;
        let sign_error = |reason: String| NodeCaError::Sign {
            node_id: node_id.to_string(),
            reason,
        };
        let uri = format!("{NODE_URI_PREFIX}{node_id}");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, node_id);
        params.subject_alt_names = vec![SanType::URI(
            uri.try_into()
                .map_err(|error: rcgen::Error| sign_error(error.to_string()))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        // A minute back: a node whose clock is a little behind still accepts it.
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(60)).into();
        let not_after = now + lifetime;
        params.not_after = not_after.into();
        params.serial_number = Some(random_serial().map_err(sign_error)?);
        let certificate = params
            .signed_by(&request.public_key, &self.issuer, &self.key)
            .map_err(|error| sign_error(error.to_string()))?;
        Ok(SignedCredential {
            cert_pem: certificate.pem(),
            fingerprint_hex: sha256_hex(certificate.der()),
            not_after,
        })
    }
}

/// The fingerprint (SHA-256 hex of the DER) of the client certificate `request`'s TLS
/// connection verified against the node CA; None without TLS or without a certificate.
/// Whether it is an active credential is the store's to say
/// ([`crate::store::Store::active_credential`]).
pub fn client_certificate_fingerprint<T>(request: &tonic::Request<T>) -> Option<String> {
    let chain = request.peer_certs()?;
    chain.first().map(|leaf| sha256_hex(leaf.as_ref()))
}

/// SHA-256 of `bytes`, lowercase hex (certificate fingerprints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    bootkit_common::checksum::Sha256Digest(Sha256::digest(bytes).into()).to_hex()
}

/// 16 random bytes, top bit clear (a positive serial of at most 20 octets, RFC 5280 4.1.2.2).
fn random_serial() -> Result<rcgen::SerialNumber, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|error| format!("the OS random generator failed: {error}"))?;
    bytes[0] &= 0x7f;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// The subject public key bits of the first certificate in `pem`.
fn first_certificate_public_key(pem: &str) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::PemObject;
    use x509_parser::prelude::FromDer;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|error| format!("no PEM certificate: {error}"))?;
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|error| error.to_string())?;
    Ok(certificate.public_key().subject_public_key.data.to_vec())
}
