//! Test helpers shared by the runtime and workflow tests: the real containerd and
//! docker-registry started in temporary directories (stopped by Drop, even when a test
//! fails), and busybox-based test images built and pushed by the project's own code.
//!
//! Each test binary uses only some of these helpers (hence the allow below).
#![allow(dead_code, unused_imports)]

mod containerd;
mod image;
mod registry;

pub use containerd::ContainerdGuard;
pub use image::{TestImage, push};
pub use registry::{RegistryGuard, RegistryOptions, TestCa, free_port, tls_client};

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootkit_oci::RegistryError;
use tink_worker::runtime::RuntimeError;

/// Whether `error` is the TLS handshake failure a registry's certificate (or its refusal of
/// ours) gives.
pub fn is_tls_handshake(error: &RuntimeError) -> bool {
    matches!(
        error,
        RuntimeError::Registry(RegistryError::TlsHandshake { .. })
    )
}

/// Whether `error` is a registry's refusal of the credentials sent (or of none).
pub fn is_unauthorized(error: &RuntimeError) -> bool {
    matches!(
        error,
        RuntimeError::Registry(RegistryError::Unauthorized { .. })
    )
}

/// Starts a daemon with stdin closed and stdout and stderr written to `log`, so that a failing
/// test can show what the daemon said.
pub fn spawn_logging_to(command: &mut Command, log: &Path) -> Child {
    let log = fs::File::create(log).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Kills the daemon in `child` with SIGKILL, as a crash would, and reaps it; nothing if it
/// is not running.
pub fn kill_daemon(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls `ready` every 50 ms until it holds or `limit` passes; panics naming `what`.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
