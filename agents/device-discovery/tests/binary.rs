//! The `device-discovery` binary end to end: exit codes, the files it writes, the summary line.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

fn command(root: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_device-discovery"));
    command
        .arg("--root")
        .arg(root)
        .arg("--env-file")
        .arg(root.join("no-env-config"))
        .arg("--output")
        .arg(root.join("run/bootkit/device-discovery.env"))
        .arg("--credentials-dir")
        .arg(root.join("run/bootkit/client-credentials"))
        .args([
            "--tls",
            "false",
            "--backoff-base-ms",
            "20",
            "--ip-tries",
            "1",
        ])
        .args(extra);
    command
}

/// Runs the binary off the async runtime, so the fake server keeps answering meanwhile.
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarded_exits_0_writes_the_env_file_and_prints_a_summary() {
    let server = FakeServer::start(&[Step::Registered, Step::Onboarded]).await;
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());
    let address = server.address.to_string();

    let result = output(command(
        root.path(),
        &["--obs-svc", &address, "--ip", "10.1.2.3"],
    ))
    .await;

    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    assert!(
        stdout.contains(BOOT_MAC) && stdout.contains(&address),
        "{stdout}"
    );
    assert!(stderr.contains("no usable serial number"), "{stderr}");
    let env = env_file_values(&root.path().join("run/bootkit/device-discovery.env"));
    assert_eq!(env["WORKER_ID"], BOOT_MAC);
    assert_eq!(env["IP"], "10.1.2.3");
    assert_eq!(env["NODE_ID"], CLIENT_ID);
    assert_eq!(server.requests()[0].host_ip, "10.1.2.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_node_is_told_how_to_register_then_gives_up_with_exit_1() {
    let server = FakeServer::start(&[Step::NotFound; 100]).await;
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());
    let address = server.address.to_string();

    let result = output(command(
        root.path(),
        &[
            "--obs-svc",
            &address,
            "--timeout",
            "1s",
            "--serial",
            "PF2ABC01",
        ],
    ))
    .await;

    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "provisioner node register --mac {BOOT_MAC} --serial PF2ABC01 --uuid {SYSTEM_UUID}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("gave up"), "{stderr}");
    assert!(
        !root
            .path()
            .join("run/bootkit/device-discovery.env")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_server_setting_exits_2_and_names_where_to_set_it() {
    let root = tempfile::tempdir().unwrap();

    let result = output(command(root.path(), &[])).await;

    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--obs-svc") && stderr.contains("grpc_authority"),
        "{stderr}"
    );
}

/// Kills the child if the test fails before it ended.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_ends_it_with_exit_143() {
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());
    // A port nothing listens on: the binary keeps retrying.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = ChildGuard(
        command(
            root.path(),
            &["--obs-svc", &unused.to_string(), "--ip", "10.1.2.3"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    // A retry note shows it is running (the SIGTERM handler is set before it starts).
    let stderr = child.0.stderr.take().unwrap();
    let (retry_note, note_read) = mpsc::channel();
    std::thread::spawn(move || {
        let note = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("retrying"));
        let _ = retry_note.send(note);
    });
    let note = note_read.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        note.is_some(),
        "device-discovery retries an unreachable server"
    );

    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();

    let status = wait_bounded(&mut child.0, Duration::from_secs(10));
    assert_eq!(status.and_then(|status| status.code()), Some(143));
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let step = Duration::from_millis(50);
    for _ in 0..(limit.as_millis() / step.as_millis()) {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(step);
    }
    None
}
