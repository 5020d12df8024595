//! Nodes through the store: discovery creates the workflow once, provisioned and failed nodes
//! wait for `reprovision`, lookups, the timeline, and logs.

mod common;

use common::TestDb;
use common::fleet::report;
use provisioner::state::State;
use provisioner::store::{
    BootPlan, Discovered, Discovery, Identity, MAX_LOG_LINES_PER_NODE, NewLogLine, NodeState,
    ProfileSpec, RegistrationSpec, Store, StoreError,
};

const SERIAL: &str = "SN-2001";
const UUID: &str = "4c4c4544-0042-3510-8051-b7c04f4e5932";
const BOOT_MAC: &str = "52:54:00:aa:cc:01";
const OTHER_MAC: &str = "52:54:00:aa:cc:02";
const BASE: &str = "http://10.0.0.1:7080";

/// The profile nodes get here: its OS image is a file on this host, served by the boot
/// service, so workflows fetch it from under the artifact base.
const PROFILE: &str = "local";

fn create_profile(store: &Store, dir: &std::path::Path) {
    common::fleet::create_profile(store, dir);
    let fleet = store.get_profile(common::fleet::PROFILE).unwrap();
    let image = common::fleet::artifacts_dir(dir).join("os.img");
    std::fs::write(&image, "image").unwrap();
    store
        .create_profile(&ProfileSpec {
            name: PROFILE.into(),
            kernel: fleet.kernel,
            initramfs: fleet.initramfs,
            template: fleet.template_id,
            os_image: image.display().to_string(),
            default: true,
            ..Default::default()
        })
        .unwrap();
}

fn identity() -> Identity {
    Identity::new(Some(SERIAL), Some(UUID), &[BOOT_MAC, OTHER_MAC])
}

fn discover(store: &Store, ip: &str) -> Discovered {
    store
        .discover(&Discovery {
            identity: identity(),
            ip: Some(ip.into()),
            attributes: Some(serde_json::json!({"cpu": {"cores": 4}})),
            artifact_base: Some(BASE.into()),
        })
        .unwrap()
}

/// Reports the workflow's actions, in order, as ending in `states`.
fn run_actions(store: &Store, workflow_id: &str, states: &[State], failure: &str) {
    let workflow = store.get_workflow(workflow_id).unwrap();
    for (action, state) in workflow.actions.iter().zip(states) {
        report(
            store,
            workflow_id,
            &action.action_id,
            BOOT_MAC,
            *state,
            failure,
        );
    }
}

fn is_install(plan: &BootPlan) -> bool {
    matches!(plan, BootPlan::Install { profile, .. } if profile.name == PROFILE)
}

