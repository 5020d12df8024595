//! Read-only TFTP. PLACEHOLDER: the contract below is fixed; bodies are being written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

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
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_sent: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("{0}")]
    Placeholder(String),
}

pub struct Server;

impl Server {
    pub async fn bind(_config: Config) -> Result<Self, TftpError> {
        todo!("bootkit-tftp is being written")
    }
    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }
    /// Serves until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(self, _counters: Arc<Counters>) -> Result<(), TftpError> {
        todo!()
    }
}
