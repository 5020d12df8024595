//! The gRPC workflow service, driven by clients of both protocols (from tink-proto).

mod common;

use common::actions::{get_action, status, time};
use common::{HARDWARE_ID, MAC, TEMPLATE_ACTIONS, TestDb, TestServer, seed};
use futures::StreamExt;
use provisioner::server::Protocols;
use provisioner::state::State;
use provisioner::store::HardwareSpec;
use tink_proto::current::{
    ActionRequest, ActionResponse, ActionStatusRequest, AgentAttributes, Cpu, StateType,
};
use tink_proto::legacy::{
    State as LegacyState, WorkflowActionStatus, WorkflowActionsRequest, WorkflowContext,
    WorkflowContextRequest,
};
use tonic::Code;

async fn next_action(client: &mut common::CurrentWorkflowClient, agent: &str) -> ActionResponse {
    client
        .get_action(get_action(agent))
        .await
        .unwrap()
        .into_inner()
}

async fn report(client: &mut common::CurrentWorkflowClient, request: ActionStatusRequest) {
    client.report_action_status(request).await.unwrap();
}

/// A template as current Tinkerbell writes it: a top-level `id` and an action's
/// `namespaces: {network, pid}`. Both are accepted, and the namespaces reach the worker in
/// `ActionResponse.namespaces` (the deprecated `pid` field too).
#[tokio::test]
async fn a_template_with_upstreams_keys_serves_the_actions_namespaces() {
    const UPSTREAM: &str = r#"
version: "0.1"
name: upstream-shaped
id: 0b5d3c4e-8a52-4f2c-9c0e-5d6b2f1a7e90
global_timeout: 1800
tasks:
  - name: os
    worker: "{{.device_1}}"
    actions:
      - name: host-namespaces
        image: 127.0.0.1:5000/write:1
        timeout: 60
        namespaces:
          network: host
          pid: host
      - name: own-namespaces
        image: 127.0.0.1:5000/write:1
        timeout: 60
"#;
    let db = TestDb::new();
    let store = db.open();
    store.create_hardware(&common::hardware_spec()).unwrap();
    let template = store.create_template(UPSTREAM, None).unwrap();
    let map = std::collections::BTreeMap::from([("device_1".to_string(), MAC.to_string())]);
    store.create_workflow(&template.id, &map).unwrap();
    drop(store);
    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;

    let first = next_action(&mut client, MAC).await;
    let namespaces = first.namespaces.clone().expect("namespaces are served");
    assert_eq!(namespaces.network.as_deref(), Some("host"));
    assert_eq!(namespaces.pid.as_deref(), Some("host"));
    assert_eq!(
        first.pid.as_deref(),
        Some("host"),
        "the deprecated field too"
    );
    report(
        &mut client,
        status(&first, StateType::Running, 100, None, ""),
    )
    .await;
    report(
        &mut client,
        status(&first, StateType::Success, 100, Some(101), "ok"),
    )
    .await;
    let second = next_action(&mut client, MAC).await;
    assert_eq!(second.name(), "own-namespaces");
    assert_eq!(second.namespaces, None);
    assert_eq!(second.pid, None);
}

/// Upstream's tink-agent sends Go's zero time (0001-01-01, `seconds = -62135596800`) as the
/// start of an action it did not stamp; proto's default is 0. Neither is a start: the
/// workflow and the action start when the server receives the report.
#[tokio::test]
async fn go_zero_time_and_the_epoch_are_no_start_time() {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    for start in [GO_ZERO_TIME, 0] {
        let db = TestDb::new();
        let workflow = seed(&db.open());
        let server = TestServer::start(&db.path()).await;
        let mut client = server.current().await;
        let action = next_action(&mut client, MAC).await;
        let before = std::time::SystemTime::now();
        report(
            &mut client,
            status(&action, StateType::Running, start, None, ""),
        )
        .await;
        let stored = server.store.get_workflow(&workflow.id).unwrap();
        for (what, started_at) in [
            ("workflow", stored.started_at.as_deref()),
            ("action", stored.actions[0].started_at.as_deref()),
        ] {
            let started_at = started_at.unwrap_or_else(|| panic!("the {what} has a start"));
            let started = humantime::parse_rfc3339(started_at).unwrap();
            assert!(
                started + std::time::Duration::from_secs(1) >= before,
                "start {start}: the {what} started at {started_at}, before the report arrived"
            );
        }
    }
}

