//! Tinkerbell's objects in and out: `provisioner apply -f` takes upstream's own example
//! objects, `provisioner get -o yaml|json` writes them back, and a workflow applied as an
//! object is served to a worker over upstream's protocol (tink-proto's generated client).
//!
//! The objects are upstream's, copied from (tinkerbell/tinkerbell at 9111b51, and
//! tinkerbell/playground) with `$VARIABLES` filled in:
//! - `pkg/backend/file/testdata/example.yaml` (a v1alpha1 Hardware list, the first two),
//! - playground `vagrant/hardware.yaml`, `vagrant/template.yaml` (image2disk, cexec,
//!   writefile, kexec through waitdaemon) and `vagrant/workflow.yaml`,
//! - `cmd/agent/example/grpc_template.yaml` (the agent's example Template),
//! - `docs/technical/v1alpha2/hardware.yaml` (v1alpha2 Hardware, trimmed to its network
//!   interface and a few other fields).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::cli::{ok, run};
use common::{MAC, TestDb, TestServer, actions};
use serde_json::Value;
use tink_proto::current::StateType;

/// pkg/backend/file/testdata/example.yaml, its first two entries (a bare sequence, as
/// upstream's file backend reads it).
const FILE_BACKEND_HARDWARE: &str = r#"- apiVersion: tinkerbell.org/v1alpha1
  kind: Hardware
  metadata:
    name: pxe-virtualbox
    namespace: default
  spec:
    interfaces:
    - dhcp:
        mac: "08:00:27:29:4e:67"
        hostname: "pxe-virtualbox"
        domain_name: "example.com"
        name_servers:
        - "8.8.8.8"
        - "1.1.1.1"
        time_servers:
        - "132.163.96.2"
        - "132.163.96.3"
        lease_time: 86400
        ip:
          address: "192.168.2.153"
          netmask: "255.255.255.0"
          gateway: "192.168.2.1"
      netboot:
        allowPXE: true
        ipxe:
          url: "https://boot.netboot.xyz"
- apiVersion: tinkerbell.org/v1alpha1
  kind: Hardware
  metadata:
    name: sandbox
    namespace: default
  spec:
    interfaces:
    - dhcp:
        mac: "52:54:00:aa:88:2a"
        hostname: "sandbox"
        domain_name: "example.com"
        name_servers:
        - "8.8.8.8"
        - "1.1.1.1"
        time_servers:
        - "132.163.96.2"
        - "132.163.96.3"
        lease_time: 86400
        ip:
          address: "192.168.2.15"
          netmask: "255.255.255.0"
          gateway: "192.168.2.1"
      netboot:
        allowPXE: true
        ipxe:
          url: "https://boot.netboot.xyz"
"#;

/// playground vagrant/hardware.yaml ($DISK_DEVICE, $TINKERBELL_CLIENT_MAC/IP filled in).
const PLAYGROUND_HARDWARE: &str = r#"apiVersion: "tinkerbell.org/v1alpha1"
kind: Hardware
metadata:
  name: machine1
spec:
  disks:
    - device: /dev/vda
  metadata:
    facility:
      facility_code: playground
    instance:
      hostname: "machine1"
      id: "52:54:00:12:34:56"
      operating_system:
        distro: "ubuntu"
        os_slug: "ubuntu_20_04"
        version: "20.04"
  interfaces:
    - dhcp:
        arch: x86_64
        hostname: machine1
        ip:
          address: 127.0.0.2
          netmask: 255.255.255.0
        lease_time: 86400
        mac: "52:54:00:12:34:56"
        name_servers:
          - 1.1.1.1
          - 8.8.8.8
        uefi: false
      netboot:
        allowPXE: true
        allowWorkflow: true
"#;

/// playground vagrant/template.yaml: Go template expressions beyond `{{.key}}`, and
/// image2disk, cexec, writefile and kexec actions.
const PLAYGROUND_TEMPLATE: &str = r#"apiVersion: "tinkerbell.org/v1alpha1"
kind: Template
metadata:
  name: ubuntu-focal
