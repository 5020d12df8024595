//! tink-worker against a Tinkerbell server written in Python (grpcio, code generated from
//! proto/current.proto: `tink_proto::python_peer`), which shares no code with the worker:
//! upstream-shaped workflow ids, upstream's "not ready" answer, and the worker's pause after
//! a refused RUNNING report as the server's own clock sees it.

use std::time::Duration;

use bootkit_common::backoff::Backoff;
use bootkit_hwinfo::AgentAttributes;
use serde_json::{Value, json};
use tink_proto::python_peer::{Protocol, PythonPeer};
use tink_worker::config::{ProtocolChoice, ServerTls};
use tink_worker::protocol::WorkflowClient;
use tink_worker::worker::adapters::ServerConnection;
use tink_worker::worker::power::{PowerAction, PowerControl};
use tink_worker::worker::{ActionRunner, RunOutcome, RunRequest, Settings, StepError, Worker};
use tokio_util::sync::CancellationToken;

const WORKER_ID: &str = "52:54:00:aa:bb:01";
const LINE_WAIT: Duration = Duration::from_secs(30);

/// An action as both upstream servers send it: the workflow id is `namespace/name`.
fn upstream_action() -> Value {
    json!({"action": {
        "workflow_id": "default/wf-1",
        "task_id": "task-1",
        "agent_id": WORKER_ID,
        "action_id": "01J0000000000000000000ACT1",
        "name": "write",
        "image": "busybox",
        "timeout": 60,
        "namespaces": {"network": "host"},
    }})
}

/// Starts `current_server.py` with `scenario`; returns it and its authority.
fn server(scenario: &Value) -> (PythonPeer, String) {
    let peer = PythonPeer::start(
        "current_server.py",
        Protocol::Current,
        &[&scenario.to_string()],
    )
    .expect("the Python peer starts (scripts/setup.sh installs python3-grpcio)");
    let first = peer.next_line(LINE_WAIT).expect("the peer prints its port");
    let port = first.strip_prefix("port ").expect("`port N` first");
    (peer, format!("127.0.0.1:{port}"))
}

fn client(authority: &str) -> WorkflowClient {
    WorkflowClient::new(
        authority,
        &ServerTls::Plaintext,
        WORKER_ID,
        ProtocolChoice::Current,
    )
    .unwrap()
}

/// The next `count` requests the peer logged (each line arrives through a reader thread, so
/// they are waited for, not taken as they stand).
fn records(peer: &PythonPeer, count: usize) -> Vec<Value> {
    (0..count)
        .map(|_| {
            let line = peer
                .next_line(LINE_WAIT)
                .expect("the peer logs each request");
            serde_json::from_str(&line).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_namespaced_workflow_id_is_taken_and_failed_precondition_means_nothing_to_do() {
    let scenario = json!({"get_action": [upstream_action(), {"code": "FAILED_PRECONDITION"}]});
    let (peer, authority) = server(&scenario);
    let mut client = client(&authority);
    let attributes = AgentAttributes::default();
    let action = client
        .next_action(&attributes)
        .await
        .unwrap()
        .expect("the scripted action");
    assert_eq!(action.workflow_id, "default/wf-1");
    assert_eq!(
        tink_worker::worker_dir::workflow_dir_name(&action.workflow_id).unwrap(),
        "default%2Fwf-1"
    );
    assert!(
        !action.network_namespace,
        "namespaces.network: host is the host's network"
    );
    let next = client.next_action(&attributes).await;
    assert!(
        matches!(next, Ok(None)),
        "upstream's FailedPrecondition is 'nothing to do now': {next:?}"
    );
    let seen = records(&peer, 2);
    assert!(
        seen.iter().all(|record| record["rpc"] == "GetAction"),
        "{seen:?}"
    );
    assert!(seen.iter().all(|record| record["agent_id"] == WORKER_ID));
    assert_eq!(
        peer.next_line(Duration::from_millis(200)),
        None,
        "no other request"
    );
}

/// Runs nothing: the test is about the loop's pauses, not about containers.
struct NoRunner;

impl ActionRunner for NoRunner {
    async fn pull(&mut self, _image: &str) -> Result<(), StepError> {
        Err(StepError::Permanent("this test runs no action".into()))
    }

    async fn run(&mut self, _request: RunRequest<'_>) -> Result<RunOutcome, StepError> {
        Err(StepError::Permanent("this test runs no action".into()))
    }
}

struct NoPower;

impl PowerControl for NoPower {
    fn perform(&mut self, _action: PowerAction) -> std::io::Result<()> {
        Ok(())
    }
}

/// The server refuses the RUNNING report three times and serves the same action again each
/// time. Between a refusal and the next GetAction the worker waits 200, 400, then 800 ms
/// (its `refused` backoff, exact here), measured by the server's own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_refused_running_report_the_worker_waits_as_the_server_sees_it() {
    let refused = json!({"code": "FAILED_PRECONDITION", "message": "workflow is not running"});
    let scenario = json!({
        "get_action": [upstream_action(), upstream_action(), upstream_action()],
        "report": [refused, refused, refused],
    });
    let (peer, authority) = server(&scenario);
    let dir = tempfile::tempdir().unwrap();
    let quick = Backoff::new(Duration::from_millis(5), Duration::from_millis(20));
    let settings = Settings {
        worker_dir: dir.path().to_path_buf(),
        idle: Backoff::new(Duration::from_secs(10), Duration::from_secs(10)).delays(),
        unreachable: quick.delays(),
        report: quick.delays(),
        refused: Backoff::new(Duration::from_millis(200), Duration::from_secs(1)).delays(),
        pull: quick.delays(),
        shutdown_report_grace: Duration::from_millis(100),
    };
    let shutdown = CancellationToken::new();
    let connection = ServerConnection::new(client(&authority), AgentAttributes::default());
    let mut worker = Worker::new(connection, NoRunner, NoPower, settings, shutdown.clone());
    let running = tokio::spawn(async move { worker.run().await });

    // Three refusals and the GetAction after each: seven requests, then the idle wait.
    let lines = tokio::task::spawn_blocking(move || records(&peer, 7))
        .await
        .unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();

    let rpcs: Vec<&str> = lines.iter().map(|l| l["rpc"].as_str().unwrap()).collect();
    assert_eq!(
        rpcs,
        [
            "GetAction",
            "ReportActionStatus",
            "GetAction",
            "ReportActionStatus",
            "GetAction",
            "ReportActionStatus",
            "GetAction"
        ]
    );
    for (index, wait_ms) in [(1, 200.0), (3, 400.0), (5, 800.0)] {
        let refused_at = lines[index]["at"].as_f64().unwrap();
        let asked_at = lines[index + 1]["at"].as_f64().unwrap();
        let gap_ms = (asked_at - refused_at) * 1000.0;
        assert!(
            gap_ms >= wait_ms,
            "after refusal {}: asked again after {gap_ms:.0} ms, less than {wait_ms} ms",
            index / 2 + 1
        );
        assert_eq!(lines[index]["state"], "STATE_TYPE_RUNNING");
    }
}