#[tokio::test]
async fn the_current_protocol_drives_three_actions_to_success() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;

    let mut served = Vec::new();
    for (index, start) in [100, 200, 300].into_iter().enumerate() {
        let request = ActionRequest {
            agent_id: Some(MAC.into()),
            agent_attributes: Some(AgentAttributes {
                cpu: Some(Cpu {
                    total_cores: Some(4),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let action = client.get_action(request).await.unwrap().into_inner();
        assert_eq!(action.action_id(), workflow.actions[index].action_id);
        report(
            &mut client,
            status(&action, StateType::Running, start, None, ""),
        )
        .await;
        // Asked again while it runs, the server hands out the same action.
        let again = next_action(&mut client, HARDWARE_ID).await;
        assert_eq!(again.action_id(), action.action_id());
        let done = status(&action, StateType::Success, start, Some(start + 7), "ok");
        client.report_action_status(done).await.unwrap();
        served.push(action);
    }

    let first = &served[0];
    assert_eq!(first.workflow_id(), workflow.id);
    assert_eq!(first.agent_id(), MAC);
    assert_eq!(first.name(), "wipe");
    assert_eq!(first.image(), "127.0.0.1:5000/wipe:1");
    assert_eq!(first.timeout(), 60);
    assert_eq!(first.command, ["sh", "-c", "echo wipe $DISK"]);
    assert_eq!(first.environment, ["DISK=/dev/vda", "MODE=action"]);
    assert_eq!(first.volumes, ["/dev:/dev", "/tmp:/scratch"]);
    assert_eq!(
        served[1]
            .namespaces
            .as_ref()
            .and_then(|ns| ns.pid.as_deref()),
        Some("host")
    );
    assert_ne!(served[1].task_id(), served[2].task_id());

    let nothing = client.get_action(get_action(MAC)).await.unwrap_err();
    assert_eq!(nothing.code(), Code::NotFound, "{nothing:?}");

    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert_eq!(stored.state, State::Success);
    for (action, start) in stored.actions.iter().zip([100, 200, 300]) {
        assert_eq!(action.state, State::Success);
        assert_eq!(action.duration_ms, Some(7000));
        assert_eq!(action.message, "ok");
        let expected_start = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(start),
        );
        assert_eq!(
            action.started_at.as_deref(),
            Some(expected_start.to_string().as_str())
        );
        assert!(action.stopped_at.is_some());
    }
    assert!(stored.started_at.is_some() && stored.stopped_at.is_some());
    let hardware = server.store.get_hardware(HARDWARE_ID).unwrap();
    let attributes = hardware
        .agent_attributes
        .expect("GetAction's attributes are kept");
    assert_eq!(attributes["cpu"]["total_cores"], 4);
}

async fn contexts(client: &mut common::LegacyWorkflowClient, worker: &str) -> Vec<WorkflowContext> {
    let request = WorkflowContextRequest {
        worker_id: worker.into(),
    };
    let stream = client
        .get_workflow_contexts(request)
        .await
        .unwrap()
        .into_inner();
    stream.map(|context| context.unwrap()).collect().await
}

fn legacy_status(
    workflow: &str,
    task: &str,
    action: &str,
    state: LegacyState,
    seconds: i64,
    at: i64,
    message: &str,
) -> WorkflowActionStatus {
    WorkflowActionStatus {
        workflow_id: workflow.into(),
        task_name: task.into(),
        action_name: action.into(),
        action_status: state as i32,
        seconds,
        message: message.into(),
        created_at: time(at),
        worker_id: HARDWARE_ID.into(),
    }
}

#[tokio::test]
async fn the_legacy_protocol_drives_three_actions_to_success() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let server = TestServer::start(&db.path()).await;
    let mut client = server.legacy().await;

    let first = contexts(&mut client, HARDWARE_ID).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].workflow_id, workflow.id);
    assert_eq!(first[0].current_action_index, 0);
    assert_eq!(first[0].current_action_state(), LegacyState::Pending);
    // tink v0.12 names the worker as the template rendered it: here the hardware map's MAC.
    assert_eq!(first[0].current_worker, MAC);
    assert_eq!(first[0].total_number_of_actions, 3);

    let request = WorkflowActionsRequest {
        workflow_id: workflow.id.clone(),
    };
    let actions = client
        .get_workflow_actions(request)
        .await
        .unwrap()
        .into_inner()
        .action_list;
    let names: Vec<_> = actions
        .iter()
        .map(|a| (a.task_name.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(names, TEMPLATE_ACTIONS);
    assert!(actions.iter().all(|action| action.worker_id == MAC));
    assert_eq!(actions[2].on_failure, ["echo", "failed"]);
    assert_eq!(actions[1].pid, "host");

    for (index, action) in actions.iter().enumerate() {
        let at = 1000 + index as i64 * 10;
        let running = legacy_status(
            &workflow.id,
            &action.task_name,
            &action.name,
            LegacyState::Running,
            0,
            at,
            "",
        );
        client.report_action_status(running).await.unwrap();
        let context = &contexts(&mut client, MAC).await[0];
        assert_eq!(
            (context.current_action_index, context.current_action_state()),
            (index as i64, LegacyState::Running)
        );
        let done = legacy_status(
            &workflow.id,
            &action.task_name,
            &action.name,
            LegacyState::Success,
            3,
            at + 3,
            "done",
        );
        client.report_action_status(done).await.unwrap();
    }
    assert!(
        contexts(&mut client, HARDWARE_ID).await.is_empty(),
        "a finished workflow is no longer offered"
    );

    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert_eq!(stored.state, State::Success);
    assert!(
        stored.actions.iter().all(|a| a.state == State::Success
            && a.duration_ms == Some(3000)
            && a.message == "done")
    );
}

#[tokio::test]
async fn a_failed_action_ends_the_workflow_and_later_actions_never_run() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;

    let action = next_action(&mut client, MAC).await;
    report(
        &mut client,
        status(&action, StateType::Running, 10, None, ""),
    )
    .await;
    let failed = status(
        &action,
        StateType::Failed,
        10,
        Some(12),
        "exit status 1: disk not found",
    );
    client.report_action_status(failed.clone()).await.unwrap();
    // A repeated report (a retry whose answer was lost) is acknowledged.
    client.report_action_status(failed).await.unwrap();

    let nothing = client.get_action(get_action(MAC)).await.unwrap_err();
    assert_eq!(nothing.code(), Code::NotFound);
    let late = status(&action, StateType::Success, 10, Some(13), "");
    let refused = client.report_action_status(late).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("already ended FAILED"),
        "{}",
        refused.message()
    );

    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert_eq!(stored.state, State::Failed);
    let states: Vec<State> = stored.actions.iter().map(|a| a.state).collect();
    assert_eq!(states, [State::Failed, State::Pending, State::Pending]);
    assert_eq!(stored.actions[0].message, "exit status 1: disk not found");
}

