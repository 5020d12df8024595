//! The gRPC channel to the workflow service, with TLS done by our own rustls connector.
//!
//! Why not tonic's built-in TLS: it cannot skip certificate checks, and HookOS's
//! `tinkerbell_insecure_tls=true` asks for exactly that. One connector for all three modes
//! (system CAs, a CA bundle, no checks) keeps a single TLS path. The endpoint URI stays
//! `http://` because tonic refuses `https://` without its own TLS; the connector encrypts.

use std::error::Error as StdError;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::ProtocolError;
use crate::config::ServerTls;
use crate::tls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per call; GetWorkflowContexts streams are short (one message per workflow).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// HTTP/2 pings notice a server that vanished without closing the connection.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// CA bundles of the common distributions, for when no bundle is configured.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A channel that connects on first use and reconnects after failures.
pub(super) fn lazy(authority: &str, tls: &ServerTls) -> Result<Channel, ProtocolError> {
    let address_error = |why: String| ProtocolError::Address {
        authority: authority.to_string(),
        why,
    };
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|error| address_error(error.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    let host = endpoint.uri().host().map(|host| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    });
    let server_name = host
        .and_then(|host| ServerName::try_from(host).ok())
        .ok_or_else(|| address_error("it has no valid host name".to_string()))?;
    let config = match tls {
        ServerTls::Plaintext => return Ok(endpoint.connect_lazy()),
        ServerTls::Verified { ca_bundle } => verified(ca_bundle.as_deref())?,
        ServerTls::InsecureSkipVerify => {
            tracing::warn!(
                "tinkerbell_insecure_tls is set: the workflow server's certificate at {authority} is NOT checked; anyone on the network path can impersonate it"
            );
            unverified()?
        }
    };
    let connector = TlsConnector::from(Arc::new(config));
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
            connect_tls(uri, connector.clone(), server_name.clone())
        })),
    )
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<TokioIo<TlsStream<TcpStream>>, ConnectError>> + Send>>;

fn connect_tls(
    uri: Uri,
    connector: TlsConnector,
    server_name: ServerName<'static>,
) -> ConnectFuture {
    Box::pin(async move {
        let authority = uri
            .authority()
            .ok_or(ConnectError::Io(std::io::ErrorKind::InvalidInput.into()))?;
        let port = authority
            .port_u16()
            .ok_or(ConnectError::Io(std::io::ErrorKind::InvalidInput.into()))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(ConnectError::Io)?;
        tcp.set_nodelay(true).map_err(ConnectError::Io)?;
        let tls = connector.connect(server_name, tcp).await.map_err(|error| {
            // tokio-rustls reports handshake failures as io::Error wrapping the rustls::Error.
            match error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => ConnectError::Handshake(tls.to_string()),
                None => ConnectError::Io(error),
            }
        })?;
        Ok(TokioIo::new(tls))
    })
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
}

/// The handshake failure behind a failed call, if that is why it failed.
pub(super) fn tls_failure(status: &tonic::Status) -> Option<String> {
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(error) = source {
        if let Some(ConnectError::Handshake(why)) = error.downcast_ref::<ConnectError>() {
            return Some(why.clone());
        }
        source = error.source();
    }
    None
}

/// The status message with the chain of causes (a transport failure's message alone is just
/// "transport error").
pub(super) fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(error) = source {
        let cause = error.to_string();
        if !text.contains(&cause) {
            text = if text.is_empty() {
                cause
            } else {
                format!("{text}: {cause}")
            };
        }
        source = error.source();
    }
    text
}

fn with_h2(mut config: ClientConfig) -> ClientConfig {
    // gRPC servers (grpc-go since 1.67) refuse TLS connections that do not negotiate h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

fn setup_error(error: rustls::Error) -> ProtocolError {
    ProtocolError::TlsSetup {
        why: error.to_string(),
    }
}

fn verified(ca_bundle: Option<&Path>) -> Result<ClientConfig, ProtocolError> {
    let bundle = match ca_bundle {
        Some(path) => path,
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|path| path.exists())
            .ok_or_else(|| ProtocolError::TlsSetup {
                why: format!("no CA bundle is configured and none of {SYSTEM_CA_BUNDLES:?} exists"),
            })?,
    };
    let roots = tls::roots_from_bundle(bundle).map_err(|error| ProtocolError::TlsSetup {
        why: format!("the CA bundle {} {error}", bundle.display()),
    })?;
    let config = tls::verified_config(roots).map_err(setup_error)?;
    Ok(with_h2(config))
}

/// Accepts any certificate chain (`tinkerbell_insecure_tls`).
fn unverified() -> Result<ClientConfig, ProtocolError> {
    let config = tls::unverified_config().map_err(setup_error)?;
    Ok(with_h2(config))
}
