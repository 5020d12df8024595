//! The worker's protocol clients against small in-test gRPC servers built from tink-proto's
//! generated server traits: protocol selection, action mapping, report errors, TLS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bootkit_hwinfo::{AgentAttributes, Cpu, Product};
use tink_proto::current::workflow_service_server::{
    WorkflowService as CurrentService, WorkflowServiceServer as CurrentServer,
};
use tink_proto::current::{
    ActionRequest, ActionResponse, ActionStatusRequest, ActionStatusResponse, Namespaces, StateType,
};
use tink_proto::legacy::workflow_service_server::{
    WorkflowService as LegacyService, WorkflowServiceServer as LegacyServer,
};
use tink_proto::legacy::{
    Empty, State, WorkflowAction, WorkflowActionList, WorkflowActionStatus, WorkflowActionsRequest,
    WorkflowContext, WorkflowContextRequest,
};
use tink_worker::config::{ProtocolChoice, ServerTls};
use tink_worker::protocol::{ActionReport, ActionState, Protocol, ProtocolError, WorkflowClient};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};

/// Every test finishes in well under this; a hang fails instead of blocking the run.
const TEST_LIMIT: Duration = Duration::from_secs(30);
const WORKER_ID: &str = "52:54:00:12:34:56";

/// A gRPC server on a loopback port, shut down when dropped.
struct TestServer {
    port: u16,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

macro_rules! serve {
    ($service:expr, $tls:expr) => {{
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let mut builder = Server::builder();
        if let Some(tls) = $tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let service = $service;
        let task = tokio::spawn(async move {
            let incoming = TcpIncoming::from(listener);
            let stopped = async {
                let _ = stopped.await;
            };
            builder
                .serve_with_incoming_shutdown(service, incoming, stopped)
                .await
                .unwrap();
        });
        TestServer {
            port,
            shutdown: Some(shutdown),
            task,
        }
    }};
}

/// A current-protocol server with one action; its first `fail_reports` reports get
/// `report_error`.
#[derive(Clone, Default)]
struct FakeCurrent {
    requests: Arc<Mutex<Vec<ActionRequest>>>,
    reports: Arc<Mutex<Vec<ActionStatusRequest>>>,
    no_work: bool,
    fail_reports: usize,
    report_error: Option<Code>,
}

#[tonic::async_trait]
impl CurrentService for FakeCurrent {
    async fn get_action(
        &self,
        request: Request<ActionRequest>,
    ) -> Result<Response<ActionResponse>, Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        if self.no_work {
            return Err(Status::not_found("no workflow for this agent"));
        }
        Ok(Response::new(ActionResponse {
            workflow_id: Some("default/wf-1".into()),
            task_id: Some("01TASK".into()),
            agent_id: Some(WORKER_ID.into()),
            action_id: Some("01ACTION".into()),
            name: Some("stream-image".into()),
            image: Some("registry.local/actions/image2disk:v1".into()),
            timeout: Some(600),
            command: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            volumes: vec!["/dev:/dev".into()],
            environment: vec!["DEST_DISK=/dev/sda".into()],
            pid: None,
            namespaces: Some(Namespaces {
                network: None,
                pid: Some("host".into()),
            }),
        }))
    }

    async fn report_action_status(
        &self,
        request: Request<ActionStatusRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        let mut reports = self.reports.lock().unwrap();
        reports.push(request.into_inner());
        match self.report_error {
            Some(code) if reports.len() <= self.fail_reports => Err(Status::new(code, "not now")),
            _ => Ok(Response::new(ActionStatusResponse {})),
        }
    }
}

/// A legacy server: one workflow of two actions whose first one succeeded.
#[derive(Clone, Default)]
struct FakeLegacy {
    context_requests: Arc<Mutex<Vec<String>>>,
    reports: Arc<Mutex<Vec<WorkflowActionStatus>>>,
}

fn legacy_action(name: &str, worker: &str) -> WorkflowAction {
    WorkflowAction {
        task_name: "provision".into(),
        name: name.into(),
        image: format!("registry.local/actions/{name}:v1"),
        timeout: 0,
        command: vec![],
        on_timeout: vec!["echo timed out".into()],
        on_failure: vec!["echo failed".into()],
        worker_id: worker.into(),
        volumes: vec!["/worker:/worker".into()],
        environment: vec!["A=1".into()],
        pid: String::new(),
    }
}

#[tonic::async_trait]
impl LegacyService for FakeLegacy {
    type GetWorkflowContextsStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<WorkflowContext, Status>>>;

