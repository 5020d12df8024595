//! Read-only TFTP for PXE clients (RFC 1350), with the options iPXE and UEFI use: blksize
//! (RFC 2348), tsize and timeout (RFC 2349) and windowsize (RFC 7440).
//!
//! - Every transfer runs in its own task on its own ephemeral UDP socket (RFC 1350's TID), so
//!   hundreds of nodes boot at once; at most [`MAX_TRANSFERS`] run together, further requests
//!   are answered "server busy" and the client retries.
//! - Files come from `root` only: the kernel confines the lookup (`openat2` with
//!   `RESOLVE_BENEATH`), so `..`, absolute symlinks and symlinks leading out are refused with
//!   ERROR 2 (access violation), as are directories and other non-regular files; a missing file
//!   is ERROR 1. A leading `/` in the requested name means the root. The one way out is a
//!   symlink to a target the operator named in [`Config::outside`] (see [`link_targets_outside`]).
//! - The transfers that run at once are capped by the open-files limit too (each holds
//!   descriptors); [`raise_open_files_limit`] raises the soft limit to the hard one first.
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
pub use root::link_targets_outside;
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
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bootkit_common::net_errors::is_transient_socket_error;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use packet::ErrorCode;
use root::Served;

/// The process's open-files limit (`RLIMIT_NOFILE`) before and after
/// [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now: the hard limit when raising it worked.
    pub now: u64,
}

/// Raises the soft open-files limit to the hard one: the usual soft limit, 1024, holds only
/// about 480 transfers next to the rest of a provisioner, while the hard limit (often 524288)
/// is the operator's real bound. Logs what it did. Call it once, before binding anything.
pub fn raise_open_files_limit() -> io::Result<OpenFilesLimit> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // No limit (None) cannot happen for RLIMIT_NOFILE on Linux; read it as the largest.
    let before = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if before >= hard {
        tracing::info!(
            limit = before,
            "open-files limit already at its hard limit; nothing to raise"
        );
        return Ok(OpenFilesLimit {
            before,
            now: before,
        });
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(io::Error::from)?;
    tracing::info!(
        before,
        now = hard,
        "raised the open-files soft limit to the hard limit"
    );
    Ok(OpenFilesLimit { before, now: hard })
}

/// The transfers that can run at once under a soft open-files limit of `limit`: what is left
/// after [`RESERVED_DESCRIPTORS`], [`DESCRIPTORS_PER_TRANSFER`] each, at most
/// [`MAX_TRANSFERS`] and at least one.
pub fn transfer_cap(limit: u64) -> usize {
    let cap = limit.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_TRANSFER;
    usize::try_from(cap).map_or(MAX_TRANSFERS, |cap| cap.clamp(1, MAX_TRANSFERS))
}

/// The soft open-files limit now.
fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Transfers served at once at most; beyond this (or beyond what the open-files limit allows,
/// see [`transfer_cap`]) a request is answered "server busy".
pub const MAX_TRANSFERS: usize = 1024;
/// Descriptors a running transfer holds: its socket and its file. Opening the file briefly
/// takes one to three more (the root's directory, a link's `O_PATH`), which
/// [`RESERVED_DESCRIPTORS`] covers.
pub const DESCRIPTORS_PER_TRANSFER: u64 = 2;
/// Descriptors left to the rest of the process (its listeners, store, connections) and to
/// files being opened, before transfers get theirs.
pub const RESERVED_DESCRIPTORS: u64 = 64;
/// Requests are a file name, a mode and a few options; anything longer is malformed.
const REQUEST_BUFFER: usize = 2048;

/// What the TFTP server listens on and serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Usually 0.0.0.0:69. Port 0 (tests) picks a free port.
    pub listen: SocketAddr,
    /// Files are served from here only (Debian's ipxe package: /usr/lib/ipxe).
    pub root: PathBuf,
    /// Files or directories outside `root` that symlinks in it may lead to: a file is served
    /// through a link to it, a directory through a link to anything beneath it. Every other
    /// link out of the root is refused. Usually [`link_targets_outside`] of the boot files.
    pub outside: Vec<PathBuf>,
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
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    served: Arc<Served>,
    max_transfers: usize,
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
        let served = Served::new(config.root.clone(), &config.outside).map_err(|source| {
            TftpError::Root {
                path: config.root.clone(),
                source,
            }
        })?;
        let bind_error = |source| TftpError::Bind {
            addr: config.listen,
            source,
        };
        let socket = UdpSocket::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = socket.local_addr().map_err(bind_error)?;
        Ok(Self {
            socket: Arc::new(socket),
            local_addr,
            served: Arc::new(served),
            max_transfers: transfer_cap(open_files_limit()),
        })
    }

    /// How many transfers may run at once: [`transfer_cap`] of the open-files limit when the
    /// server was bound.
    pub fn max_transfers(&self) -> usize {
        self.max_transfers
    }

    /// The address the server listens on (with the port chosen when the configured one is 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The listening socket (requests; transfers use their own), for the caller's receive
    /// buffer sizing and drop counting.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Serves until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(self, counters: Arc<Counters>) -> Result<(), TftpError> {
        let local_ip = self.local_addr.ip();
        let transfers = Arc::new(Semaphore::new(self.max_transfers));
        let mut buffer = vec![0u8; REQUEST_BUFFER];
        tracing::info!(
            addr = %self.local_addr,
            root = %self.served.root.display(),
            outside = ?self.served.outside,
            max_transfers = self.max_transfers,
            open_files_limit = open_files_limit(),
            "TFTP server listening; at most {} transfers at once ({DESCRIPTORS_PER_TRANSFER} \
             descriptors each, {RESERVED_DESCRIPTORS} kept for the rest, at most {MAX_TRANSFERS})",
            self.max_transfers
        );
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
                tracing::warn!(client = %peer, limit = self.max_transfers, "TFTP: too many transfers, asking the client to retry");
                let busy = packet::error(ErrorCode::NotDefined, "server busy, try again");
                let _ = self.socket.send_to(&busy, peer).await;
                continue;
            };
            let (served, counters) = (Arc::clone(&self.served), Arc::clone(&counters));
            let listening = Arc::clone(&self.socket);
            let request = request.to_vec();
            tokio::spawn(async move {
                transfer::handle(local_ip, peer, request, served, listening, counters).await;
                drop(permit);
            });
        }
    }
}
