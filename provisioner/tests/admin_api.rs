//! The admin API's nodes, registrations and profiles over a running admin listener, on a store
//! holding nodes in every state.

mod common;

use common::TestDb;
use common::admin::{AdminServer, token_options};
use common::fleet::{FAILURE, FLEET, LOG_LINE, PROFILE, create_profile, seed_fleet};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn node_by_mac<'a>(nodes: &'a Value, mac: &str) -> &'a Value {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["macs"].as_array().unwrap().iter().any(|m| m == mac))
        .unwrap_or_else(|| panic!("no node with MAC {mac} in {nodes}"))
}

#[tokio::test]
async fn nodes_show_identity_state_progress_and_failure() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    seed_fleet(&server.store, db.dir.path());
    let api = server.client();

    let (status, nodes) = api.get("/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK, "{nodes}");
    assert_eq!(nodes.as_array().unwrap().len(), FLEET.len(), "{nodes}");
    for expected in &FLEET {
        let node = node_by_mac(&nodes, expected.mac);
        assert_eq!(node["serial"], expected.serial, "{node}");
        assert_eq!(node["uuid"], expected.uuid, "{node}");
        assert_eq!(node["state"], expected.state, "{node}");
        assert_eq!(node["progress_text"], json!(expected.progress), "{node}");
        assert_eq!(node["failure"], json!(expected.failure), "{node}");
    }
}