#[tokio::test]
async fn a_legacy_timeout_ends_the_workflow_timeout() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let server = TestServer::start(&db.path()).await;
    let mut client = server.legacy().await;
    let report =
        |state, seconds| legacy_status(&workflow.id, "disk", "wipe", state, seconds, 50, "");
    client
        .report_action_status(report(LegacyState::Running, 0))
        .await
        .unwrap();
    client
        .report_action_status(report(LegacyState::Timeout, 60))
        .await
        .unwrap();
    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert_eq!(
        (stored.state, stored.actions[0].state),
        (State::Timeout, State::Timeout)
    );
    assert_eq!(stored.actions[0].duration_ms, Some(60_000));
}

#[tokio::test]
async fn a_restarted_server_serves_the_in_progress_action_again() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let first_server = TestServer::start(&db.path()).await;
    let mut client = first_server.current().await;
    let action = next_action(&mut client, MAC).await;
    report(
        &mut client,
        status(&action, StateType::Running, 10, None, ""),
    )
    .await;
    first_server.running.stop().await.unwrap();
    drop(first_server.store);

    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;
    let resumed = next_action(&mut client, MAC).await;
    assert_eq!(resumed, action, "the same action, with the same ids");
    report(
        &mut client,
        status(&resumed, StateType::Success, 10, Some(15), ""),
    )
    .await;
    let next = next_action(&mut client, MAC).await;
    assert_eq!(next.action_id(), workflow.actions[1].action_id);
    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert_eq!(stored.actions[0].duration_ms, Some(5000));
}

