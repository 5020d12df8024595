//! The status page for a rack of 500, in Debian's chromium driven by Playwright
//! (provisioner/tests/browser/status_page.mjs): a real `provisioner serve` over a store
//! seeded through the store's own API (registrations, discoveries, workers' reports), nodes
//! refused by serve's real boot HTTP, and a log line sent to serve's real syslog listener.
//! The browser filters to failed, searches a serial, opens a node, follows its log, sees a
//! hostile serial as text, and registers a refused node; screenshots go to
//! target/browser-artifacts/ (and, with BOOTKIT_UPDATE_SCREENSHOTS=1, the README's picture
//! to docs/status-page.png).
//!
//! And the page at a site of 2,000 (status_page_scale.mjs): one page of rows in the DOM
//! whatever the fleet's size, with the first render, filter, paging and search times and the
//! API's answer sizes printed (bench/page.sh runs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::serve_child::{ServeChild, free_port};
use common::{TEMPLATE, TestDb};
use provisioner::state::State;
use provisioner::store::{
    ActionReport, Discovery, Identity, NewLogLine, ProfileSpec, RegistrationSpec, ReportTarget,
    Store,
};

const TOKEN: &str = "status-page-browser-test-token-0123456789";
const PROFILE: &str = "edge";
/// A serial a node sends that is markup: the page must show it as text.
const HOSTILE_SERIAL: &str = "HUX<img src=x id=pwn onerror=alert(1)>";
/// The node whose log the browser follows: the only one at 127.0.0.1, so serve's syslog
/// listener attributes the test's UDP line to it.
const FOLLOWED: usize = 37;
const LONG_FAILURE: &str = "image2disk: writing /dev/nvme0n1 failed after 1.2 GiB: the HTTP \
    server closed the connection (unexpected EOF while reading the gzip stream of \
    http://10.0.0.1:8080/images/emt-3.0.raw.gz); the disk holds a partial image and will not \
    boot: check the image server's log and the network between this rack and it, then \
    reprovision the node";

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// The state of node `index` of `count`: 6% failed, 8% provisioning, 6% discovered, 20%
/// registered, the rest provisioned (for 500: 30, 40, 30, 100, 300), through a permutation
/// of the indices (7919 is a prime that divides neither 500 nor 2,000), so failed nodes are
/// spread through discovery order as they are on a real line.
fn state_of(index: usize, count: usize) -> &'static str {
    let rank = ((index * 7919) % count) * 100;
    match rank / count {
        0..6 => "failed",
        6..14 => "provisioning",
        14..20 => "discovered",
        20..40 => "registered",
        _ => "provisioned",
    }
}

fn serial(index: usize) -> String {
    if index == 150 {
        return HOSTILE_SERIAL.into();
    }
    format!("HUX{index:04}")
}

fn mac(index: usize) -> String {
    format!("52:54:00:10:{:02x}:{:02x}", index / 256, index % 256)
}

fn report(store: &Store, workflow_id: &str, action_id: &str, mac: &str, state: State, at: i64) {
    let started = ActionReport {
        workflow_id,
        target: ReportTarget::ActionId(action_id),
        agent: mac,
        state: State::Running,
        started_ms: Some(at),
        stopped_ms: None,
        duration_ms: None,
        message: "",
    };
    store.report(&started).unwrap();
    if state != State::Running {
        let message = if state == State::Failed {
            LONG_FAILURE
        } else {
            ""
        };
        store
            .report(&ActionReport {
                state,
                stopped_ms: Some(at + 41_300),
                message,
                ..started
            })
            .unwrap();
    }
}

