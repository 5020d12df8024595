//! `bootkit-build action-image` against a real registry: Debian's docker-registry on
//! loopback, started and stopped by the test.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootkit_builder::oci::{self, ActionImageSpec, LayerFile, LayerLink};
use bootkit_builder::registry::{self, Transport};
use bootkit_oci::manifest::OCI_MANIFEST;
use bootkit_oci::{Reference, sha256_digest};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// docker-registry serving a temporary directory; killed on drop.
struct Registry {
    child: Child,
    addr: SocketAddr,
    _storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: install Debian's docker-registry (scripts/setup.sh)"
        );
        let storage = tempfile::tempdir().unwrap();
        // The kernel picks a free port; the registry binds it right after.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            addr,
            _storage: storage,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn get(&self, path: &str, accept: &str) -> (Vec<u8>, Option<String>) {
        let response = reqwest::blocking::Client::new()
            .get(format!("http://{}{path}", self.addr))
            .header("accept", accept)
            .send()
            .unwrap()
            .error_for_status()
            .unwrap();
        let digest = response
            .headers()
            .get("docker-content-digest")
            .map(|value| value.to_str().unwrap().to_string());
        let body = response.bytes().unwrap().to_vec();
        (body, digest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reboot_action() -> ActionImageSpec {
    ActionImageSpec {
        files: vec![LayerFile {
            src: "/bin/busybox".into(),
            dest: "/bin/busybox".into(),
        }],
        links: ["sh", "touch"]
            .map(|name| LayerLink {
                path: format!("/bin/{name}"),
                target: "busybox".into(),
            })
            .into(),
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["touch /worker/reboot".into()],
        env: vec![],
    }
}

#[test]
fn a_pushed_image_pulls_back_byte_for_byte_and_a_second_push_uploads_nothing() {
    let registry = Registry::start();
    let image = oci::build_action_image(&reboot_action(), 0).unwrap();
    let target: Reference = format!("{}/actions/reboot:v1", registry.addr)
        .parse()
        .unwrap();

    let first = registry::push(&image, &target, &Transport::Insecure).unwrap();
    assert_eq!(
        (first.uploaded_blobs, first.skipped_blobs),
        (2, 0),
        "{first:?}"
    );
    assert_eq!(first.manifest_digest, image.manifest.digest);

    let (manifest, digest) = registry.get("/v2/actions/reboot/manifests/v1", OCI_MANIFEST);
    assert_eq!(manifest, image.manifest.data);
    assert_eq!(digest.as_deref(), Some(image.manifest.digest.as_str()));
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let (data, _) = registry.get(&format!("/v2/actions/reboot/blobs/{}", blob.digest), "*/*");
        assert_eq!(sha256_digest(&data), blob.digest);
    }

    let again = registry::push(&image, &target, &Transport::Insecure).unwrap();
    assert_eq!((again.uploaded_blobs, again.skipped_blobs), (0, 2));
}

#[test]
fn a_push_to_a_registry_that_is_not_there_says_so() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image = oci::build_action_image(&reboot_action(), 0).unwrap();
    let target: Reference = format!("127.0.0.1:{port}/reboot").parse().unwrap();
    let err = registry::push(&image, &target, &Transport::Insecure)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("is the registry running"), "{err}");
}

#[test]
fn the_command_writes_a_valid_layout_and_pushes_the_same_image() {
    let registry = Registry::start();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("image2disk");
    let status = Command::new(env!("CARGO_BIN_EXE_bootkit-build"))
        .args(["action-image", "--name", "image2disk:v2"])
        .args(["--file", "/bin/busybox:/usr/bin/image2disk"])
        .args(["--entrypoint", "/usr/bin/image2disk"])
        .args(["--env", "COMPRESSED=true"])
        .arg("--out")
        .arg(&layout)
        .arg("--push")
        .arg(format!("{}/image2disk:v2", registry.addr))
        .arg("--insecure")
        .status()
        .unwrap();
    assert!(status.success());
    let (image, tag) = oci::read_layout(&layout).unwrap();
    assert_eq!(tag, "v2");
    let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/bin/image2disk");
    assert_eq!(config["config"]["Env"][0], "COMPRESSED=true");
    assert_eq!(config["architecture"], "amd64");
    let (_, digest) = registry.get("/v2/image2disk/manifests/v2", OCI_MANIFEST);
    assert_eq!(digest.as_deref(), Some(image.manifest.digest.as_str()));
}
