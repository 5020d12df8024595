//! The provisioning stack the PXE tests and the demo share, as child processes of the test:
//! Debian's docker-registry with the bootkit's two action images pushed into it
//! (`bootkit/image2disk`, `bootkit/reboot`), and `provisioner serve` on a fresh database,
//! set up through the provisioner's own CLI (template, profile, registrations). Both run on
//! the host or inside a test's network namespace; both are killed when the [`Stack`] is
//! dropped (and with the test process, through `PR_SET_PDEATHSIG`).
//!
//! ```no_run
//! use std::time::Duration;
//! use qemu_tests::stack::{ProfileSetup, Stack, StackOptions};
//!
//! # fn main() -> qemu_tests::Result<()> {
//! let options = StackOptions::new(
//!     "127.0.0.1:5000".parse().unwrap(),
//!     "127.0.0.1:42113".parse().unwrap(),
//!     // Plaintext gRPC needs the flag: its workers present no node certificate.
//!     ["--grpc", "127.0.0.1:42113", "--http", "127.0.0.1:42114", "--allow-unauthenticated-workers"],
//! )?;
//! let mut stack = Stack::start(options, None)?;
//! stack.setup_profile(&ProfileSetup::pxe_bootkit("default", "/tmp/emt-test.raw.zst".into())?)?;
//! let node = stack.wait_for_node_state("52:54:00:12:34:56", "provisioned", Duration::from_secs(900))?;
//! println!("{}", node.detail);
//! # Ok(()) }
//! ```
//!
//! Every wait is bounded; every failure names the child's log file (in the stack's work
//! directory, kept when the test fails: see [`Stack::work_dir`]).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bootkit_common::checksum::Sha256Digest;

use crate::error::{Error, Result};
use crate::netns::NetNs;
use crate::paths::{
    BUILD_CMD, TestImage, builder_binary, installer_binary, repo_root, require, target_dir,
};

/// Debian's docker-registry (package docker-registry).
pub const REGISTRY_PROGRAM: &str = "/usr/bin/docker-registry";
/// The repository (under the registry) of the image2disk action.
pub const IMAGE2DISK_IMAGE: &str = "bootkit/image2disk:latest";
/// The repository of the reboot action.
pub const REBOOT_IMAGE: &str = "bootkit/reboot:latest";
/// The workflow template of the PXE bootkit (stream-os-image, then reboot).
pub const WORKFLOW_TEMPLATE: &str = "imageconfigs/pxe-bootkit/workflow.yaml";
/// The output directory of `bootkit-build build imageconfigs/pxe-bootkit.toml`.
pub const PXE_BOOTKIT_DIR: &str = "out/pxe-bootkit";
/// How long a server may take to start listening.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the node's state is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The release `provisioner` built by scripts/build-bootkit.sh.
pub fn provisioner_binary() -> PathBuf {
    target_dir().join("release/provisioner")
}

/// What the stack listens on and how `provisioner serve` is started.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where docker-registry listens.
    pub registry_addr: SocketAddr,
    /// An address `provisioner serve` listens on once it is up (its gRPC port).
    pub provisioner_ready_addr: SocketAddr,
    /// The flags after `provisioner --db DB serve`.
    pub serve_args: Vec<String>,
    /// Database, registry storage and logs: a fresh directory under target/stack/, kept
    /// after the test for its logs.
    pub work_dir: PathBuf,
}

impl StackOptions {
    /// Options for a stack whose registry listens on `registry_addr` and whose provisioner is up
    /// once `provisioner_ready_addr` accepts; makes a fresh work directory.
    pub fn new<I, S>(
        registry_addr: SocketAddr,
        provisioner_ready_addr: SocketAddr,
        serve_args: I,
    ) -> Result<StackOptions>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(StackOptions {
            registry_addr,
            provisioner_ready_addr,
            serve_args: serve_args.into_iter().map(Into::into).collect(),
            work_dir: fresh_work_dir()?,
        })
    }
}

