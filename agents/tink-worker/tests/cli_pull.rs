//! `tink-worker pull IMAGE` as a user runs it: the real binary, no workflow server configured,
//! against Debian's containerd and docker-registry; containerd's own `ctr` is the judge of
//! what arrived. Needs root.

mod support;

use std::process::Command;

use support::{ContainerdGuard, RegistryGuard, RegistryOptions, TestImage, push};

/// The worker's settings that could leak in from the test's environment: cleared so the run
/// proves that no workflow server address or worker id is needed.
const WORKER_ENV: &[&str] = &[
    "TINKERBELL_GRPC_AUTHORITY",
    "WORKER_ID",
    "ID",
    "DOCKER_REGISTRY",
    "REGISTRY_USERNAME",
    "REGISTRY_PASSWORD",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn pull_without_a_workflow_server_puts_the_image_into_containerd() {
    let containerd = ContainerdGuard::start();
    let registry = RegistryGuard::start(RegistryOptions::default());
    let reference = format!("{}/test/pulled:1", registry.host());
    let digest = push(
        &registry.plain_client(),
        &reference,
        &TestImage::busybox(&["true"]),
    )
    .await;

    let mut command = Command::new(env!("CARGO_BIN_EXE_tink-worker"));
    for name in WORKER_ENV {
        command.env_remove(name);
    }
    let output = command
        .env("INSECURE_REGISTRIES", registry.host())
        .arg("--containerd-socket")
        .arg(containerd.socket())
        .arg("--state-dir")
        .arg(containerd.scratch_dir("state"))
        .arg("--worker-dir")
        .arg(containerd.scratch_dir("worker"))
        // No discovery env file on this machine either.
        .args(["--discovery-env-file", "/nonexistent/discovery.env"])
        .args(["pull", &reference])
        .output()
        .expect("run tink-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tink-worker pull failed: {stderr}");
    assert!(stderr.contains(&format!("pulled {reference}")), "{stderr}");

    let images = containerd.ctr(&["images", "ls"]);
    let line = images
        .lines()
        .find(|line| line.starts_with(&reference))
        .unwrap_or_else(|| panic!("ctr images ls has no {reference}:\n{images}"));
    assert!(line.contains(&digest), "ctr lists another digest: {line}");
}

/// A pull that fails says what failed (the pull), never that a workflow server is missing.
#[test]
fn failed_pull_never_asks_for_a_workflow_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("containerd.sock");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tink-worker"));
    for name in WORKER_ENV {
        command.env_remove(name);
    }
    let output = command
        .arg("--containerd-socket")
        .arg(&socket)
        .args(["--discovery-env-file", "/nonexistent/discovery.env"])
        .args(["pull", "127.0.0.1:1/test/none:1"])
        .output()
        .expect("run tink-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "pull succeeded without containerd"
    );
    assert!(
        !stderr.contains("workflow server"),
        "pull asked for a workflow server: {stderr}"
    );
    assert!(stderr.contains("cannot pull"), "{stderr}");
}
