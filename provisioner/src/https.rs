//! HTTPS for axum routers: rustls (ring) in front of hyper, shared by the admin listener and the
//! node-facing HTTPS listener.
//!
//! Hand-written because axum's own `serve` takes plain TCP only, and the admin listener needs
//! each request to carry the client certificate that the TLS handshake verified; the loop is
//! small (accept, handshake with a deadline, serve the connection) and uses hyper for HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped, so idle sockets cannot pile
/// up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that has not sent a request's headers by then is dropped (after the handshake, the
/// same protection against idle sockets).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long open connections get to finish their requests after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// PEM files of a server's certificate chain and key: gRPC's, the admin API's and the boot
/// service's HTTPS listener's.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
}

/// The client certificate chain (leaf first) that the TLS handshake verified against the
/// configured client CA. In a request's extensions only when the client presented one.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Serves `router` over TLS on `listener` until `shutdown` completes, then lets open
/// connections finish (for a bounded time).
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: transient, keep serving.
                        tracing::warn!("accepting an HTTPS connection failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let connection = serve_connection(stream, peer, acceptor.clone(), router.clone(), stopping.clone());
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, "HTTPS connection ended: {error:#}");
                    }
                });
            }
            // Reap finished connections so the set does not grow for the server's lifetime.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer_addr: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake failed")?;
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|chain| PeerCertificates(Arc::new(chain.to_vec())));
    let service = hyper::service::service_fn(move |mut request| {
        // What axum's own listener passes on: handlers that answer by the requester's address
        // (the boot service's metadata) work the same over TLS.
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer_addr));
        if let Some(peer) = &peer {
            request.extensions_mut().insert(peer.clone());
        }
        tower::Service::call(&mut router.clone(), request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    tokio::select! {
        result = &mut connection => return result.context("serving HTTP failed"),
        _ = stopping.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
    }
    connection.await.context("serving HTTP failed")
}

/// A TLS server configuration from PEM files. With `client_ca`, clients may present a
/// certificate signed by it (and are refused if they present any other); clients without one
/// still connect, so that token users need no certificate.
pub fn server_config(
    cert_pem_path: &Path,
    key_pem_path: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let client_ca = match client_ca {
        Some(path) => Some((
            read_certificates(path)?,
            format!("the client CA {}", path.display()),
        )),
        None => None,
    };
    server_config_with_client_ca(cert_pem_path, key_pem_path, client_ca)
}

/// [`server_config`] with the client CA given as PEM text, named `what` in errors (the node
/// CA, which `serve` holds loaded).
pub fn server_config_with_client_ca_pem(
    cert_pem_path: &Path,
    key_pem_path: &Path,
    client_ca_pem: &str,
    what: &str,
) -> anyhow::Result<Arc<ServerConfig>> {
    let certificates = CertificateDer::pem_slice_iter(client_ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what} is not PEM certificates"))?;
    anyhow::ensure!(!certificates.is_empty(), "{what} holds no PEM certificate");
    server_config_with_client_ca(
        cert_pem_path,
        key_pem_path,
        Some((certificates, what.to_string())),
    )
}

fn server_config_with_client_ca(
    cert_pem_path: &Path,
    key_pem_path: &Path,
    client_ca: Option<(Vec<CertificateDer<'static>>, String)>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(cert_pem_path)?;
    let key = PrivateKeyDer::from_pem_file(key_pem_path).with_context(|| {
        format!(
            "reading the TLS private key {} failed; it must be a PEM key (PKCS#8, PKCS#1 or SEC1)",
            key_pem_path.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("the TLS library refused its default protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((certificates, what)) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates {
                roots
                    .add(certificate)
                    .with_context(|| format!("{what} is not a usable CA certificate"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("{what} cannot verify clients"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "the TLS certificate {} and key {} do not form a usable pair",
            cert_pem_path.display(),
            key_pem_path.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file, in order; an error names the file when it holds none.
pub fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the PEM certificates {} failed", path.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
        path.display()
    );
    Ok(certificates)
}
