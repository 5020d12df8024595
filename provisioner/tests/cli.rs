//! The `provisioner` binary end to end: CLI commands on a database, and `serve` as a
//! child process answering a worker.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::actions::get_action;
use common::cli::{json, run};
use common::serve_child::{ServeChild, free_port};
use common::{MAC, TEMPLATE, TestDb};
use serde_json::Value;
use tink_proto::current::workflow_service_client::WorkflowServiceClient;

/// `workflow create` of the template for the test's hardware, through the CLI.
fn create_workflow(db: &TestDb, template_id: &str) -> Value {
    let map = format!(r#"{{"device_1": "{MAC}"}}"#);
    let args = [
        "workflow",
        "create",
        "--template",
        template_id,
        "--hardware",
        &map,
    ];
    json(db, &args)
}

fn write(db: &TestDb, name: &str, contents: &str) -> String {
    let path = db.dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_cli_creates_lists_shows_and_deletes() {
    let db = TestDb::new();
    let hardware_file = write(
        &db,
        "h.json",
        &format!(r#"{{"id": "m1", "macs": ["{MAC}"], "ips": ["127.0.0.3"]}}"#),
    );
    let template_file = write(&db, "t.yaml", TEMPLATE);

    assert_eq!(
        json(&db, &["hardware", "create", "--file", &hardware_file])["id"],
        "m1"
    );
    let template = json(
        &db,
        &[
            "template",
            "create",
            "--file",
            &template_file,
            "--name",
            "install",
        ],
    );
    assert_eq!(template["name"], "install");
    let template_id = template["id"].as_str().unwrap();
    let workflow = create_workflow(&db, template_id);
    let workflow_id = workflow["id"].as_str().unwrap();
    assert_eq!(json(&db, &["workflow", "list"])[0]["id"], workflow_id);
    assert_eq!(
        json(&db, &["template", "get", template_id])["data"],
        TEMPLATE
    );

    let shown = run(&db, &["workflow", "get", workflow_id]);
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(text.contains("state: PENDING"), "{text}");
    assert!(text.contains("disk/wipe  PENDING  worker m1"), "{text}");
    assert!(text.contains("finish/reboot  PENDING"), "{text}");

    assert!(
        run(&db, &["workflow", "delete", workflow_id])
            .status
            .success()
    );
    assert!(run(&db, &["hardware", "delete", "m1"]).status.success());
    assert_eq!(json(&db, &["hardware", "list"]), Value::Array(vec![]));
}

#[test]
fn the_cli_names_the_bad_field_and_fails() {
    let db = TestDb::new();
    let bad = write(
        &db,
        "bad.yaml",
        &TEMPLATE.replace("    worker: \"{{.device_1}}\"\n    volumes", "    volumes"),
    );
    let output = run(&db, &["template", "create", "--file", &bad]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim(), "provisioner: tasks[0].worker: missing");
    assert_eq!(json(&db, &["template", "list"]), Value::Array(vec![]));

    let output = run(&db, &["workflow", "get", "nope"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("workflow \"nope\" not found"));
}

#[tokio::test]
async fn serve_answers_workers_for_workflows_the_cli_created() {
    let db = TestDb::new();
    let hardware_file = write(
        &db,
        "h.json",
        &format!(r#"{{"id": "m1", "macs": ["{MAC}"]}}"#),
    );
    let template_file = write(&db, "t.yaml", TEMPLATE);
    json(&db, &["hardware", "create", "--file", &hardware_file]);
    let template = json(&db, &["template", "create", "--file", &template_file]);

    let (grpc, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--db")
        .arg(db.path())
        .args(["serve", "--grpc", &grpc, "--http", &http])
        // The admin API is not what this test is about, nor are node credentials (its
        // worker is a plaintext client).
        .arg("--admin-insecure-no-auth")
        .arg("--allow-unauthenticated-workers")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = ServeChild(child);

    // The CLI writes to the database the server has open.
    let workflow = create_workflow(&db, template["id"].as_str().unwrap());

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        match WorkflowServiceClient::connect(format!("http://{grpc}")).await {
            Ok(client) => break client,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("provisioner serve did not come up on {grpc}: {error}"),
        }
    };
    let request = get_action(MAC);
    let action = client.get_action(request).await.unwrap().into_inner();
    assert_eq!(action.workflow_id(), workflow["id"].as_str().unwrap());
    assert_eq!(action.name(), "wipe");
}
