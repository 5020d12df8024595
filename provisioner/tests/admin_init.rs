//! `provisioner init`: a CA, a server certificate, an admin client certificate, a token and a
//! node CA, secrets created private, nothing overwritten by accident, and certificates that
//! work (checked with OpenSSL, an independent verifier).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::TestDb;
use common::admin::{AdminServer, Pem, https_get};
use provisioner::admin::AdminOptions;
use provisioner::https::TlsFiles;

const FILES: [(&str, u32); 9] = [
    ("ca.pem", 0o644),
    ("ca-key.pem", 0o600),
    ("server.pem", 0o644),
    ("server-key.pem", 0o600),
    ("admin.pem", 0o644),
    ("admin-key.pem", 0o600),
    ("admin-token", 0o600),
    ("node-ca.pem", 0o644),
    ("node-ca-key.pem", 0o600),
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
    for flag in [
        "--admin-token-file",
        "--node-ca-cert",
        "--node-ca-key",
        "--tls-cert",
    ] {
        assert!(
            printed.contains(flag),
            "prints the serve flag {flag}: {printed}"
        );
    }

    for (name, mode) in FILES {
        let metadata = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, mode, "{name}");
    }
    let token = read(&dir, "admin-token");
    let token = token.trim();
    assert_eq!(token.len(), 64, "32 bytes as hex: {token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));

    let ca_before = read(&dir, "ca.pem");
    let node_ca_before = read(&dir, "node-ca.pem");
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
    assert_ne!(read(&dir, "node-ca.pem"), node_ca_before, "a new node CA");
    assert_eq!(
        std::fs::metadata(dir.join("node-ca-key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
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

/// Runs openssl with `args` in `dir`: (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The PEM certificates of `pem`, in order.
fn certificates(pem: &str) -> Vec<String> {
    pem.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|block| block.contains("BEGIN CERTIFICATE"))
        .map(|block| block.trim_start().to_string())
        .collect()
}

/// server.pem is the chain a node can pin the CA from: the leaf (verified by OpenSSL against
/// ca.pem, for TLS servers) then exactly ca.pem.
#[test]
fn server_pem_is_the_full_chain_leaf_then_ca() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    assert!(init(&db, &[]).status.success());
    let chain = certificates(&read(&dir, "server.pem"));
    assert_eq!(chain.len(), 2, "leaf and CA: {chain:?}");
    assert_eq!(chain[1], read(&dir, "ca.pem"), "the second is ca.pem");
    std::fs::write(dir.join("leaf.pem"), &chain[0]).unwrap();
    let (ok, text) = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslserver",
            "leaf.pem",
        ],
    );
    assert!(ok, "{text}");
    // The node CA is another CA: the server leaf does not verify against it.
    let (ok, text) = openssl(&dir, &["verify", "-CAfile", "node-ca.pem", "leaf.pem"]);
    assert!(!ok, "{text}");
}

/// A node's certificate request made by OpenSSL (an independent client) with a subject of
/// its own choosing: the node CA of `init` signs the request's key with the subject the
/// provisioner writes, and OpenSSL verifies the result as a TLS client certificate.
#[test]
fn the_node_ca_signs_an_openssl_request_as_a_client_certificate_for_the_node() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    assert!(init(&db, &[]).status.success());
    let (ok, text) = openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "node-key.pem",
            "-out",
            "node.csr",
            "-subj",
            "/CN=provisioner admin",
        ],
    );
    assert!(ok, "{text}");
    let node_ca =
        provisioner::node_ca::NodeCa::load(&dir.join("node-ca.pem"), &dir.join("node-ca-key.pem"))
            .unwrap();
    let signed = node_ca
        .sign(
            &read(&dir, "node.csr"),
            "52:54:00:12:34:56",
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    std::fs::write(dir.join("node.pem"), &signed.cert_pem).unwrap();

    let (ok, text) = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "node-ca.pem",
            "-purpose",
            "sslclient",
            "node.pem",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = openssl(&dir, &["verify", "-CAfile", "ca.pem", "node.pem"]);
    assert!(!ok, "not an admin CA certificate: {text}");
    let (ok, text) = openssl(&dir, &["x509", "-in", "node.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("CN=52:54:00:12:34:56") || text.contains("CN = 52:54:00:12:34:56"),
        "{text}"
    );
    assert!(
        text.contains("URI:urn:bootkit:node:52:54:00:12:34:56"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(
        !text.contains("provisioner admin"),
        "the request's subject is ignored: {text}"
    );
    // The certificate carries the request's key, which only the node holds.
    let (_, cert_key) = openssl(&dir, &["x509", "-in", "node.pem", "-noout", "-pubkey"]);
    let (_, request_key) = openssl(&dir, &["req", "-in", "node.csr", "-noout", "-pubkey"]);
    assert_eq!(cert_key, request_key);
    // The fingerprint is OpenSSL's SHA-256 of the DER.
    let (_, fingerprint) = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "node.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let expected: String = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase();
    assert_eq!(signed.fingerprint_hex, expected);
}

/// Text that is no certificate request is refused naming the field, and a CA key that is not
/// the node CA certificate's is refused at load.
#[test]
fn a_malformed_request_and_a_foreign_ca_key_are_refused() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    assert!(init(&db, &[]).status.success());
    let node_ca =
        provisioner::node_ca::NodeCa::load(&dir.join("node-ca.pem"), &dir.join("node-ca-key.pem"))
            .unwrap();
    let error = node_ca
        .sign("not a request", "node", std::time::Duration::from_secs(60))
        .unwrap_err()
        .to_string();
    assert!(error.contains("bootkit_csr_pem"), "{error}");
    // The key file of the other CA does not belong to node-ca.pem.
    let error =
        provisioner::node_ca::NodeCa::load(&dir.join("node-ca.pem"), &dir.join("ca-key.pem"))
            .unwrap_err()
            .to_string();
    assert!(error.contains("does not belong"), "{error}");
}

/// The admin API trusting ca.pem for client certificates does not admit a node certificate
/// the node CA signed (a different CA), while it admits admin.pem.
#[tokio::test]
async fn a_node_certificate_is_not_an_admin_credential() {
    let db = TestDb::new();
    let dir = db.dir.path().join("tls");
    assert!(init(&db, &[]).status.success());
    let node_key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&node_key)
        .unwrap()
        .pem()
        .unwrap();
    let node_ca =
        provisioner::node_ca::NodeCa::load(&dir.join("node-ca.pem"), &dir.join("node-ca-key.pem"))
            .unwrap();
    let signed = node_ca
        .sign(
            &csr,
            "52:54:00:aa:bb:cc",
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
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
    let node = Pem {
        cert: signed.cert_pem,
        key: node_key.serialize_pem(),
    };
    let status = https_get(
        server.addr,
        &ca,
        "localhost",
        Some(&node),
        None,
        "/api/v1/templates",
    )
    .await;
    assert!(
        matches!(status, Err(_) | Ok(401)),
        "a node certificate is refused (handshake or 401): {status:?}"
    );
    let admin = Pem {
        cert: read(&dir, "admin.pem"),
        key: read(&dir, "admin-key.pem"),
    };
    let status = https_get(
        server.addr,
        &ca,
        "localhost",
        Some(&admin),
        None,
        "/api/v1/templates",
    )
    .await;
    assert_eq!(status, Ok(200), "the admin certificate is admitted");
}
