//! The hardware inventory device discovery reports in `hardware_json.inBand` (Tinkerbell's
//! Hardware `status.attributes.inBand` shape), through the real onboarding server: stored per
//! node, shown by the admin API as `attributes.inBand`, and usable in the profile's template
//! as upstream's `.hardware.status.attributes.inBand...` paths.
//!
//! The document sent is written here from upstream's field list (tinkerbell/tinkerbell
//! `api/v1alpha1/tinkerbell/hardware.go`, type `Attributes`), not produced by our own
//! collector, so that the two halves cannot agree on a wrong name.

mod common;

use common::admin::{AdminServer, token_options};
use common::fleet::create_profile_from;
use common::onboarding::OnboardingStream;
use common::{TestDb, TestServer};
use onboarding_proto::NodeState;
use onboarding_proto::v1::{OnboardNodeStreamRequest, OnboardNodeStreamResponse};
use provisioner::store::{Discovery, Identity};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

const MAC: &str = "52:54:00:ee:00:01";
const BARE_MAC: &str = "52:54:00:ee:00:02";

/// A template that sizes its install from the inventory, in upstream's template paths.
const SIZED_TEMPLATE: &str = r#"
version: "0.1"
name: sized-install
tasks:
  - name: os
    worker: "{{.device_1}}"
    actions:
      - name: write
        image: 127.0.0.1:5000/image2disk:1
        environment:
          DEST_DISK: "/dev/{{ (index .hardware.status.attributes.inBand.blockDevices 0).name }}"
          MEMORY_BYTES: "{{ .hardware.status.attributes.inBand.memory.totalBytes }}"
          SPEED: "{{ (index .hardware.status.attributes.inBand.networkInterfaces 0).ports.0.speedMbps }}"
          SYSTEM: "{{ .hardware.status.attributes.inBand.product.name }}"
          FLAGS: "{{ (index .hardware.status.attributes.inBand.cpu.sockets 0).capabilities }}"
"#;

/// A Dell server as Tinkerbell's `Attributes` type spells it: exact bytes, Mbit/s.
fn in_band() -> Value {
    json!({
        "collectionMethod": "agent",
        "cpu": {
            "totalCores": 16,
            "totalThreads": 32,
            "sockets": [{"vendor": "AuthenticAMD", "model": "AMD EPYC 7313P 16-Core Processor",
                         "cores": 16, "threads": 32, "capabilities": ["fpu", "avx2"]}]
        },
        "memory": {"totalBytes": 68_719_476_736u64, "usableBytes": 67_108_864_000u64},
        "blockDevices": [
            {"name": "nvme0n1", "controllerType": "nvme", "driveType": "SSD",
             "sizeBytes": 960_197_124_096u64, "physicalBlockSizeBytes": 4096,
             "wwn": "eui.36344730526054870025384500000001"},
            {"name": "sda", "controllerType": "sata", "driveType": "HDD",
             "sizeBytes": 4_000_787_030_016u64}
        ],
        "networkInterfaces": [
            {"name": "eno1", "ports": [{"mac": MAC, "speedMbps": 25000, "mtu": 1500,
                                        "linkStatus": "up"}]}
        ],
        "product": {"name": "PowerEdge R6515", "vendor": "Dell Inc.", "serialNumber": "7XJ4K53"},
        "tpms": [{"interfaceType": "TPM2_0"}]
    })
}

fn request(mac: &str, hardware: &Value) -> OnboardNodeStreamRequest {
    OnboardNodeStreamRequest {
        uuid: String::new(),
        serialnum: String::new(),
        mac_id: mac.into(),
        host_ip: "127.0.0.9".into(),
        mac_ids: Vec::new(),
        hardware_json: hardware.to_string(),
        bootkit_csr_pem: String::new(),
    }
}

/// A store with the default profile "sized" (its template [`SIZED_TEMPLATE`]), its
/// onboarding and admin servers, and an onboarding stream open; the database lives as long
/// as the first element.
async fn sized_site() -> (TestDb, TestServer, AdminServer, OnboardingStream) {
    let db = TestDb::new();
    create_profile_from(
        &db.open(),
        db.dir.path(),
        "sized",
        SIZED_TEMPLATE,
        "http://images.invalid/os.raw.zst",
    );
    let server = TestServer::start(&db.path()).await;
    let admin = AdminServer::start(&db.path(), token_options()).await;
    let stream = OnboardingStream::open(&server).await;
    (db, server, admin, stream)
}

fn status(response: &OnboardNodeStreamResponse) -> (Code, String) {
    let status = response.status.clone().unwrap_or_default();
    (Code::from_i32(status.code), status.message)
}

