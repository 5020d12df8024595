//! A throwaway CA and a server certificate for 127.0.0.1 signed by it, for the agents' TLS
//! tests (this crate's and device discovery's). Built only with the `test-ca` feature, which
//! only dev-dependencies enable.

/// The CA's certificate as an agent's CA bundle holds it, and the server's certificate and key
/// (rcgen's, so each test takes the PEM or DER form its server wants).
pub struct TestCa {
    /// The CA certificate in PEM, what an agent's CA bundle file holds.
    pub ca_pem: String,
    /// The CA certificate (its DER is what `ServerTls::Pinned` hashes).
    pub ca_cert: rcgen::Certificate,
    /// The CA's key, to sign more certificates (client certificates in the mTLS tests).
    pub ca_key: rcgen::KeyPair,
    /// The server's certificate, for `127.0.0.1`, signed by the CA.
    pub server_cert: rcgen::Certificate,
    /// The server certificate's private key.
    pub server_key: rcgen::KeyPair,
}

impl TestCa {
    /// Generates a fresh CA and a server certificate for `127.0.0.1` signed by it.
    pub fn new() -> Result<TestCa, rcgen::Error> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key)?;
        let server_key = rcgen::KeyPair::generate()?;
        let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(
            &server_key,
            &ca,
            &ca_key,
        )?;
        Ok(TestCa {
            ca_pem: ca.pem(),
            ca_cert: ca,
            ca_key,
            server_cert,
            server_key,
        })
    }
}
