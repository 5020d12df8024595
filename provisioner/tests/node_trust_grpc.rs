//! Node trust on the gRPC and metadata side (issue 15 §1): a worker call carries the client
//! certificate its node got at enrollment and acts only as that node; a call without one is
//! UNAUTHENTICATED unless the site allows upstream workers; plaintext gRPC needs that flag;
//! boot scripts pin the site CA; metadata goes to the node whose certificate asks.
//!
//! The certificates are made as a real site's are: rcgen CAs (site CA and node CA), the
//! server's chain leaf then CA, each node's key made on the "node" side and only its CSR
//! signed by the provisioner's NodeCa. The clients are tonic's and rustls' own TLS clients.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::fleet::create_profile;
use common::pki::{ca, write};
use common::second_machine::SecondMachine;
use common::{TestDb, http_client};
use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient as OnboardingClient;
use onboarding_proto::v1::{OnboardNodeStreamRequest, OnboardNodeStreamResponse};
use provisioner::boot::{BootOptions, HttpsOptions};
use provisioner::https::TlsFiles;
use provisioner::node_ca::NodeCa;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::store::{Discovery, Identity, NodeState, RegistrationSpec, Store};
use tink_proto::current::workflow_service_client::WorkflowServiceClient as CurrentClient;
use tink_proto::current::{ActionRequest, ActionStatusRequest, StateType};
use tink_proto::legacy::workflow_service_client::WorkflowServiceClient as LegacyClient;
use tink_proto::legacy::{WorkflowActionsRequest, WorkflowContextRequest};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity};

const MAC_A: &str = "52:54:00:aa:00:01";
const MAC_B: &str = "52:54:00:bb:00:02";
const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A site as `provisioner init` lays it out: the site CA and the server's chain, the node CA.
struct Site {
    db: TestDb,
    site_ca_pem: String,
    site_ca_der: Vec<u8>,
    server: TlsFiles,
    node_ca_cert: PathBuf,
    node_ca_key: PathBuf,
}

impl Site {
    fn new() -> Self {
        let db = TestDb::new();
        let dir = db.dir.path().to_path_buf();
        let (site_ca, site_ca_key) = ca("site CA");
        let server_key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let leaf = params
            .signed_by(&server_key, &site_ca, &site_ca_key)
            .unwrap();
        let server = TlsFiles {
            cert: write(
                &dir,
                "server.pem",
                &format!("{}{}", leaf.pem(), site_ca.pem()),
            ),
            key: write(&dir, "server-key.pem", &server_key.serialize_pem()),
        };
        let (node_ca, node_ca_key) = ca("node CA");
        Self {
            site_ca_pem: site_ca.pem(),
            site_ca_der: site_ca.der().to_vec(),
            server,
            node_ca_cert: write(&dir, "node-ca.pem", &node_ca.pem()),
            node_ca_key: write(&dir, "node-ca-key.pem", &node_ca_key.serialize_pem()),
            db,
        }
    }

    fn node_ca(&self) -> NodeCa {
        NodeCa::load(&self.node_ca_cert, &self.node_ca_key).unwrap()
    }

    fn options(&self, allow_unauthenticated_workers: bool) -> ServeOptions {
        ServeOptions {
            tls: Some(self.server.clone()),
            node_ca: Some(Arc::new(self.node_ca())),
            allow_unauthenticated_workers,
            ..ServeOptions::default()
        }
    }
}

/// A node's key pair (made on the node) and the certificate the node CA signed for its CSR,
/// recorded as the node's credential.
struct NodeCredential {
    cert_pem: String,
    key_pem: String,
    fingerprint: String,
}

