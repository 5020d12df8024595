//! Read-only TFTP for PXE clients (RFC 1350), with the options iPXE and UEFI use: blksize
//! (RFC 2348), tsize and timeout (RFC 2349) and windowsize (RFC 7440).
//!
//! - Every transfer runs in its own task on its own ephemeral UDP socket (RFC 1350's TID), so
//!   hundreds of nodes boot at once; at most [`MAX_TRANSFERS`] run together, further requests
//!   are answered "server busy" and the client retries.
//! - Files come from `root` only: the kernel confines the lookup (`openat2` with
//!   `RESOLVE_BENEATH`), so `..`, absolute symlinks and symlinks leading out are refused with
//!   ERROR 2 (access violation), as are directories and other non-regular files; a missing file
//!   is ERROR 1. A leading `/` in the requested name means the root.
//! - Write requests get ERROR 2 "read-only server"; modes other than `octet` get ERROR 0 "only
//!   octet mode is served" (netascii is not converted).
//! - Blocks are capped at [`options::MAX_BLKSIZE`] (one unfragmented Ethernet frame) and
//!   windows at [`options::MAX_WINDOWSIZE`]; block numbers roll over past 65535 to 0, so files
//!   of any size (a kernel) can be served.
//! - Unanswered packets are resent after the client's `timeout`, or 1 s doubling, up to
//!   [`transfer::MAX_SENDS`] sends; then the transfer is given up and counted as failed.

mod options;
mod packet;
mod root;
mod transfer;

pub use options::{DEFAULT_BLKSIZE, MAX_BLKSIZE, MAX_WINDOWSIZE};
pub use transfer::{INITIAL_TIMEOUT, MAX_SENDS};

/// What the fuzz targets in `fuzz/` feed arbitrary bytes.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use crate::options::negotiate;
    pub use crate::packet::{oack, parse_reply, parse_request};
    pub use crate::root::open_beneath;
}

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bootkit_common::net_errors::is_transient_socket_error;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use packet::ErrorCode;

/// Transfers served at once; beyond this a request is answered "server busy".
pub const MAX_TRANSFERS: usize = 1024;
/// Requests are a file name, a mode and a few options; anything longer is malformed.
const REQUEST_BUFFER: usize = 2048;

/// What the TFTP server listens on and serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Usually 0.0.0.0:69. Port 0 (tests) picks a free port.
    pub listen: SocketAddr,
    /// Files are served from here only (Debian's ipxe package: /usr/lib/ipxe).
    pub root: PathBuf,
}

/// Counters for the provisioner's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read and write requests received.
    pub requests: AtomicU64,
    /// Transfers whose last block was acknowledged.
    pub completed: AtomicU64,
    /// Requests answered with an ERROR: missing file, escape, write, mode, malformed, busy.
    pub refused: AtomicU64,
    /// Transfers given up: the client stopped acknowledging, or an I/O error.
    pub failed: AtomicU64,
    /// File bytes acknowledged by clients.
    pub bytes_sent: AtomicU64,
    /// Transfers the client ended with an ERROR (UEFI does after a tsize probe).
    pub aborted: AtomicU64,
    /// Packets or windows sent again after a timeout.
    pub retransmitted: AtomicU64,
}

/// Why the TFTP server cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The root cannot be read (missing, no permission).
    #[error("TFTP root {path} is not a readable directory; create it or pass another root")]
    Root {
        /// The root, as configured.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The root exists but is a file.
    #[error("TFTP root {path} is not a directory; pass the directory holding the boot files")]
    RootNotDirectory {
        /// The root, as configured.
        path: PathBuf,
    },
    /// The listening socket cannot be bound.
    #[error(
        "cannot listen for TFTP on UDP {addr}; is another TFTP server (dnsmasq, tftpd) running, or is the port privileged?"
    )]
    Bind {
        /// The address it was bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// Receiving on the listening socket failed with an error that is not transient.
    #[error("TFTP socket failed: {0}")]
    Receive(io::Error),
}

/// A read-only TFTP server (RFC 1350 with blksize, tsize, timeout and windowsize) bound to its socket.
pub struct Server {
    socket: UdpSocket,
    local_addr: SocketAddr,
    root: Arc<Path>,
}

impl Server {
    /// Checks the root and binds the listening socket.
    pub async fn bind(config: Config) -> Result<Self, TftpError> {
        let metadata = std::fs::metadata(&config.root).map_err(|source| TftpError::Root {
            path: config.root.clone(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(TftpError::RootNotDirectory { path: config.root });
        }
        let bind_error = |source| TftpError::Bind {
            addr: config.listen,
            source,
        };
        let socket = UdpSocket::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = socket.local_addr().map_err(bind_error)?;
        Ok(Self {
            socket,
            local_addr,
            root: Arc::from(config.root),
        })
    }

    /// The address the server listens on (with the port chosen when the configured one is 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(self, counters: Arc<Counters>) -> Result<(), TftpError> {
        let local_ip = self.local_addr.ip();
        let transfers = Arc::new(Semaphore::new(MAX_TRANSFERS));
        let mut buffer = vec![0u8; REQUEST_BUFFER];
        tracing::info!(addr = %self.local_addr, root = %self.root.display(), "TFTP server listening");
        loop {
            let (len, peer) = match self.socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) if is_transient_socket_error(&error) => continue,
                Err(error) => return Err(TftpError::Receive(error)),
            };
            let request = &buffer[..len];
            if !matches!(request, [0, 1 | 2, ..]) {
                // A stray ACK or DATA for a finished transfer: nothing to answer.
                tracing::debug!(client = %peer, "TFTP: ignoring a non-request on the listening port");
                continue;
            }
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let Ok(permit) = Arc::clone(&transfers).try_acquire_owned() else {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(client = %peer, limit = MAX_TRANSFERS, "TFTP: too many transfers, asking the client to retry");
                let busy = packet::error(ErrorCode::NotDefined, "server busy, try again");
                let _ = self.socket.send_to(&busy, peer).await;
                continue;
            };
            let (root, counters) = (Arc::clone(&self.root), Arc::clone(&counters));
            let request = request.to_vec();
            tokio::spawn(async move {
                transfer::handle(local_ip, peer, request, root, counters).await;
                drop(permit);
            });
        }
    }
}
