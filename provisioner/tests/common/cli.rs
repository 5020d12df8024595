//! The `provisioner` binary run on a test's database, as a user would.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::TestDb;

/// `provisioner --db <the test's database> ARGS...`, run to completion.
pub fn run(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--db")
        .arg(db.path())
        .args(args)
        .output()
        .unwrap()
}

/// The standard output of a command that must succeed (its standard error in the failure).
pub fn ok(db: &TestDb, args: &[&str]) -> String {
    let output = run(db, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `--json` answer of a command that must succeed.
pub fn json(db: &TestDb, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(db, &all)).unwrap()
}

/// `provisioner init --dir DIR`: a site's CA, server and node-CA certificates and admin token,
/// as an operator makes them first.
pub fn init(dir: &Path) {
    let init = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["init", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
}
