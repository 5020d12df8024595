//! Test parts: a scripted onboarding server on loopback (plain or TLS with a test CA), a fake
//! /sys + /proc tree, and a configuration pointing at both.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use agent_channel::test_ca::TestCa;
use device_discovery::config::{Config, IdentityOverrides, Onboarding, ServerTls};
use device_discovery::identity::AddressSource;
use onboarding_proto::NodeState;
use onboarding_proto::google::rpc::Status as RpcStatus;
use onboarding_proto::v1::non_interactive_onboarding_service_server::{
    NonInteractiveOnboardingService, NonInteractiveOnboardingServiceServer,
};
use onboarding_proto::v1::{OnboardNodeStreamRequest, OnboardNodeStreamResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity as TlsIdentity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// What the fake server does with the next request it receives.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Registered,
    Onboarded,
    /// A response whose `status` is NotFound (unknown node, no default profile).
    NotFound,
    /// The stream fails with UNAVAILABLE instead of answering.
    BreakStream,
}

pub const CLIENT_ID: &str = "node-7f3a";
pub const CLIENT_SECRET: &str = "secret-9c1e";
pub const PROJECT_ID: &str = "project-edge";

fn response(step: &Step) -> Result<OnboardNodeStreamResponse, Status> {
    let mut response = OnboardNodeStreamResponse::default();
    match step {
        Step::Registered => response.set_node_state(NodeState::Registered),
        Step::Onboarded => {
            response.set_node_state(NodeState::Onboarded);
            response.client_id = CLIENT_ID.to_string();
            response.client_secret = CLIENT_SECRET.to_string();
            response.project_id = PROJECT_ID.to_string();
        }
        Step::NotFound => {
            response.status = Some(RpcStatus {
                code: tonic::Code::NotFound as i32,
                message: "no registration matches and there is no default profile".to_string(),
                details: Vec::new(),
            });
        }
        Step::BreakStream => return Err(Status::unavailable("the test broke the stream")),
    }
    Ok(response)
}

#[derive(Default)]
struct Script {
    steps: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<OnboardNodeStreamRequest>>,
    streams: Mutex<u32>,
}

#[derive(Clone)]
struct ScriptedService(Arc<Script>);

