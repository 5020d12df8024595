//! The bootkit agents' gRPC channel to the provisioner (device discovery's onboarding stream,
//! the tink-worker's workflow calls), with TLS done by our own rustls connector (ring only).
//!
//! Why not tonic's built-in TLS: it cannot skip certificate checks, and HookOS's
//! `tinkerbell_insecure_tls=true` asks for exactly that. One connector for all three modes
//! (system CAs, a CA bundle, no checks) keeps a single TLS path.
//!
//! Errors say what failed and why; each agent adds what its operator should do, since the
//! settings have different names in each (`tinkerbell_ca`, `--ca-cert`, …).

mod channel;
mod connector;
mod status;
#[cfg(feature = "test-ca")]
pub mod test_ca;
pub mod tls;

use std::path::PathBuf;

pub use channel::{ChannelError, Liveness, connect_lazy};
pub use status::{describe, handshake_failure};

/// How an agent reaches the provisioner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTls {
    /// `tinkerbell_tls=false`: plain HTTP/2.
    Plaintext,
    /// The server's certificate is checked against this PEM bundle, or the system's.
    Verified {
        /// The PEM file of trusted CAs; None: the first of [`tls::SYSTEM_CA_BUNDLES`] that exists.
        ca_bundle: Option<PathBuf>,
    },
    /// `tinkerbell_ca_sha256=HEX`: the server's chain must hold a certificate with this
    /// SHA-256 (of its DER), and the leaf must verify, server name included, with that one as
    /// the only root. The boot script carries the hash, so the image needs no site CA file.
    Pinned {
        /// SHA-256 of the site CA certificate's DER.
        ca_sha256: [u8; 32],
    },
    /// `tinkerbell_insecure_tls=true`: TLS without checking the certificate.
    InsecureSkipVerify,
}

/// The client certificate an agent presents in every TLS handshake (mTLS): the node
/// credential device discovery enrolled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM file: the client certificate, then any intermediates.
    pub cert_chain: PathBuf,
    /// PEM file: the certificate's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}
