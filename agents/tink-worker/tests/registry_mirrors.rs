//! Pulls through containerd's `hosts.toml` (certs.d) layout into the real containerd, from
//! Debian's docker-registry (an independent registry implementation): mirrors tried in
//! order, a mirror's own CA, a header per registry, capabilities. Image names use registry
//! names that resolve nowhere (`registry.example.test`), as on an air-gapped site where only
//! the hosts file says where images are. Needs root (its own containerd).

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bootkit_oci::{Credentials, RegistryClient, RegistryConfig, RegistryError};
use support::{ContainerdGuard, RegistryGuard, RegistryOptions, TestImage, push};
use tink_worker::runtime::{Runtime, RuntimeConfig, RuntimeError};

struct Setup {
    containerd: ContainerdGuard,
    runtime: Runtime,
    certs_d: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let containerd = ContainerdGuard::start();
        let runtime = Runtime::new(RuntimeConfig {
            socket: containerd.socket(),
            state_dir: containerd.scratch_dir("state"),
            worker_dir: containerd.scratch_dir("worker"),
            ..RuntimeConfig::default()
        });
        Self {
            containerd,
            runtime,
            certs_d: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `certs.d/<namespace>/hosts.toml` (and the files beside it).
    fn hosts_toml(&self, namespace: &str, text: &str, files: &[(&str, &Path)]) {
        let dir = self.certs_d.path().join(namespace);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts.toml"), text).unwrap();
        for (name, source) in files {
            std::fs::copy(source, dir.join(name)).unwrap();
        }
    }

    /// The worker's client: no credentials, no CA bundle, only the hosts directory.
    fn client(&self) -> RegistryClient {
        RegistryClient::new(RegistryConfig {
            hosts_dir: Some(self.certs_d.path().to_path_buf()),
            ..RegistryConfig::default()
        })
        .unwrap()
    }

    fn images(&self) -> String {
        self.containerd.ctr(&["images", "ls", "-q"])
    }
}

/// Pushes a busybox image to a plain-HTTP registry; returns its manifest digest.
async fn publish_plain(registry: &RegistryGuard, name: &str) -> String {
    let client = RegistryClient::new(RegistryConfig {
        insecure_registries: vec![registry.host()],
        ..RegistryConfig::default()
    })
    .unwrap();
    let reference = format!("{}/{name}", registry.host());
    push(&client, &reference, &TestImage::busybox(&["true"])).await
}

/// A loopback port nothing listens on: a mirror that is down.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The log lines emitted while `future` runs on this thread (current-thread runtime).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs root: runs its own containerd"]
async fn a_mirror_that_is_down_or_lacks_the_image_is_skipped_for_the_next_host() {
    let setup = Setup::start();
    let upstream = RegistryGuard::start(RegistryOptions::default());
    let empty_mirror = RegistryGuard::start(RegistryOptions::default());
    publish_plain(&upstream, "test/busybox:1").await;
    let down = format!("127.0.0.1:{}", closed_port());
    setup.hosts_toml(
        "registry.example.test",
        &format!(
            r#"server = "http://{upstream}"

[host."http://{down}"]
  capabilities = ["pull", "resolve"]

[host."http://{empty}"]
  capabilities = ["pull", "resolve"]
"#,
            upstream = upstream.host(),
            empty = empty_mirror.host(),
        ),
        &[],
    );
    let logs = Captured::default();
    let pulled = {
        let _guard = logs.start();
        setup
            .runtime
            .pull(&setup.client(), "registry.example.test/test/busybox:1")
            .await
            .unwrap()
    };
    assert_eq!(pulled.name, "registry.example.test/test/busybox:1");
    assert!(setup.images().contains(&pulled.name), "{}", setup.images());
    let logs = logs.text();
    assert!(
        logs.contains(&format!("registry host http://{down}/v2 failed"))
            && logs.contains("cannot reach registry"),
        "the down mirror is named with why: {logs}"
    );
    assert!(
        logs.contains(&format!(
            "registry host http://{}/v2 failed",
            empty_mirror.host()
        )) && logs.contains("(404)"),
        "the mirror without the image is named with why: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_mirror_with_its_own_ca_is_verified_by_that_ca_only() {
    let setup = Setup::start();
    let mirror = RegistryGuard::start(RegistryOptions {
        tls: true,
        basic_auth: None,
    });
    let other = RegistryGuard::start(RegistryOptions {
        tls: true,
        basic_auth: None,
    });
    let mirror_ca = mirror.ca_bundle.clone().unwrap();
    for registry in [&mirror, &other] {
        let client = RegistryClient::new(RegistryConfig {
            ca_bundle: registry.ca_bundle.clone(),
            ..RegistryConfig::default()
        })
        .unwrap();
        push(
            &client,
            &format!("{}/test/busybox:1", registry.host()),
            &TestImage::busybox(&["true"]),
        )
        .await;
    }
    // The mirror's CA, relative to the file (docs/hosts.md: "relative to the hosts.toml").
    let with_ca = |host: &str| format!("server = \"https://{host}\"\nca = \"mirror-ca.pem\"\n");
    setup.hosts_toml(
        "mirror.example.test",
        &with_ca(&mirror.host()),
        &[("mirror-ca.pem", &mirror_ca)],
    );
    let pulled = setup
        .runtime
        .pull(&setup.client(), "mirror.example.test/test/busybox:1")
        .await
        .unwrap();
    assert!(setup.images().contains(&pulled.name));

    // The same CA does not vouch for a registry another CA signed.
    setup.hosts_toml(
        "other.example.test",
        &with_ca(&other.host()),
        &[("mirror-ca.pem", &mirror_ca)],
    );
    let error = setup
        .runtime
        .pull(&setup.client(), "other.example.test/test/busybox:1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RuntimeError::Registry(RegistryError::TlsHandshake { .. })
        ),
        "{error}"
    );
    // And without its ca line the mirror is not trusted either (the system roots do not
    // hold the test CA).
    setup.hosts_toml(
        "noca.example.test",
        &format!("server = \"https://{}\"\n", mirror.host()),
        &[],
    );
    let error = setup
        .runtime
        .pull(&setup.client(), "noca.example.test/test/busybox:1")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("TLS handshake"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_header_in_hosts_toml_authenticates_to_that_registry() {
    let setup = Setup::start();
    let registry = RegistryGuard::start(RegistryOptions {
        tls: true,
        basic_auth: Some(("site".into(), "s3cret-pass".into())),
    });
    let ca = registry.ca_bundle.clone().unwrap();
    let pusher = RegistryClient::new(RegistryConfig {
        ca_bundle: Some(ca.clone()),
        credentials: Some(Credentials {
            username: "site".into(),
            password: "s3cret-pass".into(),
        }),
        ..RegistryConfig::default()
    })
    .unwrap();
    push(
        &pusher,
        &format!("{}/test/busybox:1", registry.host()),
        &TestImage::busybox(&["true"]),
    )
    .await;
    let basic = base64::engine::general_purpose::STANDARD.encode("site:s3cret-pass");
    setup.hosts_toml(
        "private.example.test",
        &format!(
            "server = \"https://{host}\"\nca = \"ca.pem\"\n\n[header]\n  Authorization = \"Basic {basic}\"\n",
            host = registry.host()
        ),
        &[("ca.pem", &ca)],
    );
    let pulled = setup
        .runtime
        .pull(&setup.client(), "private.example.test/test/busybox:1")
        .await
        .unwrap();
    assert!(setup.images().contains(&pulled.name));

    setup.hosts_toml(
        "anonymous.example.test",
        &format!(
            "server = \"https://{}\"\nca = \"ca.pem\"\n",
            registry.host()
        ),
        &[("ca.pem", &ca)],
    );
    let error = setup
        .runtime
        .pull(&setup.client(), "anonymous.example.test/test/busybox:1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RuntimeError::Registry(RegistryError::Unauthorized { .. })
        ),
        "without the header the registry refuses: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_pull_only_mirror_serves_digests_but_never_resolves_tags() {
    let setup = Setup::start();
    let mirror = RegistryGuard::start(RegistryOptions::default());
    let upstream = RegistryGuard::start(RegistryOptions::default());
    let digest = publish_plain(&mirror, "test/busybox:1").await;
    setup.hosts_toml(
        "pinned.example.test",
        &format!(
            "server = \"http://{}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\"]\n",
            upstream.host(),
            mirror.host()
        ),
        &[],
    );
    // By tag only the server may resolve, and it has no such image.
    let error = setup
        .runtime
        .pull(&setup.client(), "pinned.example.test/test/busybox:1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RuntimeError::Registry(RegistryError::NotFound { ref host, .. }) if *host == upstream.host()
        ),
        "{error}"
    );
    // By digest the pull-only mirror serves it.
    let pulled = setup
        .runtime
        .pull(
            &setup.client(),
            &format!("pinned.example.test/test/busybox@{digest}"),
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_bad_hosts_toml_fails_the_pull_naming_file_and_key() {
    let setup = Setup::start();
    setup.hosts_toml(
        "bad.example.test",
        "[host.\"https://m.example.test\"]\n  skip_verify = \"yes\"\n",
        &[],
    );
    let error = setup
        .runtime
        .pull(&setup.client(), "bad.example.test/test/busybox:1")
        .await
        .unwrap_err()
        .to_string();
    let file: PathBuf = setup.certs_d.path().join("bad.example.test/hosts.toml");
    assert!(
        error.contains(&file.display().to_string()) && error.contains("skip_verify"),
        "{error}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate (PEM files in `dir`).
fn mutual_tls_files(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mirror mTLS test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, stem: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("mirror mTLS test {stem}"));
        let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), certificate.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    };
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    issue(
        vec!["127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    issue(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, "client");
}

/// docker-registry over TLS that demands a client certificate from `ca.pem` (its
/// `http.tls.clientcas`), or without that demand; storage kept across restarts.
struct MutualTlsRegistry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl MutualTlsRegistry {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        mutual_tls_files(dir.path());
        Self {
            dir,
            port: closed_port(),
            child: None,
        }
    }

    fn start(&mut self, demand_client_certificate: bool) {
        support::kill_daemon(&mut self.child);
        let dir = self.dir.path().display();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {dir}/storage\n\
             http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {dir}/server.pem\n    key: {dir}/server.key\n",
            port = self.port
        );
        if demand_client_certificate {
            config.push_str(&format!("    clientcas:\n      - {dir}/ca.pem\n"));
        }
        let config_file = self.dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        self.child = Some(support::spawn_logging_to(
            std::process::Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config_file),
            &self.dir.path().join("registry.log"),
        ));
        let address = self.host();
        support::wait_until(
            "the registry listening",
            std::time::Duration::from_secs(20),
            || std::net::TcpStream::connect(&address).is_ok(),
        );
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for MutualTlsRegistry {
    fn drop(&mut self) {
        support::kill_daemon(&mut self.child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_client_certificate_from_hosts_toml_is_offered_to_a_registry_that_demands_one() {
    let setup = Setup::start();
    let mut registry = MutualTlsRegistry::new();
    registry.start(false);
    let pusher = RegistryClient::new(RegistryConfig {
        ca_bundle: Some(registry.file("ca.pem")),
        ..RegistryConfig::default()
    })
    .unwrap();
    push(
        &pusher,
        &format!("{}/test/busybox:1", registry.host()),
        &TestImage::busybox(&["true"]),
    )
    .await;
    registry.start(true);
    let files: [(&str, &Path); 3] = [
        ("ca.pem", &registry.file("ca.pem")),
        ("client.pem", &registry.file("client.pem")),
        ("client.key", &registry.file("client.key")),
    ];
    setup.hosts_toml(
        "mtls.example.test",
        &format!(
            "server = \"https://{}\"\nca = \"ca.pem\"\nclient = [[\"client.pem\", \"client.key\"]]\n",
            registry.host()
        ),
        &files,
    );
    let pulled = setup
        .runtime
        .pull(&setup.client(), "mtls.example.test/test/busybox:1")
        .await
        .unwrap();
    assert!(setup.images().contains(&pulled.name));

    setup.hosts_toml(
        "nocert.example.test",
        &format!(
            "server = \"https://{}\"\nca = \"ca.pem\"\n",
            registry.host()
        ),
        &files,
    );
    let error = setup
        .runtime
        .pull(&setup.client(), "nocert.example.test/test/busybox:1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RuntimeError::Registry(RegistryError::TlsHandshake { .. })
        ),
        "without the client certificate the registry refuses the connection: {error}"
    );
}
