//! The channel against a TLS server on loopback: which modes complete the handshake, that the
//! client offers gRPC's ALPN (h2), and that a refused certificate is reported as a handshake
//! failure a person can read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_channel::test_ca::TestCa;
use agent_channel::{Liveness, ServerTls, connect_lazy, describe, handshake_failure};
use rustls::ServerConfig;
use rustls::pki_types::PrivatePkcs8KeyDer;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tonic::transport::Channel;
use tower::ServiceExt;

/// Every test finishes in well under this; a hang fails instead of blocking the run.
const TEST_LIMIT: Duration = Duration::from_secs(30);

const LIVENESS: Liveness = Liveness {
    request_timeout: Some(Duration::from_secs(20)),
    keep_alive_interval: Duration::from_secs(20),
    keep_alive_while_idle: false,
};

/// The CA as a bundle file in `dir`, as an agent is configured with it.
fn bundle_in(ca: &TestCa, dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &ca.ca_pem).unwrap();
    path
}

/// What the server saw of one handshake: the negotiated ALPN protocol, or the failure.
type Handshake = Result<Option<Vec<u8>>, String>;

/// A TLS server on a loopback port that completes handshakes (offering h2), reports each and
/// closes the connection; stopped when dropped.
struct TlsServer {
    address: SocketAddr,
    handshakes: mpsc::UnboundedReceiver<Handshake>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    async fn start(ca: &TestCa) -> TlsServer {
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![ca.server_cert.der().clone()],
                    PrivatePkcs8KeyDer::from(ca.server_key.serialize_der()).into(),
                )
                .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (report, handshakes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let handshake = match acceptor.accept(tcp).await {
                    Ok(tls) => Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)),
                    Err(error) => Err(error.to_string()),
                };
                if report.send(handshake).is_err() {
                    break;
                }
            }
        });
        TlsServer {
            address,
            handshakes,
            task,
        }
    }

    async fn next_handshake(&mut self) -> Handshake {
        self.handshakes.recv().await.expect("the server is running")
    }
}

/// One HTTP/2 request over the channel, which makes it connect; the server closes every
/// connection right after the handshake, so the call itself always fails.
async fn call(channel: Channel) -> tonic::Status {
    let request = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1/test.Probe/Call")
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::empty())
        .unwrap();
    match channel.oneshot(request).await {
        Ok(response) => panic!("the server answers nothing, yet: {response:?}"),
        Err(error) => tonic::Status::from_error(Box::new(error)),
    }
}

async fn handshake_with(server: &mut TlsServer, tls: ServerTls) -> (Handshake, tonic::Status) {
    let channel = connect_lazy(&server.address.to_string(), &tls, LIVENESS).unwrap();
    let status = call(channel).await;
    (server.next_handshake().await, status)
}

#[tokio::test]
async fn the_provisioners_ca_is_trusted_and_h2_is_negotiated() {
    let ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TlsServer::start(&ca).await;
    let tls = ServerTls::Verified {
        ca_bundle: Some(bundle_in(&ca, &dir)),
    };

    let (handshake, status) = tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, tls))
        .await
        .unwrap();

    assert_eq!(handshake, Ok(Some(b"h2".to_vec())));
    assert_eq!(handshake_failure(&status), None, "{}", describe(&status));
}

#[tokio::test]
async fn another_ca_is_refused_as_a_handshake_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TlsServer::start(&TestCa::new().unwrap()).await;
    let tls = ServerTls::Verified {
        ca_bundle: Some(bundle_in(&TestCa::new().unwrap(), &dir)),
    };

    let (handshake, status) = tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, tls))
        .await
        .unwrap();

    assert!(handshake.is_err(), "the server saw {handshake:?}");
    let why = handshake_failure(&status).expect("a handshake failure");
    assert!(why.contains("certificate"), "{why}");
    assert!(describe(&status).contains(&why), "{}", describe(&status));
}

#[tokio::test]
async fn insecure_tls_accepts_any_certificate_and_still_speaks_h2() {
    let mut server = TlsServer::start(&TestCa::new().unwrap()).await;

    let (handshake, status) = tokio::time::timeout(
        TEST_LIMIT,
        handshake_with(&mut server, ServerTls::InsecureSkipVerify),
    )
    .await
    .unwrap();

    assert_eq!(handshake, Ok(Some(b"h2".to_vec())));
    assert_eq!(handshake_failure(&status), None, "{}", describe(&status));
}