spec:
  data: |
    version: "0.1"
    name: ubuntu_Focal
    global_timeout: 1800
    tasks:
      - name: "os-installation"
        worker: "{{.device_1}}"
        volumes:
          - /dev:/dev
          - /dev/console:/dev/console
          - /lib/firmware:/lib/firmware:ro
        actions:
          - name: "stream-ubuntu-image"
            image: quay.io/tinkerbell/actions/image2disk:v1.0.0
            timeout: 600
            environment:
              DEST_DISK: {{ index .Hardware.Disks 0 }}
              IMG_URL: "http://$TINKERBELL_HOST_IP:8080/jammy-server-cloudimg-amd64.raw.gz"
              COMPRESSED: true
          - name: "grow-partition"
            image: quay.io/tinkerbell/actions/cexec:v1.0.0
            timeout: 90
            environment:
              BLOCK_DEVICE: {{ index .Hardware.Disks 0 }}1
              FS_TYPE: ext4
              CHROOT: y
              DEFAULT_INTERPRETER: "/bin/sh -c"
              CMD_LINE: "growpart {{ index .Hardware.Disks 0 }} 1 && resize2fs {{ index .Hardware.Disks 0 }}1"
          - name: "write-netplan"
            image: quay.io/tinkerbell/actions/writefile:v1.0.0
            timeout: 90
            environment:
              DEST_DISK: {{ index .Hardware.Disks 0 }}1
              FS_TYPE: ext4
              DEST_PATH: /etc/netplan/config.yaml
              CONTENTS: |
                network:
                  version: 2
                  renderer: networkd
                  ethernets:
                    id0:
                      match:
                        name: en*
                      dhcp4: true
              UID: 0
              GID: 0
              MODE: 0644
              DIRMODE: 0755
          - name: "kexec"
            image: ghcr.io/jacobweinstock/waitdaemon:latest
            timeout: 90
            pid: host
            environment:
              BLOCK_DEVICE: {{ formatPartition ( index .Hardware.Disks 0 ) 1 }}
              FS_TYPE: ext4
              IMAGE: quay.io/tinkerbell/actions/kexec:v1.0.0
              WAIT_SECONDS: 10
            volumes:
              - /var/run/docker.sock:/var/run/docker.sock
"#;

/// cmd/agent/example/grpc_template.yaml (actions 1, 2 and 6 of its six).
const AGENT_TEMPLATE: &str = r#"apiVersion: "tinkerbell.org/v1alpha1"
kind: Template
metadata:
  name: testing
  namespace: tink
spec:
  data: |
    version: "0.1"
    name: test
    global_timeout: 9800
    tasks:
      - name: "os-installation"
        worker: "{{.device_1}}"
        actions:
          - name: "action 1"
            image: bash
            timeout: 9600
            command: ["sleep", "2"]
          - name: "action 2"
            image: bash
            timeout: 90
            command: ["sleep", "2"]
          - name: "action 6"
            image: bash
            timeout: 90
            pid: host
            command: ["sleep", "2"]
"#;

/// playground vagrant/workflow.yaml, in the agent template's namespace.
const PLAYGROUND_WORKFLOW: &str = r#"apiVersion: "tinkerbell.org/v1alpha1"
kind: Workflow
metadata:
  name: playground-workflow
  namespace: tink
spec:
  templateRef: testing
  hardwareRef: machine1
  hardwareMap:
    device_1: 52:54:00:12:34:56
"#;

/// docs/technical/v1alpha2/hardware.yaml, trimmed.
const V1ALPHA2_HARDWARE: &str = r#"apiVersion: tinkerbell.org/v1alpha2
kind: Hardware
metadata:
  name: example
  namespace: tinkerbell
  annotations:
    tinkerbell.org/disabled: "hardware is under maintenance"
