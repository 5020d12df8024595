//! TCP and TLS connections: one task each, frames read with a bounded buffer and an idle
//! timeout; TLS connections first complete their handshake within [`HANDSHAKE_TIMEOUT`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::framing::{Frame, read_frame};
use crate::{Counters, Origin, Sink, Transport};

/// Connections served at once; more are closed as soon as accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// A connection that completes no frame for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// A TLS client that has not completed its handshake in this long is dropped (it holds a
/// connection slot meanwhile).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
const READ_BUFFER: usize = 16 * 1024;

/// Accepts forever: accept errors (out of descriptors, a connection reset before accept)
/// concern one connection or pass, so none ends the receiver. With `tls`, each connection is
/// a TLS one.
pub async fn accept_connections(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    sink: Arc<dyn Sink>,
    counters: Arc<Counters>,
) -> Infallible {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "syslog: cannot accept a TCP connection; retrying");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            counters
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, limit = MAX_CONNECTIONS, "syslog: too many TCP connections, closing a new one");
            continue;
        };
        let (sink, counters, tls) = (Arc::clone(&sink), Arc::clone(&counters), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    let origin = Origin {
                        transport: Transport::Tcp,
                        client_certificate: None,
                    };
                    serve_connection(stream, peer, &origin, &*sink, &counters).await;
                }
                Some(acceptor) => serve_tls(&acceptor, stream, peer, &*sink, &counters).await,
            }
            drop(permit);
        });
    }
}

async fn serve_tls(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    sink: &dyn Sink,
    counters: &Counters,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            counters.failed_handshakes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, %error, "syslog: a TLS handshake failed; closing the connection");
            return;
        }
        Err(_elapsed) => {
            counters.failed_handshakes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, "syslog: a TLS handshake timed out; closing the connection");
            return;
        }
    };
    // The verifier accepted it, so the first certificate is the client's, chained to the CA.
    let client_certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Arc::<[u8]>::from(leaf.as_ref()));
    let origin = Origin {
        transport: Transport::Tls,
        client_certificate,
    };
    serve_connection(stream, peer, &origin, sink, counters).await;
}

async fn serve_connection<S: AsyncRead + Unpin>(
    stream: S,
    peer: SocketAddr,
    origin: &Origin,
    sink: &dyn Sink,
    counters: &Counters,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut frame = Vec::new();
    loop {
        match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader, &mut frame)).await {
            Err(_elapsed) => {
                tracing::debug!(%peer, "syslog: closing an idle TCP connection");
                return;
            }
            Ok(Ok(Frame::End)) => return,
            Ok(Ok(Frame::Read { truncated })) => {
                if truncated {
                    counters.truncated.fetch_add(1, Ordering::Relaxed);
                }
                counters.deliver(&frame, peer.ip(), origin, sink);
            }
            Ok(Err(error)) => {
                tracing::info!(%peer, %error, "syslog: closing a TCP connection whose framing broke");
                return;
            }
        }
    }
}
