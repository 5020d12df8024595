//! `scripts/install-docs.sh` as the README runs it, into a staging directory: the
//! provisioner's completions and man pages land where bash-completion, zsh, fish and man look,
//! and `man` finds a subcommand's page there. Binaries without `generate-docs` (an older
//! build) and binaries not built are skipped with a line naming them.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-docs.sh")
}

/// An executable shell script named `name` in `dir`: a stand-in for a binary built before it
/// had `generate-docs`.
fn older_binary(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the older binary");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn installs_the_provisioners_completions_and_man_pages_into_a_staged_prefix() {
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let stage = tempfile::tempdir().expect("tempdir");
    symlink(
        env!("CARGO_BIN_EXE_provisioner"),
        bin_dir.path().join("provisioner"),
    )
    .expect("link the provisioner");
    // clap without the subcommand: an error, or (with a positional argument) its own help.
    older_binary(
        bin_dir.path(),
        "bootkit-build",
        "echo \"error: unrecognized subcommand 'generate-docs'\" >&2; exit 2",
    );
    older_binary(
        bin_dir.path(),
        "bootkit-install",
        "echo 'Usage: bootkit-install [OPTIONS] [DEVICE]'; exit 0",
    );

    let out = Command::new("bash")
        .arg(script())
        .arg("--bin-dir")
        .arg(bin_dir.path())
        .arg("--prefix")
        .arg("/usr")
        .arg("--dest-dir")
        .arg(stage.path())
        .output()
        .expect("run install-docs.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "install-docs.sh failed: {out:?}");

    let share = stage.path().join("usr/share");
    for file in [
        "bash-completion/completions/provisioner",
        "zsh/site-functions/_provisioner",
        "fish/vendor_completions.d/provisioner.fish",
        "man/man1/provisioner.1",
        "man/man1/provisioner-node.1",
        "man/man1/provisioner-serve.1",
    ] {
        assert!(
            share.join(file).is_file(),
            "{file} missing; output:\n{stdout}"
        );
    }
    assert!(
        !share.join("man/man1/provisioner-generate-docs.1").exists(),
        "the hidden subcommand got a page"
    );
    for skipped in [
        "bootkit-build: skipped",
        "bootkit-install: skipped",
        "has no generate-docs subcommand",
        "tink-worker: skipped, not found (build it: cargo build --release -p tink-worker)",
    ] {
        assert!(stdout.contains(skipped), "no {skipped:?} in:\n{stdout}");
    }

    // man looks the page up by name in the installed tree (not by file), as a user runs it.
    let man = Command::new("man")
        .arg("-M")
        .arg(share.join("man"))
        .arg("provisioner-node")
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LANG", "C.UTF-8")
        .output()
        .expect("run man (man-db: scripts/setup.sh installs it)");
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success(), "man found no page: {man:?}");
    assert!(page.contains("provisioner-node"), "{page}");
}

#[test]
fn refuses_a_relative_prefix_and_unknown_arguments() {
    for (args, expected) in [
        (
            &["--prefix", "usr"][..],
            "--prefix must be an absolute path",
        ),
        (&["--prefixx", "/usr"], "unknown argument --prefixx"),
    ] {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .output()
            .expect("run install-docs.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
