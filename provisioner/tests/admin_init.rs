//! `provisioner init`: a CA, a server certificate, an admin client certificate and a token,
//! secrets created private, nothing overwritten by accident, and certificates that work.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::TestDb;
use common::admin::{AdminServer, Pem, https_get};
use provisioner::admin::AdminOptions;
use provisioner::https::TlsFiles;

const FILES: [(&str, u32); 7] = [
    ("ca.pem", 0o644),
    ("ca-key.pem", 0o600),
    ("server.pem", 0o644),
    ("server-key.pem", 0o600),
    ("admin.pem", 0o644),
    ("admin-key.pem", 0o600),
    ("admin-token", 0o600),
];

fn init(db: &TestDb, extra: &[&str]) -> Output {
    let dir = db.dir.path().join("tls");
    Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("--db")
        .arg(db.path())
        .arg("init")
        .arg("--dir")
        .arg(&dir)
        .args(["--hostname", "prov.example", "--ip", "10.0.0.1"])
        .args(extra)
        .output()
        .unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn init_writes_private_secrets_and_refuses_to_overwrite_them() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    let first = init(&db, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let printed = String::from_utf8_lossy(&first.stdout);
    assert!(
        printed.contains("--admin-token-file"),
        "prints the serve flags: {printed}"
    );

    for (name, mode) in FILES {
        let metadata = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, mode, "{name}");
    }
    let token = read(&dir, "admin-token");
    let token = token.trim();
    assert_eq!(token.len(), 64, "32 bytes as hex: {token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));

    let ca_before = read(&dir, "ca.pem");
    let again = init(&db, &[]);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(
        error.contains("ca.pem") && error.contains("--force"),
        "{error}"
    );
    assert_eq!(read(&dir, "ca.pem"), ca_before, "nothing overwritten");

    let forced = init(&db, &["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(read(&dir, "ca.pem"), ca_before, "a new CA");
    assert_ne!(read(&dir, "admin-token").trim(), token, "a new token");
    assert_eq!(
        std::fs::metadata(dir.join("admin-key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[tokio::test]
async fn the_generated_certificates_serve_the_admin_api_to_the_admin_certificate() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    let output = init(&db, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let options = AdminOptions {
        token: Some(read(&dir, "admin-token")),
        client_ca: Some(dir.join("ca.pem")),
        tls: Some(TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }),
        insecure_no_auth: false,
    };
    let server = AdminServer::start(&db.path(), options).await;
    let ca = read(&dir, "ca.pem");
    let admin = Pem {
        cert: read(&dir, "admin.pem"),
        key: read(&dir, "admin-key.pem"),
    };
    let token = read(&dir, "admin-token");
    // The server certificate names every --hostname and --ip, and localhost.
    for name in ["localhost", "127.0.0.1", "prov.example", "10.0.0.1"] {
        let status = https_get(
            server.addr,
            &ca,
            name,
            Some(&admin),
            None,
            "/api/v1/templates",
        )
        .await;
        assert_eq!(status, Ok(200), "as {name}");
    }
    let status = https_get(
        server.addr,
        &ca,
        "localhost",
        None,
        Some(token.trim()),
        "/metrics",
    )
    .await;
    assert_eq!(status, Ok(200), "the token file's content is the token");
    let status = https_get(server.addr, &ca, "other.example", Some(&admin), None, "/").await;
    assert!(status.is_err(), "a name not in the certificate: {status:?}");
}
