//! Device discovery against the provisioner's own gRPC server and store, in-process on
//! loopback: a registered node is onboarded and recorded; an unknown one is refused until an
//! operator registers it.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use agent_channel::test_ca::TestCa;
use common::*;
use device_discovery::config::ServerTls;
use device_discovery::{RunError, run};
use provisioner::https::TlsFiles;
use provisioner::node_ca::NodeCa;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::store::{NodeState, ProfileSpec, RegistrationSpec, Store};

const TEMPLATE: &str = r#"
version: "0.1"
name: install
global_timeout: 600
tasks:
  - name: os
    worker: "{{.device_1}}"
    actions:
      - name: write
        image: 127.0.0.1:5000/write:1
        timeout: 60
"#;

const PROFILE: &str = "edge";

/// A store with one (non-default) profile whose bootkit files exist under `dir`.
fn store_with_profile(dir: &Path) -> Arc<Store> {
    let store = Store::open(&dir.join("provisioner.db")).unwrap();
    let template = store.create_template(TEMPLATE, None).unwrap();
    // No node boots here: one readable file stands in for the bootkit's kernel and initramfs.
    // Inside the artifact root the provisioner owns beside its database.
    fs::create_dir_all(dir.join("artifacts")).unwrap();
    let bootkit = dir.join("artifacts/bootkit").display().to_string();
    fs::write(&bootkit, "bootkit").unwrap();
    store
        .create_profile(&ProfileSpec {
            name: PROFILE.into(),
            kernel: bootkit.clone(),
            initramfs: bootkit,
            template: template.id,
            // Nothing fetches it here: the workflow only has to name it.
            os_image: "http://127.0.0.1:7080/images/edge.img".into(),
            ..Default::default()
        })
        .unwrap();
    Arc::new(store)
}

fn register_boot_mac(store: &Store) {
    store
        .register(&RegistrationSpec {
            mac: Some(BOOT_MAC.into()),
            profile: PROFILE.into(),
            ..Default::default()
        })
        .unwrap();
}

/// The provisioner's gRPC service (workflows and onboarding) on loopback; it stops when
/// dropped.
async fn serve(store: Arc<Store>) -> RunningServer {
    let options = ServeOptions {
        grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        // Plaintext gRPC: its clients can present no node certificate.
        allow_unauthenticated_workers: true,
        ..Default::default()
    };
    RunningServer::start(store, &options).await.unwrap()
}

/// The site's files as `provisioner init` makes them: a site CA whose server certificate
/// (for 127.0.0.1) gRPC presents as the chain leaf + CA, and a separate node CA.
struct Site {
    ca: TestCa,
    node_ca_pem: String,
    node_ca: Arc<NodeCa>,
    tls: TlsFiles,
}

impl Site {
    fn new(dir: &Path) -> Site {
        let ca = TestCa::new().unwrap();
        let tls = TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        };
        fs::write(&tls.cert, format!("{}{}", ca.server_cert.pem(), ca.ca_pem)).unwrap();
        fs::write(&tls.key, ca.server_key.serialize_pem()).unwrap();
        let node_ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bootkit node CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let node_ca_pem = params.self_signed(&node_ca_key).unwrap().pem();
        fs::write(dir.join("node-ca.pem"), &node_ca_pem).unwrap();
        fs::write(dir.join("node-ca-key.pem"), node_ca_key.serialize_pem()).unwrap();
        let node_ca =
            Arc::new(NodeCa::load(&dir.join("node-ca.pem"), &dir.join("node-ca-key.pem")).unwrap());
        Site {
            ca,
            node_ca_pem,
            node_ca,
            tls,
        }
    }

    /// What the boot script pins: the site CA's SHA-256.
    fn pin(&self) -> ServerTls {
        ServerTls::Pinned {
            ca_sha256: agent_channel::tls::certificate_sha256(self.ca.ca_cert.der()),
        }
    }

    /// gRPC with TLS and the node CA, and no unauthenticated workers: the site's default.
    async fn serve(&self, store: Arc<Store>) -> RunningServer {
        let options = ServeOptions {
            grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: Some(self.tls.clone()),
            node_ca: Some(self.node_ca.clone()),
            ..Default::default()
        };
        RunningServer::start(store, &options).await.unwrap()
    }
}

