//! The REST/JSON API's records (templates, hardware, workflows) over a running server.

mod common;

use common::admin::{ADMIN_TOKEN, AdminClient};
use common::{MAC, TEMPLATE, TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn templates_hardware_and_workflows_are_created_listed_read_and_deleted() {
    let db = TestDb::new();
    let server = TestServer::start(&db.path()).await;
    let api = AdminClient::new(server.http_url(), Some(ADMIN_TOKEN));

    let (status, hardware) = api
        .post(
            "/api/v1/hardware",
            json!({"id": "m1", "macs": [MAC], "ips": ["127.0.0.9"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hardware}");
    assert_eq!(hardware["macs"], json!([MAC]));
    let (status, template) = api
        .post(
            "/api/v1/templates",
            json!({"name": "install", "data": TEMPLATE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    assert_eq!(template["name"], "install");
    let template_id = template["id"].as_str().unwrap();

    let (status, workflow) = api
        .post(
            "/api/v1/workflows",
            json!({"template": template_id, "hardware": {"device_1": MAC}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{workflow}");
    assert_eq!(workflow["state"], "PENDING");
    assert_eq!(workflow["actions"][0]["worker"], "m1");
    let workflow_id = workflow["id"].as_str().unwrap();

    let (status, fetched) = api.get(&format!("/api/v1/workflows/{workflow_id}")).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &workflow));
    assert_eq!(
        api.get("/api/v1/hardware")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get(&format!("/api/v1/hardware/{MAC}")).await.1["id"],
        "m1"
    );
    assert_eq!(api.get("/api/v1/templates").await.1[0]["id"], template_id);
    assert_eq!(api.get("/api/v1/workflows").await.1[0]["id"], workflow_id);

    assert_eq!(
        api.delete(&format!("/api/v1/workflows/{workflow_id}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/api/v1/templates/{template_id}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete("/api/v1/hardware/m1").await.0,
        StatusCode::NO_CONTENT
    );
    let (status, error) = api.get(&format!("/api/v1/workflows/{workflow_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error["error"].as_str().unwrap().contains(workflow_id));
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_stores_nothing() {
    let db = TestDb::new();
    let server = TestServer::start(&db.path()).await;
    let api = AdminClient::new(server.http_url(), Some(ADMIN_TOKEN));

    let no_image = TEMPLATE.replace("        image: 127.0.0.1:5000/reboot:1\n", "");
    let (status, body) = api
        .post("/api/v1/templates", json!({"data": no_image}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "tasks[1].actions[0].image: missing");

    let (status, body) = api.post("/api/v1/templates", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("data: missing"),
        "{body}"
    );

    let (status, body) = api
        .post("/api/v1/hardware", json!({"id": "m1", "macs": ["nope"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("macs[0]:"),
        "{body}"
    );

    let (status, body) = api
        .post(
            "/api/v1/workflows",
            json!({"template": "missing", "hardware": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("template:"),
        "{body}"
    );

    let (status, body) = api
        .send(reqwest::Method::POST, "/api/v1/hardware", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("body:"),
        "{body}"
    );

    for path in ["/api/v1/templates", "/api/v1/hardware", "/api/v1/workflows"] {
        assert_eq!(api.get(path).await.1, json!([]), "{path} stored nothing");
    }
}

/// Records applied from Tinkerbell objects have `namespace/name` ids; in a path the `/` is
/// written `%2F`, and the record is found by its whole id.
#[tokio::test]
async fn a_namespace_slash_name_id_is_reached_percent_encoded() {
    let db = TestDb::new();
    let server = TestServer::start(&db.path()).await;
    let api = AdminClient::new(server.http_url(), Some(ADMIN_TOKEN));
    let (status, created) = api
        .post(
            "/api/v1/hardware",
            json!({"id": "default/machine-1", "macs": [MAC]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let (status, fetched) = api.get("/api/v1/hardware/default%2Fmachine-1").await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["id"], "default/machine-1");
    assert_eq!(
        api.delete("/api/v1/hardware/default%2Fmachine-1").await.0,
        StatusCode::NO_CONTENT
    );
}
