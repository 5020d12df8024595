//! The node credential (issue 15 §1): an ECDSA P-256 key made in RAM for this boot, a PKCS#10
//! request for it sent on the onboarding stream (`bootkit_csr_pem`), and the client
//! certificate the provisioner signs for it (`bootkit_client_cert_pem`, with the node CA in
//! `bootkit_node_ca_pem`). The private key never leaves the node; nothing secret crosses the
//! wire. The request's subject (CN = the boot MAC) is only a hint for the log: the provisioner
//! writes the certificate's subject itself.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why the key or its request cannot be made (the OS random generator or the encoder failed).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make this node's key pair and certificate request: {0}; the node cannot enroll for a credential (check that the kernel's random generator works)"
)]
pub struct KeyError(String);

/// Why a signed certificate the provisioner sent is not used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// `bootkit_client_cert_pem` is not a PEM certificate.
    #[error(
        "the provisioner's bootkit_client_cert_pem is not a PEM certificate ({0}); the provisioner is at fault: check its node CA"
    )]
    NotPem(String),
    /// The certificate does not parse as X.509.
    #[error(
        "the provisioner's bootkit_client_cert_pem is not a valid X.509 certificate ({0}); the provisioner is at fault: check its node CA"
    )]
    Invalid(String),
    /// The certificate is for another key than the one this node made.
    #[error(
        "the certificate the provisioner sent is for another public key than this node's request; it is not used (an impostor or a broken provisioner)"
    )]
    NotOurKey,
    /// The node CA is missing or not PEM.
    #[error(
        "the provisioner sent a client certificate without a usable node CA (bootkit_node_ca_pem: {0}); the provisioner is at fault"
    )]
    NoNodeCa(String),
}

/// This boot's key pair and the request for it. Debug never shows the key.
pub struct NodeKey {
    key: KeyPair,
    csr_pem: String,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey").finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A fresh P-256 key and a PKCS#10 request signed by it, CN = `boot_mac`.
    pub fn generate(boot_mac: &str) -> Result<NodeKey, KeyError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|error| KeyError(error.to_string()))?;
        Self::with_request(key, boot_mac)
    }

    /// The key of an earlier run in this boot (PKCS#8 PEM, as [`Self::private_key_pem`]
    /// wrote it) and a new request for it, CN = `boot_mac`.
    pub fn from_private_key_pem(key_pem: &str, boot_mac: &str) -> Result<NodeKey, KeyError> {
        let key = KeyPair::from_pem(key_pem).map_err(|error| KeyError(error.to_string()))?;
        Self::with_request(key, boot_mac)
    }

    fn with_request(key: KeyPair, boot_mac: &str) -> Result<NodeKey, KeyError> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, boot_mac);
        params.distinguished_name = subject;
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|request| request.pem())
            .map_err(|error| KeyError(error.to_string()))?;
        Ok(NodeKey { key, csr_pem })
    }

    /// The request, PEM (`bootkit_csr_pem`).
    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The private key, PKCS#8 PEM: for the 0600 key file only.
    pub fn private_key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Whether the certificate `der` certifies this key (its public key is ours).
    pub fn certified_by(&self, der: &CertificateDer<'_>) -> bool {
        webpki::EndEntityCert::try_from(der).is_ok_and(|certificate| {
            certificate.subject_public_key_info().as_ref() == self.key.public_key_der().as_slice()
        })
    }

    /// Checks that `cert_pem` certifies this key and that `ca_pem` is a certificate: the pair
    /// the worker will present. Returns both as given.
    pub fn accept(&self, cert_pem: &str, ca_pem: &str) -> Result<NodeCredential, CertificateError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|error| CertificateError::NotPem(error.to_string()))?;
        webpki::EndEntityCert::try_from(&der)
            .map_err(|error| CertificateError::Invalid(error.to_string()))?;
        if !self.certified_by(&der) {
            return Err(CertificateError::NotOurKey);
        }
        CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|error| CertificateError::NoNodeCa(error.to_string()))?;
        Ok(NodeCredential {
            cert_pem: cert_pem.to_string(),
            ca_pem: ca_pem.to_string(),
            key_pem: self.private_key_pem(),
        })
    }
}

/// A credential the provisioner signed for this node's key. Debug never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCredential {
    /// The client certificate, PEM (`node.pem`).
    pub cert_pem: String,
    /// The node CA that signed it, PEM (`node-ca.pem`).
    pub ca_pem: String,
    /// The private key, PKCS#8 PEM (`node-key.pem`, 0600).
    pub key_pem: String,
}

impl fmt::Debug for NodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredential")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// `openssl` with `input` on stdin; its stdout, or a panic with its stderr.
    fn openssl(args: &[&str], input: &str) -> String {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn the_request_is_a_p256_pkcs10_that_openssl_verifies() {
        let key = NodeKey::generate("52:54:00:12:34:56").unwrap();

        let text = openssl(&["req", "-verify", "-noout", "-text"], key.csr_pem());

        assert!(text.contains("prime256v1"), "{text}");
        assert!(
            text.contains("CN=52:54:00:12:34:56") || text.contains("CN = 52:54:00:12:34:56"),
            "{text}"
        );
        let private = openssl(&["pkey", "-noout", "-text"], &key.private_key_pem());
        assert!(private.contains("prime256v1"), "{private}");
    }

    /// A CA and a certificate it signs for `node`'s public key, as a provisioner would for
    /// its request (the real provisioner's signing is tested in tests/provisioner.rs).
    fn sign_for(node: &NodeKey) -> (String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "node-1");
        let certificate = params.signed_by(&node.key, &ca, &ca_key).unwrap();
        (certificate.pem(), ca.pem())
    }

    #[test]
    fn a_certificate_for_our_key_is_accepted_and_one_for_another_key_refused() {
        let ours = NodeKey::generate("52:54:00:12:34:56").unwrap();
        let theirs = NodeKey::generate("52:54:00:12:34:56").unwrap();
        let (cert_pem, ca_pem) = sign_for(&ours);

        let credential = ours.accept(&cert_pem, &ca_pem).unwrap();
        assert_eq!(credential.cert_pem, cert_pem);
        assert!(!format!("{credential:?}").contains("PRIVATE KEY"));

        let error = theirs.accept(&cert_pem, &ca_pem).unwrap_err();
        assert!(matches!(error, CertificateError::NotOurKey), "{error}");
        let error = ours.accept("not a certificate", &ca_pem).unwrap_err();
        assert!(matches!(error, CertificateError::NotPem(_)), "{error}");
        let error = ours.accept(&cert_pem, "").unwrap_err();
        assert!(matches!(error, CertificateError::NoNodeCa(_)), "{error}");
    }

    #[test]
    fn the_key_file_is_the_certificates_key_for_openssl() {
        let key = NodeKey::generate("52:54:00:12:34:56").unwrap();
        let (cert_pem, _) = sign_for(&key);
        let from_cert = openssl(&["x509", "-noout", "-pubkey"], &cert_pem);
        let from_key = openssl(&["pkey", "-pubout"], &key.private_key_pem());
        assert_eq!(from_cert, from_key);
    }
}
