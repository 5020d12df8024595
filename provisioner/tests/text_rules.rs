//! Names, ids and free text with control characters are refused where they enter, naming the
//! field, and nothing is stored: over the admin API, CSV import, the CLI and onboarding. A
//! JSON value of the wrong type is refused naming its path.

mod common;

use common::admin::{ADMIN_TOKEN, AdminClient};
use common::fleet::create_profile;
use common::onboarding::OnboardingStream;
use common::{MAC, TEMPLATE, TestDb, TestServer};
use onboarding_proto::v1::OnboardNodeStreamRequest;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

/// NUL cuts C strings, ESC drives terminals, a newline forges log lines and table rows.
const HOSTILE: [(char, &str); 3] = [('\0', "U+0000"), ('\u{1b}', "U+001B"), ('\n', "U+000A")];

/// `reply` is a 400 whose error is about `field` and names the control character.
fn refused(status: StatusCode, reply: &Value, field: &str, code: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!("{field}: contains the control character {code}")),
        "{field}: {error}"
    );
}

async fn count(api: &AdminClient, path: &str) -> usize {
    let (status, list) = api.get(path).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn every_kind_of_record_refuses_control_characters_naming_the_field() {
    let db = TestDb::new();
    let server = TestServer::start(&db.path()).await;
    let api = AdminClient::new(server.http_url(), Some(ADMIN_TOKEN));
    let artifacts = common::fleet::artifacts_dir(db.dir.path());
    for file in ["vmlinuz", "initramfs.img"] {
        std::fs::write(artifacts.join(file), file).unwrap();
    }
    let path = |file: &str| artifacts.join(file).display().to_string();

    // What the refused records would refer to: a template, hardware and a profile.
    let (status, template) = api
        .post(
            "/api/v1/templates",
            json!({"name": "install", "data": TEMPLATE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let template_id = template["id"].as_str().unwrap().to_string();
    let (status, hardware) = api
        .post("/api/v1/hardware", json!({"id": "m1", "macs": [MAC]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hardware}");
    let profile = json!({
        "name": "edge", "kernel": path("vmlinuz"), "initramfs": path("initramfs.img"),
        "template": template_id, "os_image": "http://images.example/os.raw",
    });
    let (status, created) = api.post("/api/v1/profiles", profile.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    for (bad, code) in HOSTILE {
        let text = format!("a{bad}b");
        let (status, reply) = api
            .post(
                "/api/v1/hardware",
                json!({"id": text, "macs": ["52:54:00:00:00:99"]}),
            )
            .await;
        refused(status, &reply, "id", code);
        let (status, reply) = api
            .post("/api/v1/templates", json!({"name": text, "data": TEMPLATE}))
            .await;
        refused(status, &reply, "name", code);
        let (status, reply) = api
            .post(
                "/api/v1/workflows",
                json!({"template": template_id, "hardware": {"device_1": text}}),
            )
            .await;
        refused(status, &reply, "hardware.device_1", code);
        let (status, reply) = api
            .post(
                "/api/v1/workflows",
                json!({"template": template_id, "hardware": {text.clone(): MAC}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert!(
            reply["error"].as_str().unwrap().starts_with(&format!(
                "hardware: a key contains the control character {code}"
            )),
            "{reply}"
        );
        for field in ["name", "cmdline"] {
            let mut bad_profile = profile.clone();
            bad_profile["name"] = json!("edge2");
            bad_profile[field] = json!(text);
            let (status, reply) = api.post("/api/v1/profiles", bad_profile).await;
            refused(status, &reply, field, code);
        }
        for (field, body) in [
            ("serial", json!({"serial": text, "profile": "edge"})),
            (
                "hostname",
                json!({"serial": "SN-1", "hostname": text, "profile": "edge"}),
            ),
            (
                "metadata.site",
                json!({"serial": "SN-1", "metadata": {"site": text}, "profile": "edge"}),
            ),
        ] {
            let (status, reply) = api.post("/api/v1/registrations", body).await;
            if field == "metadata.site" && bad == '\n' {
                // Metadata values are free text (multi-line user-data): a newline is kept,
                // and the registration is stored; deleted again for the counts below.
                assert_eq!(status, StatusCode::CREATED, "{reply}");
                assert_eq!(reply["registration"]["metadata"]["site"], json!(text));
                let id = reply["registration"]["id"].as_str().unwrap();
                let (status, _) = api.delete(&format!("/api/v1/registrations/{id}")).await;
                assert_eq!(status, StatusCode::NO_CONTENT);
                continue;
            }
            refused(status, &reply, field, code);
        }
    }

    // Nothing of the refused records was stored.
    assert_eq!(count(&api, "/api/v1/hardware").await, 1);
    assert_eq!(count(&api, "/api/v1/templates").await, 1);
    assert_eq!(count(&api, "/api/v1/workflows").await, 0);
    assert_eq!(count(&api, "/api/v1/profiles").await, 1);
    assert_eq!(count(&api, "/api/v1/registrations").await, 0);

    // A CSV import with a control character in one cell names its line and column, and
    // stores none of its rows (the good first row neither).
    for (csv, at) in [
        (
            "Serial,UUID,OSProfile,Site\nSN-1,,edge,hall\nSN\u{1b}2,,edge,hall\n",
            "line 3, column Serial",
        ),
        (
            "Serial,UUID,OSProfile,Site\nSN-1,,edge,hall\nSN-2,,edge,ha\u{0}ll\n",
            "line 3, column Site",
        ),
        (
            "Serial,OSProfile,Hostname\nSN-1,edge,\"h\n1\"\n",
            "line 2, column Hostname",
        ),
    ] {
        let response = api
            .raw(
                reqwest::Method::POST,
                "/api/v1/registrations/import",
                "text/csv",
                Some(csv.to_string()),
            )
            .await;
        let (status, reply) = common::admin::json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("{at}: contains the control character")),
            "{csv:?}: {error}"
        );
    }
    assert_eq!(count(&api, "/api/v1/registrations").await, 0);
}

/// The CLI writes through the same store: exit status 1 and the field named on stderr.
#[test]
fn the_cli_refuses_control_characters_naming_the_field() {
    let db = TestDb::new();
    create_profile(&db.open(), db.dir.path());
    let output = common::cli::run(
        &db,
        &[
            "node",
            "register",
            "--serial",
            "SN\u{1b}[2J",
            "--profile",
            common::fleet::PROFILE,
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("serial: contains the control character U+001B"),
        "{stderr}"
    );
    // The message quotes the value escaped: no raw ESC reaches the operator's terminal.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(db.open().list_registrations().unwrap().is_empty());
}

#[tokio::test]
async fn onboarding_refuses_a_serial_with_a_control_character() {
    let db = TestDb::new();
    create_profile(&db.open(), db.dir.path());
    let server = TestServer::start(&db.path()).await;
    let mut stream = OnboardingStream::open(&server).await;
    let answer = stream
        .ask(OnboardNodeStreamRequest {
            uuid: "4c4c4544-0042-3510-8051-b7c04f4e5933".into(),
            serialnum: "SN\u{1b}]0;owned\u{7}".into(),
            mac_id: "52:54:00:dd:00:01".into(),
            host_ip: "127.0.0.9".into(),
            ..Default::default()
        })
        .await;
    let status = answer.status.unwrap();
    assert_eq!(
        Code::from_i32(status.code),
        Code::InvalidArgument,
        "{status:?}"
    );
    assert!(
        status
            .message
            .starts_with("serialnum: contains the control character U+001B"),
        "{}",
        status.message
    );
    assert!(answer.client_secret.is_empty());
    assert!(db.open().list_nodes().unwrap().is_empty());
}

/// serde_path_to_error's documented path form: fields joined by `.`, sequence indexes in
/// brackets.
#[tokio::test]
async fn a_wrong_json_type_is_refused_naming_its_path() {
    let db = TestDb::new();
    let server = TestServer::start(&db.path()).await;
    let api = AdminClient::new(server.http_url(), Some(ADMIN_TOKEN));
    let (status, reply) = api
        .post("/api/v1/hardware", json!({"id": "m1", "macs": [5]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.starts_with("macs[0]: invalid type: integer `5`, expected a string"),
        "{error}"
    );
    let (status, reply) = api
        .post(
            "/api/v1/registrations",
            json!({"serial": "SN-1", "profile": "edge", "metadata": {"site": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.starts_with("metadata.site: invalid type: boolean `true`, expected a string"),
        "{error}"
    );
    // A body that is not JSON at all is about the body.
    let response = api
        .raw(
            reqwest::Method::POST,
            "/api/v1/hardware",
            "application/json",
            Some("{".into()),
        )
        .await;
    let (status, reply) = common::admin::json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("body: not the expected JSON"),
        "{reply}"
    );
    assert_eq!(count(&api, "/api/v1/hardware").await, 0);
}
