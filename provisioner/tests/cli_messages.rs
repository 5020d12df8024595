//! What the `provisioner` binary tells a user on a database on this host: no database made
//! under a misspelt path, `node list`'s table (checked against util-linux's `column -t`),
//! `-o json|yaml`, "did you mean", the registration CSV's errors, and `serve`'s start-up
//! warnings about profiles.

mod common;

use std::process::{Command, Output, Stdio};

use common::TestDb;
use common::serve_child::{LogLines, ServeChild};
use provisioner::store::RegistrationSpec;

const PROVISIONER: &str = env!("CARGO_BIN_EXE_provisioner");

fn provisioner(args: &[&str]) -> Output {
    Command::new(PROVISIONER).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The default profile (its files in the artifacts directory) and two registered nodes.
fn fleet() -> TestDb {
    let db = TestDb::new();
    let store = db.open();
    common::fleet::create_profile(&store, db.dir.path());
    for (serial, mac) in [
        ("HUX0010", "52:54:00:aa:00:10"),
        ("HUX0020-LONGER", "52:54:00:aa:00:20"),
    ] {
        store
            .register(&RegistrationSpec {
                serial: Some(serial.into()),
                mac: Some(mac.into()),
                profile: common::fleet::PROFILE.into(),
                ..Default::default()
            })
            .unwrap();
    }
    db
}

#[test]
fn a_misspelt_db_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("provisoner.db");
    let output = provisioner(&["node", "list", "--db", missing.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "the database {} does not exist",
            missing.display()
        )) && message.contains("provisioner serve --db"),
        "{message}"
    );
    assert!(!missing.exists(), "the CLI created {}", missing.display());
}

#[test]
fn global_flags_go_after_the_subcommand_and_version_is_printed() {
    let db = fleet();
    let db_path = db.path();
    let after = provisioner(&["node", "list", "--db", db_path.to_str().unwrap(), "--json"]);
    assert!(after.status.success(), "{}", stderr(&after));
    let nodes: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 2);

    let version = provisioner(&["--version"]);
    assert_eq!(
        stdout(&version).trim(),
        format!("provisioner {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn node_list_has_a_header_and_the_columns_column_t_makes() {
    let db = fleet();
    let db_path = db.path();
    let db_arg = db_path.to_str().unwrap();
    for wide in [false, true] {
        let mut args = vec!["--db", db_arg, "node", "list"];
        if wide {
            args.extend(["-o", "wide"]);
        }
        let table = stdout(&provisioner(&args));
        let header = table.lines().next().unwrap();
        assert!(
            header.starts_with("ID  ") && header.contains("SERIAL") && header.contains("STATE"),
            "{table}"
        );
        assert_eq!(header.contains("MACS"), wide, "{table}");
        assert!(table.contains("HUX0020-LONGER"), "{table}");
        // No cell holds a space here, so util-linux's column(1) must lay the table out
        // exactly as the CLI did.
        let mut column = Command::new("column")
            .arg("-t")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("column(1) from bsdextrautils (scripts/setup.sh installs it)");
        std::io::Write::write_all(&mut column.stdin.take().unwrap(), table.as_bytes()).unwrap();
        let aligned = column.wait_with_output().unwrap();
        assert_eq!(table, String::from_utf8(aligned.stdout).unwrap());
    }

    let yaml = stdout(&provisioner(&[
        "--db", db_arg, "node", "list", "-o", "yaml",
    ]));
    let nodes: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(nodes[0]["serial"], "HUX0010", "{yaml}");
    let json = stdout(&provisioner(&[
        "--db", db_arg, "node", "list", "-o", "json",
    ]));
    let nodes: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(nodes[1]["serial"], "HUX0020-LONGER", "{json}");
}

#[test]
fn a_mistyped_serial_gets_the_nearest_one() {
    let db = fleet();
    let db_path = db.path();
    let output = provisioner(&["--db", db_path.to_str().unwrap(), "node", "show", "HUX001O"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no node HUX001O; did you mean HUX0010?"),
        "{}",
        stderr(&output)
    );
    let far = provisioner(&["--db", db_path.to_str().unwrap(), "node", "show", "ZZZZZZ"]);
    let message = stderr(&far);
    assert!(
        message.contains("no node ZZZZZZ (") && !message.contains("did you mean"),
        "{message}"
    );
}

fn import(db: &TestDb, csv: &str) -> Output {
    let file = db.dir.path().join("regs.csv");
    std::fs::write(&file, csv).unwrap();
    let db_path = db.path();
    provisioner(&[
        "--db",
        db_path.to_str().unwrap(),
        "node",
        "import",
        "--file",
        file.to_str().unwrap(),
    ])
}

#[test]
fn a_csv_column_that_is_not_known_is_refused_by_name() {
    let db = fleet();
    let output = import(&db, "Serial,UID,OSProfile\nHUX0030,abc,edge\n");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(r#""UID" is not a known column; did you mean UUID?"#)
            && message.contains("known columns: Serial, UUID, MAC")
            && message.contains("meta.uid")
            && message.contains("nothing was stored"),
        "{message}"
    );
    assert_eq!(db.open().list_registrations().unwrap().len(), 2);

    // Metadata columns are named with `meta.`; OEP's Site stays metadata too.
    let output = import(
        &db,
        "Serial,OSProfile,Site,meta.rack\nHUX0030,edge,lab,r7\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let registration = db
        .open()
        .list_registrations()
        .unwrap()
        .into_iter()
        .find(|registration| registration.serial.as_deref() == Some("HUX0030"))
        .unwrap();
    assert_eq!(registration.metadata["rack"], "r7");
    assert_eq!(registration.metadata["site"], "lab");
}

#[test]
fn duplicate_rows_name_the_line_or_the_registration_that_exists() {
    let db = fleet();
    let output = import(&db, "Serial,OSProfile\nHUX0040,edge\nHUX0040,edge\n");
    let message = stderr(&output);
    assert!(
        message.contains("line 3: serial HUX0040 is on line 2 of this file too"),
        "{message}"
    );
    assert_eq!(db.open().list_registrations().unwrap().len(), 2);

    // A row naming a node registered before: the message names that registration, which
    // `node registrations` lists.
    let existing = db
        .open()
        .list_registrations()
        .unwrap()
        .into_iter()
        .find(|registration| registration.serial.as_deref() == Some("HUX0010"))
        .unwrap();
    let output = import(&db, "Serial,OSProfile\nHUX0010,edge\n");
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "serial HUX0010 is already registered as {}",
            existing.id
        )),
        "{message}"
    );
    let db_path = db.path();
    let listed = stdout(&provisioner(&[
        "--db",
        db_path.to_str().unwrap(),
        "node",
        "registrations",
    ]));
    assert!(listed.contains(&existing.id), "{listed}");
}

