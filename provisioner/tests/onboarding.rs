//! Device discovery's onboarding protocol against a real server on loopback, with the
//! generated client: ONBOARDED with credentials, first contact wins (a second onboarding is
//! refused until an operator approves it), REGISTERED while a node waits for `reprovision`,
//! refusals in the response's status while the stream stays open, and CreateNodes only with
//! the admin token.

mod common;

use common::admin::ADMIN_TOKEN;
use common::fleet::{OS_IMAGE, PROFILE, create_profile, report};
use common::onboarding::{ANSWER_WAIT, OnboardingStream};
use common::{TestDb, TestServer};
use onboarding_proto::NodeState;
use onboarding_proto::v1::interactive_onboarding_service_client::InteractiveOnboardingServiceClient;
use onboarding_proto::v1::{
    CreateNodesRequest, HwData, NodeData, OnboardNodeStreamRequest, OnboardNodeStreamResponse,
};
use provisioner::state::State;
use provisioner::store::{RegistrationSpec, Store};
use tonic::Code;

const MAC: &str = "52:54:00:dd:00:01";
const SECOND_MAC: &str = "52:54:00:dd:00:02";
const UUID: &str = "4c4c4544-0042-3510-8051-b7c04f4e5933";

fn request(serial: &str) -> OnboardNodeStreamRequest {
    OnboardNodeStreamRequest {
        uuid: UUID.into(),
        serialnum: serial.into(),
        mac_id: MAC.into(),
        host_ip: "127.0.0.9".into(),
        mac_ids: vec![SECOND_MAC.into()],
        hardware_json: r#"{"memory_bytes": 4294967296}"#.into(),
        bootkit_csr_pem: String::new(),
    }
}

/// The request with gRPC metadata `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn code(response: &OnboardNodeStreamResponse) -> Code {
    Code::from_i32(response.status.as_ref().map_or(-1, |status| status.code))
}

fn fail_first_action(store: &Store, workflow_id: &str) {
    let workflow = store.get_workflow(workflow_id).unwrap();
    report(
        store,
        workflow_id,
        &workflow.actions[0].action_id,
        MAC,
        State::Failed,
        "no disk",
    );
}

#[tokio::test]
async fn a_node_is_onboarded_then_waits_after_failing_until_reprovisioned() {
    let db = TestDb::new();
    create_profile(&db.open(), db.dir.path());
    let server = TestServer::start(&db.path()).await;
    let mut stream = OnboardingStream::open(&server).await;

    // An OEM placeholder serial is treated as absent, not as an identity.
    let onboarded = stream.ask(request("To Be Filled By O.E.M.")).await;
    assert_eq!(code(&onboarded), Code::Ok, "{onboarded:?}");
    assert_eq!(onboarded.node_state, NodeState::Onboarded as i32);
    assert_eq!(onboarded.client_id, MAC);
    assert_eq!(onboarded.client_secret.len(), 64);
    assert_eq!(onboarded.project_id, "bootkit");
    let node = server.store.get_node(MAC).unwrap();
    assert_eq!((node.serial, node.ip.as_deref()), (None, Some("127.0.0.9")));
    assert_eq!(node.macs, [MAC, SECOND_MAC]);
    let hardware = server.store.get_hardware(MAC).unwrap();
    assert_eq!(
        hardware.agent_attributes.unwrap()["memory_bytes"],
        4294967296u64
    );

    // Asked again (the node rebooted mid-way, or someone claims its identity): refused while
    // its credential is active, naming the operator's fix, and nothing changes.
    let before = server.store.node_detail(MAC).unwrap();
    let again = stream
        .ask(OnboardNodeStreamRequest {
            host_ip: "127.0.0.99".into(),
            ..request("")
        })
        .await;
    assert_eq!(code(&again), Code::PermissionDenied, "{again:?}");
    let message = &again.status.as_ref().unwrap().message;
    assert!(
        message.contains("provisioner node approve-enrollment 52:54:00:dd:00:01")
            && message.contains("provisioner node reprovision"),
        "{message}"
    );
    assert!(again.client_secret.is_empty() && again.client_id.is_empty());
    assert_eq!(
        server.store.node_detail(MAC).unwrap(),
        before,
        "nothing changed"
    );

    // The operator approves: one more enrollment wins, the same workflow, fresh credentials.
    let approved = server.store.approve_enrollment(MAC).unwrap();
    assert_eq!(
        approved.revoked, 1,
        "the client secret was the active credential"
    );
    let again = stream.ask(request("")).await;
    assert_eq!(again.node_state, NodeState::Onboarded as i32, "{again:?}");
    assert_ne!(again.client_secret, onboarded.client_secret);
    assert_eq!(
        code(&stream.ask(request("")).await),
        Code::PermissionDenied,
        "one enrollment per approval"
    );
    let workflows = server.store.list_workflows().unwrap();
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0].hardware["os_image_url"], OS_IMAGE);
    // Unregistered, it has no hostname of its own: one is made from its MAC.
    assert_eq!(workflows[0].hardware["hostname"], "node-525400dd0001");

    fail_first_action(&server.store, &workflows[0].id);
    // Failed and its credential revoked: it waits for reprovisioning, issued nothing.
    server.store.revoke_node(MAC).unwrap();
    let waiting = stream.ask(request("")).await;
    assert_eq!(code(&waiting), Code::Ok);
    assert_eq!(waiting.node_state, NodeState::Registered as i32);
    assert!(waiting.client_secret.is_empty());

    server.store.reprovision(MAC).unwrap();
    let rearmed = stream.ask(request("")).await;
    assert_eq!(code(&rearmed), Code::Ok, "{rearmed:?}");
    assert_eq!(rearmed.node_state, NodeState::Onboarded as i32);
    assert_eq!(server.store.list_workflows().unwrap().len(), 2);
}

