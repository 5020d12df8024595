//! The credential an earlier run of device discovery wrote in this boot (issue 15 §1,
//! onboarding re-entry): the node's key and certificate stay in tmpfs until the machine
//! reboots, so a run started again by the supervisor presents that certificate on the
//! onboarding connection and enrolls again as itself, where a run without it would be a
//! second enrollment, which the provisioner refuses (first contact wins).
//!
//! Only a usable credential is presented: a certificate the server's TLS layer would refuse
//! (expired, not yet valid, for another key) would fail the handshake, and the node could not
//! enroll at all; such files are noted on the console and a fresh key is made instead.

use std::path::Path;
use std::time::SystemTime;

use agent_channel::ClientIdentity;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::FromDer;

use crate::enroll::NodeKey;
use crate::output::NodeCredentialFiles;

/// A credential found in the node-credentials directory and fit to present.
#[derive(Debug)]
pub struct HeldCredential {
    /// The key the certificate certifies; the new request is made with it, so the files the
    /// worker reads stay one matching pair.
    pub key: NodeKey,
    /// The certificate and key files, for the onboarding connection's client authentication.
    pub identity: ClientIdentity,
}

/// Why files that are there are not presented.
#[derive(Debug, thiserror::Error)]
pub enum HeldCredentialError {
    /// A file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file is not one PEM X.509 certificate.
    #[error("{path} is not a PEM X.509 certificate ({why})")]
    Certificate {
        /// The file.
        path: String,
        /// The parser's words.
        why: String,
    },
    /// The key file is not a key, or not the certificate's.
    #[error("{path} is not the private key of the certificate beside it ({why})")]
    Key {
        /// The file.
        path: String,
        /// What did not match.
        why: String,
    },
    /// The certificate is outside its validity at `now`.
    #[error(
        "the certificate in {path} is not valid now (valid from {not_before} until {not_after})"
    )]
    NotValidNow {
        /// The file.
        path: String,
        /// Its notBefore, RFC 2822 as x509-parser prints it.
        not_before: String,
        /// Its notAfter.
        not_after: String,
    },
}

/// The credential in `directory`, if the files are there and usable at `now`: Ok(None) when
/// there is none (the first run of this boot); an error when files are there but unusable
/// (the caller notes it and enrolls with a fresh key).
pub fn find(
    directory: &Path,
    boot_mac: &str,
    now: SystemTime,
) -> Result<Option<HeldCredential>, HeldCredentialError> {
    let files = NodeCredentialFiles::in_directory(directory);
    if !files.cert.exists() || !files.key.exists() {
        return Ok(None);
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| HeldCredentialError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|error| {
        HeldCredentialError::Certificate {
            path: cert_path.clone(),
            why: error.to_string(),
        }
    })?;
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|error| HeldCredentialError::Certificate {
            path: cert_path.clone(),
            why: error.to_string(),
        })?;
    let validity = certificate.validity();
    let now_seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    if now_seconds < validity.not_before.timestamp()
        || now_seconds >= validity.not_after.timestamp()
    {
        return Err(HeldCredentialError::NotValidNow {
            path: cert_path,
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    let key = NodeKey::from_private_key_pem(&key_pem, boot_mac).map_err(|error| {
        HeldCredentialError::Key {
            path: key_path.clone(),
            why: error.to_string(),
        }
    })?;
    if !key.certified_by(&der) {
        return Err(HeldCredentialError::Key {
            path: key_path,
            why: "the certificate certifies another public key".to_string(),
        });
    }
    Ok(Some(HeldCredential {
        key,
        identity: ClientIdentity {
            cert_chain: files.cert,
            key: files.key,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use std::time::Duration;

    /// Writes a certificate for `key` valid from now for `days`, signed by a throwaway CA,
    /// and the key file, as device discovery's first run does.
    fn write_credential(directory: &Path, key: &KeyPair, days: i64) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let certificate = params.signed_by(key, &ca, &ca_key).unwrap();
        std::fs::write(directory.join("node.pem"), certificate.pem()).unwrap();
        std::fs::write(directory.join("node-key.pem"), key.serialize_pem()).unwrap();
    }

    #[test]
    fn nothing_is_held_on_the_first_run() {
        let directory = tempfile::tempdir().unwrap();
        assert!(
            find(directory.path(), "52:54:00:12:34:56", SystemTime::now())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_valid_credential_is_presented_with_its_own_key() {
        let directory = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        write_credential(directory.path(), &key, 1);

        let held = find(directory.path(), "52:54:00:12:34:56", SystemTime::now())
            .unwrap()
            .expect("held");

        assert_eq!(held.identity.cert_chain, directory.path().join("node.pem"));
        assert_eq!(held.key.private_key_pem(), key.serialize_pem());
        assert!(held.key.csr_pem().contains("CERTIFICATE REQUEST"));
    }

    #[test]
    fn an_expired_or_mismatched_credential_is_not_presented() {
        let directory = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        write_credential(directory.path(), &key, 1);
        let later = SystemTime::now() + Duration::from_secs(3 * 24 * 3600);
        let error = find(directory.path(), "52:54:00:12:34:56", later).unwrap_err();
        assert!(
            matches!(error, HeldCredentialError::NotValidNow { .. }),
            "{error}"
        );

        let other = KeyPair::generate().unwrap();
        std::fs::write(directory.path().join("node-key.pem"), other.serialize_pem()).unwrap();
        let error = find(directory.path(), "52:54:00:12:34:56", SystemTime::now()).unwrap_err();
        assert!(
            error.to_string().contains("certifies another public key"),
            "{error}"
        );
    }
}
