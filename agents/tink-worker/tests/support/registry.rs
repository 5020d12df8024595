//! Debian's docker-registry on loopback, optionally with TLS (and then client certificates
//! demanded) and htpasswd basic auth.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use bootkit_oci::{Credentials, RegistryClient, RegistryConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tempfile::TempDir;

use super::{kill_daemon, spawn_logging_to, wait_until};

const REGISTRY: &str = "/usr/bin/docker-registry";

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub tls: bool,
    /// Username and password the registry demands (htpasswd with bcrypt).
    pub basic_auth: Option<(String, String)>,
}

/// A test certificate authority.
pub struct TestCa {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        Self { certificate, key }
    }

    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A certificate and key (PEM) for 127.0.0.1 and localhost signed by this CA.
    fn server_pair(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    /// A client certificate (for TLS client authentication) and its key, PEM, signed by this
    /// CA.
    fn client_pair(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
            .distinguished_name
            .push(DnType::CommonName, "tink-worker test client");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

pub struct RegistryGuard {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    options: RegistryOptions,
    /// The CA that signed the registry's certificate (TLS only).
    ca: Option<TestCa>,
    /// Whether the registry demands a client certificate from `ca`.
    client_certificates: bool,
    /// The PEM file of the CA that signed the registry's certificate (TLS only).
    pub ca_bundle: Option<PathBuf>,
}

impl RegistryGuard {
    pub fn start(options: RegistryOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = None;
        let mut ca_bundle = None;
        if options.tls {
            let authority = TestCa::new("tink-worker test registry CA");
            let (certificate, key) = authority.server_pair();
            let ca_path = dir.path().join("ca.pem");
            fs::write(&ca_path, authority.pem()).unwrap();
            fs::write(dir.path().join("server.pem"), certificate).unwrap();
            fs::write(dir.path().join("server.key"), key).unwrap();
            ca = Some(authority);
            ca_bundle = Some(ca_path);
        }
        if let Some((username, password)) = &options.basic_auth {
            let hash = bcrypt::hash(password, 5).unwrap();
            fs::write(dir.path().join("htpasswd"), format!("{username}:{hash}\n")).unwrap();
        }
        let mut guard = Self {
            dir,
            port: free_port(),
            child: None,
            options,
            ca,
            client_certificates: false,
            ca_bundle,
        };
        guard.write_config();
        guard.start_again();
        guard
    }

    /// docker-registry's `config.yml` for the options (its `http.tls.clientcas` when client
    /// certificates are demanded).
    fn write_config(&self) {
        let dir = self.dir.path().display();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {dir}/storage\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            port = self.port
        );
        if self.options.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {dir}/server.pem\n    key: {dir}/server.key\n"
            ));
            if self.client_certificates {
                config.push_str(&format!("    clientcas:\n      - {dir}/ca.pem\n"));
            }
        }
        if self.options.basic_auth.is_some() {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tink-worker-test\n    path: {dir}/htpasswd\n"
            ));
        }
        fs::write(self.dir.path().join("config.yml"), config).unwrap();
    }

    /// Restarts the (TLS) registry demanding a client certificate signed by its CA, storage
    /// kept; returns the PEM files of such a certificate and its key (`client.pem`,
    /// `client.key`).
    pub fn demand_client_certificates(&mut self) -> (PathBuf, PathBuf) {
        let ca = self
            .ca
            .as_ref()
            .expect("client certificates need a TLS registry");
        let (certificate, key) = ca.client_pair();
        let files = (
            self.dir.path().join("client.pem"),
            self.dir.path().join("client.key"),
        );
        fs::write(&files.0, certificate).unwrap();
        fs::write(&files.1, key).unwrap();
        self.client_certificates = true;
        self.write_config();
        self.stop();
        self.start_again();
        files
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client for this registry over plain HTTP (listed as insecure, as Docker would need).
    pub fn plain_client(&self) -> RegistryClient {
        RegistryClient::new(RegistryConfig {
            insecure_registries: vec![self.host()],
            ..RegistryConfig::default()
        })
        .unwrap()
    }

    /// Stops the registry; its port and storage are kept for `start_again`.
    pub fn stop(&mut self) {
        kill_daemon(&mut self.child);
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the registry is already running");
        let child = spawn_logging_to(
            Command::new(REGISTRY)
                .arg("serve")
                .arg(self.dir.path().join("config.yml")),
            &self.dir.path().join("registry.log"),
        );
        self.child = Some(child);
        let address = self.host();
        wait_until("the registry listening", Duration::from_secs(20), || {
            TcpStream::connect(&address).is_ok()
        });
    }
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client that trusts `ca_bundle` (when given) and logs in with `credentials`.
pub fn tls_client(ca_bundle: Option<PathBuf>, credentials: Option<Credentials>) -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        ca_bundle,
        credentials,
        ..RegistryConfig::default()
    })
    .unwrap()
}

/// A loopback port nothing listens on (the listener that found it is closed again): for a
/// daemon to bind, or as a registry that is down.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
