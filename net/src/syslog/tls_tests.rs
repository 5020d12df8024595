//! The forwarder over TLS (RFC 5425) against a tokio-rustls server on 127.0.0.1, with a CA and
//! server certificates made here by rcgen. Every wait is bounded.

use super::tests::{
    FrameReader, WAIT, config, fields, next_event, push_after_and_check_frames,
    push_before_connecting, spawn,
};
use super::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// A CA that signs server certificates.
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

    /// Write the CA certificate as a PEM bundle into `dir`.
    fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).expect("write CA file");
        path
    }

    /// A TLS server config with a certificate signed by this CA for `san` (an IP address
    /// becomes an IP SAN).
    fn acceptor(&self, san: &str) -> TlsAcceptor {
        let params = CertificateParams::new(vec![san.to_string()]).expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        TlsAcceptor::from(Arc::new(config))
    }
}

fn tls_config(port: u16, ca_file: PathBuf) -> ForwarderConfig {
    ForwarderConfig {
        ca_file: Some(ca_file),
        ..config(port, Transport::Tls)
    }
}

/// Accept one TCP connection and complete the TLS handshake on it.
async fn accept_tls(listener: &TcpListener, acceptor: &TlsAcceptor) -> FrameReader {
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a connection in time")
        .expect("accept");
    let tls = tokio::time::timeout(WAIT, acceptor.accept(tcp))
        .await
        .expect("a handshake in time")
        .expect("handshake");
    FrameReader::new(tls)
}

#[tokio::test]
async fn tls_octet_counted_frames_before_and_after() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = ca.write_pem(dir.path());
    let acceptor = ca.acceptor("127.0.0.1");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();

    let (forwarder, task) = Forwarder::new(tls_config(port, ca_file));
    push_before_connecting(&forwarder);
    let mut events = spawn(task);
    let mut reader = accept_tls(&listener, &acceptor).await;
    push_after_and_check_frames(&forwarder, &mut reader).await;
    let Event::Connected {
        peer, transport, ..
    } = next_event(&mut events).await
    else {
        panic!("first event is the connection");
    };
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(transport, Transport::Tls);

    // Every forwarder gone: the task ends the stream cleanly (close_notify, then EOF).
    drop(forwarder);
    assert_eq!(reader.next().await, None);
}

/// Serve TLS with `acceptor` on a fresh port, passing every frame received to the channel.
async fn serve(acceptor: TlsAcceptor) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (frames, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(Ok(tls)) = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await else {
                continue;
            };
            let mut reader = FrameReader::new(tls);
            while let Some(frame) = reader.next().await {
                let _ = frames.send(frame);
            }
        }
    });
    (port, received)
}