spec:
  agentID: "1234"
  arch: "x86_64"
  auto:
    enrollmentEnabled: false
  networkInterfaces:
    "52:54:00:41:05:c6":
      dhcp:
        ipv4:
          disabled: false
          hostname: "example"
          leaseTimeSeconds: 86400
          nameservers:
            - "1.1.1.1"
          vlanID: "110"
      ipam:
        ipv4:
          address: "192.168.1.100"
          gateway: "192.168.1.1"
          prefix: "24"
      netboot:
        disabled: false
        ipxe:
          binary: "snp-x86_64.efi"
          script: |
            dhcp
            chain --autofree https://boot.netboot.xyz
"#;

/// Every YAML document of `text` as JSON values; a bare sequence gives its items.
fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    let mut all = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value =
            serde_json::to_value(serde_yaml_ng::Value::deserialize(document).unwrap()).unwrap();
        match value {
            Value::Null => {}
            Value::Array(items) => all.extend(items),
            value => all.push(value),
        }
    }
    all
}

/// An applied object as `get` is expected to give it back: with the namespace filled in.
fn as_applied(mut object: Value) -> Value {
    let metadata = object["metadata"].as_object_mut().unwrap();
    metadata
        .entry("namespace")
        .or_insert_with(|| Value::String("default".into()));
    object
}

/// What `get` wrote, without what the provisioner adds: `status` and the creation time.
fn without_server_fields(mut object: Value) -> Value {
    let map = object.as_object_mut().unwrap();
    map.remove("status");
    let metadata = map["metadata"].as_object_mut().unwrap();
    assert!(
        metadata.remove("creationTimestamp").is_some(),
        "get writes metadata.creationTimestamp: {object}"
    );
    object
}

