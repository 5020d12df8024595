//! Pulls through containerd's `hosts.toml` (certs.d) layout into the real containerd, from
//! Debian's docker-registry (an independent registry implementation): mirrors tried in
//! order, a mirror's own CA, a header per registry, capabilities. Image names use registry
//! names that resolve nowhere (`registry.example.test`), as on an air-gapped site where only
//! the hosts file says where images are. Needs root (its own containerd).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bootkit_oci::{Credentials, RegistryClient, RegistryConfig, RegistryError};
use support::{
    ContainerdGuard, RegistryGuard, RegistryOptions, TestImage, free_port, is_tls_handshake,
    is_unauthorized, push, tls_client,
};
use tink_worker::runtime::{PulledImage, Runtime, RuntimeError};

struct Setup {
    containerd: ContainerdGuard,
    runtime: Runtime,
    certs_d: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let containerd = ContainerdGuard::start();
        let runtime = containerd.runtime();
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

    /// Writes `certs.d/<namespace>/hosts.toml` (as [`Self::hosts_toml`]) and pulls
    /// `<namespace>/test/busybox:1` through it.
    async fn pull_with_hosts(
        &self,
        namespace: &str,
        text: &str,
        files: &[(&str, &Path)],
    ) -> Result<PulledImage, RuntimeError> {
        self.hosts_toml(namespace, text, files);
        self.pull(&format!("{namespace}/test/busybox:1")).await
    }

    /// Pulls `image` into containerd with the worker's client.
    async fn pull(&self, image: &str) -> Result<PulledImage, RuntimeError> {
        self.runtime.pull(&self.client(), image).await
    }

    fn images(&self) -> String {
        self.containerd.ctr(&["images", "ls", "-q"])
    }
}

/// Pushes a busybox image as `test/busybox:1` to the registry at `host` with `client`;
/// returns its manifest digest.
async fn publish(client: &RegistryClient, host: &str) -> String {
    let reference = format!("{host}/test/busybox:1");
    push(client, &reference, &TestImage::busybox(&["true"])).await
}

/// A hosts.toml whose server is `https://host`, trusted by the CA in `ca_file` beside it.
fn server_with_ca(host: &str, ca_file: &str) -> String {
    format!("server = \"https://{host}\"\nca = \"{ca_file}\"\n")
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
    publish(&upstream.plain_client(), &upstream.host()).await;
    let down = format!("127.0.0.1:{}", free_port());
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
            .pull("registry.example.test/test/busybox:1")
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
        let client = tls_client(registry.ca_bundle.clone(), None);
        publish(&client, &registry.host()).await;
    }
    // The mirror's CA, relative to the file (docs/hosts.md: "relative to the hosts.toml").
    let pulled = setup
        .pull_with_hosts(
            "mirror.example.test",
            &server_with_ca(&mirror.host(), "mirror-ca.pem"),
            &[("mirror-ca.pem", &mirror_ca)],
        )
        .await
        .unwrap();
    assert!(setup.images().contains(&pulled.name));

    // The same CA does not vouch for a registry another CA signed.
    let error = setup
        .pull_with_hosts(
            "other.example.test",
            &server_with_ca(&other.host(), "mirror-ca.pem"),
            &[("mirror-ca.pem", &mirror_ca)],
        )
        .await
        .unwrap_err();
    assert!(is_tls_handshake(&error), "{error}");
    // And without its ca line the mirror is not trusted either (the system roots do not
    // hold the test CA).
    let error = setup
        .pull_with_hosts(
            "noca.example.test",
            &format!("server = \"https://{}\"\n", mirror.host()),
            &[],
        )
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
    let credentials = Credentials {
        username: "site".into(),
        password: "s3cret-pass".into(),
    };
    publish(
        &tls_client(Some(ca.clone()), Some(credentials)),
        &registry.host(),
    )
    .await;
    let basic = base64::engine::general_purpose::STANDARD.encode("site:s3cret-pass");
    let pulled = setup
        .pull_with_hosts(
            "private.example.test",
            &format!(
                "{}\n[header]\n  Authorization = \"Basic {basic}\"\n",
                server_with_ca(&registry.host(), "ca.pem")
            ),
            &[("ca.pem", &ca)],
        )
        .await
        .unwrap();
    assert!(setup.images().contains(&pulled.name));

    let error = setup
        .pull_with_hosts(
            "anonymous.example.test",
            &server_with_ca(&registry.host(), "ca.pem"),
            &[("ca.pem", &ca)],
        )
        .await
        .unwrap_err();
    assert!(
        is_unauthorized(&error),
        "without the header the registry refuses: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_pull_only_mirror_serves_digests_but_never_resolves_tags() {
    let setup = Setup::start();
    let mirror = RegistryGuard::start(RegistryOptions::default());
    let upstream = RegistryGuard::start(RegistryOptions::default());
    let digest = publish(&mirror.plain_client(), &mirror.host()).await;
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
        .pull("pinned.example.test/test/busybox:1")
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
        .pull(&format!("pinned.example.test/test/busybox@{digest}"))
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_bad_hosts_toml_fails_the_pull_naming_file_and_key() {
    let setup = Setup::start();
    let error = setup
        .pull_with_hosts(
            "bad.example.test",
            "[host.\"https://m.example.test\"]\n  skip_verify = \"yes\"\n",
            &[],
        )
        .await
        .unwrap_err()
        .to_string();
    let file: PathBuf = setup.certs_d.path().join("bad.example.test/hosts.toml");
    assert!(
        error.contains(&file.display().to_string()) && error.contains("skip_verify"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_client_certificate_from_hosts_toml_is_offered_to_a_registry_that_demands_one() {
    let setup = Setup::start();
    let mut registry = RegistryGuard::start(RegistryOptions {
        tls: true,
        basic_auth: None,
    });
    let ca = registry.ca_bundle.clone().unwrap();
    publish(&tls_client(Some(ca.clone()), None), &registry.host()).await;
    // Its storage is kept: the image pushed above is there to pull.
    let (client_pem, client_key) = registry.demand_client_certificates();
    let files: [(&str, &Path); 3] = [
        ("ca.pem", &ca),
        ("client.pem", &client_pem),
        ("client.key", &client_key),
    ];
    let pulled = setup
        .pull_with_hosts(
            "mtls.example.test",
            &format!(
                "{}client = [[\"client.pem\", \"client.key\"]]\n",
                server_with_ca(&registry.host(), "ca.pem")
            ),
            &files,
        )
        .await
        .unwrap();
    assert!(setup.images().contains(&pulled.name));

    let error = setup
        .pull_with_hosts(
            "nocert.example.test",
            &server_with_ca(&registry.host(), "ca.pem"),
            &files,
        )
        .await
        .unwrap_err();
    assert!(
        is_tls_handshake(&error),
        "without the client certificate the registry refuses the connection: {error}"
    );
}
