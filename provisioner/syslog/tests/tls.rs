//! The TLS listener (RFC 5425) against `openssl s_client` as the independent client: with a
//! node certificate the node CA signed (the message carries it), without one (carried as
//! unauthenticated), and with a certificate of another CA (the handshake is refused).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bootkit_syslog_receiver::{Config, Counters, Message, Receiver, Sink, TlsListener, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::sync::mpsc;

/// Long enough for a loaded machine; a test only waits this long when it is failing.
const WAIT: Duration = Duration::from_secs(20);

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// A leaf for `san` (server) or a client certificate with CN `cn` (client), as PEM
    /// certificate and PEM key, plus its DER.
    fn issue(&self, cn: &str, sans: Vec<String>, client: bool) -> (String, String, Vec<u8>) {
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

struct ChannelSink(mpsc::UnboundedSender<Message>);

impl Sink for ChannelSink {
    fn receive(&self, message: Message) {
        let _ = self.0.send(message);
    }
}

struct Site {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    counters: Arc<Counters>,
    messages: mpsc::UnboundedReceiver<Message>,
    node_ca: Ca,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A receiver with TLS only: server certificate from a site CA (written as `ca.pem`),
/// optional client authentication against a separate node CA.
async fn site() -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let site_ca = Ca::new("site CA");
    let node_ca = Ca::new("node CA");
    std::fs::write(dir.path().join("ca.pem"), site_ca.cert.pem()).expect("write ca.pem");
    let (_, server_key, server_der) = site_ca.issue("provisioner", vec!["127.0.0.1".into()], false);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        KeyPair::from_pem(&server_key)
            .expect("server key")
            .serialize_der(),
    ));
    let chain = vec![CertificateDer::from(server_der), site_ca.cert.der().clone()];
    let mut roots = RootCertStore::empty();
    roots.add(node_ca.cert.der().clone()).expect("node CA root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .expect("client verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    let config = Config {
        udp: None,
        tcp: None,
        tls: Some(TlsListener {
            addr: "127.0.0.1:0".parse().expect("address"),
            config: Arc::new(config),
        }),
    };
    let receiver = Receiver::bind(config).await.expect("bind TLS syslog");
    let addr = receiver.tls_addr().expect("TLS address");
    let counters = Arc::new(Counters::default());
    let (sender, messages) = mpsc::unbounded_channel();
    let task = tokio::spawn({
        let counters = Arc::clone(&counters);
        async move {
            receiver
                .serve(Arc::new(ChannelSink(sender)), counters)
                .await
                .expect("syslog receiver");
        }
    });
    Site {
        dir,
        addr,
        counters,
        messages,
        node_ca,
        task,
    }
}

/// `openssl s_client` connected to the receiver, verifying it against ca.pem, optionally
/// presenting `cert`/`key`; one octet-counted RFC 5424 frame written to it.
struct Client(Child);

impl Client {
    fn send(site: &Site, identity: Option<(&Path, &Path)>, text: &str) -> Client {
        let mut command = Command::new("openssl");
        command
            .arg("s_client")
            .arg("-connect")
            .arg(site.addr.to_string())
            .arg("-CAfile")
            .arg(site.dir.path().join("ca.pem"))
            .args(["-verify_return_error", "-quiet"]);
        if let Some((cert, key)) = identity {
            command.arg("-cert").arg(cert).arg("-key").arg(key);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        let message = format!("<30>1 2026-12-07T10:00:00Z node-1 tink-worker 42 - - {text}");
        let frame = format!("{} {message}", message.len());
        child
            .stdin
            .as_mut()
            .expect("s_client stdin")
            .write_all(frame.as_bytes())
            .expect("write the frame to s_client");
        Client(child)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_identity(site: &Site, cert: &str, key: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert_path = site.dir.path().join("node.pem");
    let key_path = site.dir.path().join("node-key.pem");
    std::fs::write(&cert_path, cert).expect("write node.pem");
    std::fs::write(&key_path, key).expect("write node-key.pem");
    (cert_path, key_path)
}

async fn next(site: &mut Site) -> Message {
    tokio::time::timeout(WAIT, site.messages.recv())
        .await
        .expect("a message in time")
        .expect("receiver running")
}

#[tokio::test]
async fn a_node_certificate_signed_by_the_node_ca_comes_with_each_message() {
    let mut site = site().await;
    let (cert, key, der) =
        site.node_ca
            .issue("node-1", vec!["urn:bootkit:node:node-1".into()], true);
    let (cert_path, key_path) = write_identity(&site, &cert, &key);
    let _client = Client::send(&site, Some((&cert_path, &key_path)), "disk wiped");
    let message = next(&mut site).await;
    assert_eq!(message.text, "disk wiped");
    assert_eq!(message.app_name.as_deref(), Some("tink-worker"));
    assert_eq!(message.transport, Transport::Tls);
    assert_eq!(message.client_certificate.as_deref(), Some(der.as_slice()));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_served_but_its_messages_carry_none() {
    let mut site = site().await;
    let _client = Client::send(&site, None, "anonymous line");
    let message = next(&mut site).await;
    assert_eq!(message.text, "anonymous line");
    assert_eq!(message.transport, Transport::Tls);
    assert!(message.peer.is_loopback());
    assert_eq!(message.client_certificate, None);
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_at_the_handshake() {
    let mut site = site().await;
    let stranger = Ca::new("not the node CA");
    let (cert, key, _) = stranger.issue("node-1", vec![], true);
    let (cert_path, key_path) = write_identity(&site, &cert, &key);
    let _client = Client::send(&site, Some((&cert_path, &key_path)), "forged line");
    let deadline = tokio::time::Instant::now() + WAIT;
    while site.counters.failed_handshakes.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handshake was not refused in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing was delivered from the refused connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(site.messages.try_recv().is_err());
    assert_eq!(site.counters.messages.load(Ordering::Relaxed), 0);
}
