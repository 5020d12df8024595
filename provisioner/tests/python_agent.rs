//! The provisioner's workflow service against agents written in Python (grpcio, code
//! generated from proto/: `tink_proto::python_peer`), which share no code with it: what a
//! tink-agent or a tink v0.12 worker gets, and what the provisioner makes of their reports.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{MAC, TestDb, TestServer};
use provisioner::server::Protocols;
use serde_json::Value;
use tink_proto::python_peer::{Protocol, PythonPeer};

const TEMPLATE: &str = r#"
version: "0.1"
name: upstream-shaped
id: 0b5d3c4e-8a52-4f2c-9c0e-5d6b2f1a7e90
tasks:
  - name: os
    worker: "{{.device_1}}"
    actions:
      - name: write
        image: 127.0.0.1:5000/write:1
        timeout: 60
        namespaces:
          network: host
          pid: host
"#;

/// Seeds hardware `machine-1` with MAC, a workflow of `TEMPLATE` for it, and starts a
/// server speaking `protocols`.
async fn serve(db: &TestDb, protocols: Protocols) -> (TestServer, String) {
    let store = db.open();
    store.create_hardware(&common::hardware_spec()).unwrap();
    let template = store.create_template(TEMPLATE, None).unwrap();
    let map = BTreeMap::from([("device_1".to_string(), MAC.to_string())]);
    let workflow = store.create_workflow(&template.id, &map).unwrap();
    drop(store);
    (
        TestServer::start_speaking(&db.path(), protocols).await,
        workflow.id,
    )
}

/// Runs `agent.py` for `protocol` against `server` as `agent_id`; its JSON line.
async fn agent(server: &TestServer, protocol: Protocol, agent_id: &str) -> Value {
    let authority = server.running.grpc_addr.to_string();
    let name = match protocol {
        Protocol::Current => "current",
        Protocol::Legacy => "legacy",
    };
    let agent_id = agent_id.to_string();
    tokio::task::spawn_blocking(move || {
        let peer = PythonPeer::start("agent.py", protocol, &[name, &authority, &agent_id])
            .expect("the Python peer starts (scripts/setup.sh installs python3-grpcio)");
        let line = peer
            .next_line(Duration::from_secs(30))
            .expect("the agent prints what it was served (its stderr says why not)");
        serde_json::from_str(&line).unwrap()
    })
    .await
    .unwrap()
}

/// A tink-agent-like client: the namespaces reach it, and its Go zero-time start is not
/// taken for 0001-01-01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_tink_agent_gets_the_namespaces_and_its_zero_start_is_not_kept() {
    let db = TestDb::new();
    let (server, workflow_id) = serve(&db, Protocols::Both).await;
    let before = SystemTime::now();
    let served = agent(&server, Protocol::Current, MAC).await;
    assert_eq!(served["workflow_id"], workflow_id.as_str());
    assert_eq!(served["name"], "write");
    assert_eq!(served["namespaces"]["network"], "host");
    assert_eq!(served["namespaces"]["pid"], "host");
    assert_eq!(served["pid"], "host");
    let workflow = server.store.get_workflow(&workflow_id).unwrap();
    assert_eq!(workflow.state, provisioner::state::State::Success);
    let started = workflow.actions[0].started_at.as_deref().unwrap();
    let started = humantime::parse_rfc3339(started).unwrap();
    assert!(
        started + Duration::from_secs(1) >= before,
        "the action's start is the server's receive time, not Go's zero time: {started:?}"
    );
}

/// A tink v0.12-like worker: every action's worker_id and the context's current_worker are
/// the task's rendered worker (the MAC), which is the id such a worker runs as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_legacy_worker_sees_the_rendered_worker_as_worker_id() {
    let db = TestDb::new();
    let (server, _) = serve(&db, Protocols::Both).await;
    let seen = agent(&server, Protocol::Legacy, MAC).await;
    assert_eq!(seen["current_workers"], serde_json::json!([MAC]));
    assert_eq!(seen["worker_ids"], serde_json::json!([MAC]));
}
