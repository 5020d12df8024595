//! `provisioner profile ...` and `provisioner node ...` end to end, on a database the test
//! also reads through the library.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::cli::{json, ok, run};
use common::{TEMPLATE, TestDb};
use provisioner::store::{Discovery, Identity, NewLogLine, NodeState};
use serde_json::Value;

const MAC: &str = "52:54:00:ee:00:01";

/// The error a failing command prints.
fn refused(db: &TestDb, args: &[&str]) -> String {
    let output = run(db, args);
    assert!(!output.status.success(), "{args:?} should fail");
    String::from_utf8(output.stderr).unwrap()
}

/// A template and a default profile "edge" made through the CLI.
fn profile(db: &TestDb) {
    let dir = &common::fleet::artifacts_dir(db.dir.path());
    for file in ["vmlinuz", "initrd", "template.yaml"] {
        let body = if file == "template.yaml" {
            TEMPLATE
        } else {
            file
        };
        std::fs::write(dir.join(file), body).unwrap();
    }
    let path = |file: &str| dir.join(file).display().to_string();
    ok(
        db,
        &["template", "create", "--file", &path("template.yaml")],
    );
    let create = |kernel: &str, extra: &[&str]| {
        let mut args = vec!["profile", "create", "--name", "edge", "--kernel", kernel];
        let initramfs = path("initrd");
        args.extend(["--initramfs", &initramfs, "--template", "three-actions"]);
        args.extend(["--os-image", "http://x/os.img"]);
        args.extend_from_slice(extra);
        run(db, &args)
    };
    let bad = create(&path("missing"), &[]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("kernel: cannot read"), "{stderr}");
    let created = create(
        &path("vmlinuz"),
        &["--json", "--cmdline", "console=ttyS0", "--default"],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["is_default"], true);
    assert_eq!(created["cmdline"], "console=ttyS0");
}

#[test]
fn profiles_are_created_listed_and_the_default_switched() {
    let db = TestDb::new();
    profile(&db);
    assert_eq!(
        ok(&db, &["profile", "list"]).trim(),
        "edge  http://x/os.img  (default)"
    );
    assert!(ok(&db, &["profile", "show", "edge"]).contains("cmdline console=ttyS0"));
    assert!(ok(&db, &["profile", "default", "--none"]).contains("unregistered nodes are refused"));
    assert_eq!(json(&db, &["profile", "show", "edge"])["is_default"], false);
    ok(&db, &["profile", "default", "edge"]);
    assert_eq!(json(&db, &["profile", "list"])[0]["is_default"], true);
    ok(&db, &["profile", "delete", "edge"]);
    assert_eq!(json(&db, &["profile", "list"]), serde_json::json!([]));
}

