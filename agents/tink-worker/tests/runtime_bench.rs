//! Benchmarks, not timed tests (ignored by default; they print figures and assert nothing
//! about time). Run them in release mode, as root:
//!
//! ```sh
//! cargo test --release -p tink-worker --test runtime_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - pull: a ~200 MB, 5-layer image from the local docker-registry, this runtime's pull
//!   against `ctr images pull` (Debian's containerd), each into a fresh containerd.
//! - run: 50 trivial actions against a `ctr run --rm` loop on the same containerd.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{ContainerdGuard, RegistryGuard, RegistryOptions, TestImage, push};
use tink_worker::runtime::ContainerRequest;

const LAYERS: usize = 4;
const LAYER_BYTES: usize = 50 << 20;
const ACTIONS: usize = 50;

fn ctr(containerd: &ContainerdGuard, args: &[&str]) {
    let status = Command::new("/usr/bin/ctr")
        .arg("-a")
        .arg(containerd.socket())
        .args(["-n", "tinkerbell"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ctr {args:?} failed");
}

fn report(what: &str, ours: Duration, theirs: Duration) {
    println!(
        "{what}: tink-worker {:.3} s, ctr {:.3} s, ratio {:.2}x",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_pull_against_ctr() {
    let registry = RegistryGuard::start(RegistryOptions::default());
    let client = registry.plain_client();
    let mut image = TestImage::busybox(&["true"]);
    let mut rng = fastrand::Rng::with_seed(5);
    for index in 0..LAYERS {
        let mut data = vec![0u8; LAYER_BYTES];
        rng.fill(&mut data);
        image = image.with_file(&format!("data/{index}.bin"), &data);
    }
    let reference = format!("{}/bench/big:1", registry.host());
    push(&client, &reference, &image).await;

    let ours = ContainerdGuard::start();
    let runtime = ours.runtime();
    let started = Instant::now();
    runtime.pull(&client, &reference).await.unwrap();
    let our_time = started.elapsed();

    let theirs = ContainerdGuard::start();
    let started = Instant::now();
    ctr(&theirs, &["images", "pull", "--plain-http", &reference]);
    let ctr_time = started.elapsed();
    report("pull of a ~200 MB 5-layer image", our_time, ctr_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_trivial_actions_against_ctr_run() {
    let registry = RegistryGuard::start(RegistryOptions::default());
    let client = registry.plain_client();
    let reference = format!("{}/bench/trivial:1", registry.host());
    push(&client, &reference, &TestImage::busybox(&["true"])).await;
    let containerd = ContainerdGuard::start();
    let runtime = containerd.runtime();
    runtime.pull(&client, &reference).await.unwrap();

    let action = ContainerRequest {
        name: "trivial".into(),
        image: reference.clone(),
        workflow_id: "bench".into(),
        command: vec!["true".into()],
        ..ContainerRequest::default()
    };
    let started = Instant::now();
    for _ in 0..ACTIONS {
        let outcome = runtime.run_action(&action, &|_, _| {}).await.unwrap();
        assert_eq!(outcome.exit_code, 0);
    }
    let our_time = started.elapsed();

    let started = Instant::now();
    for index in 0..ACTIONS {
        let id = format!("ctr-trivial-{index}");
        ctr(&containerd, &["run", "--rm", &reference, &id, "true"]);
    }
    let ctr_time = started.elapsed();
    report(&format!("{ACTIONS} trivial actions"), our_time, ctr_time);
    println!(
        "per action: tink-worker {:.1} ms, ctr run --rm {:.1} ms",
        our_time.as_secs_f64() * 1000.0 / ACTIONS as f64,
        ctr_time.as_secs_f64() * 1000.0 / ACTIONS as f64
    );
}
