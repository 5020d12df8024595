//! Profiles name files inside the artifact roots only (issue 15 §2): `<database dir>/artifacts`
//! or `serve --artifacts-dir`, plus `--artifacts-root` extras. Checked by the admin API and
//! the CLI alike, and again at serve time with `openat2(RESOLVE_BENEATH)`, so a symlink
//! leading out of a root, or a profile of an older database naming `/etc/...`, is never
//! served. Fetched with an ordinary HTTP client (reqwest), as a node would.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::admin::{AdminServer, token_options};
use common::cli::run;
use common::fleet::artifacts_dir;
use common::{TEMPLATE, TestDb};
use provisioner::boot::BootOptions;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::store::{ProfileSpec, Store};
use serde_json::json;

#[tokio::test]
async fn the_admin_api_refuses_etc_shadow_and_dot_dot_naming_the_field_path_and_roots() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    let template = server.store.create_template(TEMPLATE, None).unwrap();
    let artifacts = artifacts_dir(db.dir.path());
    std::fs::write(artifacts.join("vmlinuz"), "kernel").unwrap();
    std::fs::write(artifacts.join("initrd"), "initrd").unwrap();
    let api = server.client();
    let profile = |name: &str, kernel: &str| {
        json!({"name": name, "kernel": kernel, "initramfs": "initrd", "template": template.id,
               "os_image": "https://images.example/os.img"})
    };
    let escape = format!("{}/../provisioner.db", artifacts.display());
    for kernel in ["/etc/shadow", escape.as_str(), "../provisioner.db"] {
        let (status, error) = api.post("/api/v1/profiles", profile("bad", kernel)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kernel}: {error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with("kernel: "), "{message}");
        assert!(message.contains(kernel), "{message}");
        assert!(
            message.contains(&format!("put the file in {}", artifacts.display())),
            "{message}"
        );
        assert!(message.contains("--artifacts-root"), "{message}");
    }
    // A relative path resolves under the artifacts directory; an absolute one inside it too.
    let inside = artifacts.join("vmlinuz").display().to_string();
    for (name, kernel) in [("relative", "vmlinuz"), ("absolute", inside.as_str())] {
        let (status, created) = api.post("/api/v1/profiles", profile(name, kernel)).await;
        assert_eq!(status, StatusCode::CREATED, "{kernel}: {created}");
        assert_eq!(created["kernel"], kernel);
    }
    assert_eq!(server.store.list_profiles().unwrap().len(), 2);
}

fn serving(boot: BootOptions) -> ServeOptions {
    ServeOptions {
        grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        http: None,
        tls: None,
        protocols: Default::default(),
        admin: Default::default(),
        boot: Some(boot),
        node_ca: None,
        allow_unauthenticated_workers: true,
    }
}