/// `count` nodes in the shares of [`state_of`] on a profile that is not the default, so
/// unregistered nodes are refused.
fn seed(store: &Store, dir: &Path, count: usize) {
    let template = store.create_template(TEMPLATE, None).unwrap();
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    for file in ["vmlinuz", "initramfs.img"] {
        std::fs::write(artifacts.join(file), file).unwrap();
    }
    let path = |file: &str| artifacts.join(file).display().to_string();
    store
        .create_profile(&ProfileSpec {
            name: PROFILE.into(),
            kernel: path("vmlinuz"),
            initramfs: path("initramfs.img"),
            template: template.id,
            os_image: "http://images.invalid/emt.raw.gz".into(),
            default: false,
            ..Default::default()
        })
        .unwrap();
    let start = now_ms() - 3_600_000;
    for index in 0..count {
        let (serial, mac) = (serial(index), mac(index));
        let uuid = format!("00000000-0000-4000-8000-{index:012}");
        store
            .register(&RegistrationSpec {
                serial: Some(serial.clone()),
                uuid: Some(uuid.clone()),
                mac: Some(mac.clone()),
                profile: PROFILE.into(),
                hostname: Some(format!("rack1-u{:02}-n{index:03}", index % 42)),
                ..Default::default()
            })
            .unwrap();
        let state = state_of(index, count);
        if state == "registered" {
            continue;
        }
        let ip = if index == FOLLOWED {
            "127.0.0.1".to_string()
        } else {
            format!("10.0.{}.{}", index / 200, index % 200 + 20)
        };
        let discovered = store
            .discover(&Discovery {
                identity: Identity::new(Some(&serial), Some(&uuid), &[&mac]),
                ip: Some(ip),
                ..Default::default()
            })
            .unwrap();
        let workflow_id = discovered.workflow_id.unwrap();
        let workflow = store.get_workflow(&workflow_id).unwrap();
        let at = start + i64::try_from(index).unwrap() * 5_000;
        let reports: &[(usize, State)] = match state {
            "provisioning" => &[(0, State::Success), (1, State::Running)],
            "failed" => &[(0, State::Success), (1, State::Failed)],
            "provisioned" => &[
                (0, State::Success),
                (1, State::Success),
                (2, State::Success),
            ],
            _ => &[],
        };
        for (position, state) in reports {
            let at = at + i64::try_from(*position).unwrap() * 45_000;
            let action = &workflow.actions[*position].action_id;
            report(store, &workflow_id, action, &mac, *state, at);
        }
        if index == FOLLOWED {
            store
                .append_logs(
                    &discovered.node.id,
                    &[NewLogLine {
                        source: "tink-worker".into(),
                        severity: 3,
                        sent_at: None,
                        text: "write: unexpected EOF from the image server".into(),
                    }],
                )
                .unwrap();
        }
    }
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn wait_for(url: &str) {
    let client = common::http_client().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client.get(url).send().await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "provisioner serve did not answer on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `provisioner serve` of a seeded database, as a site runs it: its certificates from
/// `provisioner init` (TLS gRPC and a node CA, so workers must enroll), an admin token, boot
/// HTTP and syslog on loopback.
struct Site {
    db: TestDb,
    base: String,
    boot: u16,
    syslog: u16,
    _serve: ServeChild,
}

impl Site {
    async fn start(count: usize) -> Self {
        let started = Instant::now();
        let db = TestDb::new();
        seed(&db.open(), db.dir.path(), count);
        eprintln!("seeded {count} nodes in {:?}", started.elapsed());
        let pki = db.dir.path().join("pki");
        common::cli::init(&pki);
        let token_file = db.dir.path().join("admin-token");
        std::fs::write(&token_file, TOKEN).unwrap();
        // serve refuses a token file other users can read.
        std::fs::set_permissions(
            &token_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let (http, boot, grpc, syslog) = (free_port(), free_port(), free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .arg("--db")
            .arg(db.path())
            .arg("serve")
            .args(["--grpc", &format!("127.0.0.1:{grpc}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .arg("--admin-token-file")
            .arg(&token_file)
            .args(["--advertise", "127.0.0.1"])
            .args(["--boot-http", &format!("127.0.0.1:{boot}")])
            .args(["--syslog", &format!("127.0.0.1:{syslog}")])
            .arg("--tls-cert")
            .arg(pki.join("server.pem"))
            .arg("--tls-key")
            .arg(pki.join("server-key.pem"))
            .arg("--node-ca-cert")
            .arg(pki.join("node-ca.pem"))
            .arg("--node-ca-key")
            .arg(pki.join("node-ca-key.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let serve = ServeChild(child);
        let base = format!("http://127.0.0.1:{http}");
        wait_for(&format!("{base}/")).await;
        wait_for(&format!("http://127.0.0.1:{boot}/ipxe/auto.ipxe")).await;
        Self {
            db,
            base,
            boot,
            syslog,
            _serve: serve,
        }
    }

    /// Runs `script` (in tests/browser) against the page with `envs`, and waits for it at
    /// most 240 s; panics if it fails, naming the screenshots.
    async fn browse(&self, script: &str, envs: &[(&str, String)]) {
        let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        assert!(
            browser_dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is not installed: run `npm ci` in {} (scripts/setup.sh does)",
            browser_dir.display()
        );
        let artifacts = artifacts_dir();
        let mut node = Command::new("node")
            .arg(script)
            .current_dir(&browser_dir)
            .env("PAGE_URL", &self.base)
            .env("ADMIN_TOKEN", TOKEN)
            .env("ARTIFACTS", &artifacts)
            .env("USER_DATA_DIR", self.db.dir.path().join("chromium-profile"))
            .envs(envs.iter().map(|(name, value)| (name, value)))
            .spawn()
            .expect("node is not installed: apt-get install nodejs npm (scripts/setup.sh does)");
        let status = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(240);
            loop {
                if let Some(status) = node.try_wait().unwrap() {
                    return Some(status);
                }
                if Instant::now() > deadline {
                    let _ = node.kill();
                    let _ = node.wait();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{script} did not finish in 240 s"));
        assert!(
            status.success(),
            "{script} failed ({status:?}); screenshots in {}",
            artifacts.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and node"]
async fn an_operator_works_a_rack_of_500_on_the_status_page() {
    let started = Instant::now();
    let site = Site::start(500).await;

    // Machines serve refuses at their PXE boot: one whose serial was misspelt in the
    // registrations (HUX0O12 for HUX0012's neighbour), and unregistered ones.
    let client = common::http_client().build().unwrap();
    let refused = [
        ("52:54:00:99:00:01", "HUX0O12"),
        ("52:54:00:99:00:02", "NEW-MACHINE-2"),
        ("52:54:00:99:00:03", "NEW-MACHINE-3"),
    ];
    for (mac, serial) in refused {
        let script = client
            .get(format!("http://127.0.0.1:{}/ipxe/boot.ipxe", site.boot))
            .query(&[("mac", mac), ("serial", serial)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!script.contains("kernel "), "{serial} is refused: {script}");
    }

    let mut envs = vec![
        ("SYSLOG_PORT", site.syslog.to_string()),
        ("FOLLOWED_SERIAL", serial(FOLLOWED)),
        ("HOSTILE_SERIAL", HOSTILE_SERIAL.to_string()),
        ("REFUSED_SERIAL", refused[0].1.to_string()),
    ];
    // The README's picture, made again only when asked: a test run leaves the tree as it was.
    if std::env::var_os("BOOTKIT_UPDATE_SCREENSHOTS").is_some_and(|value| value == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/status-page.png");
        envs.push(("DOCS_SCREENSHOT", docs.display().to_string()));
    }
    site.browse("status_page.mjs", &envs).await;

    // The page's "register this node" made a registration the store holds (not only what
    // the page says): the misspelt node's real serial and MAC, on the profile chosen.
    let store = site.db.open();
    let registration = store
        .list_registrations()
        .unwrap()
        .into_iter()
        .find(|registration| registration.serial.as_deref() == Some(refused[0].1))
        .expect("the page registered the refused node");
    assert_eq!(registration.mac.as_deref(), Some(refused[0].0));
    assert_eq!(registration.profile, PROFILE);
    eprintln!("whole test: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and node"]
async fn the_page_at_2000_nodes_holds_one_page_of_rows() {
    const COUNT: usize = 2_000;
    let site = Site::start(COUNT).await;
    let failed = (0..COUNT)
        .filter(|index| state_of(*index, COUNT) == "failed")
        .count();
    let envs = [
        ("NODE_COUNT", COUNT.to_string()),
        ("FAILED_COUNT", failed.to_string()),
        ("SEARCHED_SERIAL", serial(1_234)),
    ];
    site.browse("status_page_scale.mjs", &envs).await;
}