#[tokio::test]
async fn refusals_come_in_the_status_and_the_stream_stays_open() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    store.set_default_profile(None).unwrap();
    drop(store);
    let server = TestServer::start(&db.path()).await;
    let mut stream = OnboardingStream::open(&server).await;

    let unknown = stream.ask(request("SN-X")).await;
    assert_eq!(code(&unknown), Code::NotFound, "{unknown:?}");
    let message = &unknown.status.as_ref().unwrap().message;
    assert!(
        message.contains("is not registered and no default profile is set"),
        "{message}"
    );
    assert!(unknown.client_id.is_empty());

    for spec in [
        RegistrationSpec {
            serial: Some("SN-X".into()),
            profile: PROFILE.into(),
            ..Default::default()
        },
        RegistrationSpec {
            uuid: Some(UUID.into()),
            profile: PROFILE.into(),
            ..Default::default()
        },
    ] {
        server.store.register(&spec).unwrap();
    }
    let conflict = stream.ask(request("SN-X")).await;
    assert_eq!(code(&conflict), Code::FailedPrecondition, "{conflict:?}");
    assert!(conflict.status.unwrap().message.contains("delete one"));

    let registered_by_serial = stream
        .ask(OnboardNodeStreamRequest {
            uuid: String::new(),
            ..request("SN-X")
        })
        .await;
    assert_eq!(registered_by_serial.node_state, NodeState::Onboarded as i32);
    assert_eq!(
        server.store.get_node(MAC).unwrap().profile.as_deref(),
        Some(PROFILE)
    );

    drop(stream.requests);
    let end = tokio::time::timeout(ANSWER_WAIT, stream.answers.message())
        .await
        .unwrap();
    assert!(
        matches!(end, Ok(None)),
        "the server ends the stream cleanly: {end:?}"
    );
}

#[tokio::test]
async fn create_nodes_registers_with_the_default_profile() {
    let db = TestDb::new();
    create_profile(&db.open(), db.dir.path());
    let server = TestServer::start(&db.path()).await;
    let mut client = InteractiveOnboardingServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let nodes = CreateNodesRequest {
        payload: vec![NodeData {
            hwdata: vec![HwData {
                uuid: UUID.into(),
                serialnum: "Default string".into(),
                mac_id: MAC.into(),
                sut_ip: String::new(),
            }],
        }],
    };
    // Without the admin token, or with another, CreateNodes is refused and registers nothing.
    let anonymous = client.create_nodes(nodes.clone()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert!(
        anonymous
            .message()
            .contains("authorization: Bearer <token>"),
        "says what to send: {}",
        anonymous.message()
    );
    let wrong = client
        .create_nodes(with_token(nodes.clone(), "not-the-token"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert!(server.store.list_registrations().unwrap().is_empty());

    let created = client
        .create_nodes(with_token(nodes.clone(), ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.project_id, "bootkit");
    let registrations = server.store.list_registrations().unwrap();
    assert_eq!(registrations.len(), 1);
    assert_eq!(
        (
            registrations[0].serial.as_deref(),
            registrations[0].uuid.as_deref(),
            registrations[0].profile.as_str()
        ),
        (None, Some(UUID), PROFILE)
    );

    server.store.set_default_profile(None).unwrap();
    let refused = client
        .create_nodes(with_token(nodes, ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Each call is in the audit log: who (the token by its hash prefix, never the token),
    // and what was answered.
    let audit: Vec<(String, u16)> = server
        .store
        .audit_log(0, 100)
        .unwrap()
        .into_iter()
        .map(|recorded| recorded.entry)
        .filter(|entry| entry.path.ends_with("/CreateNodes"))
        .map(|entry| (entry.actor, entry.status))
        .collect();
    let admin = provisioner::admin::token_actor(ADMIN_TOKEN.as_bytes());
    let wrong = provisioner::admin::token_actor(b"not-the-token");
    assert_eq!(
        audit,
        [
            ("no credential".to_string(), 401),
            (wrong, 401),
            (admin.clone(), 200),
            (admin, 403)
        ]
    );
}
