//! Debian's containerd as a child process with its own root, state dir and socket.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;
use tink_worker::runtime::{Runtime, RuntimeConfig};

use super::{kill_daemon, spawn_logging_to, wait_until};

const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";

pub struct ContainerdGuard {
    dir: TempDir,
    child: Option<Child>,
}

impl ContainerdGuard {
    /// Starts containerd (no CRI plugin) and waits for its socket to answer.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ctd")
            .tempdir_in("/tmp")
            .unwrap();
        let config = format!(
            "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{root}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{root}/containerd.sock.ttrpc\"\n",
            root = dir.path().display()
        );
        fs::write(dir.path().join("config.toml"), config).unwrap();
        let mut guard = Self { dir, child: None };
        guard.start_again();
        guard
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// A directory for the worker's own state (FIFOs, /worker) inside this guard's tree.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).unwrap();
        path
    }

    /// The worker's runtime on this containerd, its state and /worker dirs inside this guard's
    /// tree.
    pub fn runtime(&self) -> Runtime {
        Runtime::new(RuntimeConfig {
            socket: self.socket(),
            state_dir: self.scratch_dir("state"),
            worker_dir: self.scratch_dir("worker"),
            ..RuntimeConfig::default()
        })
    }

    /// (Re)starts the daemon on the same root and socket.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "containerd is already running");
        let child = spawn_logging_to(
            Command::new(CONTAINERD)
                .arg("--config")
                .arg(self.dir.path().join("config.toml")),
            &self.dir.path().join("containerd.log"),
        );
        self.child = Some(child);
        let socket = self.socket();
        wait_until(
            "containerd's socket answering",
            Duration::from_secs(20),
            || UnixStream::connect(&socket).is_ok(),
        );
    }

    /// Kills the daemon with SIGKILL, as a crash would (its shims live on).
    pub fn kill(&mut self) {
        kill_daemon(&mut self.child);
    }

    /// `ctr -a SOCKET -n tinkerbell ARGS…`, its stdout; panics with stderr on failure.
    pub fn ctr(&self, args: &[&str]) -> String {
        let output = Command::new(CTR)
            .arg("-a")
            .arg(self.socket())
            .args(["-n", "tinkerbell"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ctr {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for ContainerdGuard {
    fn drop(&mut self) {
        // Tasks a failed test left behind: their shims would outlive the daemon.
        if self.child.is_some() {
            let tasks = Command::new(CTR)
                .arg("-a")
                .arg(self.socket())
                .args(["-n", "tinkerbell", "tasks", "ls", "-q"])
                .output();
            if let Ok(tasks) = tasks {
                for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
                    let _ = Command::new(CTR)
                        .arg("-a")
                        .arg(self.socket())
                        .args(["-n", "tinkerbell", "tasks", "rm", "-f", id])
                        .output();
                }
            }
        }
        self.kill();
        unmount_below(self.dir.path());
    }
}

/// Detaches every mount under `root` (snapshots, rootfs of containers), deepest first, so
/// that the temporary directory can be removed.
fn unmount_below(root: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|target| Path::new(target).starts_with(root))
        .collect();
    targets.sort_by_key(|target| std::cmp::Reverse(target.len()));
    for target in targets {
        let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
    }
}
