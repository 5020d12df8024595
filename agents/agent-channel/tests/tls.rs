//! The channel against a TLS server on loopback: which modes complete the handshake, that the
//! client offers gRPC's ALPN (h2), and that a refused certificate is reported as a handshake
//! failure a person can read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_channel::test_ca::TestCa;
use agent_channel::tls::certificate_sha256;
use agent_channel::{
    ClientIdentity, Liveness, ServerTls, connect_lazy, describe, handshake_failure,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
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
    handshakes: mpsc::UnboundedReceiver<(Handshake, Vec<Vec<u8>>)>,
    task: tokio::task::JoinHandle<()>,
}

/// How the test server is set up: the chain it presents, and the CA its clients' certificates
/// must verify to (None: no client authentication).
struct ServerSetup<'a> {
    chain: Vec<CertificateDer<'static>>,
    key: &'a rcgen::KeyPair,
    client_ca: Option<&'a TestCa>,
}

impl<'a> ServerSetup<'a> {
    /// The leaf alone, as most servers send it.
    fn leaf_only(ca: &'a TestCa) -> Self {
        ServerSetup {
            chain: vec![ca.server_cert.der().clone()],
            key: &ca.server_key,
            client_ca: None,
        }
    }

    /// The leaf, then the CA: the chain the provisioner presents.
    fn full_chain(ca: &'a TestCa) -> Self {
        ServerSetup {
            chain: vec![ca.server_cert.der().clone(), ca.ca_cert.der().clone()],
            key: &ca.server_key,
            client_ca: None,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    async fn start(ca: &TestCa) -> TlsServer {
        TlsServer::start_with(ServerSetup::leaf_only(ca)).await
    }

    async fn start_with(setup: ServerSetup<'_>) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match setup.client_ca {
            None => builder.with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(client_ca.ca_cert.der().clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(
                setup.chain,
                PrivatePkcs8KeyDer::from(setup.key.serialize_der()).into(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (report, handshakes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (handshake, client_chain) = match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let session = tls.get_ref().1;
                        let client_chain = session
                            .peer_certificates()
                            .unwrap_or_default()
                            .iter()
                            .map(|certificate| certificate.to_vec())
                            .collect();
                        (
                            Ok(session.alpn_protocol().map(<[u8]>::to_vec)),
                            client_chain,
                        )
                    }
                    Err(error) => (Err(error.to_string()), Vec::new()),
                };
                if report.send((handshake, client_chain)).is_err() {
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
        self.next_handshake_with_client().await.0
    }

    /// The handshake and the certificates the client presented (DER, leaf first).
    async fn next_handshake_with_client(&mut self) -> (Handshake, Vec<Vec<u8>>) {
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
    let channel = connect_lazy(&server.address.to_string(), &tls, None, LIVENESS).unwrap();
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

fn pinned(ca: &TestCa) -> ServerTls {
    ServerTls::Pinned {
        ca_sha256: certificate_sha256(ca.ca_cert.der()),
    }
}

#[tokio::test]
async fn a_pinned_ca_in_the_servers_chain_is_trusted() {
    let ca = TestCa::new().unwrap();
    let mut server = TlsServer::start_with(ServerSetup::full_chain(&ca)).await;

    let (handshake, status) =
        tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, pinned(&ca)))
            .await
            .unwrap();

    assert_eq!(handshake, Ok(Some(b"h2".to_vec())));
    assert_eq!(handshake_failure(&status), None, "{}", describe(&status));
}

#[tokio::test]
async fn the_pin_matches_the_sha256_that_openssl_prints_for_the_ca() {
    let ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = bundle_in(&ca, &dir);
    // The independent reference: what an operator would run to get the pin.
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&pem)
        .output()
        .expect("openssl runs");
    assert!(der.status.success(), "{der:?}");
    let sum = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&der.stdout)?;
            child.wait_with_output()
        })
        .unwrap();
    let printed = String::from_utf8(sum.stdout).unwrap();
    let ServerTls::Pinned { ca_sha256 } = pinned(&ca) else {
        unreachable!()
    };
    let ours: String = ca_sha256.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(printed.split_whitespace().next(), Some(ours.as_str()));
}

#[tokio::test]
async fn a_wrong_pin_is_refused_naming_the_pinned_and_presented_hashes() {
    let ca = TestCa::new().unwrap();
    let mut server = TlsServer::start_with(ServerSetup::full_chain(&ca)).await;
    let other = TestCa::new().unwrap();

    let (handshake, status) =
        tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, pinned(&other)))
            .await
            .unwrap();

    assert!(handshake.is_err(), "the server saw {handshake:?}");
    let why = handshake_failure(&status).expect("a handshake failure");
    let hex = |digest: [u8; 32]| -> String { digest.iter().map(|b| format!("{b:02x}")).collect() };
    assert!(
        why.contains(&hex(certificate_sha256(other.ca_cert.der()))),
        "{why}"
    );
    assert!(
        why.contains(&hex(certificate_sha256(ca.ca_cert.der()))),
        "the presented CA is listed: {why}"
    );
    assert!(why.contains("SHA-256 of the site CA"), "{why}");
}