    async fn get_workflow_contexts(
        &self,
        request: Request<WorkflowContextRequest>,
    ) -> Result<Response<Self::GetWorkflowContextsStream>, Status> {
        self.context_requests
            .lock()
            .unwrap()
            .push(request.into_inner().worker_id);
        let finished = WorkflowContext {
            workflow_id: "wf-done".into(),
            current_worker: WORKER_ID.into(),
            current_task: "provision".into(),
            current_action: "last".into(),
            current_action_index: 0,
            current_action_state: State::Failed as i32,
            total_number_of_actions: 1,
        };
        let in_progress = WorkflowContext {
            workflow_id: "wf-2".into(),
            current_worker: WORKER_ID.into(),
            current_task: "provision".into(),
            current_action: "partition".into(),
            current_action_index: 0,
            current_action_state: State::Success as i32,
            total_number_of_actions: 2,
        };
        Ok(Response::new(tokio_stream::iter(vec![
            Ok(finished),
            Ok(in_progress),
        ])))
    }

    async fn get_workflow_actions(
        &self,
        request: Request<WorkflowActionsRequest>,
    ) -> Result<Response<WorkflowActionList>, Status> {
        let action_list = match request.into_inner().workflow_id.as_str() {
            "wf-2" => vec![
                legacy_action("partition", WORKER_ID),
                legacy_action("install", WORKER_ID),
            ],
            _ => vec![legacy_action("last", WORKER_ID)],
        };
        Ok(Response::new(WorkflowActionList { action_list }))
    }

    async fn report_action_status(
        &self,
        request: Request<WorkflowActionStatus>,
    ) -> Result<Response<Empty>, Status> {
        self.reports.lock().unwrap().push(request.into_inner());
        Ok(Response::new(Empty {}))
    }
}

fn attributes() -> AgentAttributes {
    AgentAttributes {
        cpu: Cpu {
            total_cores: 4,
            total_threads: 8,
            processors: vec![],
        },
        product: Product {
            name: Some("Test Box".into()),
            vendor: None,
            serial: Some("SN-42".into()),
        },
        ..Default::default()
    }
}

fn report(state: ActionState) -> ActionReport {
    let started = SystemTime::now() - Duration::from_secs(5);
    let stopped = (state != ActionState::Running).then(SystemTime::now);
    ActionReport {
        workflow_id: "wf-2".into(),
        task_id: "provision".into(),
        action_id: "1".into(),
        task_name: "provision".into(),
        action_name: "install".into(),
        state,
        started,
        stopped,
        message: if state == ActionState::Failed {
            "exit status 1: disk not found".into()
        } else {
            String::new()
        },
    }
}

fn client(port: u16, choice: ProtocolChoice) -> WorkflowClient {
    WorkflowClient::new(
        &format!("127.0.0.1:{port}"),
        &ServerTls::Plaintext,
        WORKER_ID,
        choice,
    )
    .unwrap()
}

async fn within_limit<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .expect("the test took longer than its limit")
}

#[tokio::test]
async fn auto_selection_uses_the_current_protocol_when_served() {
    within_limit(async {
        let fake = FakeCurrent::default();
        let server = serve!(CurrentServer::new(fake.clone()), None::<ServerTlsConfig>);
        let mut client = client(server.port, ProtocolChoice::Auto);

        let action = client
            .next_action(&attributes())
            .await
            .unwrap()
            .expect("the server has an action");
        assert_eq!(client.protocol(), Some(Protocol::Current));
        assert_eq!(action.workflow_id, "default/wf-1");
        assert_eq!(
            (action.task_id.as_str(), action.action_id.as_str()),
            ("01TASK", "01ACTION")
        );
        assert_eq!(action.name, "stream-image");
        assert_eq!(action.image, "registry.local/actions/image2disk:v1");
        assert_eq!(action.timeout, Duration::from_secs(600));
        assert_eq!(action.command, ["/bin/sh", "-c", "true"]);
        assert_eq!(action.environment, ["DEST_DISK=/dev/sda"]);
        assert!(action.pid_host && !action.network_namespace);

        let request = fake.requests.lock().unwrap()[0].clone();
        assert_eq!(request.agent_id.as_deref(), Some(WORKER_ID));
        let sent = request.agent_attributes.expect("attributes are sent");
        assert_eq!(sent.cpu.unwrap().total_threads, Some(8));
        assert_eq!(
            sent.product.unwrap().serial_number.as_deref(),
            Some("SN-42")
        );

        client.report(&report(ActionState::Failed)).await.unwrap();
        let status = fake.reports.lock().unwrap()[0].clone();
        assert_eq!(status.action_state, Some(StateType::Failed as i32));
        assert_eq!(status.agent_id.as_deref(), Some(WORKER_ID));
        assert_eq!(status.action_id.as_deref(), Some("1"));
        assert!(status.execution_start.is_some() && status.execution_stop.is_some());
        let duration = status.execution_duration.unwrap();
        assert!(
            duration.starts_with('5') && duration.ends_with('s'),
            "{duration}"
        );
        assert_eq!(
            status.message.unwrap().message.as_deref(),
            Some("exit status 1: disk not found")
        );
    })
    .await;
}

