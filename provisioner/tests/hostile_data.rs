//! Issue 15 §2: what a node reports is data. Hostile serials and hardware strings go through
//! the real onboarding gRPC (device discovery's `OnboardNodeStream`) into the workflow the node
//! is then served: either the value is refused at arrival, naming the field, or the workflow
//! has exactly the template's actions and the value verbatim where the template put it.

mod common;

use common::fleet::{OS_IMAGE, create_profile_from};
use common::onboarding::OnboardingStream;
use common::{TestDb, TestServer};
use onboarding_proto::v1::{OnboardNodeStreamRequest, OnboardNodeStreamResponse};
use provisioner::store::Workflow;
use tonic::Code;

/// The documented `{{.serial}}` (double-quoted, single-quoted, inside a plain scalar, in a
/// flow sequence) and an inventory string, in a template of one task with two actions.
const TEMPLATE: &str = r#"
version: "0.1"
name: uses-the-serial
global_timeout: 600
tasks:
  - name: os
    worker: "{{.device_1}}"
    actions:
      - name: label
        image: 127.0.0.1:5000/label:1
        command: ["sh", "-c", "echo {{.serial}}"]
        environment:
          QUOTED: "{{.serial}}"
          SINGLE: '{{.serial}}'
          PLAIN: serial-{{.serial}} end
          SYSTEM: "{{ .hardware.status.attributes.inBand.product.name }}"
      - name: reboot
        image: 127.0.0.1:5000/reboot:1
"#;

/// The issue's attack and its variants: YAML structure, YAML syntax, template syntax,
/// and characters YAML or a terminal treat as breaks.
const HOSTILE: &[&str] = &[
    "x\"\n  - name: evil\n    image: attacker/evil",
    "x\"\n      - name: evil\n        image: attacker/evil",
    "x\", EVIL: \"y",
    "x' ]\n      - name: evil\n        image: attacker/evil #",
    "{{.device_1}}",
    "}}{{",
    "{{ (index .hardware.status.attributes.inBand.disks 0).name }}",
    "# a comment",
    "&anchor x",
    "*alias",
    "!!map {image: attacker/evil}",
    "[attacker/evil]",
    "{image: attacker/evil}",
    "a\tb",
    "a\u{2028}b\u{2029}c",
    "a\u{85}b",
    "- name: evil",
    "---\nimage: attacker/evil",
    "null",
    "  leading and trailing  ",
];

fn request(mac: &str, serial: &str, product: &str) -> OnboardNodeStreamRequest {
    let hardware = serde_json::json!({ "inBand": { "product": { "name": product } } });
    OnboardNodeStreamRequest {
        uuid: String::new(),
        serialnum: serial.into(),
        mac_id: mac.into(),
        host_ip: "127.0.0.9".into(),
        mac_ids: Vec::new(),
        hardware_json: hardware.to_string(),
        bootkit_csr_pem: String::new(),
    }
}

fn code(response: &OnboardNodeStreamResponse) -> Code {
    Code::from_i32(response.status.as_ref().map_or(-1, |status| status.code))
}

/// What the node is served: its workflow's actions as (name, image, command, environment).
fn served(workflow: &Workflow) -> Vec<(String, String)> {
    workflow
        .actions
        .iter()
        .map(|action| (action.name.clone(), action.image.clone()))
        .collect()
}

fn expected_actions() -> Vec<(String, String)> {
    [
        ("label", "127.0.0.1:5000/label:1"),
        ("reboot", "127.0.0.1:5000/reboot:1"),
    ]
    .map(|(name, image)| (name.to_string(), image.to_string()))
    .to_vec()
}

/// One hostile value through onboarding; returns whether it was refused at arrival.
async fn onboard(
    server: &TestServer,
    stream: &mut OnboardingStream,
    mac: &str,
    serial: &str,
    product: &str,
) -> bool {
    let answer = stream.ask(request(mac, serial, product)).await;
    if code(&answer) == Code::InvalidArgument {
        let message = &answer.status.as_ref().unwrap().message;
        assert!(
            message.contains("serial") || message.contains("attributes"),
            "a refusal names the field: {message}"
        );
        assert!(server.store.get_node(mac).is_err(), "refused: not stored");
        return true;
    }
    assert_eq!(code(&answer), Code::Ok, "{serial:?}: {answer:?}");
    let node = server.store.get_node(mac).unwrap();
    let workflow_id = node.workflow_id.clone().expect("the node got a workflow");
    let workflow = server.store.get_workflow(&workflow_id).unwrap();
    assert_eq!(served(&workflow), expected_actions(), "{serial:?}");
    let label = &workflow.actions[0];
    let reported = node.serial.clone().unwrap_or_default();
    if !bootkit_common::identity::is_placeholder(serial) {
        // Verbatim: only the surrounding blanks are trimmed, as for every identity.
        assert_eq!(reported, serial.trim(), "the serial is stored as sent");
    }
    assert_eq!(label.command, ["sh", "-c", &format!("echo {reported}")]);
    for expected in [
        format!("QUOTED={reported}"),
        format!("SINGLE={reported}"),
        format!("PLAIN=serial-{reported} end"),
    ] {
        assert!(
            label.environment.contains(&expected),
            "{expected:?} of {serial:?}: {:?}",
            label.environment
        );
    }
    assert!(
        label.environment.contains(&format!("SYSTEM={product}")),
        "{product:?}: {:?}",
        label.environment
    );
    assert_eq!(label.environment.len(), 4, "{:?}", label.environment);
    // Nothing else was scheduled for anybody.
    assert_eq!(
        server.store.list_workflows().unwrap().len(),
        server
            .store
            .list_nodes()
            .unwrap()
            .iter()
            .filter(|node| node.workflow_id.is_some())
            .count()
    );
    false
}

