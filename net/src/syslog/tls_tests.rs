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
    let Event::Connected { peer, transport } = next_event(&mut events).await else {
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