#[tokio::test]
async fn a_chain_without_the_pinned_ca_is_refused() {
    let ca = TestCa::new().unwrap();
    let mut server = TlsServer::start_with(ServerSetup::leaf_only(&ca)).await;

    let (handshake, status) =
        tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, pinned(&ca)))
            .await
            .unwrap();

    assert!(handshake.is_err(), "the server saw {handshake:?}");
    let why = handshake_failure(&status).expect("a handshake failure");
    assert!(why.contains("presented no certificate"), "{why}");
}

#[tokio::test]
async fn a_leaf_the_pinned_ca_did_not_sign_is_refused_even_with_the_ca_in_the_chain() {
    // An impostor copies the real CA certificate (public) into its chain, beside its own leaf.
    let real = TestCa::new().unwrap();
    let impostor = TestCa::new().unwrap();
    let mut server = TlsServer::start_with(ServerSetup {
        chain: vec![
            impostor.server_cert.der().clone(),
            real.ca_cert.der().clone(),
        ],
        key: &impostor.server_key,
        client_ca: None,
    })
    .await;

    let (handshake, status) =
        tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, pinned(&real)))
            .await
            .unwrap();

    assert!(handshake.is_err(), "the server saw {handshake:?}");
    let why = handshake_failure(&status).expect("a handshake failure");
    assert!(why.contains("certificate"), "{why}");
}

#[tokio::test]
async fn a_pinned_chain_for_another_name_is_refused() {
    let ca = TestCa::new().unwrap();
    let mut server = TlsServer::start_with(ServerSetup::full_chain(&ca)).await;
    // The certificate is for 127.0.0.1; ask for localhost.
    let authority = format!("localhost:{}", server.address.port());
    let channel = connect_lazy(&authority, &pinned(&ca), None, LIVENESS).unwrap();

    let status = tokio::time::timeout(TEST_LIMIT, call(channel))
        .await
        .unwrap();

    let why = handshake_failure(&status).expect("a handshake failure");
    assert!(why.contains("not valid for name"), "{why}");
    assert!(server.next_handshake().await.is_err());
}

/// A client certificate for a node, signed by `node_ca`, written as PEM files in `dir`.
fn node_identity(node_ca: &TestCa, dir: &tempfile::TempDir) -> (ClientIdentity, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let certificate = params
        .signed_by(&key, &node_ca.ca_cert, &node_ca.ca_key)
        .unwrap();
    let identity = ClientIdentity {
        cert_chain: dir.path().join("node.pem"),
        key: dir.path().join("node-key.pem"),
    };
    std::fs::write(&identity.cert_chain, certificate.pem()).unwrap();
    std::fs::write(&identity.key, key.serialize_pem()).unwrap();
    (identity, certificate.der().to_vec())
}

#[tokio::test]
async fn the_client_certificate_is_presented_in_every_tls_mode() {
    let site = TestCa::new().unwrap();
    let node_ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (identity, node_der) = node_identity(&node_ca, &dir);
    let modes = [
        pinned(&site),
        ServerTls::Verified {
            ca_bundle: Some(bundle_in(&site, &dir)),
        },
        ServerTls::InsecureSkipVerify,
    ];
    for tls in modes {
        let mut setup = ServerSetup::full_chain(&site);
        setup.client_ca = Some(&node_ca);
        let mut server = TlsServer::start_with(setup).await;
        let channel =
            connect_lazy(&server.address.to_string(), &tls, Some(&identity), LIVENESS).unwrap();

        let status = tokio::time::timeout(TEST_LIMIT, call(channel))
            .await
            .unwrap();
        let (handshake, client_chain) = server.next_handshake_with_client().await;

        assert_eq!(handshake, Ok(Some(b"h2".to_vec())), "{tls:?}");
        assert_eq!(client_chain, vec![node_der.clone()], "{tls:?}");
        assert_eq!(handshake_failure(&status), None, "{}", describe(&status));
    }
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_refuses_a_client_without_one() {
    let site = TestCa::new().unwrap();
    let node_ca = TestCa::new().unwrap();
    let mut setup = ServerSetup::full_chain(&site);
    setup.client_ca = Some(&node_ca);
    let mut server = TlsServer::start_with(setup).await;

    let (handshake, _status) =
        tokio::time::timeout(TEST_LIMIT, handshake_with(&mut server, pinned(&site)))
            .await
            .unwrap();

    let why = handshake.expect_err("no client certificate, no connection");
    assert!(why.contains("no certificates"), "{why}");
}

#[tokio::test]
async fn an_unreadable_or_mismatched_client_identity_is_named() {
    let site = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = ClientIdentity {
        cert_chain: dir.path().join("absent.pem"),
        key: dir.path().join("absent-key.pem"),
    };
    let error = connect_lazy("127.0.0.1:1", &pinned(&site), Some(&missing), LIVENESS).unwrap_err();
    let message = bootkit_common::error_chain(&error);
    assert!(message.contains("absent.pem"), "{message}");

    let (mut mismatched, _) = node_identity(&site, &dir);
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    mismatched.key = other_key;
    let error =
        connect_lazy("127.0.0.1:1", &pinned(&site), Some(&mismatched), LIVENESS).unwrap_err();
    let message = bootkit_common::error_chain(&error);
    assert!(message.contains("does not fit"), "{message}");
}