#[tokio::test]
async fn a_node_shows_its_actions_timeline_and_logs_by_any_of_its_keys() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    seed_fleet(&server.store, db.dir.path());
    let api = server.client();
    let failed = &FLEET[3];

    for key in [failed.mac, failed.serial, failed.uuid] {
        let (status, node) = api.get(&format!("/api/v1/nodes/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{key}: {node}");
        assert_eq!(node["state"], "failed");
        let actions = node["workflow"]["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 3);
        assert_eq!(actions[0]["state"], "FAILED");
        assert_eq!(actions[0]["message"], FAILURE);
        assert!(!node["timeline"].as_array().unwrap().is_empty(), "{node}");
    }

    let (status, lines) = api
        .get(&format!(
            "/api/v1/nodes/{}/logs?after=0&limit=10",
            failed.mac
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{lines}");
    assert_eq!(lines[0]["text"], LOG_LINE);
    let last = lines.as_array().unwrap().last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    let (_, newer) = api
        .get(&format!("/api/v1/nodes/{}/logs?after={last}", failed.mac))
        .await;
    assert_eq!(newer, json!([]), "nothing after the last line");

    let (status, error) = api.get("/api/v1/nodes/52:54:00:ff:ff:ff").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("52:54:00:ff:ff:ff")
    );
    let (status, _) = api.get("/api/v1/nodes/52:54:00:ff:ff:ff/logs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reprovisioning_rearms_a_provisioned_node() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    seed_fleet(&server.store, db.dir.path());
    let api = server.client();
    let provisioned = &FLEET[4];

    let (status, node) = api
        .post(
            &format!("/api/v1/nodes/{}/reprovision", provisioned.mac),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    assert_ne!(node["state"], "provisioned", "{node}");
    let (_, detail) = api.get(&format!("/api/v1/nodes/{}", provisioned.mac)).await;
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"reprovision"), "{kinds:?}");
}

async fn import(server: &AdminServer, csv: String) -> (StatusCode, Value) {
    let response = server
        .client()
        .raw(
            reqwest::Method::POST,
            "/api/v1/registrations/import",
            "text/csv",
            Some(csv),
        )
        .await;
    common::admin::json_of(response).await
}

#[tokio::test]
async fn registrations_are_created_imported_listed_and_deleted() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    create_profile(&server.store, db.dir.path());
    let api = server.client();

    let (status, registered) = api
        .post(
            "/api/v1/registrations",
            json!({"serial": "SN-1", "mac": "52:54:00:AA:BB:CC", "profile": PROFILE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["registration"]["mac"], "52:54:00:aa:bb:cc");
    let id = registered["registration"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, error) = api
        .post(
            "/api/v1/registrations",
            json!({"serial": "SN-2", "profile": "nope"}),
        )
        .await;
    assert!(status.is_client_error(), "{status} {error}");
    assert!(error["error"].as_str().unwrap().contains("nope"), "{error}");

    let csv = format!(
        "Serial,UUID,OSProfile,Site,Secure,RemoteUser,Metadata\n\
         SN-10,11111111-2222-4333-8444-555555555555,{PROFILE},,,,\n\
         SN-11,,{PROFILE},,,,\n"
    );
    let (status, imported) = import(&server, csv).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert_eq!(imported.as_array().unwrap().len(), 2, "{imported}");

    let bad = format!("SN-20,,{PROFILE},,,,\nSN-21,,no-such-profile,,,,\n");
    let (status, error) = import(&server, bad).await;
    assert!(status.is_client_error(), "{status} {error}");
    assert!(
        error["error"].as_str().unwrap().contains('2'),
        "names the line: {error}"
    );

    let (_, all) = api.get("/api/v1/registrations").await;
    let serials: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|registration| registration["serial"].as_str())
        .collect();
    assert_eq!(serials.len(), 3, "all or none of an import: {serials:?}");
    assert!(serials.contains(&"SN-1") && serials.contains(&"SN-10") && serials.contains(&"SN-11"));

    let (status, _) = api.delete(&format!("/api/v1/registrations/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.delete(&format!("/api/v1/registrations/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/api/v1/registrations")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn profiles_are_created_read_defaulted_and_deleted_when_unused() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    create_profile(&server.store, db.dir.path());
    let api = server.client();
    let template_id = server.store.list_templates().unwrap()[0].id.clone();
    let artifacts = common::fleet::artifacts_dir(db.dir.path());
    let kernel = artifacts.join("vmlinuz").display().to_string();
    let initramfs = artifacts.join("initramfs.img").display().to_string();

    let spec = json!({
        "name": "lab", "kernel": kernel, "initramfs": initramfs, "template": template_id,
        "os_image": "http://images.example/os.raw.zst", "cmdline": "console=ttyS0"
    });
    let (status, profile) = api.post("/api/v1/profiles", spec.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    assert_eq!(profile["template_id"], template_id.as_str());
    let (status, _) = api.post("/api/v1/profiles", spec).await;
    assert_eq!(status, StatusCode::CONFLICT, "the name is taken");
    let (status, error) = api
        .post("/api/v1/profiles", json!({"name": "x", "kernel": "/nonexistent", "initramfs": initramfs, "template": template_id, "os_image": "http://x/y"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"].as_str().unwrap().starts_with("kernel"),
        "{error}"
    );

    assert_eq!(
        api.get("/api/v1/profiles/lab").await.1["cmdline"],
        "console=ttyS0"
    );
    assert_eq!(
        api.get("/api/v1/profiles")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get("/api/v1/profiles/default").await.1,
        json!({"name": PROFILE})
    );

    let (status, _) = api
        .put("/api/v1/profiles/default", json!({"name": "lab"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.get("/api/v1/profiles/default").await.1,
        json!({"name": "lab"})
    );
    let (status, _) = api
        .put("/api/v1/profiles/default", json!({"name": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.get("/api/v1/profiles/default").await.1,
        json!({"name": null})
    );

    api.post(
        "/api/v1/registrations",
        json!({"serial": "SN-1", "profile": "lab"}),
    )
    .await;
    let (status, error) = api.delete("/api/v1/profiles/lab").await;
    assert_eq!(status, StatusCode::CONFLICT, "in use: {error}");
    let (status, _) = api.delete(&format!("/api/v1/profiles/{PROFILE}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&format!("/api/v1/profiles/{PROFILE}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