fn enroll(store: &Store, node_ca: &NodeCa, node_id: &str) -> NodeCredential {
    let key = rcgen::KeyPair::generate().unwrap();
    // The node asks for another name: the provisioner writes the subject itself.
    let csr = rcgen::CertificateParams::new(vec!["somebody-else".into()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let signed = node_ca.sign(&csr, node_id, LIFETIME).unwrap();
    store
        .record_credential(&signed.fingerprint_hex, node_id, signed.not_after)
        .unwrap();
    NodeCredential {
        cert_pem: signed.cert_pem,
        key_pem: key.serialize_pem(),
        fingerprint: signed.fingerprint_hex,
    }
}

/// Discovers a node by `mac` (default profile: its workflow is created) and returns its id.
fn discover(store: &Store, mac: &str, ip: &str) -> String {
    store
        .discover(&Discovery {
            identity: Identity::new(None, None, &[mac]),
            ip: Some(ip.into()),
            ..Discovery::default()
        })
        .unwrap()
        .node
        .id
}

async fn channel(
    addr: SocketAddr,
    site: &Site,
    identity: Option<&NodeCredential>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&site.site_ca_pem))
        .domain_name("localhost");
    if let Some(credential) = identity {
        tls = tls.identity(TlsIdentity::from_pem(
            &credential.cert_pem,
            &credential.key_pem,
        ));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

fn get_action(agent: &str) -> ActionRequest {
    ActionRequest {
        agent_id: Some(agent.into()),
        agent_attributes: None,
    }
}

/// Two enrolled nodes, A and B, each with a workflow waiting, served over TLS with the node CA.
struct TwoNodes {
    site: Site,
    store: Arc<Store>,
    server: RunningServer,
    a: NodeCredential,
    b: NodeCredential,
    a_id: String,
}

impl TwoNodes {
    async fn start(allow_unauthenticated_workers: bool) -> Self {
        let site = Site::new();
        let store = Arc::new(site.db.open());
        create_profile(&store, site.db.dir.path());
        let a_id = discover(&store, MAC_A, "127.0.0.11");
        let b_id = discover(&store, MAC_B, "127.0.0.12");
        let node_ca = site.node_ca();
        let a = enroll(&store, &node_ca, &a_id);
        let b = enroll(&store, &node_ca, &b_id);
        let server = RunningServer::start(
            Arc::clone(&store),
            &site.options(allow_unauthenticated_workers),
        )
        .await
        .unwrap();
        Self {
            site,
            store,
            server,
            a,
            b,
            a_id,
        }
    }

    async fn current(&self, identity: Option<&NodeCredential>) -> CurrentClient<Channel> {
        CurrentClient::new(
            channel(self.server.grpc_addr, &self.site, identity)
                .await
                .unwrap(),
        )
    }

    async fn legacy(&self, identity: Option<&NodeCredential>) -> LegacyClient<Channel> {
        LegacyClient::new(
            channel(self.server.grpc_addr, &self.site, identity)
                .await
                .unwrap(),
        )
    }

    /// Node A's workflow and its actions' states, to show nothing moved.
    fn a_state(&self) -> (NodeState, Vec<String>) {
        let node = self.store.get_node(&self.a_id).unwrap();
        let workflow = self
            .store
            .get_workflow(node.workflow_id.as_deref().unwrap())
            .unwrap();
        let states = workflow
            .actions
            .iter()
            .map(|action| action.state.to_string())
            .collect();
        (node.state, states)
    }
}

#[tokio::test]
async fn a_node_certificate_gets_its_own_work_and_another_nodes_is_permission_denied() {
    let nodes = TwoNodes::start(false).await;
    let before = nodes.a_state();

    // A asks as itself: served.
    let mut as_a = nodes.current(Some(&nodes.a)).await;
    let action = as_a
        .get_action(get_action(MAC_A))
        .await
        .expect("node A's own certificate gets node A's action")
        .into_inner();
    assert_eq!(action.agent_id(), MAC_A);

    // The attack: B's certificate asking with A's MAC as agent_id.
    let mut as_b = nodes.current(Some(&nodes.b)).await;
    let refused = as_b.get_action(get_action(MAC_A)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let message = refused.message();
    let b_id = nodes.store.get_node(MAC_B).unwrap().id;
    assert!(
        message.contains(&b_id) && message.contains(MAC_A),
        "the refusal names both the certificate's node and the asked-for worker: {message}"
    );

    // ...and reporting A's action done with B's certificate: refused, A's state unchanged.
    for state in [StateType::Running, StateType::Success] {
        let report = ActionStatusRequest {
            workflow_id: action.workflow_id.clone(),
            agent_id: Some(MAC_A.into()),
            task_id: action.task_id.clone(),
            action_id: action.action_id.clone(),
            action_name: action.name.clone(),
            action_state: Some(state as i32),
            ..Default::default()
        };
        let refused = as_b.report_action_status(report.clone()).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        // Leaving agent_id out does not get around it: the action itself is A's.
        let anonymous = ActionStatusRequest {
            agent_id: None,
            ..report
        };
        let refused = as_b.report_action_status(anonymous).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    assert_eq!(nodes.a_state(), before, "node A's workflow did not move");

    // B's own work is still B's.
    let own = as_b
        .get_action(get_action(MAC_B))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.agent_id(), MAC_B);

    // The legacy protocol is bound the same way.
    let mut legacy_b = nodes.legacy(Some(&nodes.b)).await;
    let refused = legacy_b
        .get_workflow_contexts(WorkflowContextRequest {
            worker_id: MAC_A.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = legacy_b
        .get_workflow_actions(WorkflowActionsRequest {
            workflow_id: action.workflow_id().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = legacy_b
        .report_action_status(tink_proto::legacy::WorkflowActionStatus {
            workflow_id: action.workflow_id().into(),
            task_name: "disk".into(),
            action_name: action.name().into(),
            action_status: tink_proto::legacy::State::Success as i32,
            worker_id: MAC_B.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(nodes.a_state(), before, "node A's workflow did not move");

    // A reports its own action: applied.
    let report = ActionStatusRequest {
        workflow_id: action.workflow_id.clone(),
        agent_id: Some(MAC_A.into()),
        task_id: action.task_id.clone(),
        action_id: action.action_id.clone(),
        action_name: action.name.clone(),
        action_state: Some(StateType::Running as i32),
        ..Default::default()
    };
    as_a.report_action_status(report).await.unwrap();
    assert_ne!(nodes.a_state(), before, "node A's own report applies");
}

#[tokio::test]
async fn without_a_certificate_a_worker_is_unauthenticated_and_told_how_to_enroll() {
    let nodes = TwoNodes::start(false).await;
    let before = nodes.a_state();
    let mut anonymous = nodes.current(None).await;
    let refused = anonymous.get_action(get_action(MAC_A)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("client certificate")
            && refused
                .message()
                .contains("--allow-unauthenticated-workers"),
        "{}",
        refused.message()
    );
    let mut legacy = nodes.legacy(None).await;
    let refused = legacy
        .get_workflow_contexts(WorkflowContextRequest {
            worker_id: MAC_A.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(nodes.a_state(), before);
}

/// One onboarding request on the TLS connection `identity` makes; the server's answer.
async fn onboard(
    nodes: &TwoNodes,
    identity: Option<&NodeCredential>,
    mac: &str,
    csr: String,
) -> OnboardNodeStreamResponse {
    let channel = channel(nodes.server.grpc_addr, &nodes.site, identity)
        .await
        .unwrap();
    let request = OnboardNodeStreamRequest {
        mac_id: mac.into(),
        host_ip: "127.0.0.1".into(),
        bootkit_csr_pem: csr,
        ..OnboardNodeStreamRequest::default()
    };
    let mut answers = OnboardingClient::new(channel)
        .onboard_node_stream(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    answers.message().await.unwrap().expect("one answer")
}

fn onboarding_code(answer: &OnboardNodeStreamResponse) -> Code {
    Code::from_i32(answer.status.as_ref().map_or(-1, |status| status.code))
}

/// Onboarding re-entry (issue 15 §1: every later call carries the credential): device
/// discovery running again in the same boot presents the certificate it holds and enrolls
/// again as itself, although the node's credential is active. Without the certificate that
/// is a second enrollment (refused); with node A's certificate claiming node B's identity,
/// or a machine never seen, it is refused too, naming the certificate's node, and nothing
/// about B changes.
#[tokio::test]
async fn a_node_re_enters_onboarding_with_its_own_certificate_and_only_as_itself() {
    let nodes = TwoNodes::start(false).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = || {
        rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
    };

    let again = onboard(&nodes, Some(&nodes.a), MAC_A, csr()).await;
    assert_eq!(onboarding_code(&again), Code::Ok, "{again:?}");
    assert!(!again.client_secret.is_empty());
    let renewed = again.bootkit_client_cert_pem;
    assert!(renewed.contains("BEGIN CERTIFICATE"), "a new certificate");
    let timeline = nodes.store.node_events(&nodes.a_id).unwrap();
    assert!(
        timeline.iter().any(|event| event
            .message
            .contains("re-entered with its client certificate")),
        "the timeline says how: {timeline:?}"
    );

    let second = onboard(&nodes, None, MAC_A, csr()).await;
    assert_eq!(
        onboarding_code(&second),
        Code::PermissionDenied,
        "{second:?}"
    );

    let b_before = nodes.store.get_node(MAC_B).unwrap();
    let b_credentials = nodes.store.node_credentials(MAC_B).unwrap();
    for claimed in [MAC_B, "52:54:00:cc:00:03"] {
        let refused = onboard(&nodes, Some(&nodes.a), claimed, csr()).await;
        assert_eq!(
            onboarding_code(&refused),
            Code::PermissionDenied,
            "{refused:?}"
        );
        let message = &refused.status.as_ref().unwrap().message;
        assert!(
            message.contains(&format!("node {}'s", nodes.a_id))
                && message.contains("onboards only as itself"),
            "{message}"
        );
        assert!(refused.client_secret.is_empty() && refused.bootkit_client_cert_pem.is_empty());
    }
    assert_eq!(nodes.store.get_node(MAC_B).unwrap(), b_before);
    assert_eq!(nodes.store.node_credentials(MAC_B).unwrap(), b_credentials);
    assert!(
        nodes.store.get_node("52:54:00:cc:00:03").is_err(),
        "no node made"
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_unauthenticated_even_where_upstream_workers_are_allowed() {
    let nodes = TwoNodes::start(true).await;
    let mut as_a = nodes.current(Some(&nodes.a)).await;
    as_a.get_action(get_action(MAC_A)).await.unwrap();
    assert_eq!(nodes.store.revoke_credentials(&nodes.a_id).unwrap(), 1);
    let refused = as_a.get_action(get_action(MAC_A)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains(&nodes.a.fingerprint),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn allowed_unauthenticated_workers_act_for_any_worker_id_and_the_site_shows_it() {
    let nodes = TwoNodes::start(true).await;
    let mut anonymous = nodes.current(None).await;
    let action = anonymous
        .get_action(get_action(MAC_A))
        .await
        .expect("an upstream worker is served where the site allows it")
        .into_inner();
    assert_eq!(action.agent_id(), MAC_A);
    // A certificate still binds its node, flag or not.
    let mut as_b = nodes.current(Some(&nodes.b)).await;
    let refused = as_b.get_action(get_action(MAC_A)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let metrics = nodes.server.metrics.render(&nodes.store).unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line == "provisioner_unauthenticated_workers_allowed 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn plaintext_grpc_is_refused_at_start_unless_unauthenticated_workers_are_allowed() {
    let db = TestDb::new();
    let store = Arc::new(db.open());
    let error = RunningServer::start(Arc::clone(&store), &ServeOptions::default())
        .await
        .err()
        .expect("plaintext gRPC without the flag is refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("--tls-cert") && message.contains("--allow-unauthenticated-workers"),
        "the error names both ways out: {message}"
    );
    let allowed = ServeOptions {
        allow_unauthenticated_workers: true,
        ..ServeOptions::default()
    };
    let server = RunningServer::start(store.clone(), &allowed).await.unwrap();
    let metrics = server.metrics.render(&store).unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line == "provisioner_unauthenticated_workers_allowed 1"),
        "{metrics}"
    );
    let site = Site::new();
    let store = Arc::new(site.db.open());
    let server = RunningServer::start(Arc::clone(&store), &site.options(false))
        .await
        .unwrap();
    let metrics = server.metrics.render(&store).unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line == "provisioner_unauthenticated_workers_allowed 0"),
        "{metrics}"
    );
}

/// The boot script of an unregistered node on the default profile, over boot HTTP.
async fn boot_script(server: &RunningServer, mac: &str) -> String {
    let url = format!(
        "http://{}/ipxe/boot.ipxe?mac={mac}&platform=efi",
        server.boot_http_addr.unwrap()
    );
    http_client()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_boot_script_pins_the_site_ca_of_the_grpc_chain() {
    let site = Site::new();
    let store = Arc::new(site.db.open());
    create_profile(&store, site.db.dir.path());
    let mut boot = BootOptions::new(Ipv4Addr::LOCALHOST);
    boot.http = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    boot.kernel.tinkerbell_tls = true;
    let options = ServeOptions {
        boot: Some(boot.clone()),
        ..site.options(false)
    };
    let server = RunningServer::start(Arc::clone(&store), &options)
        .await
        .unwrap();
    let script = boot_script(&server, MAC_A).await;
    // The independent reference: sha256sum of the CA certificate's DER, as openssl would
    // compute it (`openssl x509 -outform der | sha256sum`).
    let expected = sha256sum(&site.site_ca_der);
    assert!(
        script.contains(&format!(
            "tinkerbell_tls=true tinkerbell_ca_sha256={expected}"
        )),
        "{script}"
    );
    drop(server);

    // A single certificate (no CA in the chain): no pin, the server still starts.
    let single = TlsFiles {
        cert: write(
            site.db.dir.path(),
            "leaf-only.pem",
            &first_pem(&std::fs::read_to_string(&site.server.cert).unwrap()),
        ),
        key: site.server.key.clone(),
    };
    let options = ServeOptions {
        tls: Some(single),
        boot: Some(boot),
        ..site.options(false)
    };
    let server = RunningServer::start(Arc::clone(&store), &options)
        .await
        .unwrap();
    let script = boot_script(&server, MAC_A).await;
    assert!(
        script.contains("tinkerbell_tls=true") && !script.contains("tinkerbell_ca_sha256"),
        "{script}"
    );
}

fn first_pem(chain: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    let at = chain.find(end).unwrap() + end.len();
    format!("{}\n", &chain[..at])
}

/// SHA-256 by coreutils' sha256sum, not by our own code.
fn sha256sum(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

/// Metadata over boot HTTPS by curl (the independent client, as cloud-init-like tools ask
/// it): `--cert/--key` when the node presents its credential, from the address `source`.
async fn metadata(
    addr: SocketAddr,
    site: &Site,
    identity: Option<&NodeCredential>,
    source: IpAddr,
    path: &str,
) -> (u16, String) {
    let dir = site.db.dir.path();
    let ca = write(dir, "curl-ca.pem", &site.site_ca_pem);
    let mut command = std::process::Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "10"])
        .arg("--cacert")
        .arg(&ca)
        .args(["--interface", &source.to_string()])
        .args(["--write-out", "\n%{http_code}"]);
    if let Some(credential) = identity {
        let name = &credential.fingerprint[..12];
        command
            .arg("--cert")
            .arg(write(dir, &format!("{name}.pem"), &credential.cert_pem))
            .arg("--key")
            .arg(write(dir, &format!("{name}-key.pem"), &credential.key_pem));
    }
    command.arg(format!("https://localhost:{}{path}", addr.port()));
    // Off the runtime's thread: the server under test runs on it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "curl failed: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

const USER_DATA_A: &str = "#cloud-config A secret";
const USER_DATA_B: &str = "#cloud-config B";

/// Registers A and B on the default profile with their own user-data.
fn register_with_user_data(store: &Store) {
    for (mac, user_data) in [(MAC_A, USER_DATA_A), (MAC_B, USER_DATA_B)] {
        store
            .register(&RegistrationSpec {
                mac: Some(mac.into()),
                profile: common::fleet::PROFILE.into(),
                metadata: [("user_data".to_string(), user_data.to_string())].into(),
                ..Default::default()
            })
            .unwrap();
    }
}

#[tokio::test]
async fn metadata_goes_to_the_certificate_s_node_and_by_address_only_where_the_site_allows() {
    let site = Site::new();
    let store = Arc::new(site.db.open());
    create_profile(&store, site.db.dir.path());
    register_with_user_data(&store);
    // The victim A at 127.0.0.11; the attacker B enrolled too, asking from A's address.
    let a_id = discover(&store, MAC_A, "127.0.0.11");
    let b_id = discover(&store, MAC_B, "127.0.0.12");
    let node_ca = site.node_ca();
    let a = enroll(&store, &node_ca, &a_id);
    let b = enroll(&store, &node_ca, &b_id);
    let serve = |by_address: bool| {
        let mut boot = BootOptions::new(Ipv4Addr::LOCALHOST);
        boot.http = None;
        boot.https = Some(HttpsOptions {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            tls: site.server.clone(),
        });
        boot.metadata_by_address = by_address;
        ServeOptions {
            boot: Some(boot),
            ..site.options(false)
        }
    };
    let server = RunningServer::start(Arc::clone(&store), &serve(false))
        .await
        .unwrap();
    let https = server.boot_https_addr.unwrap();
    let a_address = IpAddr::from([127, 0, 0, 11]);
    let elsewhere = IpAddr::from([127, 0, 0, 99]);

    assert_eq!(
        metadata(https, &site, Some(&a), elsewhere, "/2009-04-04/user-data").await,
        (200, USER_DATA_A.to_string()),
        "A's certificate gets A's data from any address"
    );
    assert_eq!(
        metadata(https, &site, Some(&b), a_address, "/2009-04-04/user-data").await,
        (200, USER_DATA_B.to_string()),
        "the attacker's own certificate gets its own data, even from the victim's address"
    );
    assert_eq!(
        metadata(
            https,
            &site,
            Some(&b),
            a_address,
            "/2009-04-04/meta-data/instance-id"
        )
        .await,
        (200, b_id.clone())
    );
    let (status, text) = metadata(https, &site, None, a_address, "/2009-04-04/user-data").await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("--metadata-by-address"), "{text}");

    store.revoke_credentials(&b_id).unwrap();
    let (status, text) = metadata(https, &site, Some(&b), a_address, "/2009-04-04/user-data").await;
    assert_eq!(status, 401, "a revoked certificate gets nothing: {text}");
    drop(server);

    let server = RunningServer::start(Arc::clone(&store), &serve(true))
        .await
        .unwrap();
    let https = server.boot_https_addr.unwrap();
    assert_eq!(
        metadata(https, &site, None, a_address, "/2009-04-04/user-data").await,
        (200, USER_DATA_A.to_string()),
        "--metadata-by-address: the address decides (spoofable, as documented)"
    );
}

/// The attack from a second machine: node B, enrolled, on its own address, asks with
/// node A's MAC for A's action and reports it done; both are refused and A's workflow stays
/// where it was. Without any certificate it gets UNAUTHENTICATED.
#[test]
#[ignore = "needs root: a network namespace and a veth pair"]
fn from_a_second_machine_node_b_cannot_take_or_finish_node_a_s_work() {
    let machine = SecondMachine::create();
    let host = machine.host;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes = runtime.block_on(async {
        let site = Site::new();
        let store = Arc::new(site.db.open());
        create_profile(&store, site.db.dir.path());
        register_with_user_data(&store);
        // The attacker's machine claims A's address: by address it would get A's data.
        let a_id = discover(&store, MAC_A, &machine.inside.to_string());
        let b_id = discover(&store, MAC_B, "127.0.0.12");
        let node_ca = site.node_ca();
        let a = enroll(&store, &node_ca, &a_id);
        let b = enroll(&store, &node_ca, &b_id);
        let mut boot = BootOptions::new(host);
        boot.http = None;
        boot.https = Some(HttpsOptions {
            listen: SocketAddr::from((host, 0)),
            tls: site.server.clone(),
        });
        let options = ServeOptions {
            grpc: SocketAddr::from((host, 0)),
            boot: Some(boot),
            ..site.options(false)
        };
        let server = RunningServer::start(Arc::clone(&store), &options)
            .await
            .unwrap();
        TwoNodes {
            site,
            store,
            server,
            a,
            b,
            a_id,
        }
    });
    let before = nodes.a_state();
    let addr = nodes.server.grpc_addr;
    let ca_pem = nodes.site.site_ca_pem.clone();
    let b = (nodes.b.cert_pem.clone(), nodes.b.key_pem.clone());
    // What the attacker would need to report A's action: its ids (learnt any other way).
    let next = nodes.store.next_action(MAC_A).unwrap().unwrap();
    let (workflow_id, action_id) = (next.workflow_id, next.action.action_id);
    let attempt = machine.run(move || {
        Box::pin(async move {
            let connect = |identity: Option<(String, String)>| {
                let ca_pem = ca_pem.clone();
                async move {
                    let mut tls = ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&ca_pem))
                        .domain_name("localhost");
                    if let Some((cert, key)) = identity {
                        tls = tls.identity(TlsIdentity::from_pem(cert, key));
                    }
                    let channel = Endpoint::from_shared(format!("https://{addr}"))
                        .unwrap()
                        .tls_config(tls)
                        .unwrap()
                        .connect()
                        .await
                        .unwrap();
                    CurrentClient::new(channel)
                }
            };
            let mut as_b = connect(Some(b)).await;
            let taken = as_b.get_action(get_action(MAC_A)).await.map(|_| ());
            let finished = as_b
                .report_action_status(ActionStatusRequest {
                    workflow_id: Some(workflow_id),
                    action_id: Some(action_id),
                    agent_id: Some(MAC_A.into()),
                    action_state: Some(StateType::Success as i32),
                    ..Default::default()
                })
                .await
                .map(|_| ());
            let mut anonymous = connect(None).await;
            let anonymous = anonymous.get_action(get_action(MAC_A)).await.map(|_| ());
            [taken, finished, anonymous].map(|result| result.map_err(|status| status.code()))
        })
    });
    // The server keeps serving on this thread's runtime while the attacker runs.
    let [taken, finished, anonymous] = runtime.block_on(async {
        tokio::task::spawn_blocking(move || attempt.join().unwrap())
            .await
            .unwrap()
    });
    assert_eq!(taken, Err(Code::PermissionDenied));
    assert_eq!(finished, Err(Code::PermissionDenied));
    assert_eq!(anonymous, Err(Code::Unauthenticated));
    assert_eq!(nodes.a_state(), before, "node A's workflow did not move");

    // Metadata from the same machine, by curl inside the namespace: no certificate, 401
    // (though the machine holds A's recorded address); B's certificate, B's data.
    let https = nodes.server.boot_https_addr.unwrap();
    let dir = nodes.site.db.dir.path();
    let ca = write(dir, "netns-ca.pem", &nodes.site.site_ca_pem);
    let b_cert = write(dir, "netns-b.pem", &nodes.b.cert_pem);
    let b_key = write(dir, "netns-b-key.pem", &nodes.b.key_pem);
    let curl = |identity: Option<(&Path, &Path)>| {
        let mut command = std::process::Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &machine.name,
                "curl",
                "--silent",
                "--show-error",
            ])
            .args(["--max-time", "10", "--write-out", "\n%{http_code}"])
            .args(["--resolve", &format!("localhost:{}:{host}", https.port())])
            .arg("--cacert")
            .arg(&ca);
        if let Some((cert, key)) = identity {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let url = format!("https://localhost:{}/2009-04-04/user-data", https.port());
        // The server serves on the runtime's worker threads meanwhile.
        let output = command.arg(url).output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    let (code, body) = curl(None);
    assert_eq!(code, "401", "{body}");
    assert_eq!(
        curl(Some((&b_cert, &b_key))),
        ("200".to_string(), USER_DATA_B.to_string())
    );
}

/// `provisioner serve` itself: plaintext gRPC without the flag exits 1 at start, the message
/// naming both ways out.
#[test]
fn the_serve_command_refuses_plaintext_grpc_without_the_flag() {
    let db = TestDb::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--db")
        .arg(db.path())
        .args(["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--admin-insecure-no-auth")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("--allow-unauthenticated-workers"),
        "{stderr}"
    );
}

/// The whole path as the bootkit takes it: enrollment over TLS through OnboardNodeStream with
/// a CSR (no client certificate yet), then the signed certificate it got back (checked with
/// openssl, the independent reader) serves its worker, and only as itself.
#[tokio::test]
async fn the_certificate_from_enrollment_serves_the_node_s_worker_and_only_as_itself() {
    use futures::StreamExt;
    use onboarding_proto::v1::OnboardNodeStreamRequest;
    use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient;

    let site = Site::new();
    let store = Arc::new(site.db.open());
    create_profile(&store, site.db.dir.path());
    // B is already known (its worker id names hardware that is not A's); A enrolls now.
    discover(&store, MAC_B, "127.0.0.12");
    let server = RunningServer::start(Arc::clone(&store), &site.options(false))
        .await
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let mut onboarding = NonInteractiveOnboardingServiceClient::new(
        channel(server.grpc_addr, &site, None).await.unwrap(),
    );
    let request = OnboardNodeStreamRequest {
        mac_id: MAC_A.into(),
        host_ip: "127.0.0.11".into(),
        bootkit_csr_pem: csr,
        ..Default::default()
    };
    let mut answers = onboarding
        .onboard_node_stream(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = tokio::time::timeout(Duration::from_secs(10), answers.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        !answer.bootkit_client_cert_pem.is_empty(),
        "enrollment answers a certificate: {answer:?}"
    );
    let a_id = store.get_node(MAC_A).unwrap().id;
    let cert_path = write(site.db.dir.path(), "a.pem", &answer.bootkit_client_cert_pem);
    let subject = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
        ])
        .arg(&cert_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&subject.stdout);
    assert!(
        text.contains(&format!("CN = {a_id}"))
            && text.contains(&format!("URI:urn:bootkit:node:{a_id}"))
            && text.contains("TLS Web Client Authentication"),
        "{text}"
    );
    let a = NodeCredential {
        cert_pem: answer.bootkit_client_cert_pem.clone(),
        key_pem: key.serialize_pem(),
        fingerprint: String::new(),
    };
    let mut as_a = CurrentClient::new(channel(server.grpc_addr, &site, Some(&a)).await.unwrap());
    let action = as_a
        .get_action(get_action(MAC_A))
        .await
        .expect("the enrolled certificate serves the node's own worker")
        .into_inner();
    assert_eq!(action.agent_id(), MAC_A);
    let refused = as_a.get_action(get_action(MAC_B)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}
