//! TCP connections: one task each, frames read with a bounded buffer and an idle timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::framing::{Frame, read_frame};
use crate::{Counters, Sink};

/// Connections served at once; more are closed as soon as accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// A connection that completes no frame for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
const READ_BUFFER: usize = 16 * 1024;

/// Accepts forever: accept errors (out of descriptors, a connection reset before accept)
/// concern one connection or pass, so none ends the receiver.
pub async fn accept_connections(
    listener: TcpListener,
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
        let (sink, counters) = (Arc::clone(&sink), Arc::clone(&counters));
        tokio::spawn(async move {
            serve_connection(stream, peer, &*sink, &counters).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
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
                counters.deliver(&frame, peer.ip(), sink);
            }
            Ok(Err(error)) => {
                tracing::info!(%peer, %error, "syslog: closing a TCP connection whose framing broke");
                return;
            }
        }
    }
}