#[tokio::test]
async fn no_workflow_is_no_action_not_an_error() {
    within_limit(async {
        let fake = FakeCurrent {
            no_work: true,
            ..Default::default()
        };
        let server = serve!(CurrentServer::new(fake), None::<ServerTlsConfig>);
        let mut client = client(server.port, ProtocolChoice::Current);
        assert_eq!(client.next_action(&attributes()).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn auto_selection_falls_back_to_legacy_on_unimplemented_and_stays_there() {
    within_limit(async {
        let fake = FakeLegacy::default();
        let server = serve!(LegacyServer::new(fake.clone()), None::<ServerTlsConfig>);
        let mut client = client(server.port, ProtocolChoice::Auto);

        let action = client
            .next_action(&attributes())
            .await
            .unwrap()
            .expect("the second action is next");
        assert_eq!(client.protocol(), Some(Protocol::Legacy));
        assert_eq!(action.workflow_id, "wf-2", "the failed workflow is skipped");
        assert_eq!(action.name, "install", "the action after the succeeded one");
        assert_eq!(action.action_id, "1");
        assert_eq!(action.task_name, "provision");
        assert_eq!(
            action.timeout,
            Duration::from_secs(3600),
            "timeout 0 means one hour"
        );
        assert_eq!(action.on_failure, ["echo failed"]);
        assert_eq!(action.volumes, ["/worker:/worker"]);

        client.report(&report(ActionState::Success)).await.unwrap();
        client.next_action(&attributes()).await.unwrap();
        assert_eq!(
            *fake.context_requests.lock().unwrap(),
            [WORKER_ID, WORKER_ID]
        );
        let status = fake.reports.lock().unwrap()[0].clone();
        assert_eq!(
            (status.workflow_id.as_str(), status.task_name.as_str()),
            ("wf-2", "provision")
        );
        assert_eq!(status.action_name, "install");
        assert_eq!(status.action_status, State::Success as i32);
        assert_eq!(status.seconds, 5);
        assert_eq!(status.worker_id, WORKER_ID);
        assert!(status.created_at.is_some());
    })
    .await;
}

#[tokio::test]
async fn forcing_the_current_protocol_against_a_legacy_server_is_a_clear_error() {
    within_limit(async {
        let server = serve!(
            LegacyServer::new(FakeLegacy::default()),
            None::<ServerTlsConfig>
        );
        let mut client = client(server.port, ProtocolChoice::Current);
        let error = client.next_action(&attributes()).await.unwrap_err();
        assert_eq!(error.code(), Some(Code::Unimplemented));
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("GetAction"), "{error}");
    })
    .await;
}

// The worker loop retries a report while `is_retryable` holds and gives up at once otherwise.

#[tokio::test]
async fn a_report_to_a_server_that_is_down_is_retryable() {
    within_limit(async {
        // Reserve a port and close it again: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut client = client(port, ProtocolChoice::Current);
        let error = client
            .report(&report(ActionState::Running))
            .await
            .unwrap_err();
        assert!(
            error.is_retryable(),
            "connection refused is retryable: {error}"
        );
        assert_eq!(error.code(), Some(Code::Unavailable));
    })
    .await;
}

#[tokio::test]
async fn a_rejected_report_is_not_retryable() {
    within_limit(async {
        let fake = FakeCurrent {
            fail_reports: 1,
            report_error: Some(Code::FailedPrecondition),
            ..Default::default()
        };
        let server = serve!(CurrentServer::new(fake.clone()), None::<ServerTlsConfig>);
        let mut client = client(server.port, ProtocolChoice::Current);
        let error = client
            .report(&report(ActionState::Success))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(Code::FailedPrecondition));
        assert!(!error.is_retryable());
        assert_eq!(fake.reports.lock().unwrap().len(), 1);
    })
    .await;
}

/// A CA and a certificate for `localhost` signed by it.
struct TestPki {
    ca_pem: String,
    server_identity: Identity,
}

fn test_pki(ca_name: &str) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server_identity: Identity::from_pem(server.pem(), server_key.serialize_pem()),
    }
}

fn tls_client(port: u16, tls: ServerTls) -> WorkflowClient {
    WorkflowClient::new(
        &format!("localhost:{port}"),
        &tls,
        WORKER_ID,
        ProtocolChoice::Auto,
    )
    .unwrap()
}

