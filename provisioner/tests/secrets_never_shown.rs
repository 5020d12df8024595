//! Secrets never appear in logs, the page, the API or the CLI (issue 15 §4): one full run of
//! the real `provisioner serve` (init, token auth, a profile and a registered node, onboarding
//! over TLS gRPC with a certificate request), then every admin API answer, the page's files,
//! the CLI's views, the server's whole stdout and stderr and the database file itself are
//! searched for the admin token, the client_secret onboarding issued and any private key.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::TestDb;
use common::admin::{AdminClient, json_of};
use onboarding_proto::v1::OnboardNodeStreamRequest;
use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const PROVISIONER: &str = env!("CARGO_BIN_EXE_provisioner");
const SERIAL: &str = "SN-SECRETS-1";
const MAC: &str = "52:54:00:5e:c0:01";

/// `serve` as a child process, killed if the test fails before it stops it.
struct Served {
    child: Child,
    /// Every line of its stdout and stderr, as they come.
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Collects `stream`'s lines into `output` (reading to the end so the server never blocks on
/// a full pipe), telling `started` about the start-up line.
fn collect(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    started: mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.contains("provisioner serving") {
                let _ = started.send(line.clone());
            }
            output.lock().unwrap().push(line);
        }
    });
}

fn serve(db: &Path, args: &[String]) -> (Served, String) {
    let mut child = Command::new(PROVISIONER)
        .arg("--db")
        .arg(db)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(Vec::new()));
    let (started, start_line) = mpsc::channel();
    collect(
        child.stdout.take().unwrap(),
        Arc::clone(&output),
        started.clone(),
    );
    collect(child.stderr.take().unwrap(), Arc::clone(&output), started);
    let served = Served { child, output };
    let line = start_line
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|error| {
            panic!(
                "serve did not start within 30 s ({error}): {:?}",
                served.output.lock().unwrap()
            )
        });
    (served, line)
}

/// The address after `name=` (`grpc=127.0.0.1:1234`, `admin=Some(127.0.0.1:1234)`).
fn logged_addr(line: &str, name: &str) -> SocketAddr {
    let start = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 1;
    let rest = line[start..].trim_start_matches("Some(");
    let end = rest
        .find(|c: char| c == ')' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|error| panic!("{name} in {line}: {error}"))
}

fn ok(db: &TestDb, args: &[&str]) -> String {
    common::cli::ok(db, args)
}

