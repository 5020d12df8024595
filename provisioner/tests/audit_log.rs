//! The audit log over the real admin API and the real CLI: every change and every refusal is
//! recorded with who (the token by its hash prefix, a client certificate by its subject and
//! fingerprint, the CLI by its uid), what, when and from where; the token itself never is.
//! Names and fingerprints are checked against coreutils' `sha256sum`, OpenSSL and `id`.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::admin::{ADMIN_TOKEN, AdminClient, AdminServer, Pem, token_options};
use common::{TEMPLATE, TestDb};
use provisioner::admin::AdminOptions;
use provisioner::https::TlsFiles;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// stdout of a host tool that must succeed.
fn tool(program: &str, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{program} {args:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// "admin token " and the first 8 hex digits of the token's SHA-256, as `sha256sum` says.
fn token_name(token: &str) -> String {
    let digest = tool("sha256sum", &[], token.as_bytes());
    format!("admin token {}", &digest[..8])
}

fn list(audit: &Value) -> &Vec<Value> {
    audit
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {audit}"))
}

#[tokio::test]
async fn changes_and_refusals_through_the_api_are_recorded_with_the_token_named_by_its_hash() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    let api = server.client();

    let (status, template) = api
        .post(
            "/api/v1/templates",
            json!({"name": "audited", "data": TEMPLATE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let id = template["id"].as_str().unwrap().to_string();
    // Reads are not changes: not recorded.
    assert_eq!(api.get("/api/v1/templates").await.0, StatusCode::OK);
    let (status, _) = api.delete(&format!("/api/v1/templates/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let anonymous = AdminClient::new(server.url(""), None);
    let (status, _) = anonymous
        .post("/api/v1/templates", json!({"data": TEMPLATE}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let guesser = AdminClient::new(server.url(""), Some("not-the-token"));
    let (status, _) = guesser.delete("/api/v1/profiles/edge").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A refused read is recorded as well: someone is probing.
    assert_eq!(
        anonymous.get("/api/v1/nodes").await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, audit) = api.get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries = list(&audit);
    let seen: Vec<(&str, &str, &str, u64)> = entries
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap(),
                entry["method"].as_str().unwrap(),
                entry["summary"].as_str().unwrap(),
                entry["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let admin = token_name(ADMIN_TOKEN);
    let guessed = token_name("not-the-token");
    let created = format!("create template {id:?}");
    let deleted = format!("delete template {id:?}");
    assert_eq!(
        seen,
        [
            (admin.as_str(), "POST", created.as_str(), 201),
            (admin.as_str(), "DELETE", deleted.as_str(), 204),
            (
                "no credential",
                "POST",
                "create template: refused (no valid credential)",
                401
            ),
            (
                guessed.as_str(),
                "DELETE",
                "delete profile \"edge\": refused (no valid credential)",
                401
            ),
            (
                "no credential",
                "GET",
                "GET /api/v1/nodes: refused (no valid credential)",
                401
            ),
        ],
        "{audit}"
    );
    for entry in entries {
        let address: SocketAddr = entry["address"].as_str().unwrap().parse().unwrap();
        assert!(address.ip().is_loopback(), "{entry}");
        assert!(entry["at"].as_str().unwrap().ends_with('Z'), "{entry}");
    }
    assert_eq!(entries[0]["path"], "/api/v1/templates");
    assert_eq!(entries[1]["path"], format!("/api/v1/templates/{id}"));
    assert!(
        !audit.to_string().contains(ADMIN_TOKEN),
        "the token itself is never recorded: {audit}"
    );

    // since= and limit= page through it; the audit read itself is not recorded.
    let (_, newest) = api.get("/api/v1/audit?limit=1").await;
    assert_eq!(list(&newest).len(), 1);
    assert_eq!(newest[0]["seq"], entries[4]["seq"]);
    let after_first = entries[1]["at_ms"].as_i64().unwrap();
    let (_, since) = api.get(&format!("/api/v1/audit?since={after_first}")).await;
    assert!(list(&since).len() >= 4, "{since}");
    assert!(
        list(&since)
            .iter()
            .all(|entry| entry["at_ms"].as_i64().unwrap() >= after_first)
    );
    let (status, _) = anonymous.get("/api/v1/audit").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the log is for admins only"
    );
}

/// One request over TLS to `addr` as "localhost" (trusting `ca_pem`), with a client
/// certificate: the status and the body.
async fn https_request(
    addr: SocketAddr,
    ca_pem: &str,
    client: &Pem,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(client.cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(client.key.as_bytes()).unwrap(),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_change_with_the_admin_certificate_is_recorded_by_its_subject_and_fingerprint() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    let init = common::cli::run(&db, &["init", "--dir", dir.to_str().unwrap()]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let options = AdminOptions {
        token: Some(read("admin-token")),
        client_ca: Some(dir.join("ca.pem")),
        tls: Some(TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }),
        insecure_no_auth: false,
    };
    let server = AdminServer::start(&db.path(), options).await;
    let admin = Pem {
        cert: read("admin.pem"),
        key: read("admin-key.pem"),
    };
    let body = json!({"name": "by-certificate", "data": TEMPLATE}).to_string();
    let (status, answer) = https_request(
        server.addr,
        &read("ca.pem"),
        &admin,
        "POST",
        "/api/v1/templates",
        &body,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, audit) = https_request(
        server.addr,
        &read("ca.pem"),
        &admin,
        "GET",
        "/api/v1/audit",
        "",
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let entries = list(&audit);
    assert_eq!(entries.len(), 1, "{audit}");

    // OpenSSL's view of admin.pem: "sha256 Fingerprint=AB:CD:..." and "subject=CN=...".
    let fingerprint = tool(
        "openssl",
        &["x509", "-noout", "-fingerprint", "-sha256"],
        admin.cert.as_bytes(),
    );
    let fingerprint = fingerprint
        .trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase();
    let subject = tool(
        "openssl",
        &["x509", "-noout", "-subject", "-nameopt", "multiline"],
        admin.cert.as_bytes(),
    );
    let common_name = subject
        .lines()
        .find_map(|line| line.trim().strip_prefix("commonName"))
        .unwrap()
        .trim_start_matches([' ', '='])
        .trim();
    assert_eq!(
        entries[0]["actor"],
        format!("client certificate CN={common_name:?} sha256 {fingerprint}"),
        "{audit}"
    );
    assert_eq!(entries[0]["status"], 201);
    assert_eq!(entries[0]["method"], "POST");
    let address: SocketAddr = entries[0]["address"].as_str().unwrap().parse().unwrap();
    assert!(address.ip().is_loopback(), "{audit}");
}

#[test]
fn the_cli_records_its_own_changes_and_shows_the_log() {
    let db = TestDb::new();
    let template = db.dir.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let created = common::cli::json(
        &db,
        &["template", "create", "--file", template.to_str().unwrap()],
    );
    let id = created["id"].as_str().unwrap().to_string();
    common::cli::ok(&db, &["template", "list"]);
    common::cli::ok(&db, &["template", "delete", &id]);
    let refused = common::cli::run(&db, &["template", "delete", "no-such-template"]);
    assert!(!refused.status.success());

    let uid = tool("id", &["-u"], b"");
    let actor = format!("local CLI (uid {})", uid.trim());
    let audit = common::cli::json(&db, &["audit"]);
    let seen: Vec<(&str, &str, &str, &str, u64)> = list(&audit)
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap(),
                entry["address"].as_str().unwrap(),
                entry["path"].as_str().unwrap(),
                entry["summary"].as_str().unwrap(),
                entry["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let deleted = format!("template delete {id:?}");
    assert_eq!(
        seen,
        [
            (
                actor.as_str(),
                "local",
                "template create",
                "template create",
                0
            ),
            (
                actor.as_str(),
                "local",
                "template delete",
                deleted.as_str(),
                0
            ),
            (
                actor.as_str(),
                "local",
                "template delete",
                "template delete \"no-such-template\"",
                1
            ),
        ],
        "{audit}"
    );
    // -o json is the same; the table has a header and a line per entry.
    let json_output: Value =
        serde_json::from_str(&common::cli::ok(&db, &["audit", "-o", "json"])).unwrap();
    assert_eq!(json_output, audit);
    let table = common::cli::ok(&db, &["audit", "--since", "1h", "--limit", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert!(
        lines[1].contains(&deleted) && lines[1].contains(&actor),
        "{table}"
    );
    let future = common::cli::ok(&db, &["audit", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(future.lines().count(), 1, "only the header: {future}");
    let wrong = common::cli::run(&db, &["audit", "--since", "yesterday"]);
    let error = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && error.contains("RFC 3339"),
        "{error}"
    );
}