#[tokio::test]
async fn an_onboarded_nodes_inventory_is_stored_shown_and_rendered_into_its_workflow() {
    let (_db, server, admin, mut stream) = sized_site().await;
    let api = admin.client();

    let hardware = json!({"product": {"vendor": "Dell Inc."}, "inBand": in_band()});
    let onboarded = stream.ask(request(MAC, &hardware)).await;
    assert_eq!(status(&onboarded).0, Code::Ok, "{onboarded:?}");
    assert_eq!(onboarded.node_state, NodeState::Onboarded as i32);

    // The API shows it as Tinkerbell's status.attributes, stamped with its arrival.
    let (code, node) = api.get(&format!("/api/v1/nodes/{MAC}")).await;
    assert_eq!(code, StatusCode::OK, "{node}");
    let mut shown = node["attributes"]["inBand"].clone();
    let stamped = shown["lastUpdated"]
        .as_str()
        .expect("lastUpdated is set")
        .to_string();
    humantime::parse_rfc3339(&stamped).unwrap();
    shown.as_object_mut().unwrap().remove("lastUpdated");
    assert_eq!(shown, in_band(), "stored as sent, exact numbers kept");
    assert_eq!(
        node["attributes"]["inBand"]["blockDevices"][1]["sizeBytes"],
        4_000_787_030_016u64
    );

    // The template's inventory paths are rendered into the workflow.
    let workflow = server
        .store
        .get_workflow(node["workflow_id"].as_str().unwrap())
        .unwrap();
    // The workflow keeps what it was rendered with, as its hardware map does for `device_1`.
    assert_eq!(
        workflow.hardware["hardware.status.attributes.inBand.memory.totalBytes"],
        "68719476736"
    );
    let environment = &workflow.actions[0].environment;
    for expected in [
        "DEST_DISK=/dev/nvme0n1",
        "MEMORY_BYTES=68719476736",
        "SPEED=25000",
        "SYSTEM=PowerEdge R6515",
        "FLAGS=[fpu avx2]",
    ] {
        assert!(
            environment.iter().any(|entry| entry == expected),
            "{expected} in {environment:?}"
        );
    }

    // A report without an inventory keeps the last one; a new inventory replaces it. Each
    // report is an enrollment, allowed again by the operator (first contact wins).
    server.store.approve_enrollment(MAC).unwrap();
    let again = stream.ask(request(MAC, &json!({"memory": {}}))).await;
    assert_eq!(status(&again).0, Code::Ok, "{again:?}");
    let kept = server.store.node_in_band(MAC).unwrap().unwrap();
    assert_eq!(kept["memory"]["totalBytes"], 68_719_476_736u64);
    let mut upgraded = in_band();
    upgraded["memory"]["totalBytes"] = json!(137_438_953_472u64);
    server.store.approve_enrollment(MAC).unwrap();
    let again = stream.ask(request(MAC, &json!({"inBand": upgraded}))).await;
    assert_eq!(status(&again).0, Code::Ok, "{again:?}");
    let (_, node) = api.get(&format!("/api/v1/nodes/{MAC}")).await;
    assert_eq!(
        node["attributes"]["inBand"]["memory"]["totalBytes"],
        137_438_953_472u64
    );
}

#[tokio::test]
async fn a_malformed_inventory_or_a_missing_one_the_template_needs_is_refused_by_name() {
    let (_db, _server, admin, mut stream) = sized_site().await;

    let malformed = stream
        .ask(request(BARE_MAC, &json!({"inBand": "16 GiB"})))
        .await;
    let (code, message) = status(&malformed);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("hardware_json.inBand"), "{message}");

    // This profile's template reads the inventory: a node that sends none cannot be given a
    // workflow, and the refusal names the path the template wanted.
    let bare = stream.ask(request(BARE_MAC, &json!({}))).await;
    let (code, message) = status(&bare);
    assert_ne!(code, Code::Ok);
    assert!(
        message.contains("hardware.status.attributes.inBand.blockDevices.0.name"),
        "{message}"
    );
    // A refused report stores nothing.
    let (code, _) = admin
        .client()
        .get(&format!("/api/v1/nodes/{BARE_MAC}"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_node_whose_discovery_sent_no_inventory_shows_no_attributes() {
    let db = TestDb::new();
    let store = db.open();
    common::fleet::create_profile(&store, db.dir.path());
    store
        .discover(&Discovery {
            identity: Identity::new(None, None, &[BARE_MAC]),
            attributes: Some(json!({"memory_bytes": 4_294_967_296u64})),
            ..Default::default()
        })
        .unwrap();
    drop(store);
    let admin = AdminServer::start(&db.path(), token_options()).await;
    let (code, node) = admin
        .client()
        .get(&format!("/api/v1/nodes/{BARE_MAC}"))
        .await;
    assert_eq!(code, StatusCode::OK, "{node}");
    assert_eq!(node["state"], "discovered", "{node}");
    assert!(node.get("attributes").is_none(), "{node}");
}
