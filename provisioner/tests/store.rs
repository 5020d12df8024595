//! The store: validation that names the field and stores nothing, hardware substitution,
//! and everything intact after a reopen.

mod common;

use std::collections::BTreeMap;

use common::fleet::report;
use common::{HARDWARE_ID, MAC, TEMPLATE, TEMPLATE_ACTIONS, TestDb, hardware_spec, seed};
use provisioner::state::State;
use provisioner::store::{HardwareSpec, StoreError};

#[test]
fn an_invalid_template_names_the_field_and_stores_nothing() {
    let db = TestDb::new();
    let store = db.open();
    let cases = [
        (
            TEMPLATE.replace("        image: 127.0.0.1:5000/write:1\n", ""),
            "tasks[0].actions[1].image: missing",
        ),
        (
            TEMPLATE.replace("  - name: finish\n", "  - nom: finish\n"),
            "tasks[1]",
        ),
        (
            TEMPLATE.replace("timeout: 120", "timeout: two minutes"),
            "tasks[0].actions[1].timeout",
        ),
        (
            TEMPLATE.replace("name: three-actions\n", ""),
            "name: missing",
        ),
    ];
    for (yaml, expected) in cases {
        let error = store.create_template(&yaml, None).unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
        assert!(
            error.to_string().starts_with(expected),
            "{error} should start with {expected}"
        );
    }
    assert!(store.list_templates().unwrap().is_empty());
}

#[test]
fn a_workflow_substitutes_the_hardware_and_merges_task_and_action_settings() {
    let db = TestDb::new();
    let store = db.open();
    let workflow = seed(&store);
    assert_eq!(workflow.state, State::Pending);
    assert_eq!(workflow.hardware["device_1"], MAC);
    let names: Vec<_> = workflow
        .actions
        .iter()
        .map(|a| (a.task_name.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(names, TEMPLATE_ACTIONS);
    let wipe = &workflow.actions[0];
    // The task's worker "{{.device_1}}" became the MAC, resolved to the hardware id.
    assert!(
        workflow
            .actions
            .iter()
            .all(|a| a.worker == HARDWARE_ID && a.state == State::Pending)
    );
    assert_eq!(wipe.environment, ["DISK=/dev/vda", "MODE=action"]);
    assert_eq!(wipe.volumes, ["/dev:/dev", "/tmp:/scratch"]);
    assert_eq!(wipe.command, ["sh", "-c", "echo wipe $DISK"]);
    assert_eq!(wipe.timeout, 60);
    assert_eq!(workflow.actions[1].pid, "host");
    assert_eq!(workflow.actions[2].on_failure, ["echo", "failed"]);
    assert_eq!(workflow.actions[2].on_timeout, ["echo", "timed out"]);
}

#[test]
fn a_workflow_with_unknown_hardware_or_key_is_refused_and_nothing_stored() {
    let db = TestDb::new();
    let store = db.open();
    store.create_hardware(&hardware_spec()).unwrap();
    let template = store.create_template(TEMPLATE, None).unwrap();

    let unknown_mac = BTreeMap::from([("device_1".to_string(), "52:54:00:ff:ff:ff".to_string())]);
    let error = store
        .create_workflow(&template.id, &unknown_mac)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("hardware.device_1: no hardware"),
        "{error}"
    );

    let wrong_key = BTreeMap::from([("device_2".to_string(), MAC.to_string())]);
    let error = store.create_workflow(&template.id, &wrong_key).unwrap_err();
    assert!(error.to_string().contains("\"device_1\""), "{error}");

    let error = store
        .create_workflow("no-such-template", &wrong_key)
        .unwrap_err();
    assert!(error.to_string().starts_with("template: "), "{error}");
    assert!(store.list_workflows().unwrap().is_empty());
}

#[test]
fn hardware_is_found_by_id_or_any_mac_spelling_and_validated() {
    let db = TestDb::new();
    let store = db.open();
    store.create_hardware(&hardware_spec()).unwrap();
    assert_eq!(
        store.get_hardware("52-54-00-12-34-56").unwrap().id,
        HARDWARE_ID
    );
    assert_eq!(store.get_hardware(HARDWARE_ID).unwrap().macs, [MAC]);
    let bad = HardwareSpec {
        macs: vec!["52:54:00".into()],
        ..hardware_spec()
    };
    assert!(
        store
            .create_hardware(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("macs[0]:")
    );
    let taken = HardwareSpec {
        id: Some("other".into()),
        ..hardware_spec()
    };
    assert!(
        store
            .create_hardware(&taken)
            .unwrap_err()
            .to_string()
            .contains("already belongs")
    );
    assert_eq!(store.list_hardware().unwrap().len(), 1);
}

#[test]
fn everything_survives_a_reopen() {
    let db = TestDb::new();
    let (workflow_id, before) = {
        let store = db.open();
        let workflow = seed(&store);
        report(
            &store,
            &workflow.id,
            &workflow.actions[0].action_id,
            MAC,
            State::Success,
            "",
        );
        let before = (
            store.list_hardware().unwrap(),
            store.list_templates().unwrap(),
            store.list_workflows().unwrap(),
        );
        (workflow.id, before)
    };
    let store = db.open();
    let after = (
        store.list_hardware().unwrap(),
        store.list_templates().unwrap(),
        store.list_workflows().unwrap(),
    );
    assert_eq!(after, before);
    let workflow = store.get_workflow(&workflow_id).unwrap();
    assert_eq!(workflow.state, State::Running);
    let wipe = &workflow.actions[0];
    assert_eq!(wipe.state, State::Success);
    assert_eq!(wipe.started_at.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    assert_eq!(wipe.stopped_at.as_deref(), Some("2023-11-14T22:13:22.500Z"));
    assert_eq!(wipe.duration_ms, Some(2500));
}

#[test]
fn deleting_hardware_in_use_is_refused_until_its_workflow_is_gone() {
    let db = TestDb::new();
    let store = db.open();
    let workflow = seed(&store);
    let error = store.delete_hardware(MAC).unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    store.delete_workflow(&workflow.id).unwrap();
    store.delete_hardware(MAC).unwrap();
    assert!(matches!(
        store.get_hardware(HARDWARE_ID),
        Err(StoreError::NotFound { .. })
    ));
}