#[tokio::test]
async fn both_protocols_work_against_one_server_at_once() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let server = TestServer::start(&db.path()).await;
    let mut current = server.current().await;
    let mut legacy = server.legacy().await;

    // The current worker takes the first action; a legacy worker finishes it.
    let action = next_action(&mut current, MAC).await;
    report(
        &mut current,
        status(&action, StateType::Running, 10, None, ""),
    )
    .await;
    let done = legacy_status(
        &workflow.id,
        "disk",
        "wipe",
        LegacyState::Success,
        2,
        12,
        "",
    );
    legacy.report_action_status(done).await.unwrap();

    let context = &contexts(&mut legacy, MAC).await[0];
    assert_eq!(
        (
            context.current_action.as_str(),
            context.current_action_state()
        ),
        ("wipe", LegacyState::Success)
    );
    let next = next_action(&mut current, MAC).await;
    assert_eq!(next.name(), "write");
    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert_eq!(stored.actions[0].state, State::Success);
}

#[tokio::test]
async fn bad_requests_get_errors_that_say_what_is_wrong() {
    let db = TestDb::new();
    let store = db.open();
    let workflow = seed(&store);
    let other = HardwareSpec {
        id: Some("machine-2".into()),
        macs: vec!["52:54:00:00:00:02".into()],
        ..Default::default()
    };
    store.create_hardware(&other).unwrap();
    drop(store);
    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;

    let empty = client.get_action(get_action("")).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.message().contains("agent_id"), "{}", empty.message());
    let unknown = client
        .get_action(get_action("52:54:00:99:99:99"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let idle = client
        .get_action(get_action("machine-2"))
        .await
        .unwrap_err();
    assert_eq!(idle.code(), Code::NotFound);

    let first = next_action(&mut client, MAC).await;
    let mut skipping = status(&first, StateType::Running, 1, None, "");
    skipping.action_id = Some(workflow.actions[2].action_id.clone());
    let out_of_order = client.report_action_status(skipping).await.unwrap_err();
    assert_eq!(out_of_order.code(), Code::FailedPrecondition);
    assert!(
        out_of_order.message().contains("\"wipe\""),
        "{}",
        out_of_order.message()
    );

    let mut stranger = status(&first, StateType::Running, 1, None, "");
    stranger.agent_id = Some("machine-2".into());
    assert_eq!(
        client
            .report_action_status(stranger)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let mut unspecified = status(&first, StateType::Running, 1, None, "");
    unspecified.action_state = Some(StateType::Unspecified as i32);
    assert_eq!(
        client
            .report_action_status(unspecified)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    let mut missing = status(&first, StateType::Running, 1, None, "");
    missing.workflow_id = Some("no-such-workflow".into());
    assert_eq!(
        client
            .report_action_status(missing)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let stored = server.store.get_workflow(&workflow.id).unwrap();
    assert!(
        stored
            .actions
            .iter()
            .all(|action| action.state == State::Pending),
        "nothing moved"
    );
}

#[tokio::test]
async fn a_single_protocol_server_answers_the_other_protocol_unimplemented() {
    let db = TestDb::new();
    let workflow = seed(&db.open());
    let legacy_only = TestServer::start_speaking(&db.path(), Protocols::Legacy).await;
    let error = legacy_only
        .current()
        .await
        .get_action(get_action(MAC))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
    assert_eq!(
        contexts(&mut legacy_only.legacy().await, MAC).await[0].workflow_id,
        workflow.id
    );
    legacy_only.running.stop().await.unwrap();

    let current_only = TestServer::start_speaking(&db.path(), Protocols::Current).await;
    let request = WorkflowContextRequest {
        worker_id: MAC.into(),
    };
    let error = current_only
        .legacy()
        .await
        .get_workflow_contexts(request)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
    let action = next_action(&mut current_only.current().await, MAC).await;
    assert_eq!(action.workflow_id(), workflow.id);
}

/// Discovery creates the node's workflow; the worker's reports over gRPC move the node along
/// its lifecycle, with progress and a timeline.
#[tokio::test]
async fn worker_reports_move_a_discovered_node_to_provisioned() {
    use provisioner::store::{BootPlan, Discovery, Identity, NodeState};

    let db = TestDb::new();
    let store = db.open();
    common::fleet::create_profile(&store, db.dir.path());
    let discovered = store
        .discover(&Discovery {
            identity: Identity::new(Some("SN-77"), None, &[MAC]),
            ip: Some("127.0.0.5".into()),
            attributes: None,
            artifact_base: Some("http://127.0.0.1:7080".into()),
        })
        .unwrap();
    drop(store);
    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;
    let node_progress = || {
        let node = server.store.get_node(MAC).unwrap();
        (node.state, node.progress.map(|p| p.to_string()))
    };
    assert_eq!(
        node_progress(),
        (NodeState::Discovered, Some("1/3: wipe".into()))
    );

    for (index, start) in [100, 200, 300].into_iter().enumerate() {
        let action = next_action(&mut client, MAC).await;
        assert_eq!(
            Some(action.workflow_id()),
            discovered.workflow_id.as_deref()
        );
        report(
            &mut client,
            status(&action, StateType::Running, start, None, ""),
        )
        .await;
        let running = format!("{}/3: {}", index + 1, TEMPLATE_ACTIONS[index].1);
        assert_eq!(node_progress(), (NodeState::Provisioning, Some(running)));
        let done = status(&action, StateType::Success, start, Some(start + 2), "ok");
        report(&mut client, done).await;
    }
    assert_eq!(
        node_progress(),
        (NodeState::Provisioned, Some("3/3: reboot".into()))
    );

    let timeline: Vec<String> = server
        .store
        .node_events(MAC)
        .unwrap()
        .into_iter()
        .map(|event| format!("{}: {}", event.kind, event.message))
        .collect();
    let actions: Vec<&str> = timeline
        .iter()
        .filter_map(|line| line.strip_prefix("action: "))
        .collect();
    assert_eq!(
        actions,
        [
            "action 1/3 wipe: RUNNING",
            "action 1/3 wipe: SUCCESS (2.0s)",
            "action 2/3 write: RUNNING",
            "action 2/3 write: SUCCESS (2.0s)",
            "action 3/3 reboot: RUNNING",
            "action 3/3 reboot: SUCCESS (2.0s)",
        ]
    );
    assert!(
        timeline.last().unwrap().starts_with("provisioned: "),
        "{timeline:?}"
    );
    let identity = Identity::new(Some("SN-77"), None, &[MAC]);
    assert_eq!(
        server.store.pxe_boot(&identity).unwrap(),
        BootPlan::LocalDisk {
            node_id: MAC.into()
        }
    );
}
