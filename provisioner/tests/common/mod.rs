//! Shared by the provisioner's tests: a three-action template, seeded stores, and a
//! server that stops when the test ends (even on failure).

#![allow(dead_code)] // each test file uses its own part of this module

pub mod actions;
pub mod admin;
pub mod cli;
pub mod fleet;
pub mod onboarding;
pub mod pki;
pub mod second_machine;
pub mod serve_child;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use provisioner::server::{Protocols, RunningServer, ServeOptions};
use provisioner::store::{HardwareSpec, Store, Workflow};
use tink_proto::current::workflow_service_client::WorkflowServiceClient as CurrentClient;
use tink_proto::legacy::workflow_service_client::WorkflowServiceClient as LegacyClient;
use tonic::transport::Channel;

pub const MAC: &str = "52:54:00:12:34:56";
pub const HARDWARE_ID: &str = "machine-1";

/// Three actions in two tasks, the worker named through the hardware map.
pub const TEMPLATE: &str = r#"
version: "0.1"
name: three-actions
global_timeout: 1800
tasks:
  - name: disk
    worker: "{{.device_1}}"
    volumes: ["/dev:/dev"]
    environment: {MODE: "task", DISK: "/dev/vda"}
    actions:
      - name: wipe
        image: 127.0.0.1:5000/wipe:1
        timeout: 60
        command: ["sh", "-c", "echo wipe $DISK"]
        environment: {MODE: "action"}
        volumes: ["/tmp:/scratch"]
      - name: write
        image: 127.0.0.1:5000/write:1
        timeout: 120
        pid: host
  - name: finish
    worker: "{{.device_1}}"
    actions:
      - name: reboot
        image: 127.0.0.1:5000/reboot:1
        on-failure: ["echo", "failed"]
        on-timeout: ["echo", "timed out"]
"#;

/// `TEMPLATE`'s actions as (task, action) names, in the order they run.
pub const TEMPLATE_ACTIONS: [(&str, &str); 3] =
    [("disk", "wipe"), ("disk", "write"), ("finish", "reboot")];

pub struct TestDb {
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A new database, created as `provisioner serve` would: the CLI's other commands open
    /// only a database that exists.
    pub fn new() -> Self {
        let db = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        db.open();
        db
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("provisioner.db")
    }

    pub fn open(&self) -> Store {
        Store::open(&self.path()).unwrap()
    }
}

/// A reqwest client builder. In a workspace build reqwest's rustls comes without a built-in
/// crypto provider (tink-worker's features unify into it), so ring is installed first; a
/// second install changes nothing.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn hardware_spec() -> HardwareSpec {
    HardwareSpec {
        id: Some(HARDWARE_ID.into()),
        macs: vec![MAC.into()],
        ips: vec!["127.0.0.2".into()],
        ..Default::default()
    }
}

/// Stores the hardware and the template, and a workflow for them.
pub fn seed(store: &Store) -> Workflow {
    store.create_hardware(&hardware_spec()).unwrap();
    let template = store.create_template(TEMPLATE, None).unwrap();
    let map = BTreeMap::from([("device_1".to_string(), MAC.to_string())]);
    store.create_workflow(&template.id, &map).unwrap()
}

/// A provisioner serving `db` on free loopback ports; stops when dropped.
pub struct TestServer {
    pub running: RunningServer,
    pub store: Arc<Store>,
}

impl TestServer {
    pub async fn start(db: &Path) -> Self {
        Self::start_speaking(db, Protocols::Both).await
    }

    pub async fn start_speaking(db: &Path, protocols: Protocols) -> Self {
        let store = Arc::new(Store::open(db).unwrap());
        let options = ServeOptions {
            grpc: "127.0.0.1:0".parse().unwrap(),
            http: Some("127.0.0.1:0".parse().unwrap()),
            tls: None,
            protocols,
            admin: admin::token_options(),
            boot: None,
            // Plaintext gRPC: its clients can present no node certificate.
            node_ca: None,
            allow_unauthenticated_workers: true,
        };
        let running = RunningServer::start(Arc::clone(&store), &options)
            .await
            .unwrap();
        Self { running, store }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.running.grpc_addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.running.http_addr.unwrap())
    }

    pub async fn current(&self) -> CurrentClient<Channel> {
        CurrentClient::connect(self.grpc_url()).await.unwrap()
    }

    pub async fn legacy(&self) -> LegacyClient<Channel> {
        LegacyClient::connect(self.grpc_url()).await.unwrap()
    }
}

pub type LegacyWorkflowClient = LegacyClient<Channel>;

pub type CurrentWorkflowClient = CurrentClient<Channel>;