#[tokio::test]
async fn hostile_identities_are_refused_or_rendered_as_values() {
    let db = TestDb::new();
    create_profile_from(&db.open(), db.dir.path(), "edge", TEMPLATE, OS_IMAGE);
    let server = TestServer::start(&db.path()).await;
    let mut stream = OnboardingStream::open(&server).await;
    let mut refused = Vec::new();
    let mut rendered = Vec::new();
    for (index, hostile) in HOSTILE.iter().enumerate() {
        // The serial and, separately, the inventory string (with a serial of its own: a serial
        // names one node).
        let plain_serial = format!("SN-{index}");
        for (offset, (serial, product)) in
            [(*hostile, "Standard PC"), (plain_serial.as_str(), *hostile)]
                .into_iter()
                .enumerate()
        {
            let mac = format!("52:54:00:ee:{index:02x}:{offset:02x}");
            if onboard(&server, &mut stream, &mac, serial, product).await {
                refused.push((serial.to_string(), product));
            } else {
                rendered.push((serial.to_string(), product));
            }
        }
    }
    // The attack with newlines is refused at arrival; the YAML and template syntax that is
    // printable ASCII arrives and is rendered as a value.
    let case = |serial: &str, product: &'static str| (serial.to_string(), product);
    assert!(
        refused.contains(&case(HOSTILE[0], "Standard PC")),
        "{refused:?}"
    );
    assert!(
        rendered.contains(&case("x\", EVIL: \"y", "Standard PC")),
        "{rendered:?}"
    );
    assert!(
        rendered.contains(&case("{{.device_1}}", "Standard PC")),
        "{rendered:?}"
    );
    assert!(
        rendered.contains(&case("SN-10", HOSTILE[10])),
        "{rendered:?}"
    );
}

/// A seeded generator (the tree has no property-testing crate) of serials from YAML's and
/// Go template's punctuation: every one is refused at arrival or leaves the action list as
/// the template has it.
#[tokio::test]
async fn random_identities_never_change_the_actions() {
    const PIECES: &[&str] = &[
        "\"",
        "'",
        "\n",
        "  - ",
        ": ",
        "{{",
        "}}",
        "{{.device_1}}",
        "#",
        "&a",
        "*a",
        "!!str",
        "\t",
        "\u{2028}",
        "\\",
        "[",
        "]",
        "{",
        "}",
        ",",
        "|",
        ">",
        "---",
        "?",
        "-",
        "x",
        "name: evil",
        "image: attacker/evil",
        " ",
        "%",
        "@",
        "`",
    ];
    let db = TestDb::new();
    create_profile_from(&db.open(), db.dir.path(), "edge", TEMPLATE, OS_IMAGE);
    let server = TestServer::start(&db.path()).await;
    let mut stream = OnboardingStream::open(&server).await;
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        // xorshift64: deterministic, so a failure reproduces.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut refused = 0;
    let mut seen = std::collections::HashSet::new();
    for index in 0..200u32 {
        let length = 1 + next() % 8;
        let serial: String = (0..length)
            .map(|_| PIECES[usize::try_from(next()).unwrap_or(0) % PIECES.len()])
            .collect();
        // A serial names one node, and a node enrolled once cannot onboard again (first
        // contact wins): a serial drawn twice is left out.
        if !seen.insert(serial.trim().to_string()) {
            continue;
        }
        let [_, _, third, fourth] = index.to_be_bytes();
        let mac = format!("52:54:00:ef:{third:02x}:{fourth:02x}");
        if onboard(&server, &mut stream, &mac, &serial, "Standard PC").await {
            refused += 1;
        }
    }
    assert!(
        refused > 0 && refused < seen.len(),
        "{refused} of {} refused",
        seen.len()
    );
}

/// A node's log line that would clear the operator's screen (`ESC[2J`), return the cursor and
/// cut a C string is shown escaped by `node logs` and `node show`, one line per log line;
/// `--json` carries it exactly (JSON's own escaping, read back by serde_json).
#[test]
fn the_cli_escapes_control_characters_from_nodes() {
    use provisioner::store::{Discovery, Identity, NewLogLine};

    const MAC: &str = "52:54:00:ee:ff:01";
    const HOSTILE_LINE: &str = "wipe\u{1b}[2J\rdone\0\u{9b}31m\nforged line";
    let db = TestDb::new();
    let store = db.open();
    common::fleet::create_profile(&store, db.dir.path());
    store
        .discover(&Discovery {
            identity: Identity::new(Some("SN-ESC"), None, &[MAC]),
            ..Default::default()
        })
        .unwrap();
    store
        .append_logs(
            MAC,
            &[NewLogLine {
                source: "tink-worker".into(),
                severity: 6,
                sent_at: Some("2026-11-22T06:00:00Z".into()),
                text: HOSTILE_LINE.into(),
            }],
        )
        .unwrap();
    let shown = common::cli::ok(&db, &["node", "logs", MAC]);
    assert_eq!(
        shown,
        "2026-11-22T06:00:00Z tink-worker: wipe\\u{1b}[2J\\rdone\\0\\u{9b}31m\\nforged line\n"
    );
    let logs = common::cli::json(&db, &["node", "logs", MAC]);
    assert_eq!(logs[0]["text"], HOSTILE_LINE);
    // `node show` and `node list` hold no raw control character either.
    for args in [
        ["node", "show", MAC].as_slice(),
        ["node", "list"].as_slice(),
    ] {
        let text = common::cli::ok(&db, args);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {text:?}"
        );
    }
}
