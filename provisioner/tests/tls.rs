//! gRPC over TLS (`--tls-cert/--tls-key`): a worker trusting the server's CA gets its
//! action; one trusting another CA is refused before anything is served.

mod common;

use std::sync::Arc;

use common::actions::get_action;
use common::{MAC, TestDb, seed};
use provisioner::https::TlsFiles;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::store::Store;
use tink_proto::current::workflow_service_client::WorkflowServiceClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn self_signed() -> rcgen::CertifiedKey {
    rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap()
}

async fn client(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> Result<WorkflowServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(WorkflowServiceClient::new(channel))
}

#[tokio::test]
async fn a_tls_server_serves_workers_that_trust_its_certificate_only() {
    let db = TestDb::new();
    let store = Arc::new(Store::open(&db.path()).unwrap());
    let workflow = seed(&store);
    let server_key = self_signed();
    let cert = db.dir.path().join("server.pem");
    let key = db.dir.path().join("server.key");
    std::fs::write(&cert, server_key.cert.pem()).unwrap();
    std::fs::write(&key, server_key.key_pair.serialize_pem()).unwrap();
    let options = ServeOptions {
        grpc: "127.0.0.1:0".parse().unwrap(),
        http: None,
        tls: Some(TlsFiles { cert, key }),
        protocols: Default::default(),
        admin: common::admin::token_options(),
        boot: None,
        // Workers here present no node certificate.
        node_ca: None,
        allow_unauthenticated_workers: true,
    };
    let server = RunningServer::start(store, &options).await.unwrap();

    let mut trusting = client(server.grpc_addr, &server_key.cert.pem())
        .await
        .unwrap();
    let request = get_action(MAC);
    let action = trusting
        .get_action(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(action.workflow_id(), workflow.id);

    let stranger_ca = self_signed().cert.pem();
    let refused = match client(server.grpc_addr, &stranger_ca).await {
        Ok(mut distrusting) => distrusting
            .get_action(request)
            .await
            .map(|_| ())
            .map_err(|status| status.to_string()),
        Err(error) => Err(format!("{error:?}")),
    };
    let error = refused.expect_err("a client trusting another CA must not be served");
    assert!(
        error.to_lowercase().contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );
}