#[test]
fn nodes_are_registered_imported_listed_and_unregistered() {
    let db = TestDb::new();
    profile(&db);
    let placeholder = refused(
        &db,
        &[
            "node",
            "register",
            "--serial",
            "Default string",
            "--profile",
            "edge",
        ],
    );
    assert!(
        placeholder
            .contains("is an OEM placeholder, not a serial; register this node by UUID or MAC"),
        "{placeholder}"
    );
    let registered = json(
        &db,
        &[
            "node",
            "register",
            "--mac",
            "52-54-00-EE-00-01",
            "--profile",
            "edge",
            "--hostname",
            "h1",
            "--meta",
            "dest_disk=/dev/sda",
        ],
    );
    assert_eq!(registered["registration"]["mac"], MAC);
    assert_eq!(
        registered["registration"]["metadata"]["dest_disk"],
        "/dev/sda"
    );

    let csv = db.dir.path().join("regs.csv");
    std::fs::write(&csv, "Serial,UUID,OSProfile\nSN-2,,edge\nSN-3,,nope\n").unwrap();
    let bad = refused(&db, &["node", "import", "--file", csv.to_str().unwrap()]);
    assert!(
        bad.contains("nothing was stored") && bad.contains("line 3, column OSProfile"),
        "{bad}"
    );
    std::fs::write(&csv, "Serial,UUID,OSProfile\nSN-2,,edge\n\"SN-3\",,edge\n").unwrap();
    assert_eq!(
        json(&db, &["node", "import", "--file", csv.to_str().unwrap()])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let nodes = json(&db, &["node", "list"]);
    let states: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["registered"; 3]);
    let listed = ok(&db, &["node", "list"]);
    assert!(
        listed.lines().any(|line| line.starts_with(MAC)
            && line.split_whitespace().any(|cell| cell == "registered")),
        "{listed}"
    );

    let id = registered["registration"]["id"].as_str().unwrap();
    ok(&db, &["node", "unregister", id]);
    assert_eq!(
        json(&db, &["node", "registrations"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_node_is_shown_with_its_actions_and_timeline_and_re_armed() {
    let db = TestDb::new();
    profile(&db);
    let store = db.open();
    let discovered = store
        .discover(&Discovery {
            identity: Identity::new(Some("SN-1"), None, &[MAC]),
            ip: Some("10.1.1.1".into()),
            ..Default::default()
        })
        .unwrap();
    let shown = ok(&db, &["node", "show", "SN-1"]);
    assert!(shown.contains(&format!("node {MAC}")), "{shown}");
    assert!(shown.contains("  1/3 wipe: PENDING"), "{shown}");
    assert!(shown.contains("workflow-created: workflow "), "{shown}");
    let detail = json(&db, &["node", "show", MAC]);
    assert_eq!(
        detail["workflow"]["id"].as_str(),
        discovered.workflow_id.as_deref()
    );

    let rearmed = json(&db, &["node", "reprovision", MAC]);
    assert_eq!(rearmed["state"], "registered");
    assert_eq!(store.get_node(MAC).unwrap().state, NodeState::Registered);
    assert!(ok(&db, &["node", "show", MAC]).contains("reprovision: re-armed from discovered"));
    let missing = refused(&db, &["node", "show", "nobody"]);
    assert!(
        missing.contains("no node nobody (`provisioner node list` shows"),
        "{missing}"
    );
}

fn log_line(text: &str) -> NewLogLine {
    NewLogLine {
        source: "kernel".into(),
        severity: 6,
        sent_at: Some("2026-11-22T06:00:00Z".into()),
        text: text.into(),
    }
}

/// A child process killed when the test ends, even on failure.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn node_logs_print_time_source_and_text_and_follow_new_lines() {
    let db = TestDb::new();
    profile(&db);
    let store = db.open();
    store
        .discover(&Discovery {
            identity: Identity::new(None, None, &[MAC]),
            ..Default::default()
        })
        .unwrap();
    store
        .append_logs(MAC, &[log_line("first"), log_line("second")])
        .unwrap();
    assert_eq!(
        ok(&db, &["node", "logs", MAC]),
        "2026-11-22T06:00:00Z kernel: first\n2026-11-22T06:00:00Z kernel: second\n"
    );
    let lines = json(&db, &["node", "logs", MAC, "--lines", "1"]);
    let first_seq = lines[0]["seq"].as_i64().unwrap().to_string();
    assert_eq!(
        ok(&db, &["node", "logs", MAC, "--since-seq", &first_seq]),
        "2026-11-22T06:00:00Z kernel: second\n"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--db")
        .arg(db.path())
        .args(["node", "logs", MAC, "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Running(child);
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let wait = Duration::from_secs(20);
    assert!(received.recv_timeout(wait).unwrap().ends_with("first"));
    assert!(received.recv_timeout(wait).unwrap().ends_with("second"));
    store.append_logs(MAC, &[log_line("third")]).unwrap();
    assert!(
        received
            .recv_timeout(wait)
            .unwrap()
            .ends_with("kernel: third")
    );
}

#[test]
fn node_show_gives_the_hardware_inventory_discovery_reported() {
    let db = TestDb::new();
    profile(&db);
    let store = db.open();
    let in_band = serde_json::json!({
        "cpu": {"totalThreads": 4},
        "memory": {"totalBytes": 2_147_483_648_u64},
        "blockDevices": [{"name": "vda", "sizeBytes": 8_589_934_592_u64, "model": "QEMU"}],
        "networkInterfaces": [{"name": "eth0", "ports": [{"mac": MAC, "speedMbps": 1000}]}],
    });
    store
        .discover(&Discovery {
            identity: Identity::new(Some("SN-HW"), None, &[MAC]),
            attributes: Some(serde_json::json!({"inBand": in_band})),
            ..Default::default()
        })
        .unwrap();
    let shown = ok(&db, &["node", "show", MAC]);
    assert!(shown.contains("  CPU threads 4"), "{shown}");
    assert!(shown.contains("  memory 2147483648 bytes"), "{shown}");
    assert!(
        shown.contains("  disk vda 8589934592 bytes QEMU"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("  NIC eth0 {MAC} 1000 Mbit/s")),
        "{shown}"
    );
    let detail = json(&db, &["node", "show", MAC]);
    assert_eq!(detail["inBand"]["memory"]["totalBytes"], 2_147_483_648_u64);
}
