//! End to end: the `tink-worker` binary against the real workflow service (the
//! provisioner's store and gRPC server, in this process), Debian's containerd + runc and
//! docker-registry, with busybox action images pushed by the project's registry client.
//!
//! Needs root (containerd, runc). Every wait is bounded; every part is stopped on drop,
//! even when an assertion fails.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use provisioner::https::TlsFiles;
use provisioner::server::{Protocols, RunningServer, ServeOptions};
use provisioner::state::State;
use provisioner::store::{HardwareSpec, Store, Workflow};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use support::{ContainerdGuard, RegistryGuard, RegistryOptions, TestCa, TestImage, push};
use tempfile::TempDir;

/// The machine the worker runs as: the hardware id and the worker id alike.
const MACHINE: &str = "machine-1";
/// The longest any single wait of these tests may take.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// One action of a test template: a shell script in a busybox image.
struct Step<'a> {
    name: &'a str,
    script: &'a str,
    timeout_s: u64,
    /// The stack's image unless set.
    image: Option<&'a str>,
    /// Legacy `on-failure` script.
    on_failure: Option<&'a str>,
}

fn step<'a>(name: &'a str, script: &'a str) -> Step<'a> {
    Step {
        name,
        script,
        timeout_s: 60,
        image: None,
        on_failure: None,
    }
}

impl<'a> Step<'a> {
    fn timeout(self, timeout_s: u64) -> Self {
        Self { timeout_s, ..self }
    }

    fn on_failure(self, script: &'a str) -> Self {
        Self {
            on_failure: Some(script),
            ..self
        }
    }

    fn image(self, image: &'a str) -> Self {
        Self {
            image: Some(image),
            ..self
        }
    }
}

/// Tinkerbell's template YAML (JSON flow values are YAML too, and quote scripts safely).
fn template_yaml(default_image: &str, steps: &[Step<'_>]) -> String {
    let mut yaml = String::from(
        "version: \"0.1\"\nname: e2e\nglobal_timeout: 600\ntasks:\n  - name: provision\n    \
         worker: \"{{.device_1}}\"\n    actions:\n",
    );
    for step in steps {
        let command = serde_json::to_string(&["sh", "-c", step.script]).unwrap();
        yaml.push_str(&format!(
            "      - name: {}\n        image: {}\n        timeout: {}\n        command: {command}\n",
            step.name,
            step.image.unwrap_or(default_image),
            step.timeout_s
        ));
        if let Some(script) = step.on_failure {
            let hook = serde_json::to_string(&["sh", "-c", script]).unwrap();
            yaml.push_str(&format!("        on-failure: {hook}\n"));
        }
    }
    yaml
}

/// The workflow service on its SQLite store, served from this process.
struct WorkflowService {
    db: TempDir,
    runtime: tokio::runtime::Runtime,
    store: Arc<Store>,
    server: Option<RunningServer>,
    address: SocketAddr,
    protocols: Protocols,
    tls: Option<TlsFiles>,
}

impl WorkflowService {
    fn start(protocols: Protocols, tls: Option<TlsFiles>) -> Self {
        let db = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&db.path().join("provisioner.db")).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut service = Self {
            db,
            runtime,
            store,
            server: None,
            address: "127.0.0.1:0".parse().unwrap(),
            protocols,
            tls,
        };
        service.serve();
        let hardware = HardwareSpec::parse(&format!(
            r#"{{"id": "{MACHINE}", "macs": ["52:54:00:e2:e0:01"]}}"#
        ))
        .unwrap();
        service.store.create_hardware(&hardware).unwrap();
        service
    }

    fn serve(&mut self) {
        let options = ServeOptions {
            grpc: self.address,
            http: None,
            tls: self.tls.clone(),
            protocols: self.protocols,
            admin: Default::default(),
            boot: None,
            // Plaintext gRPC: its clients can present no node certificate.
            node_ca: None,
            allow_unauthenticated_workers: true,
        };
        let server = self
            .runtime
            .block_on(RunningServer::start(Arc::clone(&self.store), &options))
            .unwrap();
        self.address = server.grpc_addr;
        self.server = Some(server);
    }

    /// Stops the server, reopens the database as a new process would, serves again on
    /// the same port.
    fn restart(&mut self) {
        self.stop_serving();
        self.store = Arc::new(Store::open(&self.db.path().join("provisioner.db")).unwrap());
        self.serve();
    }

    fn stop_serving(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.stop()).unwrap();
        }
    }

    fn authority(&self) -> String {
        self.address.to_string()
    }

    /// Stores the template and a workflow of it for [`MACHINE`]; returns the workflow id.
    fn create_workflow(&self, image: &str, steps: &[Step<'_>]) -> String {
        let template = self
            .store
            .create_template(&template_yaml(image, steps), None)
            .unwrap();
        let hardware = BTreeMap::from([("device_1".to_string(), MACHINE.to_string())]);
        self.store
            .create_workflow(&template.id, &hardware)
            .unwrap()
            .id
    }

    fn workflow(&self, id: &str) -> Workflow {
        self.store.get_workflow(id).unwrap()
    }
}

