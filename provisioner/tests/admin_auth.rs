//! Who may use the admin listener: the token, a client certificate from the admin CA, or
//! (only when asked for) anyone.

mod common;

use std::sync::Arc;

use common::TestDb;
use common::admin::{ADMIN_TOKEN, AdminClient, AdminServer, Pem, https_get, token_options};
use provisioner::admin::AdminOptions;
use provisioner::https::TlsFiles;
use provisioner::store::Store;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::StatusCode;

#[tokio::test]
async fn the_api_and_metrics_need_the_token_and_say_how_to_send_it() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;

    for path in ["/api/v1/templates", "/metrics", "/api/v1/openapi.json"] {
        let anonymous = AdminClient::new(server.url(""), None);
        let response = anonymous.raw(reqwest::Method::GET, path, "", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let (_, body) = common::admin::json_of(response).await;
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("Authorization: Bearer"), "{error}");

        let wrong = AdminClient::new(server.url(""), Some("not-the-token"));
        let (status, body) = wrong.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("refused"),
            "{body}"
        );

        let response = server
            .client()
            .raw(reqwest::Method::GET, path, "", None)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let (status, templates) = server.client().get("/api/v1/templates").await;
    assert_eq!((status, templates), (StatusCode::OK, serde_json::json!([])));
}

#[tokio::test]
async fn the_page_loads_without_credentials_but_holds_no_data() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    let anonymous = AdminClient::new(server.url(""), None);
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let response = anonymous.raw(reqwest::Method::GET, path, "", None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
}

#[tokio::test]
async fn serve_refuses_to_start_without_authentication_unless_told_to() {
    let db = TestDb::new();
    let store = Arc::new(Store::open(&db.path()).unwrap());
    let error = AdminServer::try_start(Arc::clone(&store), AdminOptions::default())
        .await
        .err()
        .expect("an admin API without authentication must not start");
    let message = format!("{error:#}");
    assert!(message.contains("--admin-token-file"), "{message}");
    assert!(message.contains("--admin-insecure-no-auth"), "{message}");

    let open = AdminOptions {
        insecure_no_auth: true,
        ..Default::default()
    };
    let server = AdminServer::try_start(store, open).await.unwrap();
    let (status, _) = AdminClient::new(server.url(""), None)
        .get("/api/v1/templates")
        .await;
    assert_eq!(status, StatusCode::OK);
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (params.self_signed(&key).unwrap(), key)
}

fn signed(names: &[&str], ca: &(rcgen::Certificate, KeyPair)) -> Pem {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

#[tokio::test]
async fn a_client_certificate_from_the_admin_ca_replaces_the_token_and_others_are_refused() {
    let db = TestDb::new();
    let dir = db.dir.path();
    let admin_ca = ca("admin CA");
    let other_ca = ca("someone else's CA");
    let server_pem = signed(&["localhost"], &admin_ca);
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name)
    };
    let options = AdminOptions {
        token: Some(ADMIN_TOKEN.into()),
        client_ca: Some(write("ca.pem", &admin_ca.0.pem())),
        tls: Some(TlsFiles {
            cert: write("server.pem", &server_pem.cert),
            key: write("server-key.pem", &server_pem.key),
        }),
        insecure_no_auth: false,
    };
    let server = AdminServer::start(&db.path(), options).await;
    let ca_pem = admin_ca.0.pem();
    let admin = signed(&["admin"], &admin_ca);
    let stranger = signed(&["admin"], &other_ca);
    assert_eq!(
        templates_status(&server, &ca_pem, Some(&admin), None).await,
        Ok(200),
        "admin certificate, no token"
    );
    assert_eq!(
        templates_status(&server, &ca_pem, None, Some(ADMIN_TOKEN)).await,
        Ok(200),
        "token, no certificate"
    );
    assert_eq!(
        templates_status(&server, &ca_pem, None, None).await,
        Ok(401),
        "neither"
    );
    let refused = templates_status(&server, &ca_pem, Some(&stranger), None).await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must fail the handshake: {refused:?}"
    );
    let refused = templates_status(&server, &ca_pem, Some(&stranger), Some(ADMIN_TOKEN)).await;
    assert!(refused.is_err(), "even with the token: {refused:?}");
}

async fn templates_status(
    server: &AdminServer,
    ca_pem: &str,
    client: Option<&Pem>,
    token: Option<&str>,
) -> Result<u16, String> {
    https_get(
        server.addr,
        ca_pem,
        "localhost",
        client,
        token,
        "/api/v1/templates",
    )
    .await
}

#[tokio::test]
async fn a_client_ca_without_tls_is_refused_at_start() {
    let db = TestDb::new();
    let options = AdminOptions {
        client_ca: Some(db.dir.path().join("ca.pem")),
        ..Default::default()
    };
    let store = Arc::new(Store::open(&db.path()).unwrap());
    let error = AdminServer::try_start(store, options).await.err().unwrap();
    assert!(
        format!("{error:#}").contains("--admin-tls-cert"),
        "{error:#}"
    );
}

#[test]
fn the_token_never_shows_in_debug_output() {
    let debug = format!("{:?}", token_options());
    assert!(!debug.contains(ADMIN_TOKEN), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}