#[tokio::test]
async fn tls_with_the_servers_ca_works_and_a_wrong_ca_is_a_clear_error() {
    within_limit(async {
        let pki = test_pki("workflow test CA");
        let other = test_pki("some other CA");
        let dir = tempfile::tempdir().unwrap();
        let right_ca = dir.path().join("ca.pem");
        let wrong_ca = dir.path().join("other-ca.pem");
        std::fs::write(&right_ca, &pki.ca_pem).unwrap();
        std::fs::write(&wrong_ca, &other.ca_pem).unwrap();
        let tls = ServerTlsConfig::new().identity(pki.server_identity);
        let fake = FakeCurrent::default();
        let server = serve!(CurrentServer::new(fake.clone()), Some(tls));

        let mut trusted = tls_client(
            server.port,
            ServerTls::Verified {
                ca_bundle: Some(right_ca),
            },
        );
        let action = trusted.next_action(&attributes()).await.unwrap();
        assert!(action.is_some());

        let mut untrusted = tls_client(
            server.port,
            ServerTls::Verified {
                ca_bundle: Some(wrong_ca),
            },
        );
        let error = untrusted.next_action(&attributes()).await.unwrap_err();
        assert!(matches!(error, ProtocolError::Tls { .. }), "{error:?}");
        assert!(!error.is_retryable());
        let text = error.to_string();
        assert!(
            text.contains("TLS handshake failed") && text.contains("certificate"),
            "{text}"
        );
        assert!(
            text.contains("TINKERBELL_CA_CERT"),
            "the message says what to do: {text}"
        );
        assert_eq!(
            fake.requests.lock().unwrap().len(),
            1,
            "the untrusted client never got a request through"
        );

        let mut insecure = tls_client(server.port, ServerTls::InsecureSkipVerify);
        assert!(insecure.next_action(&attributes()).await.unwrap().is_some());
    })
    .await;
}

#[test]
fn an_unreadable_ca_bundle_is_a_clear_setup_error() {
    let tls = ServerTls::Verified {
        ca_bundle: Some("/nonexistent/ca.pem".into()),
    };
    let error = WorkflowClient::new("localhost:42113", &tls, WORKER_ID, ProtocolChoice::Auto)
        .err()
        .unwrap();
    let text = error.to_string();
    assert!(
        text.contains("/nonexistent/ca.pem") && text.contains("cannot be read"),
        "{text}"
    );
}

/// tink v0.12's rule, as the provisioner serves it: an action's `worker_id` is the task's
/// rendered `worker` (the MAC of the hardware map), and the legacy worker runs only actions
/// whose `worker_id` is its own id. A worker whose id is its MAC, for hardware named
/// `machine-1`, gets the action.
#[tokio::test]
async fn a_legacy_worker_named_by_its_mac_gets_the_action_for_named_hardware() {
    use provisioner::server::{Protocols, RunningServer, ServeOptions};
    use provisioner::store::{HardwareSpec, Store};

    const MAC: &str = "52:54:00:e2:e0:07";
    within_limit(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("provisioner.db")).unwrap());
        let hardware =
            HardwareSpec::parse(&format!(r#"{{"id": "machine-1", "macs": ["{MAC}"]}}"#)).unwrap();
        store.create_hardware(&hardware).unwrap();
        let template = store
            .create_template(
                "version: \"0.1\"\nname: one\ntasks:\n  - name: os\n    worker: \"{{.device_1}}\"\n    \
                 actions:\n      - name: write\n        image: busybox\n        timeout: 60\n",
                None,
            )
            .unwrap();
        let map = std::collections::BTreeMap::from([("device_1".to_string(), MAC.to_string())]);
        let workflow = store.create_workflow(&template.id, &map).unwrap();
        let options = ServeOptions {
            grpc: "127.0.0.1:0".parse().unwrap(),
            http: None,
            tls: None,
            protocols: Protocols::Legacy,
            admin: Default::default(),
            boot: None,
            // Plaintext gRPC: its clients can present no node certificate.
            node_ca: None,
            allow_unauthenticated_workers: true,
        };
        let server = RunningServer::start(Arc::clone(&store), &options)
            .await
            .unwrap();
        let mut client = WorkflowClient::new(
            &server.grpc_addr.to_string(),
            &ServerTls::Plaintext,
            MAC,
            ProtocolChoice::Legacy,
        )
        .unwrap();
        let action = client
            .next_action(&attributes())
            .await
            .unwrap()
            .expect("the worker named by its MAC gets the action");
        assert_eq!(action.workflow_id, workflow.id);
        assert_eq!(action.name, "write");
    })
    .await;
}