impl Drop for WorkflowService {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

/// How the worker is started.
struct WorkerOptions {
    protocol: &'static str,
    /// TINKERBELL_TLS and the CA bundle; plaintext when None.
    ca_bundle: Option<PathBuf>,
    /// Plain-HTTP registries besides the stack's own.
    more_registries: Vec<String>,
    /// The worker's whole PATH, where it finds `reboot` and `poweroff`: by default an
    /// empty directory, so that no test can ever reboot the machine running it.
    path: Option<PathBuf>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            protocol: "auto",
            ca_bundle: None,
            more_registries: vec![],
            path: None,
        }
    }
}

/// The `tink-worker` binary as a child process, its stderr in a file; killed on drop.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_logged(&self, needle: &str) {
        let log = self.log();
        assert!(log.contains(needle), "{needle:?} not logged:\n{log}");
    }

    /// Waits (bounded) for the worker to exit by itself; its exit status.
    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {WAIT_LIMIT:?}\nworker log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// containerd, a registry holding the busybox action image, the workflow service.
struct Stack {
    containerd: ContainerdGuard,
    registry: RegistryGuard,
    service: WorkflowService,
    image: String,
    worker_dir: PathBuf,
}

impl Stack {
    fn start(protocols: Protocols) -> Self {
        Self::start_with(protocols, None)
    }

    fn start_with(protocols: Protocols, tls: Option<TlsFiles>) -> Self {
        let containerd = ContainerdGuard::start();
        let registry = RegistryGuard::start(RegistryOptions::default());
        let image = push_busybox(&registry, "actions/busybox:1");
        let worker_dir = containerd.scratch_dir("worker");
        Self {
            service: WorkflowService::start(protocols, tls),
            containerd,
            registry,
            image,
            worker_dir,
        }
    }