/// `openssl` with `args`; its stdout, or a panic with its stderr.
fn openssl(args: &[&str]) -> String {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Where each enrollment test starts: a store with the profile and the boot MAC registered,
/// served over TLS by the site's provisioner. `_dir` holds the database and the PKI files.
struct Served {
    store: Arc<Store>,
    site: Site,
    provisioner: RunningServer,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_profile(dir.path());
        register_boot_mac(&store);
        let site = Site::new(dir.path());
        let provisioner = site.serve(store.clone()).await;
        Served {
            store,
            site,
            provisioner,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn a_node_enrolls_over_pinned_tls_and_writes_a_credential_openssl_verifies() {
    let Served {
        store,
        site,
        provisioner,
        _dir,
    } = Served::start().await;
    let (_root, config) = machine(provisioner.grpc_addr, site.pin());

    let onboarded = run(&config, &Addresses::none()).await.unwrap();

    let node = store.get_node(BOOT_MAC).unwrap();
    assert_eq!(
        onboarded.admission.credentials().unwrap().client_id,
        node.id
    );
    let credentials = &config.node_credentials_dir;
    let (cert, key, ca) = (
        credentials.join("node.pem"),
        credentials.join("node-key.pem"),
        credentials.join("node-ca.pem"),
    );
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is the node's alone");
    assert_eq!(fs::read_to_string(&ca).unwrap(), site.node_ca_pem);
    // The independent check: openssl verifies the chain for client use, and the key is the
    // certificate's.
    let verified = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    assert_eq!(
        openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]),
        openssl(&["pkey", "-pubout", "-in", key.to_str().unwrap()])
    );
    let text = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(
        text.contains(&format!("URI:urn:bootkit:node:{}", node.id)),
        "the provisioner wrote the node's own name: {text}"
    );
    let fingerprint = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        cert.to_str().unwrap(),
    ]);
    let fingerprint = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(
        store.active_credential(&fingerprint).unwrap().as_deref(),
        Some(node.id.as_str()),
        "the store knows the credential the node holds"
    );
    let env = env_file_values(&config.output);
    assert_eq!(env["TINKERBELL_CLIENT_CERT"], cert.display().to_string());
    assert_eq!(env["TINKERBELL_CLIENT_KEY"], key.display().to_string());
}

#[tokio::test]
async fn a_second_enrollment_is_refused_until_the_operator_re_arms_the_node() {
    let Served {
        store,
        site,
        provisioner,
        _dir,
    } = Served::start().await;
    let (_first, config) = machine(provisioner.grpc_addr, site.pin());
    run(&config, &Addresses::none()).await.unwrap();

    // Another machine claiming the same identity, with its own key: first contact won.
    let (_impostor, mut impostor) = machine(provisioner.grpc_addr, site.pin());
    impostor.timeout = Duration::from_millis(800);
    let refused = run(&impostor, &Addresses::none()).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, RunError::GaveUp { .. }), "{message}");
    assert!(message.contains("enrollment refused"), "{message}");
    assert!(!impostor.output.exists(), "the worker is not let start");
    assert!(!impostor.node_credentials_dir.join("node.pem").exists());

    // The operator re-arms the node (what `node reprovision` and `approve-enrollment` do to
    // the credential): the real machine enrolls again.
    let node = store.get_node(BOOT_MAC).unwrap();
    assert!(store.revoke_credentials(&node.id).unwrap() >= 1);
    impostor.timeout = Duration::from_secs(30);
    run(&impostor, &Addresses::none()).await.unwrap();
    assert!(impostor.node_credentials_dir.join("node.pem").exists());
}