type Answers = Pin<Box<dyn Stream<Item = Result<OnboardNodeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NonInteractiveOnboardingService for ScriptedService {
    type OnboardNodeStreamStream = Answers;

    async fn onboard_node_stream(
        &self,
        request: Request<Streaming<OnboardNodeStreamRequest>>,
    ) -> Result<Response<Answers>, Status> {
        let mut incoming = request.into_inner();
        let script = self.0.clone();
        *lock(&script.streams) += 1;
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(request)) = incoming.message().await {
                lock(&script.requests).push(request);
                // Past the end of the script the node stays registered.
                let step = lock(&script.steps).pop_front().unwrap_or(Step::Registered);
                let answer = response(&step);
                let broke = answer.is_err();
                if sender.send(answer).await.is_err() || broke {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A running fake server; stopped when dropped.
pub struct FakeServer {
    pub address: SocketAddr,
    script: Arc<Script>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(steps: &[Step]) -> FakeServer {
        FakeServer::start_with(any_port(), steps, None).await
    }

    /// On a given address (a port the client already tries).
    pub async fn start_at(address: SocketAddr, steps: &[Step]) -> FakeServer {
        FakeServer::start_with(address, steps, None).await
    }

    pub async fn start_tls(steps: &[Step], ca: &TestCa) -> FakeServer {
        FakeServer::start_with(any_port(), steps, Some(ca)).await
    }

    async fn start_with(address: SocketAddr, steps: &[Step], ca: Option<&TestCa>) -> FakeServer {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let script = Arc::new(Script::default());
        lock(&script.steps).extend(steps.iter().cloned());
        let mut builder = Server::builder();
        if let Some(ca) = ca {
            let identity =
                TlsIdentity::from_pem(ca.server_cert.pem(), ca.server_key.serialize_pem());
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(identity))
                .unwrap();
        }
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = builder.add_service(NonInteractiveOnboardingServiceServer::new(
            ScriptedService(script.clone()),
        ));
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = stopped.await;
            };
            let _ = router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop)
                .await;
        });
        FakeServer {
            address,
            script,
            shutdown: Some(shutdown),
            task,
        }
    }

    pub fn requests(&self) -> Vec<OnboardNodeStreamRequest> {
        lock(&self.script.requests).clone()
    }

    pub fn streams_opened(&self) -> u32 {
        *lock(&self.script.streams)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

fn write(root: &Path, relative: &str, contents: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

pub const BOOT_MAC: &str = "52:54:00:aa:bb:01";
pub const SECOND_MAC: &str = "52:54:00:aa:bb:02";
pub const SYSTEM_UUID: &str = "4c4c4544-0042-3510-8052-b4c04f4e3732";
/// Names no test machine has, so the live address lookup never matches them.
pub const BOOT_NIC: &str = "ddtest0";
pub const SECOND_NIC: &str = "ddtest1";

/// A machine with two PCI NICs, a loopback (virtual, left out), a DMI UUID and the firmware
/// placeholder "To Be Filled By O.E.M." as its serial.
pub fn fake_machine(root: &Path) {
    write(
        root,
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: 0\n",
    );
    write(root, "proc/meminfo", "MemTotal:        4039604 kB\n");
    let dmi = "sys/devices/virtual/dmi/id";
    write(
        root,
        &format!("{dmi}/product_serial"),
        "To Be Filled By O.E.M.\n",
    );
    write(
        root,
        &format!("{dmi}/product_uuid"),
        "4C4C4544-0042-3510-8052-B4C04F4E3732\n",
    );
    write(root, &format!("{dmi}/sys_vendor"), "Bootkit Test Systems\n");
    fs::create_dir_all(root.join("sys/class")).unwrap();
    symlink("../devices/virtual/dmi", root.join("sys/class/dmi")).unwrap();
    for (index, (name, mac)) in [(BOOT_NIC, BOOT_MAC), (SECOND_NIC, SECOND_MAC)]
        .into_iter()
        .enumerate()
    {
        let device = format!("sys/devices/pci0000:00/0000:00:0{}.0/net/{name}", index + 3);
        write(
            root,
            &format!("{device}/address"),
            &format!("{}\n", mac.to_uppercase()),
        );
        write(
            root,
            &format!("{device}/ifindex"),
            &format!("{}\n", index + 2),
        );
        fs::create_dir_all(root.join("sys/class/net")).unwrap();
        symlink(
            format!("../../{}", device.trim_start_matches("sys/")),
            root.join("sys/class/net").join(name),
        )
        .unwrap();
    }
    let lo = "sys/devices/virtual/net/lo";
    write(root, &format!("{lo}/address"), "00:00:00:00:00:00\n");
    write(root, &format!("{lo}/ifindex"), "1\n");
    symlink(
        "../../devices/virtual/net/lo",
        root.join("sys/class/net/lo"),
    )
    .unwrap();
}

/// Interface addresses as a table (the live lookup's stand-in).
pub struct Addresses(pub HashMap<String, Ipv4Addr>);

impl Addresses {
    pub fn none() -> Addresses {
        Addresses(HashMap::new())
    }

    pub fn on(interface: &str, ip: Ipv4Addr) -> Addresses {
        Addresses(HashMap::from([(interface.to_string(), ip)]))
    }
}

impl AddressSource for Addresses {
    fn ipv4(&self, interface: &str) -> Vec<Ipv4Addr> {
        self.0.get(interface).copied().into_iter().collect()
    }
}

/// A configuration for `root` (a fake machine) talking to `server`; outputs under `root/run`.
pub fn config(root: &Path, server: SocketAddr, tls: ServerTls) -> Config {
    Config {
        onboarding: Onboarding::IfServed,
        server: server.to_string(),
        tls,
        overrides: IdentityOverrides::default(),
        root: root.to_path_buf(),
        timeout: Duration::from_secs(30),
        backoff_base: Duration::from_millis(20),
        ip_tries: 2,
        ip_interval: Duration::from_millis(10),
        output: root.join("run/bootkit/device-discovery.env"),
        credentials_dir: root.join("run/bootkit/client-credentials"),
        node_credentials_dir: root.join("run/bootkit/credentials"),
    }
}

/// A fake machine in a fresh directory and a configuration for it talking to `server`.
pub fn machine(server: SocketAddr, tls: ServerTls) -> (tempfile::TempDir, Config) {
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());
    let config = config(root.path(), server, tls);
    (root, config)
}

pub fn env_file_values(path: &PathBuf) -> HashMap<String, String> {
    bootkit_common::layered_config::parse_env_file(&fs::read_to_string(path).unwrap())
}
