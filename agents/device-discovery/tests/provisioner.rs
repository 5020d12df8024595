//! Device discovery against the provisioner's own gRPC server and store, in-process on
//! loopback: a registered node is onboarded and recorded; an unknown one is refused until an
//! operator registers it.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use device_discovery::config::ServerTls;
use device_discovery::{RunError, run};
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
    let bootkit = dir.join("bootkit").display().to_string();
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
        http: None,
        tls: None,
        protocols: Default::default(),
        admin: Default::default(),
        boot: None,
    };
    RunningServer::start(store, &options).await.unwrap()
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