#[test]
fn discovery_records_the_node_and_creates_its_workflow_once() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    store
        .register(&RegistrationSpec {
            serial: Some(SERIAL.into()),
            profile: PROFILE.into(),
            hostname: Some("edge-7".into()),
            metadata: [("dest_disk".to_string(), "/dev/sda".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
    let listed = store.list_nodes().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].state,
        NodeState::Registered,
        "registered, never seen"
    );

    let first = discover(&store, "10.0.0.7");
    assert!(first.workflow_created);
    assert_eq!(first.node.id, BOOT_MAC);
    assert_eq!(first.node.state, NodeState::Discovered);
    assert_eq!(first.node.macs, [BOOT_MAC, OTHER_MAC]);
    let workflow = store
        .get_workflow(first.workflow_id.as_deref().unwrap())
        .unwrap();
    let values = &workflow.hardware;
    assert_eq!(values["device_1"], BOOT_MAC);
    assert_eq!(values["worker_id"], BOOT_MAC);
    assert_eq!(
        values["os_image_url"],
        format!("{BASE}/artifacts/profiles/{PROFILE}/os-image")
    );
    assert_eq!(values["os_image_sha256"], "");
    assert_eq!(values["hostname"], "edge-7");
    assert_eq!(values["dest_disk"], "/dev/sda");
    assert_eq!(
        (values["serial"].as_str(), values["uuid"].as_str()),
        (SERIAL, UUID)
    );
    let hardware = store.get_hardware(BOOT_MAC).unwrap();
    assert_eq!(hardware.macs, [BOOT_MAC, OTHER_MAC]);
    assert_eq!(hardware.ips, ["10.0.0.7"]);
    assert_eq!(hardware.agent_attributes.unwrap()["cpu"]["cores"], 4);

    // Rebooted half-way: discovered again, it keeps its workflow.
    run_actions(&store, &workflow.id, &[State::Success], "");
    let again = discover(&store, "10.0.0.8");
    assert!(!again.workflow_created);
    assert_eq!(again.workflow_id, first.workflow_id);
    assert_eq!(again.node.state, NodeState::Provisioning);
    assert_eq!(store.list_workflows().unwrap().len(), 1);
    assert_eq!(store.node_by_ip("10.0.0.8").unwrap().unwrap().id, BOOT_MAC);
    assert_eq!(store.node_by_ip("10.0.0.7").unwrap(), None);
    assert_eq!(
        store.list_nodes().unwrap().len(),
        1,
        "the registration is now this node"
    );
}

#[test]
fn a_provisioned_node_boots_its_disk_until_reprovisioned() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    assert!(is_install(&store.pxe_boot(&identity()).unwrap()));
    let discovered = discover(&store, "10.0.0.7");
    let workflow_id = discovered.workflow_id.unwrap();
    run_actions(&store, &workflow_id, &[State::Success; 3], "");

    let node = store.get_node(SERIAL).unwrap();
    assert_eq!(node.state, NodeState::Provisioned);
    assert_eq!(node.progress.unwrap().to_string(), "3/3: reboot");
    assert_eq!(
        store.pxe_boot(&identity()).unwrap(),
        BootPlan::LocalDisk {
            node_id: BOOT_MAC.into()
        }
    );
    let rediscovered = discover(&store, "10.0.0.7");
    assert!(!rediscovered.workflow_created);
    assert!(rediscovered.node.state.awaits_rearm());

    // OEP users register nodes that are installed already: say so, and how to re-arm.
    let registered = store
        .register(&RegistrationSpec {
            uuid: Some(UUID.into()),
            profile: PROFILE.into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        registered.warnings,
        [format!(
            "node {BOOT_MAC} is already provisioned and boots from its disk; run `provisioner node reprovision {BOOT_MAC}` to install it again"
        )]
    );

    let rearmed = store.reprovision(UUID).unwrap();
    assert_eq!(
        (rearmed.state, rearmed.workflow_id),
        (NodeState::Registered, None)
    );
    assert!(is_install(&store.pxe_boot(&identity()).unwrap()));
    let fresh = discover(&store, "10.0.0.7");
    assert!(fresh.workflow_created);
    assert_ne!(fresh.workflow_id.as_deref(), Some(workflow_id.as_str()));

    let kinds: Vec<String> = store
        .node_events(BOOT_MAC)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for expected in [
        "discovered",
        "workflow-created",
        "action",
        "provisioned",
        "pxe",
        "reprovision",
    ] {
        assert!(
            kinds.iter().any(|kind| kind == expected),
            "{expected} in {kinds:?}"
        );
    }
    let pxe_before_discovery = kinds.iter().position(|kind| kind == "pxe").unwrap();
    assert!(
        pxe_before_discovery > 0,
        "an unknown node's PXE boot records nothing"
    );
}

#[test]
fn a_failed_node_installs_its_bootkit_but_waits_for_reprovision() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let workflow_id = discover(&store, "10.0.0.7").workflow_id.unwrap();
    run_actions(
        &store,
        &workflow_id,
        &[State::Success, State::Failed],
        "disk /dev/vda not found",
    );

    let node = store.get_node(BOOT_MAC).unwrap();
    assert_eq!(node.state, NodeState::Failed);
    assert_eq!(node.failure.as_deref(), Some("disk /dev/vda not found"));
    assert_eq!(node.progress.unwrap().to_string(), "2/3: write");
    let timeline: Vec<String> = store
        .node_events(BOOT_MAC)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(
        timeline.contains(&"action 1/3 wipe: SUCCESS (2.5s)".to_string()),
        "{timeline:?}"
    );
    assert!(
        timeline.contains(&"action 2/3 write: FAILED (2.5s)".to_string()),
        "{timeline:?}"
    );

    assert!(
        is_install(&store.pxe_boot(&identity()).unwrap()),
        "its bootkit comes up to show logs"
    );
    let waiting = discover(&store, "10.0.0.7");
    assert!(!waiting.workflow_created && waiting.node.state.awaits_rearm());
    assert_eq!(store.list_workflows().unwrap().len(), 1, "no install loop");

    store.reprovision(BOOT_MAC).unwrap();
    assert!(discover(&store, "10.0.0.7").workflow_created);
    assert_eq!(store.get_node(BOOT_MAC).unwrap().failure, None);
}

