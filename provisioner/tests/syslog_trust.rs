//! Syslog and node trust (issue 15 §1): over TLS (`serve --syslog-tls`), a line sent with the
//! node certificate a node enrolled for goes under that node whatever its address; a line
//! without one, or with a revoked one, and every UDP line go by address and are stored marked
//! unauthenticated. The client is `openssl s_client` (an independent TLS and RFC 5425 peer),
//! the certificates are made as a site's are (site CA for the server chain, node CA for
//! nodes, only the node's CSR signed by the provisioner's NodeCa).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use common::fleet::create_profile;
use common::pki::{ca, write};
use provisioner::boot::{BootOptions, HttpsOptions};
use provisioner::https::TlsFiles;
use provisioner::node_ca::NodeCa;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::store::{Discovery, Identity, LogLine, Store};

/// The address openssl connects from, which node B has.
const B_ADDRESS: &str = "127.0.0.1";
/// Node A's address: nothing is sent from it, so a line under A came by its certificate.
const A_ADDRESS: &str = "127.0.0.11";

struct Site {
    db: TestDb,
    store: Arc<Store>,
    server: RunningServer,
    a: String,
    b: String,
    /// Node A's enrolled certificate and key (PEM files).
    a_cert: PathBuf,
    a_key: PathBuf,
}

impl Site {
    async fn start() -> Self {
        let db = TestDb::new();
        let dir = db.dir.path().to_path_buf();
        let (site_ca, site_ca_key) = ca("site CA");
        write(&dir, "ca.pem", &site_ca.pem());
        let server_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
            .unwrap()
            .signed_by(&server_key, &site_ca, &site_ca_key)
            .unwrap();
        let tls = TlsFiles {
            cert: write(
                &dir,
                "server.pem",
                &format!("{}{}", leaf.pem(), site_ca.pem()),
            ),
            key: write(&dir, "server-key.pem", &server_key.serialize_pem()),
        };
        let (node_ca, node_ca_key) = ca("node CA");
        let node_ca = NodeCa::load(
            &write(&dir, "node-ca.pem", &node_ca.pem()),
            &write(&dir, "node-ca-key.pem", &node_ca_key.serialize_pem()),
        )
        .unwrap();

        let store = Arc::new(db.open());
        create_profile(&store, &dir);
        let a = discover(&store, "52:54:00:aa:00:01", A_ADDRESS);
        let b = discover(&store, "52:54:00:bb:00:02", B_ADDRESS);
        // A's key is made on the "node"; only its CSR goes to the node CA.
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let signed = node_ca.sign(&csr, &a, Duration::from_secs(3600)).unwrap();
        store
            .record_credential(&signed.fingerprint_hex, &a, signed.not_after)
            .unwrap();
        let a_cert = write(&dir, "node.pem", &signed.cert_pem);
        let a_key = write(&dir, "node-key.pem", &key.serialize_pem());

        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut boot = BootOptions::new([127, 0, 0, 1].into());
        boot.syslog = Some(loopback);
        boot.syslog_tls = Some(HttpsOptions {
            listen: loopback,
            tls: tls.clone(),
        });
        let options = ServeOptions {
            tls: Some(tls),
            node_ca: Some(Arc::new(node_ca)),
            boot: Some(boot),
            ..ServeOptions::default()
        };
        let server = RunningServer::start(Arc::clone(&store), &options)
            .await
            .unwrap();
        Self {
            db,
            store,
            server,
            a,
            b,
            a_cert,
            a_key,
        }
    }

    /// Sends one octet-counted RFC 5424 line with `openssl s_client` (verifying the server
    /// against the site CA), presenting A's certificate when `as_a`.
    fn send_tls(&self, as_a: bool, text: &str) -> Client {
        let addr = self.server.syslog_tls_addr.unwrap();
        let mut command = Command::new("openssl");
        command
            .arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .arg("-CAfile")
            .arg(self.db.dir.path().join("ca.pem"))
            .args(["-verify_return_error", "-quiet"]);
        if as_a {
            command
                .arg("-cert")
                .arg(&self.a_cert)
                .arg("-key")
                .arg(&self.a_key);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        let line = format!("<30>1 2026-12-07T10:00:00Z node tink-worker 7 - - {text}");
        let frame = format!("{} {line}", line.len());
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(frame.as_bytes())
            .unwrap();
        Client(child)
    }

    /// The node's stored line with `text`, waiting for the batched writer.
    async fn line(&self, node: &str, text: &str) -> LogLine {
        for _ in 0..200 {
            let lines = self.store.node_logs(node, 0, 1000).unwrap();
            if let Some(line) = lines.into_iter().find(|line| line.text == text) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no line {text:?} under node {node}");
    }

    fn has_line(&self, node: &str, text: &str) -> bool {
        let lines = self.store.node_logs(node, 0, 1000).unwrap();
        lines.iter().any(|line| line.text == text)
    }
}

/// The s_client process, killed when the test is done with it.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn discover(store: &Store, mac: &str, ip: &str) -> String {
    store
        .discover(&Discovery {
            identity: Identity::new(None, None, &[mac]),
            ip: Some(ip.into()),
            ..Discovery::default()
        })
        .unwrap()
        .node
        .id
}

#[tokio::test]
async fn a_line_with_the_node_certificate_goes_under_that_node_not_its_address() {
    let site = Site::start().await;
    let _client = site.send_tls(true, "from A over TLS");
    let line = site.line(&site.a, "from A over TLS").await;
    assert_eq!(line.source, "tink-worker", "attributed by the certificate");
    assert!(!site.has_line(&site.b, "from A over TLS"));
}

#[tokio::test]
async fn tls_without_a_certificate_and_udp_go_by_address_marked_unauthenticated() {
    let site = Site::start().await;
    let _client = site.send_tls(false, "anonymous over TLS");
    let line = site.line(&site.b, "anonymous over TLS").await;
    assert_eq!(line.source, "tink-worker (unauthenticated, tls)");

    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(
        b"<30>1 2026-12-07T10:00:00Z node kernel - - - over UDP",
        site.server.syslog_udp_addr.unwrap(),
    )
    .await
    .unwrap();
    let line = site.line(&site.b, "over UDP").await;
    assert_eq!(line.source, "kernel (unauthenticated, udp)");
    assert!(!site.has_line(&site.a, "over UDP"));
}

#[tokio::test]
async fn a_revoked_certificate_no_longer_speaks_for_its_node() {
    let site = Site::start().await;
    assert_eq!(site.store.revoke_credentials(&site.a).unwrap(), 1);
    // The node CA signed it, so the handshake passes; the store no longer vouches for it.
    let _client = site.send_tls(true, "after revocation");
    let line = site.line(&site.b, "after revocation").await;
    assert_eq!(line.source, "tink-worker (unauthenticated, tls)");
    assert!(!site.has_line(&site.a, "after revocation"));
}

#[tokio::test]
async fn metrics_count_the_authenticated_lines_and_the_udp_sockets_drops() {
    let site = Site::start().await;
    let _client = site.send_tls(true, "counted");
    site.line(&site.a, "counted").await;
    let text = site.server.metrics.render(&site.store).unwrap();
    assert!(
        text.contains("\nprovisioner_syslog_authenticated_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nprovisioner_udp_drops_total{socket=\"syslog\"} 0\n"),
        "{text}"
    );
}