/// Forward one line to a server with `acceptor`, trusting only `trusted`: the error reported,
/// after checking that no line got through.
async fn refused(trusted: &Ca, acceptor: TlsAcceptor) -> ForwardError {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = trusted.write_pem(dir.path());
    let (port, mut received) = serve(acceptor).await;
    let (forwarder, task) = Forwarder::new(tls_config(port, ca_file));
    forwarder.push("init", Severity::Informational, "secret");
    let mut events = spawn(task);
    let Event::Unreachable { error, .. } = next_event(&mut events).await else {
        panic!("the host is refused");
    };
    // Several retries (backoff 20..100 ms) fail the same way, and none delivers the line.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(received.try_recv().is_err(), "a line was delivered");
    assert!(events.try_recv().is_err(), "the outage is reported once");
    assert_eq!(forwarder.dropped(), 0);
    error
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let trusted = Ca::new("trusted CA");
    let other = Ca::new("other CA");
    let error = refused(&trusted, other.acceptor("127.0.0.1")).await;
    let message = error.to_string();
    assert!(
        matches!(
            &error,
            ForwardError::Certificate {
                reason: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
}

#[tokio::test]
async fn a_server_certificate_for_another_address_is_refused() {
    let ca = Ca::new("test CA");
    let error = refused(&ca, ca.acceptor("127.0.0.2")).await;
    let message = error.to_string();
    assert!(
        matches!(
            &error,
            ForwardError::Certificate {
                reason: rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                ),
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn a_missing_ca_file_is_named_then_used_once_it_appears() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("ca.pem");
    let acceptor = ca.acceptor("127.0.0.1");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();

    let (forwarder, task) = Forwarder::new(tls_config(port, missing.clone()));
    forwarder.push("init", Severity::Informational, "kept");
    let mut events = spawn(task);
    let Event::Unreachable { error, .. } = next_event(&mut events).await else {
        panic!("the CA file is missing");
    };
    let message = error.to_string();
    assert!(matches!(&error, ForwardError::CaFile { path, .. } if *path == missing));
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );

    // The file appears: a retry reads it and the buffered line goes out.
    assert_eq!(ca.write_pem(dir.path()), missing);
    let mut reader = accept_tls(&listener, &acceptor).await;
    let frame = reader.next().await.expect("frame");
    assert_eq!(fields(&frame)[3..], ["init", "-", "-", "-", "kept"]);
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected {
            transport: Transport::Tls,
            ..
        }
    ));
}

/// The error for a CA file with `contents`.
async fn ca_file_error(contents: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bundle.crt");
    std::fs::write(&path, contents).expect("write CA file");
    let (_forwarder, task) = Forwarder::new(tls_config(9, path.clone()));
    let mut events = spawn(task);
    let Event::Unreachable { error, .. } = next_event(&mut events).await else {
        panic!("the CA file is unusable");
    };
    let message = error.to_string();
    assert!(matches!(error, ForwardError::CaFile { .. }), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    message
}

#[tokio::test]
async fn an_empty_or_non_pem_ca_file_is_a_clear_error() {
    assert!(ca_file_error("").await.ends_with("the file is empty"));
    assert!(
        ca_file_error("not a certificate\n")
            .await
            .ends_with("no PEM CERTIFICATE in it")
    );
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let message = ca_file_error(garbage).await;
    assert!(message.contains("could be parsed"), "{message}");
}

/// `openssl s_server` (the independent peer) on a free port: it prints each client
/// certificate's `subject=` and the bytes received, one connection after the other.
/// `require` is `-Verify 1` (a certificate is required), else `-verify 1` (asked for).
struct OpensslServer {
    child: std::process::Child,
    port: u16,
    output: mpsc::UnboundedReceiver<String>,
    seen: String,
}

impl OpensslServer {
    async fn start(dir: &Path, server: &Ca, node_ca: &Ca, require: bool) -> OpensslServer {
        Self::start_sending(dir, server, node_ca, require, false).await
    }

    /// [`Self::start`], with the site CA sent after the leaf when `send_ca` (as the
    /// provisioner's `--tls-cert` chain does).
    async fn start_sending(
        dir: &Path,
        server: &Ca,
        node_ca: &Ca,
        require: bool,
        send_ca: bool,
    ) -> OpensslServer {
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &server.cert, &server.key)
            .expect("server certificate");
        std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
        std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("node-ca.pem"), node_ca.cert.pem()).expect("write node CA");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut child = std::process::Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("server.pem"))
            .arg("-key")
            .arg(dir.join("server-key.pem"))
            .arg("-CAfile")
            .arg(dir.join("node-ca.pem"))
            .args([if require { "-Verify" } else { "-verify" }, "1"])
            .args(if send_ca {
                vec!["-cert_chain".into(), server.write_pem(dir).into_os_string()]
            } else {
                Vec::new()
            })
            // Its stdin stays open (piped, never written): at EOF it would stop.
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_server");
        let stdout = child.stdout.take().expect("s_server stdout");
        let (lines, output) = mpsc::unbounded_channel();
        // Read in chunks, not lines: a syslog frame ends without a newline.
        std::thread::spawn(move || {
            use std::io::Read;
            let mut stdout = stdout;
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stdout.read(&mut buffer) {
                if read == 0 {
                    return;
                }
                let chunk = String::from_utf8_lossy(&buffer[..read]).into_owned();
                if lines.send(chunk).is_err() {
                    return;
                }
            }
        });
        // Listening once it printed ACCEPT.
        let mut server = OpensslServer {
            child,
            port,
            output,
            seen: String::new(),
        };
        server.wait_for("ACCEPT").await;
        server
    }

    /// Reads its output until it contains `text` (past what earlier calls consumed); returns
    /// the output from there up to `text`.
    /// Async, so that the forwarder's task runs on the test's runtime meanwhile.
    async fn wait_for(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(at) = self.seen.find(text) {
                let before = self.seen[..at].to_string();
                self.seen.drain(..at + text.len());
                return before;
            }
            let chunk = tokio::time::timeout_at(deadline, self.output.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    panic!(
                        "s_server never printed {text:?}; it printed {:?}",
                        self.seen
                    )
                });
            self.seen.push_str(&chunk);
        }
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node's credential as device discovery writes it: key first, then the certificate.
fn write_node_credential(node_ca: &Ca, identity: &ClientIdentity) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "node-1");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("node key");
    let cert = params
        .signed_by(&key, &node_ca.cert, &node_ca.key)
        .expect("node certificate");
    std::fs::write(&identity.key, key.serialize_pem()).expect("write node-key.pem");
    std::fs::write(&identity.cert, cert.pem()).expect("write node.pem");
}

fn identity_in(dir: &Path) -> ClientIdentity {
    ClientIdentity {
        cert: dir.join("node.pem"),
        key: dir.join("node-key.pem"),
    }
}