async fn get(url: &str) -> (StatusCode, Vec<u8>) {
    let client = common::http_client().build().unwrap();
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_symlink_out_of_the_artifacts_dir_is_refused_at_serve_time_and_one_inside_is_served() {
    let db = TestDb::new();
    let store = Arc::new(db.open());
    let artifacts = artifacts_dir(db.dir.path());
    std::fs::write(artifacts.join("vmlinuz"), "kernel bytes").unwrap();
    std::fs::create_dir(artifacts.join("real")).unwrap();
    std::fs::write(artifacts.join("real/initrd"), "initrd bytes").unwrap();
    std::os::unix::fs::symlink("real/initrd", artifacts.join("initrd")).unwrap();
    std::fs::write(artifacts.join("os.img"), "image bytes").unwrap();
    let template = store.create_template(TEMPLATE, None).unwrap();
    store
        .create_profile(&ProfileSpec {
            name: "edge".into(),
            kernel: "vmlinuz".into(),
            initramfs: "initrd".into(),
            template: template.id,
            os_image: "os.img".into(),
            ..Default::default()
        })
        .unwrap();
    // Swapped for a link out after the profile was accepted: only the open at serve time
    // can catch it.
    std::fs::remove_file(artifacts.join("os.img")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", artifacts.join("os.img")).unwrap();
    // A profile an older provisioner stored, naming a file outside every root.
    let connection = rusqlite::Connection::open(db.path()).unwrap();
    connection
        .execute(
            "INSERT INTO profiles (name, kernel, initramfs, cmdline, template_id, os_image,
                is_default, created_ms)
             SELECT 'old', '/etc/passwd', initramfs, '', template_id, os_image, 0, 0
             FROM profiles WHERE name = 'edge'",
            [],
        )
        .unwrap();
    let mut boot = BootOptions::new(Ipv4Addr::LOCALHOST);
    boot.http = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let server = RunningServer::start(Arc::clone(&store), &serving(boot))
        .await
        .unwrap();
    let url = |path: &str| format!("http://{}{path}", server.boot_http_addr.unwrap());
    let passwd = std::fs::read(Path::new("/etc/passwd")).unwrap();

    let (status, body) = get(&url("/artifacts/profiles/edge/kernel")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"kernel bytes"[..])
    );
    let (status, body) = get(&url("/artifacts/profiles/edge/initramfs")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"initrd bytes"[..])
    );
    for refused in [
        "/artifacts/profiles/edge/os-image",
        "/artifacts/profiles/old/kernel",
    ] {
        let (status, body) = get(&url(refused)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert!(!body.is_empty() && body != passwd, "{refused}");
    }
    // Still serving after the refusals.
    let (status, _) = get(&url("/artifacts/profiles/old/initramfs")).await;
    assert_eq!(status, StatusCode::OK);

    // A kernel published elsewhere: the node is sent there (iPXE follows redirects).
    let edge = store.get_profile("edge").unwrap();
    store
        .create_profile(&ProfileSpec {
            name: "remote".into(),
            kernel: "https://images.example/vmlinuz".into(),
            initramfs: edge.initramfs,
            template: edge.template_id,
            os_image: "https://images.example/os.img".into(),
            ..Default::default()
        })
        .unwrap();
    let client = common::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(url("/artifacts/profiles/remote/kernel"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        "https://images.example/vmlinuz"
    );
}

/// Starts `serve` with `args` in the directory `cwd`, waits for its "provisioner serving" line
/// and stops it; returns every line it logged.
fn serve_briefly(db: &TestDb, cwd: &Path, args: &[&str]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(cwd)
        .arg("--db")
        .arg(db.path())
        .args(["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args([
            "--admin-insecure-no-auth",
            "--allow-unauthenticated-workers",
        ])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut logged = Vec::new();
    while !logged
        .iter()
        .any(|line: &String| line.contains("provisioner serving"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => logged.push(line),
            Err(error) => {
                let _ = child.kill();
                panic!("serve did not start within 30 s ({error}): {logged:#?}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    logged
}

#[test]
fn serve_records_its_roots_for_the_cli_and_logs_profiles_outside_them() {
    let db = TestDb::new();
    let dir = db.dir.path();
    let extra = dir.join("images");
    let other = dir.join("elsewhere");
    for made in [&extra, &other] {
        std::fs::create_dir(made).unwrap();
        std::fs::write(made.join("vmlinuz"), "kernel").unwrap();
    }
    let template = dir.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let created = run(&db, &["template", "create", "--file", path(&template)]);
    assert!(created.status.success());
    let profile = |name: &str, kernel: &str| {
        run(
            &db,
            &[
                "profile",
                "create",
                "--name",
                name,
                "--kernel",
                kernel,
                "--initramfs",
                kernel,
                "--template",
                "three-actions",
                "--os-image",
                "http://x/os.img",
            ],
        )
    };
    // Before any serve: the default directory only.
    let under_extra = extra.join("vmlinuz");
    let refused = profile("early", path(&under_extra));
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("kernel: "), "{stderr}");
    assert!(stderr.contains(&format!(
        "put the file in {}",
        dir.join("artifacts").display()
    )));

    // An older database's profile naming a file outside: logged at start, not a crash.
    let store = Store::open(&db.path()).unwrap();
    let template_id = store.list_templates().unwrap()[0].id.clone();
    drop(store);
    rusqlite::Connection::open(db.path())
        .unwrap()
        .execute(
            "INSERT INTO profiles (name, kernel, initramfs, cmdline, template_id, os_image,
                is_default, created_ms) VALUES ('old', '/etc/passwd', '/etc/passwd', '',
                ?1, 'http://x/os.img', 0, 0)",
            [template_id],
        )
        .unwrap();
    let artifacts = dir.join("site-artifacts");
    let logged = serve_briefly(
        &db,
        dir,
        &[
            "--artifacts-dir",
            path(&artifacts),
            "--artifacts-root",
            path(&extra),
        ],
    );
    let mode = std::fs::metadata(&artifacts).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(
        logged
            .iter()
            .any(|line| line.contains("profile old's kernel: /etc/passwd is outside")),
        "{logged:#?}"
    );

    // The CLI now checks against serve's roots: the extra root is accepted, others are not.
    let accepted = profile("extra", path(&under_extra));
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let refused = profile("other", path(&other.join("vmlinuz")));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains(path(&extra)), "{stderr}");
    assert!(
        stderr.contains(&format!("put the file in {}", artifacts.display())),
        "{stderr}"
    );
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_relative_profile_path_is_stored_absolute_and_serve_finds_it_from_another_directory() {
    let db = TestDb::new();
    let dir = db.dir.path();
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("vmlinuz"), "kernel").unwrap();
    std::fs::write(images.join("initrd"), "initrd").unwrap();
    let template = dir.join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    assert!(
        run(&db, &["template", "create", "--file", path(&template)])
            .status
            .success()
    );
    // serve records its roots: the images directory is one.
    serve_briefly(&db, dir, &["--artifacts-root", path(&images)]);

    // The operator in the images directory names the files as the shell completes them.
    let created = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(&images)
        .arg("--db")
        .arg(db.path())
        .args(["--json", "profile", "create", "--name", "edge"])
        .args(["--kernel", "vmlinuz", "--initramfs", "./initrd"])
        .args([
            "--template",
            "three-actions",
            "--os-image",
            "http://x/os.img",
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stored = Store::open(&db.path())
        .unwrap()
        .get_profile("edge")
        .unwrap();
    assert_eq!(stored.kernel, path(&images.join("vmlinuz")));
    assert_eq!(stored.initramfs, path(&images.join("initrd")));
    assert_eq!(stored.os_image, "http://x/os.img", "a URL stays as given");

    // serve started from another directory finds both files: its check at start says
    // neither is missing nor outside its roots.
    let elsewhere = tempfile::tempdir().unwrap();
    let logged = serve_briefly(&db, elsewhere.path(), &["--artifacts-root", path(&images)]);
    assert!(
        !logged.iter().any(|line| line.contains("profile edge")
            && (line.contains("does not exist") || line.contains("outside"))),
        "{logged:#?}"
    );
}