/// `provisioner apply -f -` with `text` on standard input: (success, stdout, stderr).
fn apply_stdin(db: &TestDb, text: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--db")
        .arg(db.path())
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn apply_ok(db: &TestDb, text: &str) -> String {
    let (success, stdout, stderr) = apply_stdin(db, text);
    assert!(success, "apply failed: {stderr}\n{text}");
    stdout
}

/// Applies `input`, reads every object back with `get <kind> NAME -o yaml` and `-o json`,
/// compares each to its input as values, and applies the output again: `unchanged`.
fn round_trip(db: &TestDb, kind: &str, input: &str) {
    let created = apply_ok(db, input);
    let inputs = documents(input);
    assert_eq!(created.lines().count(), inputs.len(), "{created}");
    assert!(
        created.lines().all(|line| line.ends_with(" created")),
        "{created}"
    );
    for object in inputs {
        let expected = as_applied(object);
        let id = format!(
            "{}/{}",
            expected["metadata"]["namespace"].as_str().unwrap(),
            expected["metadata"]["name"].as_str().unwrap()
        );
        let yaml = ok(db, &["get", kind, &id, "-o", "yaml"]);
        let from_yaml = documents(&yaml).remove(0);
        assert_eq!(without_server_fields(from_yaml), expected, "{yaml}");
        let json_text = ok(db, &["get", kind, &id, "-o", "json"]);
        let json: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(without_server_fields(json), expected);
        // JSON is YAML: the JSON output applies as it is.
        let again = apply_ok(db, &json_text);
        assert!(again.trim_end().ends_with(" unchanged"), "{again}");
        let again = apply_ok(db, &yaml);
        assert!(again.trim_end().ends_with(" unchanged"), "{again}");
    }
    // The whole list, as `get KIND -o yaml` writes it, applies unchanged too.
    let list = ok(db, &["get", kind, "-o", "yaml"]);
    let again = apply_ok(db, &list);
    assert!(
        again.lines().all(|line| line.ends_with(" unchanged")),
        "{again}"
    );
}

#[test]
fn upstream_hardware_examples_round_trip_through_apply_and_get() {
    let db = TestDb::new();
    round_trip(&db, "hardware", FILE_BACKEND_HARDWARE);
    round_trip(&db, "hw", PLAYGROUND_HARDWARE);
    round_trip(&db, "hardware.tinkerbell.org", V1ALPHA2_HARDWARE);

    // Their MACs and IPs are the records' (how a node is matched), under namespace/name ids.
    let store = db.open();
    let sandbox = store.get_hardware("52:54:00:aa:88:2a").unwrap();
    assert_eq!(sandbox.id, "default/sandbox");
    assert_eq!(sandbox.ips, ["192.168.2.15"]);
    let machine = store.get_hardware("default/machine1").unwrap();
    assert_eq!(machine.macs, [MAC]);
    let v2 = store.get_hardware("52:54:00:41:05:c6").unwrap();
    assert_eq!(v2.id, "tinkerbell/example");
    assert_eq!(v2.ips, ["192.168.1.100"]);
    let listed = ok(&db, &["hardware", "list"]);
    assert!(
        listed.contains("default/pxe-virtualbox  08:00:27:29:4e:67"),
        "{listed}"
    );
}

#[test]
fn upstream_templates_round_trip_and_keep_go_template_text() {
    let db = TestDb::new();
    round_trip(&db, "template", PLAYGROUND_TEMPLATE);
    round_trip(&db, "tpl", AGENT_TEMPLATE);
    let stored = db.open().get_template("default/ubuntu-focal").unwrap();
    assert!(stored.data.contains("{{ index .Hardware.Disks 0 }}"));
    assert_eq!(stored.name, "ubuntu-focal");
}

#[tokio::test]
async fn a_workflow_applied_as_objects_is_served_and_its_status_written_back() {
    let db = TestDb::new();
    // Hardware in the workflow's namespace, as upstream resolves hardwareRef.
    let hardware = PLAYGROUND_HARDWARE.replace(
        "  name: machine1\n",
        "  name: machine1\n  namespace: tink\n",
    );
    let file = format!("{PLAYGROUND_WORKFLOW}---\n{hardware}---\n{AGENT_TEMPLATE}");
    // The workflow comes first in the file: it is applied after what it refers to.
    let applied = apply_ok(&db, &file);
    assert_eq!(
        applied.lines().collect::<Vec<_>>(),
        [
            "hardware.tinkerbell.org/tink/machine1 created",
            "template.tinkerbell.org/tink/testing created",
            "workflow.tinkerbell.org/tink/playground-workflow created",
        ]
    );

    let server = TestServer::start(&db.path()).await;
    let mut client = server.current().await;
    let action = client
        .get_action(actions::get_action(MAC))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(action.workflow_id(), "tink/playground-workflow");
    assert_eq!(action.agent_id(), MAC);
    assert_eq!(action.name(), "action 1");
    assert_eq!(action.image(), "bash");
    assert_eq!(action.timeout(), 9600);
    assert_eq!(action.command, ["sleep", "2"]);
    for (state, stop) in [(StateType::Running, None), (StateType::Success, Some(107))] {
        let report = actions::status(&action, state, 100, stop, "slept");
        client.report_action_status(report).await.unwrap();
    }

    // Status as upstream's v1alpha1 WorkflowStatus: state, tasks with agentID and actions.
    let yaml = ok(
        &db,
        &[
            "get",
            "wf",
            "playground-workflow",
            "-n",
            "tink",
            "-o",
            "yaml",
        ],
    );
    let object = documents(&yaml).remove(0);
    let status = &object["status"];
    assert_eq!(status["state"], "RUNNING", "{yaml}");
    assert_eq!(status["globalTimeout"], 9800);
    let task = &status["tasks"][0];
    assert_eq!(task["name"], "os-installation");
    assert_eq!(task["agentID"], MAC);
    let actions = task["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[0]["name"], "action 1");
    assert_eq!(actions[0]["state"], "SUCCESS");
    assert_eq!(actions[0]["executionStart"], "1970-01-01T00:01:40.000Z");
    assert_eq!(actions[0]["executionDuration"], "7s");
    assert_eq!(actions[0]["message"], "slept");
    assert_eq!(actions[1]["state"], "PENDING");
    assert_eq!(actions[2]["pid"], "host");
    assert_eq!(status["currentState"]["actionName"], "action 2");
    // Its spec is the applied one; applying the output changes nothing.
    assert_eq!(
        without_server_fields(object.clone()),
        as_applied(documents(PLAYGROUND_WORKFLOW).remove(0))
    );
    assert!(apply_ok(&db, &yaml).trim_end().ends_with("unchanged"));

    // A started workflow's spec cannot change; labels can.
    let relabelled = PLAYGROUND_WORKFLOW.replace(
        "  namespace: tink\n",
        "  namespace: tink\n  labels:\n    site: lab\n",
    );
    assert_eq!(
        apply_ok(&db, &relabelled).trim_end(),
        "workflow.tinkerbell.org/tink/playground-workflow configured"
    );
    let retargeted = relabelled.replace("device_1: 52:54:00:12:34:56", "device_1: tink/machine1");
    let (success, _, stderr) = apply_stdin(&db, &retargeted);
    assert!(!success);
    assert!(
        stderr.contains("document 1 (Workflow tink/playground-workflow)")
            && stderr.contains("has started (state RUNNING)"),
        "{stderr}"
    );
}

#[test]
fn a_pending_workflow_is_rendered_again_when_its_spec_changes() {
    let db = TestDb::new();
    let hardware = PLAYGROUND_HARDWARE.replace(
        "  name: machine1\n",
        "  name: machine1\n  namespace: tink\n",
    );
    apply_ok(
        &db,
        &format!("{hardware}---\n{AGENT_TEMPLATE}---\n{PLAYGROUND_WORKFLOW}"),
    );
    let other_template = AGENT_TEMPLATE
        .replace("name: testing", "name: other")
        .replace("\"action 1\"", "\"first\"");
    let retargeted = PLAYGROUND_WORKFLOW.replace("templateRef: testing", "templateRef: other");
    assert_eq!(
        apply_ok(&db, &format!("{other_template}---\n{retargeted}")),
        "template.tinkerbell.org/tink/other created\n\
         workflow.tinkerbell.org/tink/playground-workflow configured\n"
    );
    let workflow = db.open().get_workflow("tink/playground-workflow").unwrap();
    assert_eq!(workflow.template_id, "tink/other");
    assert_eq!(workflow.actions[0].name, "first");
}

#[test]
fn unknown_fields_are_kept_and_named() {
    let db = TestDb::new();
    let input = PLAYGROUND_HARDWARE
        .replace("spec:\n", "spec:\n  colour: blue\n")
        .replace(
            "        uefi: false\n",
            "        uefi: false\n        speed: 25000\n",
        )
        .replace("kind: Hardware\n", "kind: Hardware\nextra:\n  note: kept\n");
    let (success, stdout, stderr) = apply_stdin(&db, &input);
    assert!(success, "{stderr}");
    assert_eq!(stdout, "hardware.tinkerbell.org/default/machine1 created\n");
    for field in ["extra", "spec.colour", "spec.interfaces[0].dhcp.speed"] {
        assert!(
            stderr.contains(&format!(
                "warning: document 1 (Hardware default/machine1): {field}: not a field of \
                 Tinkerbell's tinkerbell.org/v1alpha1 Hardware; kept"
            )),
            "{field}: {stderr}"
        );
    }
    let back = documents(&ok(&db, &["get", "hardware", "machine1", "-o", "yaml"])).remove(0);
    assert_eq!(back["extra"]["note"], "kept");
    assert_eq!(back["spec"]["colour"], "blue");
    assert_eq!(back["spec"]["interfaces"][0]["dhcp"]["speed"], 25000);
    assert_eq!(
        without_server_fields(back),
        as_applied(documents(&input).remove(0))
    );
}

#[test]
fn a_bad_object_names_its_document_kind_name_and_field_and_nothing_is_applied() {
    let db = TestDb::new();
    let bad_mac = PLAYGROUND_HARDWARE
        .replace("name: machine1\n", "name: machine2\n")
        .replace("mac: \"52:54:00:12:34:56\"", "mac: \"52:54:00:12:34\"");
    let (success, _, stderr) = apply_stdin(&db, &format!("{AGENT_TEMPLATE}---\n{bad_mac}"));
    assert!(!success);
    assert!(
        stderr.contains(
            "document 2 (Hardware default/machine2): spec.interfaces[0].dhcp.mac: \"52:54:00:12:34\""
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing applied"), "{stderr}");
    let templates = ok(&db, &["get", "templates"]);
    assert!(!templates.contains("tink/testing"), "{templates}");
    // Wrong shapes are named by their path too.
    let wrong_shape = PLAYGROUND_HARDWARE.replace(
        "ip:\n          address: 127.0.0.2",
        "ip:\n          address: [1]",
    );
    let (success, _, stderr) = apply_stdin(&db, &wrong_shape);
    assert!(!success);
    assert!(
        stderr.contains("document 1 (Hardware default/machine1): spec.interfaces[0].dhcp.ip.address: invalid type"),
        "{stderr}"
    );
    // Envelope errors are found before anything is applied.
    let (success, _, stderr) = apply_stdin(
        &db,
        &format!(
            "{AGENT_TEMPLATE}---\n{}",
            PLAYGROUND_HARDWARE.replace("v1alpha1", "v1beta1")
        ),
    );
    assert!(!success);
    assert!(
        stderr.contains("document 2: apiVersion: \"tinkerbell.org/v1beta1\" is not supported"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing applied"), "{stderr}");
    let templates = ok(&db, &["get", "templates"]);
    assert!(!templates.contains("tink/testing"), "{templates}");
    // A v1alpha2 Workflow (Task-based) is refused with what to write instead.
    let v2_workflow = "apiVersion: tinkerbell.org/v1alpha2\nkind: Workflow\nmetadata: {name: w}\n\
                       spec:\n  tasks:\n  - taskRef: {name: example}\n";
    let (success, _, stderr) = apply_stdin(&db, v2_workflow);
    assert!(!success);
    assert!(
        stderr.contains("document 1 (Workflow default/w): apiVersion: tinkerbell.org/v1alpha2 Workflow is not supported"),
        "{stderr}"
    );
    // A workflow naming hardware that does not exist.
    let (success, _, stderr) = apply_stdin(&db, PLAYGROUND_WORKFLOW);
    assert!(!success);
    assert!(
        stderr.contains(
            "(Workflow tink/playground-workflow): spec.hardwareRef: no Hardware tink/machine1"
        ),
        "{stderr}"
    );
}

#[test]
fn changed_hardware_is_configured_and_matched_by_its_new_mac() {
    let db = TestDb::new();
    apply_ok(&db, PLAYGROUND_HARDWARE);
    let moved = PLAYGROUND_HARDWARE
        .replace("52:54:00:12:34:56", "52:54:00:65:43:21")
        .replace("address: 127.0.0.2", "address: 127.0.0.3");
    assert_eq!(
        apply_ok(&db, &moved),
        "hardware.tinkerbell.org/default/machine1 configured\n"
    );
    let store = db.open();
    assert_eq!(
        store.get_hardware("52:54:00:65:43:21").unwrap().id,
        "default/machine1"
    );
    assert!(store.get_hardware(MAC).is_err());
    assert_eq!(
        store.get_hardware("default/machine1").unwrap().ips,
        ["127.0.0.3"]
    );
    // The old CLI still reaches it by its namespace/name id.
    let output = run(&db, &["hardware", "get", "default/machine1"]);
    assert!(output.status.success());
}
