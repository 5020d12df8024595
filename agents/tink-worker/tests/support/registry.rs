//! Debian's docker-registry on loopback, optionally with TLS and htpasswd basic auth.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
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
}

pub struct RegistryGuard {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    /// The PEM file of the CA that signed the registry's certificate (TLS only).
    pub ca_bundle: Option<PathBuf>,
}

impl RegistryGuard {
    pub fn start(options: RegistryOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        let mut ca_bundle = None;
        if options.tls {
            let ca = TestCa::new("tink-worker test registry CA");
            let (certificate, key) = ca.server_pair();
            let ca_path = dir.path().join("ca.pem");
            fs::write(&ca_path, ca.pem()).unwrap();
            fs::write(dir.path().join("server.pem"), certificate).unwrap();
            fs::write(dir.path().join("server.key"), key).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {dir}/server.pem\n    key: {dir}/server.key\n",
                dir = dir.path().display()
            ));
            ca_bundle = Some(ca_path);
        }
        if let Some((username, password)) = &options.basic_auth {
            let hash = bcrypt::hash(password, 5).unwrap();
            fs::write(dir.path().join("htpasswd"), format!("{username}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tink-worker-test\n    path: {}/htpasswd\n",
                dir.path().display()
            ));
        }
        fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut guard = Self {
            dir,
            port,
            child: None,
            ca_bundle,
        };
        guard.start_again();
        guard
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