/// The base64 body of a PEM block (what a leak would show even without its armour lines).
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_of_a_full_run_appears_in_logs_answers_pages_or_the_database() {
    let db = TestDb::new();
    let site = db.dir.path().join("site");
    let site_str = site.to_str().unwrap().to_string();
    let init_output = ok(&db, &["init", "--dir", &site_str]);
    let read = |name: &str| std::fs::read_to_string(site.join(name)).unwrap();
    let token = read("admin-token").trim().to_string();

    // A profile and a registered node, as an operator makes them.
    // The bootkit files in the artifacts directory (`<database dir>/artifacts`), where
    // profiles' files must be.
    let files = db.dir.path().join("artifacts");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("template.yaml"), common::TEMPLATE).unwrap();
    for file in ["vmlinuz", "initramfs.img"] {
        std::fs::write(files.join(file), file).unwrap();
    }
    let path = |name: &str| files.join(name).display().to_string();
    let template = common::cli::json(
        &db,
        &["template", "create", "--file", &path("template.yaml")],
    );
    let template_id = template["id"].as_str().unwrap();
    ok(
        &db,
        &[
            "profile",
            "create",
            "--name",
            "edge",
            "--kernel",
            &path("vmlinuz"),
            "--initramfs",
            &path("initramfs.img"),
            "--template",
            template_id,
            "--os-image",
            "http://192.0.2.1/os.img",
            "--default",
        ],
    );
    ok(
        &db,
        &[
            "node",
            "register",
            "--serial",
            SERIAL,
            "--mac",
            MAC,
            "--profile",
            "edge",
        ],
    );

    let mut args: Vec<String> = [
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--admin-token-file",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.push(format!("{site_str}/admin-token"));
    args.extend([
        "--tls-cert".into(),
        format!("{site_str}/server.pem"),
        "--tls-key".into(),
        format!("{site_str}/server-key.pem"),
    ]);
    // Node enrollment: the CSR below is signed, and the node CA's key is one more secret.
    args.extend([
        "--node-ca-cert".into(),
        format!("{site_str}/node-ca.pem"),
        "--node-ca-key".into(),
        format!("{site_str}/node-ca-key.pem"),
    ]);
    let (mut served, line) = serve(&db.path(), &args);
    let grpc = logged_addr(&line, "grpc");
    let admin = logged_addr(&line, "admin");

    // Onboarding over TLS gRPC, trusting the site CA, with a key made on the "node".
    let node_key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::new())
        .unwrap()
        .serialize_request(&node_key)
        .unwrap()
        .pem()
        .unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{grpc}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut onboarding = NonInteractiveOnboardingServiceClient::new(channel);
    let request = OnboardNodeStreamRequest {
        uuid: String::new(),
        serialnum: SERIAL.into(),
        mac_id: MAC.into(),
        host_ip: "127.0.0.1".into(),
        mac_ids: Vec::new(),
        hardware_json: "{}".into(),
        bootkit_csr_pem: csr,
    };
    let mut answers = onboarding
        .onboard_node_stream(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let client_secret = answer.client_secret.clone();
    assert_eq!(client_secret.len(), 64, "onboarded: {answer:?}");
    assert!(
        answer.bootkit_client_cert_pem.contains("BEGIN CERTIFICATE"),
        "enrolled: {answer:?}"
    );
    drop(answers);

    // Every admin answer, as the page and a script would fetch them.
    let api = AdminClient::new(format!("http://{admin}"), Some(&token));
    let (_, nodes) = api.get("/api/v1/nodes").await;
    let node_id = nodes[0]["id"].as_str().unwrap().to_string();
    let mut answers: Vec<(String, String)> = Vec::new();
    let (status, reprovision) = api
        .post(
            &format!("/api/v1/nodes/{node_id}/reprovision"),
            serde_json::json!({}),
        )
        .await;
    answers.push((format!("reprovision ({status})"), reprovision.to_string()));
    let wrong = AdminClient::new(format!("http://{admin}"), Some("a-wrong-token"));
    let (status, refusal) = wrong.get("/api/v1/nodes").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    answers.push(("refusal".into(), refusal.to_string()));
    for path in [
        "/api/v1/nodes".to_string(),
        format!("/api/v1/nodes/{node_id}"),
        format!("/api/v1/nodes/{node_id}/logs"),
        "/api/v1/audit".into(),
        "/api/v1/workflows".into(),
        "/api/v1/templates".into(),
        "/api/v1/hardware".into(),
        "/api/v1/registrations".into(),
        "/api/v1/profiles".into(),
        "/api/v1/profiles/default".into(),
        "/api/v1/openapi.json".into(),
        "/metrics".into(),
        "/".into(),
        "/app.js".into(),
    ] {
        let response = api
            .raw(reqwest::Method::GET, &path, "application/json", None)
            .await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        answers.push((path, text));
    }
    let (_, audit) = json_of(
        api.raw(reqwest::Method::GET, "/api/v1/audit", "", None)
            .await,
    )
    .await;
    assert!(
        audit.as_array().is_some_and(|entries| entries.len() >= 2),
        "the reprovision and the refusal are recorded: {audit}"
    );

    answers.push(("provisioner init".into(), init_output));
    // The CLI's views of the same database.
    for args in [
        &["node", "list"][..],
        &["--json", "node", "show", &node_id],
        &["--json", "node", "registrations"],
        &["audit"],
        &["get", "hardware", "-o", "yaml"],
    ] {
        answers.push((format!("provisioner {}", args.join(" ")), ok(&db, args)));
    }

    // Stopped by SIGTERM, so that the log is complete; the database as SQLite wrote it.
    let killed = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while served.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The reader threads finish with the pipes.
    std::thread::sleep(Duration::from_millis(200));
    let log = served.output.lock().unwrap().join("\n");
    assert!(log.contains("provisioner serving"), "{log}");
    answers.push(("serve's stdout and stderr".into(), log));
    for suffix in ["", "-wal"] {
        let file = format!("{}{suffix}", db.path().display());
        if let Ok(bytes) = std::fs::read(&file) {
            answers.push((file, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }

    // The search sees real data: the node's serial is in the database and its answers.
    for source in [
        db.path().display().to_string(),
        format!("/api/v1/nodes/{node_id}"),
    ] {
        let (_, text) = answers.iter().find(|(name, _)| *name == source).unwrap();
        assert!(text.contains(SERIAL), "{source} holds the node");
    }

    let mut secrets = vec![
        ("the admin token".to_string(), token.clone()),
        ("the onboarding client_secret".to_string(), client_secret),
        (
            "a private key's armour".to_string(),
            "PRIVATE KEY".to_string(),
        ),
        (
            "the node's private key".to_string(),
            pem_body(&node_key.serialize_pem()),
        ),
    ];
    for key in [
        "ca-key.pem",
        "server-key.pem",
        "admin-key.pem",
        "node-ca-key.pem",
    ] {
        if let Ok(pem) = std::fs::read_to_string(site.join(key)) {
            secrets.push((key.to_string(), pem_body(&pem)));
        }
    }
    let mut leaks = Vec::new();
    for (source, text) in &answers {
        for (secret, value) in &secrets {
            if text.contains(value.as_str()) {
                leaks.push(format!("{secret} appears in {source}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}
