//! `provisioner serve` with the boot service's flags, as a child process: it answers on its
//! ports and exits cleanly on SIGTERM; boot flags without --advertise are refused.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PROVISIONER: &str = env!("CARGO_BIN_EXE_provisioner");

/// Kills the server if the test fails before stopping it.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl ServerProcess {
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("provisioner serve did not exit within 15 s of SIGTERM");
    }
}

/// The `name=Some(addr)` field of the server's start-up log line.
fn logged_addr(line: &str, name: &str) -> SocketAddr {
    let start = line
        .find(&format!("{name}=Some("))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + "=Some(".len();
    let end = start + line[start..].find(')').unwrap();
    line[start..end].parse().unwrap()
}

/// Starts `serve` with `args` and waits (bounded) for its "provisioner serving" line.
fn serve(db: &Path, args: &[&str]) -> (ServerProcess, String) {
    let mut child = Command::new(PROVISIONER)
        .arg("--db")
        .arg(db)
        .arg("serve")
        // Plaintext gRPC: these tests are about the boot service's listeners.
        .arg("--allow-unauthenticated-workers")
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let process = ServerProcess(child);
    let (lines, serving) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end even once nobody listens: a closed pipe would fail the server's
        // log writes.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match serving.recv_timeout(left) {
            Ok(line) if line.contains("provisioner serving") => return (process, line),
            Ok(_) => continue,
            Err(error) => panic!("provisioner serve did not start within 30 s: {error}"),
        }
    }
}

fn fake_ipxe_root(dir: &Path) -> String {
    for name in ["ipxe.efi", "undionly.kpxe"] {
        std::fs::write(dir.join(name), format!("{name} stand-in")).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn serve_with_boot_flags_answers_on_its_ports_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_ipxe_root(dir.path());
    let (mut server, line) = serve(
        &dir.path().join("db.sqlite"),
        &[
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--admin-insecure-no-auth",
            "--advertise",
            "127.0.0.1",
            "--boot-http",
            "127.0.0.1:0",
            "--syslog",
            "127.0.0.1:0",
            "--tftp",
            "127.0.0.1:0",
            "--tftp-root",
            &root,
            "--console",
            "ttyS1,115200",
        ],
    );
    let boot_http = logged_addr(&line, "boot_http");
    let tftp = logged_addr(&line, "tftp");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let script = runtime.block_on(async {
        let url = format!("http://{boot_http}/ipxe/auto.ipxe");
        let client = common::http_client().build().unwrap();
        let response = client.get(url).send().await.unwrap();
        response.text().await.unwrap()
    });
    assert!(
        script.contains(&format!(
            "chain --autofree http://127.0.0.1:{}/ipxe/boot.ipxe?",
            boot_http.port()
        )),
        "{script}"
    );

    let fetched = dir.path().join("fetched.efi");
    let curl = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "-o"])
        .arg(&fetched)
        .arg(format!("tftp://{tftp}/ipxe.efi"))
        .status()
        .unwrap();
    assert!(curl.success());
    assert_eq!(
        std::fs::read_to_string(&fetched).unwrap(),
        "ipxe.efi stand-in"
    );

    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn boot_flags_without_advertise_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(PROVISIONER)
        .arg("--db")
        .arg(dir.path().join("db.sqlite"))
        .args(["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--admin-insecure-no-auth", "--dhcp", "proxy"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--dhcp needs --advertise IP"), "{stderr}");
}