#[test]
fn refused_and_impossible_discoveries_store_nothing() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    let without_base = store
        .discover(&Discovery {
            identity: identity(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        without_base.to_string().contains("boot HTTP service"),
        "{without_base}"
    );
    store.set_default_profile(None).unwrap();
    let refused = store
        .discover(&Discovery {
            identity: identity(),
            artifact_base: Some(BASE.into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::PermissionDenied(_)),
        "{refused:?}"
    );
    assert!(
        matches!(store.pxe_boot(&identity()).unwrap(), BootPlan::Refused { reason } if reason.contains("not registered"))
    );
    assert!(store.list_nodes().unwrap().is_empty());
    assert!(store.list_hardware().unwrap().is_empty());
    assert!(store.list_workflows().unwrap().is_empty());
}

#[test]
fn nodes_are_found_by_id_mac_serial_or_uuid_and_ambiguity_is_a_conflict() {
    let db = TestDb::new();
    let store = db.open();
    create_profile(&store, db.dir.path());
    discover(&store, "10.0.0.7");
    for key in [BOOT_MAC, "52-54-00-AA-CC-02", SERIAL, &UUID.to_uppercase()] {
        assert_eq!(store.get_node(key).unwrap().id, BOOT_MAC, "{key}");
    }
    store
        .discover(&Discovery {
            identity: Identity::new(Some("SN-OTHER"), None, &["52:54:00:aa:cc:09"]),
            artifact_base: Some(BASE.into()),
            ..Default::default()
        })
        .unwrap();
    store
        .discover(&Discovery {
            identity: Identity::new(Some("52:54:00:aa:cc:09"), None, &["52:54:00:aa:cc:0a"]),
            artifact_base: Some(BASE.into()),
            ..Default::default()
        })
        .unwrap();
    let error = store.get_node("52:54:00:aa:cc:09").unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(
        store
            .get_node("nobody")
            .unwrap_err()
            .to_string()
            .contains("not found")
    );
}

fn lines(count: usize, prefix: &str) -> Vec<NewLogLine> {
    (0..count)
        .map(|index| NewLogLine {
            source: "tink-worker".into(),
            severity: 6,
            sent_at: None,
            text: format!("{prefix} {index}"),
        })
        .collect()
}

#[test]
fn logs_are_read_in_order_after_a_sequence_number() {
    let db = TestDb::new();
    let store = db.open();
    store.append_logs("node-a", &lines(3, "a")).unwrap();
    store.append_logs("node-b", &lines(2, "b")).unwrap();
    store.append_logs("node-a", &lines(2, "a2")).unwrap();
    let all: Vec<_> = store.node_logs("node-a", 0, 100).unwrap();
    let texts: Vec<&str> = all.iter().map(|line| line.text.as_str()).collect();
    assert_eq!(texts, ["a 0", "a 1", "a 2", "a2 0", "a2 1"]);
    let page = store.node_logs("node-a", all[1].seq, 2).unwrap();
    assert_eq!(page, all[2..4]);
    assert!(
        store
            .node_logs("node-a", all[4].seq, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_chatty_node_keeps_only_its_newest_lines() {
    let db = TestDb::new();
    let store = db.open();
    let cap = usize::try_from(MAX_LOG_LINES_PER_NODE).unwrap();
    store.append_logs("quiet", &lines(1, "quiet")).unwrap();
    store.append_logs("chatty", &lines(cap, "old")).unwrap();
    store.append_logs("chatty", &lines(5, "new")).unwrap();
    let kept = store.node_logs("chatty", 0, cap + 10).unwrap();
    assert_eq!(kept.len(), cap);
    assert_eq!(kept[0].text, "old 5");
    assert_eq!(kept[cap - 1].text, "new 4");
    assert_eq!(
        store.node_logs("quiet", 0, 10).unwrap().len(),
        1,
        "other nodes keep theirs"
    );
}