/// `serve`'s log lines up to and including the one containing `until` (bounded wait).
fn serve_log(db: &TestDb, args: &[&str], until: &str) -> (ServeChild, Vec<String>) {
    let mut child = Command::new(PROVISIONER)
        .arg("--db")
        .arg(db.path())
        .args(["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--allow-unauthenticated-workers"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = LogLines::of(&mut child);
    let serve = ServeChild(child);
    log.until(until);
    (serve, log.seen)
}

#[test]
fn serve_warns_about_profiles_it_cannot_serve_and_says_where_its_page_is() {
    let db = fleet();
    let artifacts = common::fleet::artifacts_dir(db.dir.path());
    std::fs::remove_file(artifacts.join("vmlinuz")).unwrap();
    let (_serve, log) = serve_log(&db, &["--admin-insecure-no-auth"], "status page");
    let log = log.join("\n");
    let profile = common::fleet::PROFILE;
    assert!(
        log.contains(&format!(
            "profile {profile}: its kernel {} does not exist",
            artifacts.join("vmlinuz").display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("profile {profile}: its initramfs"))
            && log.contains("boot HTTP is off: give --advertise IP"),
        "{log}"
    );
    assert!(
        log.contains("status page and admin API at http://127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn serve_warns_that_http_boot_over_https_only_is_out_of_edk2s_reach() {
    let db = fleet();
    let dir = db.dir.path();
    let (ca, ca_key) = common::pki::ca("boot https test");
    let cert = common::pki::write(dir, "boot.crt", &ca.pem());
    let key = common::pki::write(dir, "boot.key", &ca_key.serialize_pem());
    let uki = common::pki::write(dir, "bootkit.efi", "the site UKI");
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert, key, uki) = (path(&cert), path(&key), path(&uki));
    let args = [
        "--admin-insecure-no-auth",
        "--advertise",
        "127.0.0.1",
        "--tftp",
        "off",
        "--syslog",
        "off",
        "--boot-http",
        "off",
        "--boot-https",
        "127.0.0.1:0",
        "--boot-tls-cert",
        &cert,
        "--boot-tls-key",
        &key,
        "--http-boot-uki",
        &uki,
    ];
    let (_serve, log) = serve_log(&db, &args, "status page");
    let log = log.join("\n");
    assert!(
        log.contains("--http-boot-uki is served over HTTPS only (--boot-http off)")
            && log.contains("keep --boot-http on for HTTP boot"),
        "{log}"
    );
}
