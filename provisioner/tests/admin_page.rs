//! The status page in headless Chromium: the nodes' identities, states, progress and failures
//! and the selected node's logs end up in the DOM, and the page renders to a PNG (kept at
//! target/test-artifacts/provisioner-page.png).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;
use common::admin::{ADMIN_TOKEN, AdminServer, token_options};
use common::fleet::{FLEET, LOG_LINE, seed_fleet};
use provisioner::store::NewLogLine;

const CHROMIUM: &str = "chromium";
/// Generous: Chromium's first start on a loaded CI machine is slow.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(120);

/// `None` when Chromium is missing on a developer machine; with `CI` set a missing Chromium
/// fails the test.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(CHROMIUM))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed: `apt-get install -y chromium` (scripts/setup.sh does)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install -y chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=PATH`), bounded in
/// time, and returns its standard output. Background services are off and every host name but
/// the loopback address resolves to nothing, so the browser talks to the test server only.
fn run_chromium(chromium: &Path, profile: &Path, mode: &str, url: &str) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {mode} did not finish in {CHROMIUM_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "chromium {mode} failed: {:?}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_node_and_the_selected_nodes_logs() {
    let Some(chromium) = chromium() else { return };
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    let failed_id = seed_fleet(&server.store, db.dir.path());
    // Markup from a node must show as text, never become part of the page.
    let markup = "<img src=x id=injected>";
    server
        .store
        .append_logs(
            &failed_id,
            &[NewLogLine {
                source: "attacker".into(),
                severity: 3,
                sent_at: None,
                text: markup.into(),
            }],
        )
        .unwrap();
    let failed = &FLEET[3];
    let url = server.url(&format!("/#token={ADMIN_TOKEN}&node={}", failed.mac));
    let profile = db.dir.path().join("chromium-profile");
    let screenshot = artifacts_dir().join("provisioner-page.png");
    let _ = std::fs::remove_file(&screenshot);

    let dom = {
        let (chromium, profile, url) = (chromium.clone(), profile.clone(), url.clone());
        tokio::task::spawn_blocking(move || run_chromium(&chromium, &profile, "--dump-dom", &url))
            .await
            .unwrap()
    };
    for node in &FLEET {
        for text in [node.mac, node.serial, node.uuid] {
            assert!(dom.contains(text), "{text} missing from the page:\n{dom}");
        }
        assert!(
            dom.contains(&format!("state state-{}\">{}<", node.state, node.state)),
            "{} badge missing:\n{dom}",
            node.state
        );
        for text in node.progress.iter().chain(&node.failure) {
            assert!(dom.contains(text), "{text:?} missing from the page:\n{dom}");
        }
    }
    assert!(
        dom.contains(LOG_LINE),
        "the selected node's logs are missing:\n{dom}"
    );
    assert!(
        !dom.contains(ADMIN_TOKEN),
        "the token must leave the page's URL"
    );
    assert!(
        dom.contains("<form id=\"login\" hidden"),
        "signed in: no token prompt:\n{dom}"
    );

    let mode = format!("--screenshot={}", screenshot.display());
    tokio::task::spawn_blocking(move || run_chromium(&chromium, &profile, &mode, &url))
        .await
        .unwrap();
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a 1280x900 page with a table is more than {} bytes",
        png.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_page_asks_for_one_and_shows_no_nodes() {
    let Some(chromium) = chromium() else { return };
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    seed_fleet(&server.store, db.dir.path());
    let url = server.url("/");
    let profile = db.dir.path().join("chromium-profile");
    let dom =
        tokio::task::spawn_blocking(move || run_chromium(&chromium, &profile, "--dump-dom", &url))
            .await
            .unwrap();
    assert!(
        dom.contains("<form id=\"login\">"),
        "the token prompt is shown:\n{dom}"
    );
    for node in &FLEET {
        assert!(
            !dom.contains(node.serial),
            "{} shown without credentials",
            node.serial
        );
    }
}

/// `serve --allow-unauthenticated-workers` shows as a banner (read from /metrics' gauge); a
/// site without it shows none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_warns_when_unauthenticated_workers_are_allowed() {
    let Some(chromium) = chromium() else { return };
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    let url = server.url(&format!("/#token={ADMIN_TOKEN}"));
    let dump = |name: &str| {
        let (chromium, url) = (chromium.clone(), url.clone());
        let profile = db.dir.path().join(name);
        tokio::task::spawn_blocking(move || run_chromium(&chromium, &profile, "--dump-dom", &url))
    };
    let dom = dump("profile-off").await.unwrap();
    assert!(
        dom.contains(
            "<p id=\"unauthenticated-workers\" class=\"warning\" role=\"alert\" hidden=\"\"></p>"
        ),
        "no banner by default:\n{dom}"
    );
    server
        .metrics
        .unauthenticated_workers_allowed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let dom = dump("profile-on").await.unwrap();
    assert!(
        dom.contains("Unauthenticated workers allowed (serve --allow-unauthenticated-workers)"),
        "the banner shows:\n{dom}"
    );
}