/// Device discovery started again in the same boot (the supervisor restarts it; tmpfs kept
/// the credential): it presents the certificate of its first enrollment, keeps its key, and
/// the provisioner lets it enroll again as itself, where a fresh key was refused above.
#[tokio::test]
async fn a_second_run_in_the_same_boot_re_enters_with_its_certificate() {
    let Served {
        store,
        site,
        provisioner,
        _dir,
    } = Served::start().await;
    let (_root, config) = machine(provisioner.grpc_addr, site.pin());
    run(&config, &Addresses::none()).await.unwrap();
    let key_file = config.node_credentials_dir.join("node-key.pem");
    let first_key = fs::read_to_string(&key_file).unwrap();
    let first_cert = fs::read_to_string(config.node_credentials_dir.join("node.pem")).unwrap();

    run(&config, &Addresses::none())
        .await
        .expect("the node re-enters with its certificate");

    assert_eq!(
        fs::read_to_string(&key_file).unwrap(),
        first_key,
        "same key"
    );
    let second_cert = fs::read_to_string(config.node_credentials_dir.join("node.pem")).unwrap();
    assert_ne!(second_cert, first_cert, "a new certificate for it");
    let node = store.get_node(BOOT_MAC).unwrap();
    let events = store.node_events(&node.id).unwrap();
    assert!(
        events.iter().any(|event| event
            .message
            .contains("re-entered with its client certificate")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_wrong_pin_is_a_handshake_failure_and_nothing_is_enrolled() {
    let Served {
        store,
        site: _site,
        provisioner,
        _dir,
    } = Served::start().await;
    let (_root, mut config) = machine(
        provisioner.grpc_addr,
        ServerTls::Pinned {
            ca_sha256: [0x42; 32],
        },
    );
    config.timeout = Duration::from_millis(800);

    let refused = run(&config, &Addresses::none()).await.unwrap_err();

    let message = refused.to_string();
    assert!(message.contains(&"42".repeat(32)), "{message}");
    let node = store.get_node(BOOT_MAC).unwrap();
    assert!(!store.node_has_active_credential(&node.id).unwrap());
}

#[tokio::test]
async fn a_registered_node_is_onboarded_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_profile(dir.path());
    register_boot_mac(&store);
    let provisioner = serve(store.clone()).await;
    let (_root, config) = machine(provisioner.grpc_addr, ServerTls::Plaintext);
    let addresses = Addresses::on(BOOT_NIC, Ipv4Addr::new(10, 30, 0, 9));

    let onboarded = run(&config, &addresses).await.unwrap();

    let node = store.get_node(BOOT_MAC).unwrap();
    assert_eq!(
        onboarded.admission.credentials().unwrap().client_id,
        node.id
    );
    assert_eq!(node.state, NodeState::Discovered);
    assert_eq!(node.uuid.as_deref(), Some(SYSTEM_UUID));
    assert_eq!(node.serial, None, "the placeholder serial was not reported");
    assert_eq!(node.ip.as_deref(), Some("10.30.0.9"));
    assert!(
        node.macs.contains(&SECOND_MAC.to_string()),
        "{:?}",
        node.macs
    );
    assert!(node.workflow_id.is_some(), "its workflow was created");
    let env = env_file_values(&config.output);
    assert_eq!(env["NODE_ID"], node.id);
    assert_eq!(env["WORKER_ID"], BOOT_MAC);
    let secret = fs::read_to_string(config.credentials_dir.join("client_secret")).unwrap();
    assert!(!secret.is_empty());
}

#[tokio::test]
async fn an_unknown_node_is_refused_until_registered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_profile(dir.path());
    let provisioner = serve(store.clone()).await;
    let (_root, mut config) = machine(provisioner.grpc_addr, ServerTls::Plaintext);
    config.timeout = Duration::from_millis(600);

    let refused = run(&config, &Addresses::none()).await.unwrap_err();
    assert!(matches!(refused, RunError::GaveUp { .. }), "{refused}");
    assert!(refused.to_string().contains("not registered"), "{refused}");
    assert!(!config.output.exists());

    register_boot_mac(&store);
    config.timeout = Duration::from_secs(30);
    let onboarded = run(&config, &Addresses::none()).await.unwrap();
    assert_eq!(
        onboarded.admission.credentials().unwrap().client_id,
        store.get_node(BOOT_MAC).unwrap().id
    );
    assert!(config.output.exists());
}