    fn start_worker(&self, options: WorkerOptions) -> WorkerProcess {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let log = self.containerd.scratch_dir("logs").join(format!(
            "worker-{}.log",
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let mut registries = vec![self.registry.host()];
        registries.extend(options.more_registries.iter().cloned());
        let mut command = Command::new(env!("CARGO_BIN_EXE_tink-worker"));
        command
            .arg("--protocol")
            .arg(options.protocol)
            .arg("--containerd-socket")
            .arg(self.containerd.socket())
            .arg("--worker-dir")
            .arg(&self.worker_dir)
            .arg("--state-dir")
            .arg(self.containerd.scratch_dir("state"))
            .env("TINKERBELL_GRPC_AUTHORITY", self.service.authority())
            .env("WORKER_ID", MACHINE)
            .env("INSECURE_REGISTRIES", registries.join(","))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::OpenOptions::new().append(true).open(&log).unwrap());
        let path = match options.path {
            Some(path) => path,
            None => self.containerd.scratch_dir("no-power-commands"),
        };
        command.env("PATH", path);
        match &options.ca_bundle {
            Some(ca) => command
                .env("TINKERBELL_TLS", "true")
                .env("TINKERBELL_CA_CERT", ca),
            None => command.env("TINKERBELL_TLS", "false"),
        };
        WorkerProcess {
            child: command.spawn().unwrap(),
            log,
        }
    }

    /// Waits until the workflow satisfies `done`; on timeout panics with what the worker
    /// and containerd logged.
    fn wait_for(
        &self,
        worker: &WorkerProcess,
        id: &str,
        what: &str,
        done: impl Fn(&Workflow) -> bool,
    ) -> Workflow {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let workflow = self.service.workflow(id);
            if done(&workflow) {
                return workflow;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT_LIMIT:?}\nworkflow: {workflow:#?}\nworker log:\n{}\ncontainerd log (tail):\n{}",
                worker.log(),
                tail(&self.containerd.log(), 30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_until_finished(&self, worker: &WorkerProcess, id: &str) -> Workflow {
        self.wait_for(worker, id, "the workflow finishing", |workflow| {
            !matches!(workflow.state, State::Pending | State::Running)
        })
    }

    /// Waits for the workflow to finish and asserts that it succeeded.
    fn wait_for_success(&self, worker: &WorkerProcess, id: &str) -> Workflow {
        let workflow = self.wait_until_finished(worker, id);
        assert_eq!(
            workflow.state,
            State::Success,
            "{workflow:#?}\nworker log:\n{}",
            worker.log()
        );
        workflow
    }

    fn wait_for_log(&self, worker: &WorkerProcess, what: &str, needle: &str) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while !worker.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{what}: {needle:?} not logged within {WAIT_LIMIT:?}\nworker log:\n{}",
                worker.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lets an action waiting for `/worker/<name>` go on.
    fn release(&self, name: &str) {
        fs::write(self.worker_dir.join(name), "").unwrap();
    }
}

/// A script that waits (bounded by the action's timeout) for the test to create
/// `/worker/<name>`.
fn wait_for_release(name: &str) -> String {
    format!("while [ ! -e /worker/{name} ]; do sleep 0.1; done; echo released")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn push_busybox(registry: &RegistryGuard, repository: &str) -> String {
    let reference = format!("{}/{repository}", registry.host());
    let client = registry.plain_client();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(push(&client, &reference, &TestImage::busybox(&["sh"])));
    reference
}

fn states(workflow: &Workflow) -> Vec<(String, State)> {
    workflow
        .actions
        .iter()
        .map(|action| (action.name.clone(), action.state))
        .collect()
}

fn named(pairs: &[(&str, State)]) -> Vec<(String, State)> {
    pairs
        .iter()
        .map(|(name, state)| (name.to_string(), *state))
        .collect()
}

/// Runs the write → read → check workflow with the worker speaking `protocol`, and checks
/// the outcome and what the store recorded.
fn three_actions_succeed(protocols: Protocols, protocol: &'static str) {
    let stack = Stack::start(protocols);
    let id = stack.service.create_workflow(
        &stack.image,
        &[
            step(
                "write",
                "echo provisioned > /workflow/data && echo wrote it",
            ),
            step(
                "read",
                "test \"$(cat /workflow/data)\" = provisioned && echo read it",
            ),
            step("report", "echo all done"),
        ],
    );
    let worker = stack.start_worker(WorkerOptions {
        protocol,
        ..WorkerOptions::default()
    });
    let workflow = stack.wait_for_success(&worker, &id);
    assert_eq!(
        states(&workflow),
        named(&[
            ("write", State::Success),
            ("read", State::Success),
            ("report", State::Success)
        ])
    );
    for action in &workflow.actions {
        assert!(action.started_at.is_some(), "{action:?}");
        assert!(action.stopped_at.is_some(), "{action:?}");
        assert!(action.duration_ms.is_some(), "{action:?}");
    }
    let log = worker.log();
    assert!(log.contains("action write: wrote it"), "{log}");
    assert!(log.contains("action read: read it"), "{log}");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn three_action_workflow_succeeds_over_the_current_protocol() {
    three_actions_succeed(Protocols::Both, "current");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn three_action_workflow_succeeds_over_the_legacy_protocol() {
    three_actions_succeed(Protocols::Both, "legacy");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn worker_in_auto_mode_uses_a_current_only_server() {
    three_actions_succeed(Protocols::Current, "auto");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn worker_in_auto_mode_falls_back_to_a_legacy_only_server() {
    three_actions_succeed(Protocols::Legacy, "auto");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn failing_action_fails_the_workflow_with_its_output_and_stops_it() {
    let stack = Stack::start(Protocols::Both);
    let id = stack.service.create_workflow(
        &stack.image,
        &[
            step("prepare", "echo ready"),
            step(
                "partition",
                "echo looking for the disk; echo 'sgdisk: /dev/sdz: no such disk' >&2; exit 3",
            ),
            step("never", "echo this must not run > /worker/never-ran"),
        ],
    );
    let worker = stack.start_worker(WorkerOptions::default());
    let workflow = stack.wait_until_finished(&worker, &id);
    assert_eq!(workflow.state, State::Failed);
    assert_eq!(
        states(&workflow),
        named(&[
            ("prepare", State::Success),
            ("partition", State::Failed),
            ("never", State::Pending)
        ])
    );
    let message = &workflow.actions[1].message;
    assert!(message.contains("status 3"), "{message}");
    assert!(
        message.contains("sgdisk: /dev/sdz: no such disk"),
        "{message}"
    );
    assert!(!stack.worker_dir.join("never-ran").exists());
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn legacy_on_failure_command_runs_after_a_failed_action() {
    let stack = Stack::start(Protocols::Both);
    let id = stack.service.create_workflow(
        &stack.image,
        &[step("flash", "echo flashing; exit 1")
            .on_failure("echo cleaned up > /worker/on-failure-ran; echo hook done")],
    );
    let worker = stack.start_worker(WorkerOptions {
        protocol: "legacy",
        ..WorkerOptions::default()
    });
    let workflow = stack.wait_until_finished(&worker, &id);
    assert_eq!(workflow.state, State::Failed, "{workflow:#?}");
    assert!(
        stack.worker_dir.join("on-failure-ran").exists(),
        "worker log:\n{}",
        worker.log()
    );
    worker.assert_logged("action flash on-failure: hook done");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn action_past_its_timeout_is_killed_reported_timeout_and_its_container_removed() {
    let stack = Stack::start(Protocols::Both);
    let id = stack.service.create_workflow(
        &stack.image,
        &[step("hang", "echo started; sleep 600").timeout(3)],
    );
    let worker = stack.start_worker(WorkerOptions::default());
    let workflow = stack.wait_until_finished(&worker, &id);
    assert_eq!(workflow.state, State::Timeout, "{workflow:#?}");
    assert_eq!(workflow.actions[0].state, State::Timeout);
    assert!(
        workflow.actions[0].message.contains("started"),
        "{}",
        workflow.actions[0].message
    );
    assert_eq!(stack.containerd.ctr(&["containers", "ls", "-q"]).trim(), "");
    assert_eq!(stack.containerd.ctr(&["tasks", "ls", "-q"]).trim(), "");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn worker_resumes_the_workflow_after_a_server_restart() {
    let mut stack = Stack::start(Protocols::Both);
    let id = stack.service.create_workflow(
        &stack.image,
        &[
            step("long", &wait_for_release("restart-done")),
            step("after", "echo after the restart"),
        ],
    );
    let worker = stack.start_worker(WorkerOptions::default());
    stack.wait_for(&worker, &id, "the first action running", |workflow| {
        workflow.actions[0].state == State::Running
    });
    stack.service.restart();
    stack.release("restart-done");
    stack.wait_for_success(&worker, &id);
    worker.assert_logged("action after: after the restart");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn image_pull_is_retried_until_the_registry_is_back() {
    let mut stack = Stack::start(Protocols::Both);
    stack.registry.stop();
    let id = stack
        .service
        .create_workflow(&stack.image, &[step("pulled-late", "echo pulled at last")]);
    let worker = stack.start_worker(WorkerOptions::default());
    stack.wait_for_log(&worker, "a failed pull", "cannot pull");
    stack.registry.start_again();
    stack.wait_for_success(&worker, &id);
    worker.assert_logged("action pulled-late: pulled at last");
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn worker_reconnects_to_a_restarted_containerd_during_a_workflow() {
    let mut stack = Stack::start(Protocols::Both);
    // The second action's image is in a registry that is down until containerd has been
    // killed and restarted: the worker talked to the old containerd for the first action
    // and must reach the new one for the second.
    let mut late_registry = RegistryGuard::start(RegistryOptions::default());
    let late_image = push_busybox(&late_registry, "actions/late:1");
    late_registry.stop();
    let id = stack.service.create_workflow(
        &stack.image,
        &[
            step("before", "echo before"),
            step("after", "echo after").image(&late_image).timeout(120),
        ],
    );
    let worker = stack.start_worker(WorkerOptions {
        more_registries: vec![late_registry.host()],
        ..WorkerOptions::default()
    });
    stack.wait_for(&worker, &id, "the second action running", |workflow| {
        workflow.actions[0].state == State::Success && workflow.actions[1].state == State::Running
    });
    stack.containerd.kill();
    stack.containerd.start_again();
    late_registry.start_again();
    stack.wait_for_success(&worker, &id);
    worker.assert_logged("action after: after");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
/// (support's TestCa keeps its signing to the registry it starts.)
fn tls_files(dir: &std::path::Path, name: &str) -> (TlsFiles, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{name}-server.pem")),
        key: dir.join(format!("{name}-server.key")),
    };
    fs::write(&files.cert, certificate.pem()).unwrap();
    fs::write(&files.key, key.serialize_pem()).unwrap();
    let ca_path = dir.join(format!("{name}-ca.pem"));
    fs::write(&ca_path, ca.pem()).unwrap();
    (files, ca_path)
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn wrong_ca_is_a_clear_tls_error_and_no_action_runs() {
    let certificates = tempfile::tempdir().unwrap();
    let (server_tls, right_ca) = tls_files(certificates.path(), "server");
    let wrong_ca = certificates.path().join("wrong-ca.pem");
    fs::write(&wrong_ca, TestCa::new("some other CA").pem()).unwrap();
    let stack = Stack::start_with(Protocols::Both, Some(server_tls));
    let id = stack
        .service
        .create_workflow(&stack.image, &[step("guarded", "echo ran > /worker/ran")]);

    let worker = stack.start_worker(WorkerOptions {
        ca_bundle: Some(wrong_ca),
        ..WorkerOptions::default()
    });
    stack.wait_for_log(&worker, "the TLS error", "TLS handshake failed");
    let log = worker.log();
    assert!(log.contains("tinkerbell_ca"), "says what to check: {log}");
    assert_eq!(stack.service.workflow(&id).state, State::Pending);
    assert!(!stack.worker_dir.join("ran").exists());
    drop(worker);

    let worker = stack.start_worker(WorkerOptions {
        ca_bundle: Some(right_ca),
        ..WorkerOptions::default()
    });
    stack.wait_for_success(&worker, &id);
    assert!(stack.worker_dir.join("ran").exists());
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn reboot_file_reboots_through_the_system_command_after_the_workflow_succeeded() {
    let stack = Stack::start(Protocols::Both);
    let bin = stack.containerd.scratch_dir("fake-bin");
    let marker = stack.containerd.scratch_dir("markers").join("rebooted");
    let reboot = bin.join("reboot");
    fs::write(
        &reboot,
        format!("#!/bin/sh\necho reboot requested > {}\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(&reboot, fs::Permissions::from_mode(0o755)).unwrap();
    let id = stack.service.create_workflow(
        &stack.image,
        &[
            step("ask-for-reboot", "touch /worker/reboot"),
            step("last", "echo last action"),
        ],
    );
    let mut worker = stack.start_worker(WorkerOptions {
        path: Some(bin),
        ..WorkerOptions::default()
    });
    assert!(worker.wait_for_exit().success(), "{}", worker.log());
    assert_eq!(
        stack.service.workflow(&id).state,
        State::Success,
        "the last report was acknowledged before the reboot"
    );
    assert!(marker.exists(), "reboot was not run:\n{}", worker.log());
    assert!(!stack.worker_dir.join("reboot").exists());
}

#[test]
#[ignore = "needs root: runs its own containerd"]
fn sigterm_lets_the_running_action_finish_and_report_then_the_worker_exits() {
    let stack = Stack::start(Protocols::Both);
    let id = stack.service.create_workflow(
        &stack.image,
        &[
            step("current", &wait_for_release("sigterm-sent")),
            step("next", "echo must not start > /worker/next-ran"),
        ],
    );
    let mut worker = stack.start_worker(WorkerOptions::default());
    stack.wait_for(&worker, &id, "the first action running", |workflow| {
        workflow.actions[0].state == State::Running
    });
    let pid = Pid::from_raw(i32::try_from(worker.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    stack.wait_for_log(&worker, "the stop request", "stop requested");
    stack.release("sigterm-sent");
    assert!(worker.wait_for_exit().success(), "{}", worker.log());
    let workflow = stack.service.workflow(&id);
    assert_eq!(
        states(&workflow),
        named(&[("current", State::Success), ("next", State::Pending)])
    );
    assert!(!stack.worker_dir.join("next-ran").exists());
}
