//! The `bootkit` binary as a user meets it on a workstation: every command's `--help` prints
//! its usage with an example and exits 0, and an unknown option is an error (exit 2) naming
//! the option and pointing at `--help`.

use std::process::{Command, Output};

fn bootkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootkit"))
        .args(args)
        .output()
        .expect("run bootkit")
}

#[test]
fn help_of_each_command_exits_zero_with_an_example() {
    for args in [
        &["--help"][..],
        &["supervise", "--help"],
        &["init", "--help"],
        &["poweroff", "--help"],
        &["help", "reboot"],
    ] {
        let out = bootkit(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "bootkit {args:?}: {out:?}");
        assert!(
            stdout.contains("usage:") && stdout.contains("Example"),
            "bootkit {args:?}: {stdout}"
        );
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = bootkit(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("bootkit {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_option_is_named_and_points_at_help() {
    let out = bootkit(&["supervise", "/nonexistent", "--verbose"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr.contains("unknown option --verbose") && stderr.contains("bootkit supervise --help"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}
