//! A store holding nodes in every state, through the store's own API: registration, device
//! discovery and workers' action reports.

use std::path::Path;

use provisioner::state::State;
use provisioner::store::{
    ActionReport, Discovery, Identity, ProfileSpec, RegistrationSpec, ReportTarget, Store,
};

use super::TEMPLATE;

pub const PROFILE: &str = "edge";
/// Never fetched: these tests run no workers.
pub const OS_IMAGE: &str = "http://images.invalid/edge.raw.zst";

/// One node of the fleet and what the API and page must show for it.
pub struct FleetNode {
    pub mac: &'static str,
    pub serial: &'static str,
    pub uuid: &'static str,
    pub state: &'static str,
    pub progress: Option<&'static str>,
    pub failure: Option<&'static str>,
}

pub const FAILURE: &str = "disk /dev/vda not found";
pub const LOG_LINE: &str = "wipe: looking for /dev/vda";

pub const FLEET: [FleetNode; 5] = [
    FleetNode {
        mac: "52:54:00:00:00:01",
        serial: "SN-REGISTERED",
        uuid: "00000000-0000-4000-8000-000000000001",
        state: "registered",
        progress: None,
        failure: None,
    },
    FleetNode {
        mac: "52:54:00:00:00:02",
        serial: "SN-DISCOVERED",
        uuid: "00000000-0000-4000-8000-000000000002",
        state: "discovered",
        progress: Some("1/3: wipe"),
        failure: None,
    },
    FleetNode {
        mac: "52:54:00:00:00:03",
        serial: "SN-PROVISIONING",
        uuid: "00000000-0000-4000-8000-000000000003",
        state: "provisioning",
        progress: Some("2/3: write"),
        failure: None,
    },
    FleetNode {
        mac: "52:54:00:00:00:04",
        serial: "SN-FAILED",
        uuid: "00000000-0000-4000-8000-000000000004",
        state: "failed",
        progress: Some("1/3: wipe [failed: disk /dev/vda not found]"),
        failure: Some(FAILURE),
    },
    FleetNode {
        mac: "52:54:00:00:00:05",
        serial: "SN-PROVISIONED",
        uuid: "00000000-0000-4000-8000-000000000005",
        state: "provisioned",
        progress: Some("3/3: reboot"),
        failure: None,
    },
];

/// The artifacts directory of the database in `dir` (`<database dir>/artifacts`, the only
/// place profiles' files may be before a `serve` adds roots), created.
pub fn artifacts_dir(dir: &Path) -> std::path::PathBuf {
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    artifacts
}

/// A profile whose bootkit files exist in the artifacts directory of the database in `dir`.
pub fn create_profile(store: &Store, dir: &Path) {
    create_profile_from(store, dir, PROFILE, TEMPLATE, OS_IMAGE);
}

/// The default profile `name`: a template from `template`, bootkit files under `dir`, and
/// `os_image`.
pub fn create_profile_from(store: &Store, dir: &Path, name: &str, template: &str, os_image: &str) {
    let template = store.create_template(template, None).unwrap();
    let dir = &artifacts_dir(dir);
    for file in ["vmlinuz", "initramfs.img"] {
        std::fs::write(dir.join(file), file).unwrap();
    }
    let path = |file: &str| dir.join(file).display().to_string();
    store
        .create_profile(&ProfileSpec {
            name: name.into(),
            kernel: path("vmlinuz"),
            initramfs: path("initramfs.img"),
            template: template.id,
            os_image: os_image.into(),
            default: true,
            ..Default::default()
        })
        .unwrap();
}

/// Registers all of [`FLEET`], discovers all but the first, and reports their workflows'
/// actions so that each ends in its state. Returns the failed node's id.
pub fn seed_fleet(store: &Store, dir: &Path) -> String {
    create_profile(store, dir);
    let mut failed_id = String::new();
    for node in &FLEET {
        store
            .register(&RegistrationSpec {
                serial: Some(node.serial.into()),
                uuid: Some(node.uuid.into()),
                mac: Some(node.mac.into()),
                profile: PROFILE.into(),
                ..Default::default()
            })
            .unwrap();
        if node.state == "registered" {
            continue;
        }
        let discovered = store
            .discover(&Discovery {
                identity: Identity::new(Some(node.serial), Some(node.uuid), &[node.mac]),
                ip: Some("10.0.0.9".into()),
                ..Default::default()
            })
            .unwrap();
        let workflow_id = discovered.workflow_id.unwrap();
        let reports: &[(usize, State, &str)] = match node.state {
            "provisioning" => &[(0, State::Success, ""), (1, State::Running, "")],
            "failed" => &[(0, State::Failed, FAILURE)],
            "provisioned" => &[
                (0, State::Success, ""),
                (1, State::Success, ""),
                (2, State::Success, ""),
            ],
            _ => &[],
        };
        let workflow = store.get_workflow(&workflow_id).unwrap();
        for (index, state, message) in reports {
            report(
                store,
                &workflow_id,
                &workflow.actions[*index].action_id,
                node.mac,
                *state,
                message,
            );
        }
        if node.state == "failed" {
            failed_id = discovered.node.id.clone();
            store
                .append_logs(
                    &failed_id,
                    &[provisioner::store::NewLogLine {
                        source: "tink-worker".into(),
                        severity: 6,
                        sent_at: None,
                        text: LOG_LINE.into(),
                    }],
                )
                .unwrap();
        }
    }
    failed_id
}

/// A worker's reports of one action: RUNNING, then (unless `state` is RUNNING) `state` with
/// `message`, 2.5 s after it started.
pub fn report(
    store: &Store,
    workflow_id: &str,
    action_id: &str,
    mac: &str,
    state: State,
    message: &str,
) {
    let started = ActionReport {
        workflow_id,
        target: ReportTarget::ActionId(action_id),
        agent: mac,
        state: State::Running,
        started_ms: Some(1_700_000_000_000),
        stopped_ms: None,
        duration_ms: None,
        message: "",
    };
    store.report(&started).unwrap();
    if state != State::Running {
        store
            .report(&ActionReport {
                state,
                stopped_ms: Some(1_700_000_002_500),
                message,
                ..started
            })
            .unwrap();
    }
}
