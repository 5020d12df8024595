//! The TLS connector under tonic's channel: TCP, then a rustls handshake.

use std::io;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Why a connection could not be made; a handshake failure is told apart because retrying
/// it does not help.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error(transparent)]
    Io(io::Error),
    #[error("TLS handshake failed")]
    Handshake(#[source] rustls::Error),
}

/// A channel that connects through `config` on first use and again after failures.
pub(crate) fn lazy_tls_channel(
    endpoint: Endpoint,
    config: ClientConfig,
    server_name: ServerName<'static>,
) -> Channel {
    let connector = TlsConnector::from(Arc::new(config));
    endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
        connect(uri, connector.clone(), server_name.clone())
    }))
}

async fn connect(
    uri: Uri,
    connector: TlsConnector,
    server_name: ServerName<'static>,
) -> Result<TokioIo<TlsStream<TcpStream>>, ConnectError> {
    let authority = uri
        .authority()
        .ok_or(ConnectError::Io(io::ErrorKind::InvalidInput.into()))?;
    let port = authority
        .port_u16()
        .ok_or(ConnectError::Io(io::ErrorKind::InvalidInput.into()))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(ConnectError::Io)?;
    tcp.set_nodelay(true).map_err(ConnectError::Io)?;
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(handshake_or_io)?;
    Ok(TokioIo::new(tls))
}

/// tokio-rustls reports handshake failures as an io::Error wrapping the rustls::Error.
fn handshake_or_io(error: io::Error) -> ConnectError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => ConnectError::Handshake(tls.clone()),
        None => ConnectError::Io(error),
    }
}