#[tokio::test]
async fn the_node_certificate_present_at_connect_is_presented_to_openssl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_ca, node_ca) = (Ca::new("site CA"), Ca::new("node CA"));
    let identity = identity_in(dir.path());
    write_node_credential(&node_ca, &identity);
    let mut openssl = OpensslServer::start(dir.path(), &server_ca, &node_ca, true).await;
    let config = ForwarderConfig {
        client_identity: Some(identity),
        ..tls_config(openssl.port, server_ca.write_pem(dir.path()))
    };
    let (forwarder, task) = Forwarder::new(config);
    let mut events = spawn(task);
    forwarder.push("init", Severity::Notice, "authenticated line");
    let before = openssl.wait_for("authenticated line").await;
    assert!(before.contains("subject=CN = node-1"), "{before}");
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected {
            client_certificate: true,
            ..
        }
    ));
}

#[tokio::test]
async fn a_certificate_that_appears_later_makes_the_forwarder_reconnect_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_ca, node_ca) = (Ca::new("site CA"), Ca::new("node CA"));
    let identity = identity_in(dir.path());
    let mut openssl = OpensslServer::start(dir.path(), &server_ca, &node_ca, false).await;
    let config = ForwarderConfig {
        client_identity: Some(identity.clone()),
        ..tls_config(openssl.port, server_ca.write_pem(dir.path()))
    };
    let (forwarder, task) = Forwarder::new(config);
    let mut events = spawn(task);
    forwarder.push("init", Severity::Notice, "before enrollment");
    let before = openssl.wait_for("before enrollment").await;
    assert!(!before.contains("subject="), "no certificate yet: {before}");
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected {
            client_certificate: false,
            ..
        }
    ));

    write_node_credential(&node_ca, &identity);
    // At once: the very next line looks for the files and reconnects with them.
    forwarder.push("init", Severity::Notice, "after enrollment");
    // What s_server printed after the first line: the second connection's certificate.
    let second_connection = openssl.wait_for("after enrollment").await;
    assert!(
        second_connection.contains("subject=CN = node-1"),
        "{second_connection}"
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected {
            client_certificate: true,
            ..
        }
    ));
}

/// The SHA-256 of `ca`'s DER as openssl computes it (`openssl x509 -outform der | sha256sum`),
/// the independent reference for the pin.
fn openssl_sha256(dir: &Path, ca: &Ca) -> String {
    let pem = ca.write_pem(dir);
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&pem)
        .output()
        .expect("run openssl x509");
    assert!(der.status.success(), "openssl x509 failed");
    let hex = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("sha256sum stdin")
                .write_all(&der.stdout)?;
            child.wait_with_output()
        })
        .expect("run sha256sum");
    String::from_utf8_lossy(&hex.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

fn pin(hex: &str) -> [u8; 32] {
    bootkit_common::checksum::Sha256Digest::parse(hex)
        .expect("64 hex digits")
        .0
}

#[tokio::test]
async fn a_pinned_site_ca_in_the_chain_is_trusted_without_a_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_ca, node_ca) = (Ca::new("site CA"), Ca::new("node CA"));
    let ca_sha256 = pin(&openssl_sha256(dir.path(), &server_ca));
    let mut openssl =
        OpensslServer::start_sending(dir.path(), &server_ca, &node_ca, false, true).await;
    let config = ForwarderConfig {
        ca_file: Some(dir.path().join("absent.pem")),
        ca_sha256: Some(ca_sha256),
        ..config(openssl.port, Transport::Tls)
    };
    let (forwarder, task) = Forwarder::new(config);
    let mut events = spawn(task);
    forwarder.push("init", Severity::Notice, "pinned line");
    openssl.wait_for("pinned line").await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
}

#[tokio::test]
async fn a_wrong_pin_is_refused_naming_both_hashes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_ca, node_ca, other) = (Ca::new("site CA"), Ca::new("node CA"), Ca::new("other"));
    let presented = openssl_sha256(dir.path(), &server_ca);
    let wrong = openssl_sha256(dir.path(), &other);
    let openssl = OpensslServer::start_sending(dir.path(), &server_ca, &node_ca, false, true).await;
    let config = ForwarderConfig {
        ca_sha256: Some(pin(&wrong)),
        ..config(openssl.port, Transport::Tls)
    };
    let (forwarder, task) = Forwarder::new(config);
    let mut events = spawn(task);
    forwarder.push("init", Severity::Notice, "must not arrive");
    let Event::Unreachable { error, .. } = next_event(&mut events).await else {
        panic!("a wrong pin is refused");
    };
    let message = error.to_string();
    assert!(
        matches!(error, ForwardError::Certificate { .. }),
        "{message}"
    );
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&presented), "{message}");
}
