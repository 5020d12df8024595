//! Syslog receiver. PLACEHOLDER: the contract below is fixed; bodies are being written.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// One received message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's address (the node).
    pub peer: IpAddr,
    pub facility: u8,
    pub severity: u8,
    /// As sent (RFC 3339 for RFC 5424; RFC 3164's `Mmm dd hh:mm:ss`), if any.
    pub timestamp: Option<String>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    pub text: String,
}

/// Where messages go; called from the receiver's tasks, must not block for long.
pub trait Sink: Send + Sync + 'static {
    fn receive(&self, message: Message);
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Usually 0.0.0.0:514 (UDP). Port 0 (tests) picks a free port.
    pub udp: Option<SocketAddr>,
    /// Usually 0.0.0.0:514 (TCP, octet-counted or newline-framed).
    pub tcp: Option<SocketAddr>,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub messages: AtomicU64,
    pub malformed: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("{0}")]
    Placeholder(String),
}

pub struct Receiver;

impl Receiver {
    pub async fn bind(_config: Config) -> Result<Self, SyslogError> {
        todo!("bootkit-syslog-receiver is being written")
    }
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        todo!()
    }
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        todo!()
    }
    /// Receives until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(
        self,
        _sink: Arc<dyn Sink>,
        _counters: Arc<Counters>,
    ) -> Result<(), SyslogError> {
        todo!()
    }
}
