//! The runtime against the real parts: Debian's containerd + runc and docker-registry, with
//! busybox images built and pushed by the project's own code. Needs root.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use bootkit_oci::{Credentials, RegistryClient, RegistryConfig, RetryPolicy};
use support::{
    ContainerdGuard, RegistryGuard, RegistryOptions, TestCa, TestImage, is_tls_handshake,
    is_unauthorized, push, tls_client,
};
use tink_worker::runtime::{ActionOutcome, ArgsMode, ContainerRequest, OutputStream, Runtime};

struct Setup {
    containerd: ContainerdGuard,
    registry: RegistryGuard,
    runtime: Runtime,
}

impl Setup {
    fn start(options: RegistryOptions) -> Self {
        let containerd = ContainerdGuard::start();
        let registry = RegistryGuard::start(options);
        let runtime = containerd.runtime();
        Self {
            containerd,
            registry,
            runtime,
        }
    }

    fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.registry.host())
    }

    /// Pushes a busybox image and pulls it into containerd.
    async fn publish_and_pull(&self, client: &RegistryClient, name: &str, image: &TestImage) {
        push(client, &self.image(name), image).await;
        self.runtime.pull(client, &self.image(name)).await.unwrap();
    }

    fn action(&self, name: &str, image: &str, command: &[&str]) -> ContainerRequest {
        ContainerRequest {
            name: name.to_string(),
            image: self.image(image),
            workflow_id: "wf-1".to_string(),
            command: command.iter().map(|s| s.to_string()).collect(),
            timeout: Some(Duration::from_secs(60)),
            ..ContainerRequest::default()
        }
    }

    async fn run(&self, action: &ContainerRequest) -> (ActionOutcome, Vec<(OutputStream, String)>) {
        let lines = Mutex::new(Vec::new());
        let on_line = |stream: OutputStream, line: &str| {
            lines.lock().unwrap().push((stream, line.to_string()));
        };
        let outcome = self.runtime.run_action(action, &on_line).await.unwrap();
        (outcome, lines.into_inner().unwrap())
    }

    fn containers_left(&self) -> String {
        self.containerd.ctr(&["containers", "ls", "-q"])
            + &self.containerd.ctr(&["tasks", "ls", "-q"])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn pushed_image_is_pulled_into_containerd_and_its_output_arrives_line_by_line() {
    let setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    let image = TestImage::busybox(&["echo", "from the image CMD"])
        .with_file("etc/motd", b"second layer\n");
    setup
        .publish_and_pull(&client, "test/busybox:1", &image)
        .await;

    let listed = setup.containerd.ctr(&["images", "ls", "-q"]);
    assert!(
        listed.contains(&setup.image("test/busybox:1")),
        "ctr images ls: {listed}"
    );

    let script = "echo one; echo two >&2; cat /etc/motd; echo three";
    let action = setup.action("echo lines", "test/busybox:1", &["sh", "-c", script]);
    let (outcome, lines) = setup.run(&action).await;
    assert_eq!(
        outcome.exit_code,
        0,
        "{outcome:?} {}",
        setup.containerd.log()
    );
    assert!(!outcome.timed_out);
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(stream, _)| *stream == OutputStream::Stdout)
        .map(|(_, line)| line.as_str())
        .collect();
    assert_eq!(stdout, ["one", "second layer", "three"]);
    assert!(lines.contains(&(OutputStream::Stderr, "two".to_string())));

    // No command: the image's CMD runs.
    let (outcome, lines) = setup
        .run(&setup.action("image cmd", "test/busybox:1", &[]))
        .await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(
        lines,
        [(OutputStream::Stdout, "from the image CMD".to_string())]
    );
    assert_eq!(
        setup.containers_left(),
        "",
        "containers or tasks were left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_second_pull_of_the_same_image_reuses_content_and_snapshots() {
    let setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    let image = TestImage::busybox(&["true"]);
    setup
        .publish_and_pull(&client, "test/again:1", &image)
        .await;
    let pulled = setup
        .runtime
        .pull(&client, &setup.image("test/again:1"))
        .await
        .unwrap();
    let snapshots = setup.containerd.ctr(&["snapshots", "ls"]);
    assert_eq!(
        snapshots.matches(&pulled.top_chain_id).count(),
        1,
        "{snapshots}"
    );
    // What keeps the garbage collector off the image once the pull's lease is gone:
    // manifest → config → top snapshot.
    let content = setup.containerd.ctr(&["content", "ls"]);
    let line_of = |digest: &str| {
        content
            .lines()
            .find(|line| line.starts_with(digest))
            .unwrap_or_else(|| panic!("{digest} not in the content store: {content}"))
            .to_string()
    };
    let manifest = line_of(&pulled.manifest_digest);
    assert!(
        manifest.contains("containerd.io/gc.ref.content.l.0=sha256:"),
        "{manifest}"
    );
    let config_digest = manifest
        .split("containerd.io/gc.ref.content.config=")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("the manifest does not reference its config: {manifest}"));
    let config = line_of(config_digest);
    let snapshot_label = format!(
        "containerd.io/gc.ref.snapshot.overlayfs={}",
        pulled.top_chain_id
    );
    assert!(config.contains(&snapshot_label), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn an_action_writes_to_workflow_and_the_next_one_reads_it() {
    let setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    setup
        .publish_and_pull(&client, "test/busybox:1", &TestImage::busybox(&["true"]))
        .await;
    let write = setup.action(
        "write",
        "test/busybox:1",
        &["sh", "-c", "echo handed over > /workflow/note"],
    );
    assert_eq!(setup.run(&write).await.0.exit_code, 0);
    let read = setup.action("read", "test/busybox:1", &["cat", "/workflow/note"]);
    let (outcome, lines) = setup.run(&read).await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(lines, [(OutputStream::Stdout, "handed over".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_failing_action_gives_its_exit_code_and_the_last_lines() {
    let setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    setup
        .publish_and_pull(&client, "test/busybox:1", &TestImage::busybox(&["true"]))
        .await;
    // stdout only: the order of lines across stdout and stderr is not fixed.
    let script = "for i in $(seq 1 25); do echo line $i; done; echo disk not found; exit 3";
    let (outcome, _) = setup
        .run(&setup.action("fail", "test/busybox:1", &["sh", "-c", script]))
        .await;
    assert_eq!(outcome.exit_code, 3);
    assert!(!outcome.timed_out);
    let expected: Vec<String> = (7..=25)
        .map(|i| format!("line {i}"))
        .chain(["disk not found".to_string()])
        .collect();
    assert_eq!(outcome.last_lines, expected, "the last 20 lines");

    // stderr is in the tail as well.
    let script = "echo cannot open /dev/sdz >&2; exit 1";
    let (outcome, _) = setup
        .run(&setup.action("fail", "test/busybox:1", &["sh", "-c", script]))
        .await;
    assert_eq!(outcome.exit_code, 1);
    assert_eq!(outcome.last_lines, ["cannot open /dev/sdz"]);
    assert_eq!(setup.containers_left(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn an_action_past_its_deadline_is_killed_and_removed() {
    let setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    setup
        .publish_and_pull(&client, "test/busybox:1", &TestImage::busybox(&["true"]))
        .await;
    let mut action = setup.action(
        "sleeper",
        "test/busybox:1",
        &["sh", "-c", "echo going to sleep; sleep 600"],
    );
    action.timeout = Some(Duration::from_secs(1));
    let (outcome, lines) = setup.run(&action).await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, 128 + 9, "killed by SIGKILL");
    assert_eq!(
        lines,
        [(OutputStream::Stdout, "going to sleep".to_string())]
    );
    assert_eq!(
        setup.containers_left(),
        "",
        "the timed-out container is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn whole_args_mode_replaces_the_entrypoint() {
    let setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    let image = TestImage::busybox(&[]).with_entrypoint(&["echo", "entrypoint:"]);
    setup
        .publish_and_pull(&client, "test/entry:1", &image)
        .await;
    let mut action = setup.action("args", "test/entry:1", &["hello"]);
    let (_, lines) = setup.run(&action).await;
    assert_eq!(
        lines,
        [(OutputStream::Stdout, "entrypoint: hello".to_string())]
    );
    action.args_mode = ArgsMode::CommandIsWholeArgs;
    action.command = vec!["echo".into(), "whole".into()];
    let (_, lines) = setup.run(&action).await;
    assert_eq!(lines, [(OutputStream::Stdout, "whole".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_registry_with_tls_and_basic_auth_is_pushed_to_and_pulled_from() {
    let options = RegistryOptions {
        tls: true,
        basic_auth: Some(("builder".into(), "pa55word".into())),
    };
    let setup = Setup::start(options);
    let credentials = Credentials {
        username: "builder".into(),
        password: "pa55word".into(),
    };
    let client = tls_client(setup.registry.ca_bundle.clone(), Some(credentials));
    setup
        .publish_and_pull(&client, "secure/busybox:1", &TestImage::busybox(&["true"]))
        .await;
    let listed = setup.containerd.ctr(&["images", "ls", "-q"]);
    assert!(listed.contains("secure/busybox:1"), "{listed}");

    let anonymous = tls_client(setup.registry.ca_bundle.clone(), None);
    let error = setup
        .runtime
        .pull(&anonymous, &setup.image("secure/busybox:1"))
        .await
        .unwrap_err();
    assert!(is_unauthorized(&error), "{error}");
    assert!(error.to_string().contains("registry_username"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_wrong_ca_is_a_clear_tls_error_unless_the_registry_is_listed_insecure() {
    let setup = Setup::start(RegistryOptions {
        tls: true,
        basic_auth: None,
    });
    let wrong_ca = setup.containerd.scratch_dir("wrong-ca").join("ca.pem");
    std::fs::write(&wrong_ca, TestCa::new("some other CA").pem()).unwrap();
    let client = tls_client(Some(wrong_ca), None);
    let error = setup
        .runtime
        .pull(&client, &setup.image("test/busybox:1"))
        .await
        .unwrap_err();
    assert!(is_tls_handshake(&error), "{error}");
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains("TLS handshake") && message.contains("CA bundle"),
        "{message}"
    );

    // Listed in insecure_registries, its certificate is not checked (Docker's rule).
    let insecure = setup.registry.plain_client();
    setup
        .publish_and_pull(&insecure, "test/busybox:1", &TestImage::busybox(&["true"]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_pull_retries_while_the_registry_is_down_and_succeeds_when_it_is_back() {
    let mut setup = Setup::start(RegistryOptions::default());
    let client = RegistryClient::new(RegistryConfig {
        insecure_registries: vec![setup.registry.host()],
        retry: RetryPolicy {
            attempts: 40,
            backoff: bootkit_common::backoff::Backoff::new(
                Duration::from_millis(100),
                Duration::from_millis(500),
            ),
        },
        ..RegistryConfig::default()
    })
    .unwrap();
    push(
        &client,
        &setup.image("test/busybox:1"),
        &TestImage::busybox(&["true"]),
    )
    .await;
    setup.registry.stop();

    let image = setup.image("test/busybox:1");
    let Setup {
        containerd,
        mut registry,
        runtime,
    } = setup;
    let (started, attempts_begun) = tokio::sync::oneshot::channel();
    let pulling = async {
        let _ = started.send(());
        runtime.pull(&client, &image).await
    };
    let restart = async {
        let _ = attempts_begun.await;
        // Let a few attempts fail against the closed port before the registry returns.
        tokio::time::sleep(Duration::from_millis(700)).await;
        tokio::task::block_in_place(|| registry.start_again());
    };
    let (pulled, ()) = tokio::join!(pulling, restart);
    let pulled = pulled.unwrap();
    assert!(
        containerd
            .ctr(&["images", "ls", "-q"])
            .contains(&pulled.name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn a_mirror_serves_images_named_without_it() {
    let setup = Setup::start(RegistryOptions::default());
    let client = RegistryClient::new(RegistryConfig {
        mirror: Some(setup.registry.host()),
        insecure_registries: vec![setup.registry.host()],
        ..RegistryConfig::default()
    })
    .unwrap();
    push(
        &client,
        &setup.image("library/busybox:mirrored"),
        &TestImage::busybox(&["true"]),
    )
    .await;
    let pulled = setup
        .runtime
        .pull(&client, "busybox:mirrored")
        .await
        .unwrap();
    assert_eq!(pulled.name, "docker.io/library/busybox:mirrored");
    assert!(
        setup
            .containerd
            .ctr(&["images", "ls", "-q"])
            .contains(&pulled.name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: runs its own containerd"]
async fn after_containerd_restarts_the_next_call_reconnects() {
    let mut setup = Setup::start(RegistryOptions::default());
    let client = setup.registry.plain_client();
    setup
        .publish_and_pull(&client, "test/busybox:1", &TestImage::busybox(&["true"]))
        .await;
    assert!(
        !setup.runtime.has_transfer_service().await.unwrap(),
        "Debian's containerd 1.6 has no Transfer service: the client-side pull is the one tested"
    );

    setup.containerd.kill();
    let action = setup.action("after restart", "test/busybox:1", &["echo", "back"]);
    let lines = Mutex::new(Vec::new());
    let error = setup
        .runtime
        .run_action(&action, &|_, line| {
            lines.lock().unwrap().push(line.to_string())
        })
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");

    setup.containerd.start_again();
    let (outcome, lines) = setup.run(&action).await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(lines, [(OutputStream::Stdout, "back".to_string())]);
}