fn fresh_work_dir() -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = target_dir().join("stack").join(format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // A directory left by an earlier process with the same id.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// A server the stack started; killed with its process group on drop.
#[derive(Debug)]
struct Server {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn spawn(
        what: &'static str,
        prefix: &[String],
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Server> {
        let output =
            File::create(&log).map_err(Error::io(format!("creating {}", log.display())))?;
        let errors = output
            .try_clone()
            .map_err(Error::io(format!("opening {}", log.display())))?;
        let mut command = prefixed(prefix, program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .process_group(0);
        crate::child::die_with_this_process(&mut command);
        let child = command.spawn().map_err(Error::io(format!(
            "starting {what} ({})",
            program.display()
        )))?;
        Ok(Server { what, child, log })
    }

    /// `Err` with its log when it has exited.
    fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Other(format!(
                "{} exited ({status}); its log {}:\n{}",
                self.what,
                self.log.display(),
                log_tail(&self.log)
            ))),
            Err(err) => Err(Error::Io {
                context: format!("checking on {}", self.what),
                source: err,
            }),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The group while its leader is unreaped, so the id cannot have been reused.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain syscall; a stale group only yields ESRCH.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prefixed(prefix: &[String], program: &Path) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The running stack.
#[derive(Debug)]
pub struct Stack {
    options: StackOptions,
    db: PathBuf,
    // Dropped in reverse order of declaration: the provisioner first, then the registry.
    provisioner: Server,
    registry: ActionRegistry,
}

/// Debian's docker-registry with the bootkit's two action images pushed into it, on its own:
/// for tests whose control plane is not our provisioner.
#[derive(Debug)]
pub struct ActionRegistry {
    server: Server,
    work_dir: PathBuf,
}

impl ActionRegistry {
    /// Starts the registry on `addr` (inside `netns`, if any) with its storage and log in a
    /// fresh work directory, and pushes the action images.
    pub fn start(addr: SocketAddr, netns: Option<&NetNs>) -> Result<ActionRegistry> {
        let place = Place {
            exec_prefix: netns.map(NetNs::exec_prefix).unwrap_or_default(),
            netns,
        };
        ActionRegistry::start_in(addr, fresh_work_dir()?, &place)
    }

    fn start_in(addr: SocketAddr, work_dir: PathBuf, place: &Place<'_>) -> Result<ActionRegistry> {
        let mut server = start_registry(addr, &work_dir, place)?;
        place.wait_until_listening(addr, &mut server)?;
        push_action_images(addr, place)?;
        Ok(ActionRegistry { server, work_dir })
    }

    /// The registry's storage, config and log (`registry.log`).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
}

impl Stack {
    /// Starts docker-registry, pushes the action images, starts `provisioner serve`, and
    /// waits until both listen; on the host, or inside `netns` (its servers then reachable
    /// only from there).
    pub fn start(options: StackOptions, netns: Option<&NetNs>) -> Result<Stack> {
        let place = Place {
            exec_prefix: netns.map(NetNs::exec_prefix).unwrap_or_default(),
            netns,
        };
        let provisioner_program =
            require("the release provisioner", provisioner_binary(), BUILD_CMD)?;
        let registry =
            ActionRegistry::start_in(options.registry_addr, options.work_dir.clone(), &place)?;

        let db = options.work_dir.join("provisioner.db");
        let mut args = vec!["--db".to_string(), db.display().to_string(), "serve".into()];
        args.extend(options.serve_args.iter().cloned());
        let mut provisioner = Server::spawn(
            "provisioner serve",
            &place.exec_prefix,
            &provisioner_program,
            &args,
            options.work_dir.join("provisioner.log"),
        )?;
        place.wait_until_listening(options.provisioner_ready_addr, &mut provisioner)?;
        Ok(Stack {
            options,
            db,
            provisioner,
            registry,
        })
    }

    /// Database, registry storage and the servers' logs (`registry.log`, `provisioner.log`).
    pub fn work_dir(&self) -> &Path {
        &self.options.work_dir
    }

    /// The provisioner's database.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Where the registry listens.
    pub fn registry_addr(&self) -> SocketAddr {
        self.options.registry_addr
    }

    /// The provisioner's log so far.
    pub fn provisioner_log(&self) -> String {
        std::fs::read_to_string(&self.provisioner.log).unwrap_or_default()
    }

    /// `Err` naming the server and its log when one has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.registry.server.check_running()?;
        self.provisioner.check_running()
    }

    /// Runs `provisioner --db DB ARGS` (on the host: the CLI works on the database file)
    /// and returns its standard output; a non-zero exit is an error with its stderr.
    pub fn cli<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        let output = self.cli_output(args)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Other(format!(
                "provisioner {} failed ({}): {}",
                args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    fn cli_output<S: AsRef<str>>(&self, args: &[S]) -> Result<Output> {
        Command::new(provisioner_binary())
            .arg("--db")
            .arg(&self.db)
            .args(args.iter().map(AsRef::as_ref))
            .stdin(Stdio::null())
            .output()
            .map_err(Error::io("running the provisioner CLI"))
    }

    /// The workflow template and a profile using it (see [`ProfileSetup`]).
    pub fn setup_profile(&self, profile: &ProfileSetup) -> Result<()> {
        let template_name = format!("{}-workflow", profile.name);
        self.cli(&[
            "template",
            "create",
            "--file",
            &profile.template.display().to_string(),
            "--name",
            &template_name,
        ])?;
        let mut args = vec![
            "profile".to_string(),
            "create".into(),
            "--name".into(),
            profile.name.clone(),
            "--kernel".into(),
            profile.kernel.display().to_string(),
            "--initramfs".into(),
            profile.initramfs.display().to_string(),
            "--template".into(),
            template_name,
            "--os-image".into(),
            profile.os_image.display().to_string(),
            "--os-image-sha256".into(),
            profile.os_image_sha256.clone(),
            "--cmdline".into(),
            profile.cmdline.clone(),
        ];
        if profile.default {
            args.push("--default".into());
        }
        self.cli(&args)?;
        Ok(())
    }

    /// The node's state (`node show KEY`); `None` while the provisioner does not know it.
    pub fn node_status(&self, key: &str) -> Result<Option<NodeStatus>> {
        let output = self.cli_output(&["node", "show", key])?;
        if !output.status.success() {
            return Ok(None);
        }
        Ok(Some(NodeStatus::parse(&String::from_utf8_lossy(
            &output.stdout,
        ))))
    }

    /// Waits until the provisioner knows the node `key` (MAC, serial or UUID): device
    /// discovery has reported it. See [`Stack::wait_for_node_state`] for the bounds.
    pub fn wait_for_node_seen(&mut self, key: &str, timeout: Duration) -> Result<NodeStatus> {
        self.wait_for_node(key, "known", timeout, |_| true)
    }

    /// Waits until the node `key` (MAC, serial or UUID) is in `state`, for at most
    /// `timeout` (scaled by `BOOTKIT_TEST_TIMEOUT_SCALE`). A node that fails (when `state` is
    /// not `failed`), or a server that exits, ends the wait at once with what the
    /// provisioner shows of the node.
    pub fn wait_for_node_state(
        &mut self,
        key: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<NodeStatus> {
        self.wait_for_node(key, state, timeout, |status| status.state == state)
    }

    /// Waits until the node `key` is `provisioned` (bounds as [`Stack::wait_for_node_state`])
    /// and checks its workflow ended SUCCESS: a provisioned node whose workflow shows
    /// anything else is an error naming what the provisioner shows.
    pub fn wait_for_provisioned(&mut self, key: &str, timeout: Duration) -> Result<NodeStatus> {
        let done = self.wait_for_node_state(key, "provisioned", timeout)?;
        if done.workflow_state.as_deref() != Some("SUCCESS") {
            return Err(Error::Other(format!(
                "workflow not SUCCESS:\n{}",
                done.detail
            )));
        }
        Ok(done)
    }

    fn wait_for_node(
        &mut self,
        key: &str,
        wanted: &str,
        timeout: Duration,
        reached: impl Fn(&NodeStatus) -> bool,
    ) -> Result<NodeStatus> {
        let deadline = Instant::now() + crate::scaled(timeout);
        let mut last = None;
        loop {
            self.check_running()?;
            if let Some(status) = self.node_status(key)? {
                if reached(&status) {
                    return Ok(status);
                }
                if status.state == "failed" {
                    return Err(Error::Other(format!(
                        "node {key} failed while waiting for it to be {wanted}:\n{}",
                        status.detail
                    )));
                }
                last = Some(status);
            }
            if Instant::now() >= deadline {
                let shown = last.map_or_else(
                    || "the provisioner does not know it".to_string(),
                    |status| status.detail,
                );
                return Err(Error::Other(format!(
                    "node {key} not {wanted} after {timeout:?}:\n{shown}\nprovisioner log: {}",
                    self.provisioner.log.display()
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// What `provisioner node show` says of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// discovered, provisioning, provisioned, failed.
    pub state: String,
    /// The node's workflow state (PENDING, RUNNING, SUCCESS, FAILED, TIMEOUT), if it has one.
    pub workflow_state: Option<String>,
    /// The whole text: identity, actions, timeline.
    pub detail: String,
}

impl NodeStatus {
    /// From `node show`'s text: a `  state S` line, and `workflow ID STATE`.
    fn parse(text: &str) -> NodeStatus {
        let state = text
            .lines()
            .find_map(|line| line.strip_prefix("  state "))
            .unwrap_or("")
            .trim()
            .to_string();
        let workflow_state = text
            .lines()
            .find_map(|line| line.strip_prefix("workflow "))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .map(str::to_string);
        NodeStatus {
            state,
            workflow_state,
            detail: text.trim_end().to_string(),
        }
    }
}

/// A profile for the stack: the PXE bootkit, the workflow template and an OS image.
#[derive(Debug, Clone)]
pub struct ProfileSetup {
    /// The profile's name.
    pub name: String,
    /// The PXE bootkit's kernel.
    pub kernel: PathBuf,
    /// The PXE bootkit's initramfs.
    pub initramfs: PathBuf,
    /// The workflow template (YAML).
    pub template: PathBuf,
    /// A file on the host (served by the provisioner's boot HTTP) or an http(s) URL.
    pub os_image: PathBuf,
    /// Lower-case hex sha256 of the OS image.
    pub os_image_sha256: String,
    /// Extra kernel command line of the profile's nodes.
    pub cmdline: String,
    /// The profile of unregistered nodes.
    pub default: bool,
}

impl ProfileSetup {
    /// `provisioner serve`'s `--artifacts-root DIR` flags for this profile's files: the
    /// provisioner serves profile files only from the roots it is given.
    pub fn artifact_root_args(&self) -> Vec<String> {
        let mut roots: Vec<&Path> = Vec::new();
        let local_image =
            (!self.os_image.to_string_lossy().contains("://")).then_some(&self.os_image);
        for file in [&self.kernel, &self.initramfs]
            .into_iter()
            .chain(local_image)
        {
            if let Some(root) = file.parent().filter(|root| !roots.contains(root)) {
                roots.push(root);
            }
        }
        roots
            .into_iter()
            .flat_map(|root| ["--artifacts-root".to_string(), root.display().to_string()])
            .collect()
    }

    /// out/pxe-bootkit and the repository's workflow template, with `os_image` and the hex
    /// digest from its `.sha256sum` file beside it; the default profile.
    pub fn pxe_bootkit(name: &str, os_image: PathBuf) -> Result<ProfileSetup> {
        let bootkit = pxe_bootkit_image()?;
        Ok(ProfileSetup {
            name: name.to_string(),
            kernel: bootkit.kernel,
            initramfs: bootkit.initrd,
            template: repo_root().join(WORKFLOW_TEMPLATE),
            os_image_sha256: sha256_from_file_beside(&os_image)?,
            os_image,
            cmdline: String::new(),
            default: true,
        })
    }
}

/// out/pxe-bootkit: its kernel, initramfs and command line.
pub fn pxe_bootkit_image() -> Result<TestImage> {
    TestImage::load_from(&repo_root().join(PXE_BOOTKIT_DIR))
}

/// The hex digest that `IMAGE.sha256sum` (what the builder publishes) gives the image, by the
/// one `sha256sum` file rule.
pub fn sha256_from_file_beside(image: &Path) -> Result<String> {
    let mut sums = image.as_os_str().to_owned();
    sums.push(".sha256sum");
    let sums = require("the OS image's .sha256sum", PathBuf::from(sums), BUILD_CMD)?;
    let name = image.file_name().and_then(|name| name.to_str());
    Sha256Digest::from_sha256sum_file(&sums, name)
        .map(Sha256Digest::to_hex)
        .map_err(|error| Error::Other(error.to_string()))
}

fn start_registry(addr: SocketAddr, work_dir: &Path, place: &Place<'_>) -> Result<Server> {
    let program = require(
        "Debian's docker-registry",
        PathBuf::from(REGISTRY_PROGRAM),
        crate::paths::SETUP_CMD,
    )?;
    let storage = work_dir.join("registry");
    let config = work_dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {}\n",
            storage.display(),
            addr
        ),
    )
    .map_err(Error::io(format!("writing {}", config.display())))?;
    Server::spawn(
        "docker-registry",
        &place.exec_prefix,
        &program,
        &["serve".to_string(), config.display().to_string()],
        work_dir.join("registry.log"),
    )
}

/// Where the stack's processes run: the host, or a test's network namespace.
struct Place<'a> {
    exec_prefix: Vec<String>,
    netns: Option<&'a NetNs>,
}

impl Place<'_> {
    /// Waits until `addr` accepts connections (from inside the namespace, if any), failing
    /// early if `server` exits.
    fn wait_until_listening(&self, addr: SocketAddr, server: &mut Server) -> Result<()> {
        let deadline = Instant::now() + crate::scaled(LISTEN_TIMEOUT);
        loop {
            server.check_running()?;
            if self.connects(addr)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "{} does not listen on {addr} after {LISTEN_TIMEOUT:?}; its log {}:\n{}",
                    server.what,
                    server.log.display(),
                    log_tail(&server.log)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn connects(&self, addr: SocketAddr) -> Result<bool> {
        let attempt = move || TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok();
        match self.netns {
            None => Ok(attempt()),
            Some(ns) => ns.within(attempt),
        }
    }
}

/// Builds and pushes the two action images with `bootkit-build action-image`.
fn push_action_images(registry: SocketAddr, place: &Place<'_>) -> Result<()> {
    let builder = require("bootkit-build", builder_binary(), BUILD_CMD)?;
    let installer = require("the static bootkit-install", installer_binary(), BUILD_CMD)?;
    let image2disk = [
        "--file".to_string(),
        format!("{}:/usr/bin/image2disk", installer.display()),
        "--entrypoint".into(),
        "/usr/bin/image2disk".into(),
    ];
    let reboot = [
        "--file",
        "/bin/busybox:/bin/busybox",
        "--link",
        "/bin/sh:busybox",
        "--link",
        "/bin/touch:busybox",
        "--entrypoint",
        "/bin/sh",
        "--entrypoint",
        "-c",
        // The worker's reboot request: a file in its /worker mount (see tink-worker's
        // worker::power), honoured once the workflow's last report is acknowledged.
        "--cmd",
        "touch /worker/reboot",
    ]
    .map(String::from);
    for (image, args) in [
        (IMAGE2DISK_IMAGE, &image2disk[..]),
        (REBOOT_IMAGE, &reboot[..]),
    ] {
        let mut command = prefixed(&place.exec_prefix, &builder);
        command
            .args(["action-image", "--name", image])
            .args(args)
            .arg("--push")
            .arg(format!("{registry}/{image}"))
            .arg("--insecure")
            .stdin(Stdio::null());
        let output = command
            .output()
            .map_err(Error::io(format!("running {}", builder.display())))?;
        if !output.status.success() {
            return Err(Error::Other(format!(
                "pushing {image} to {registry} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_show_text_gives_the_states() {
        let text = "node 52:54:00:12:34:56\n  serial -\n  state provisioning\n\
                    workflow 5e0c RUNNING\n  1/2 stream-os-image: RUNNING\ntimeline\n";
        let status = NodeStatus::parse(text);
        assert_eq!(status.state, "provisioning");
        assert_eq!(status.workflow_state.as_deref(), Some("RUNNING"));
        let bare = NodeStatus::parse("node x\n  state discovered\ntimeline");
        assert_eq!(
            (bare.state.as_str(), bare.workflow_state),
            ("discovered", None)
        );
    }

    #[test]
    fn a_prefix_runs_the_program_through_it() {
        let command = prefixed(
            &["ip".into(), "netns".into(), "exec".into(), "ns1".into()],
            Path::new("/usr/bin/docker-registry"),
        );
        assert_eq!(command.get_program(), "ip");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["netns", "exec", "ns1", "/usr/bin/docker-registry"]);
    }
}
