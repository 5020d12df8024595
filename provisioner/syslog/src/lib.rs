//! Syslog receiver for the nodes' logs: UDP (RFC 5426) and TCP (RFC 6587, octet counting or
//! LF framing), RFC 5424 or RFC 3164 messages.
//!
//! - Every message is handed to the [`Sink`] with the sender's address, even a malformed one:
//!   without a PRI it is filed as user.notice (RFC 3164 §4.3.3) with the whole line as text,
//!   and counted in [`Counters::malformed`]. Invalid UTF-8 is replaced, not rejected.
//! - RFC 5424: TIMESTAMP, HOSTNAME, APP-NAME, PROCID and MSGID are kept (`-` becomes
//!   `None`); STRUCTURED-DATA is skipped; a BOM before MSG is removed.
//! - RFC 3164: `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`; without the timestamp (PRI then
//!   text) only a `TAG[PID]:` prefix is taken as the app name.
//! - TCP: at most [`MAX_CONNECTIONS`] connections; a frame is cut at [`MAX_FRAME`] bytes
//!   (counted in [`Counters::truncated`]); a connection that completes no frame in
//!   [`IDLE_TIMEOUT`] is closed (the bootkit's forwarder reconnects).
//! - TLS (RFC 5425): the TCP framing over TLS, with optional client authentication; a
//!   message carries the client certificate the handshake verified
//!   ([`Message::client_certificate`]), so the sink can attribute it to the certificate's
//!   holder rather than to an address. UDP, TCP and TLS without a certificate carry none.
//! - The sink is called on the receiving task: it must return quickly (the provisioner's store
//!   queues the message for a batched write).

mod framing;
mod parse;
mod tcp;

pub use framing::MAX_FRAME;
pub use parse::{DEFAULT_FACILITY, DEFAULT_SEVERITY, Parsed, parse};
pub use tcp::{HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS};

/// What the fuzz targets in `fuzz/` feed arbitrary bytes.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use crate::framing::{Frame, read_frame};
}

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bootkit_common::net_errors::is_transient_socket_error;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

/// One received message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's address (the node).
    pub peer: IpAddr,
    /// Syslog facility code, 0 to 23 (1 = user, 3 = daemon, 16 to 23 = local0 to local7).
    pub facility: u8,
    /// Syslog severity code, 0 (emergency) to 7 (debug).
    pub severity: u8,
    /// As sent (RFC 3339 for RFC 5424; RFC 3164's `Mmm dd hh:mm:ss`), if any.
    pub timestamp: Option<String>,
    /// The sender's host name as it wrote it; None when absent or `-`.
    pub hostname: Option<String>,
    /// RFC 5424 APP-NAME or RFC 3164 TAG (the program); None when absent or `-`.
    pub app_name: Option<String>,
    /// RFC 5424 PROCID or RFC 3164's `[PID]`; None when absent or `-`.
    pub proc_id: Option<String>,
    /// RFC 5424 MSGID (the message type); None when absent or `-`, always None for RFC 3164.
    pub msg_id: Option<String>,
    /// The message itself (MSG); for a malformed message, the whole line.
    pub text: String,
    /// How it arrived.
    pub transport: Transport,
    /// For [`Transport::Tls`]: the DER of the client certificate the TLS handshake verified
    /// against [`TlsListener::config`]'s client verifier; None when the client presented
    /// none, and always None for UDP and TCP (the sender is then known only by address).
    pub client_certificate: Option<Arc<[u8]>>,
}

/// The transport a message arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5426 datagrams.
    Udp,
    /// RFC 6587 over plain TCP.
    Tcp,
    /// RFC 5425: RFC 6587 framing over TLS.
    Tls,
}

impl Transport {
    /// `"udp"`, `"tcp"` or `"tls"`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// Where messages go; called from the receiver's tasks, must not block for long.
pub trait Sink: Send + Sync + 'static {
    /// Takes one message; runs on the receiving task, so it must return quickly.
    fn receive(&self, message: Message);
}

/// The addresses the receiver listens on; at least one must be set.
#[derive(Debug, Clone)]
pub struct Config {
    /// Usually 0.0.0.0:514 (UDP). Port 0 (tests) picks a free port.
    pub udp: Option<SocketAddr>,
    /// Usually 0.0.0.0:514 (TCP, octet-counted or newline-framed).
    pub tcp: Option<SocketAddr>,
    /// Usually 0.0.0.0:6514 (RFC 5425).
    pub tls: Option<TlsListener>,
}

/// The TLS listener's address and server configuration.
#[derive(Clone)]
pub struct TlsListener {
    /// Where to listen (TCP).
    pub addr: SocketAddr,
    /// The server's certificate chain and key, and its client verifier: a verifier that
    /// allows unauthenticated clients keeps certificate-less senders (marked as such).
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsListener")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Counters for the provisioner's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages delivered to the sink (malformed ones included).
    pub messages: AtomicU64,
    /// Messages that followed neither RFC (no PRI, broken RFC 5424 header).
    pub malformed: AtomicU64,
    /// TCP frames longer than [`MAX_FRAME`], delivered cut.
    pub truncated: AtomicU64,
    /// TCP and TLS connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub rejected_connections: AtomicU64,
    /// TLS connections whose handshake failed or timed out (a client certificate the node CA
    /// did not sign, no common protocol version, a client that is not TLS).
    pub failed_handshakes: AtomicU64,
}

impl Counters {
    /// Parses a frame, counts it and hands it to the sink.
    fn deliver(&self, frame: &[u8], peer: IpAddr, origin: &Origin, sink: &dyn Sink) {
        let mut parsed = parse(frame, peer);
        parsed.message.transport = origin.transport;
        parsed
            .message
            .client_certificate
            .clone_from(&origin.client_certificate);
        if !parsed.well_formed {
            self.malformed.fetch_add(1, Ordering::Relaxed);
        }
        self.messages.fetch_add(1, Ordering::Relaxed);
        sink.receive(parsed.message);
    }
}

/// How a connection's messages arrived, stamped on each.
struct Origin {
    transport: Transport,
    client_certificate: Option<Arc<[u8]>>,
}

impl Origin {
    const UDP: Origin = Origin {
        transport: Transport::Udp,
        client_certificate: None,
    };
}

/// Why the syslog receiver cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// None of [`Config::udp`], [`Config::tcp`] and [`Config::tls`] is set.
    #[error("syslog receiver has no UDP, TCP or TLS address to listen on; give at least one")]
    NoListener,
    /// A socket cannot be bound.
    #[error(
        "cannot listen for syslog on {transport} {addr}; is rsyslog or another receiver using the port?"
    )]
    Bind {
        /// `"UDP"`, `"TCP"` or `"TLS"`.
        transport: &'static str,
        /// The address it was bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The UDP socket failed with an error that is not transient.
    #[error("syslog UDP socket failed: {0}")]
    Receive(io::Error),
}

/// A syslog receiver bound to its sockets; [`Receiver::serve`] serves them.
pub struct Receiver {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, TlsAcceptor)>,
}

/// Datagrams up to the UDP maximum are read whole.
const DATAGRAM_BUFFER: usize = 65_536;

impl Receiver {
    /// Binds the configured UDP socket and TCP and TLS listeners; fails if none is
    /// configured.
    pub async fn bind(config: Config) -> Result<Self, SyslogError> {
        if config.udp.is_none() && config.tcp.is_none() && config.tls.is_none() {
            return Err(SyslogError::NoListener);
        }
        let udp = match config.udp {
            Some(addr) => Some(
                UdpSocket::bind(addr)
                    .await
                    .map_err(bind_error("UDP", addr))?,
            ),
            None => None,
        };
        let tcp = match config.tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(bind_error("TCP", addr))?,
            ),
            None => None,
        };
        let tls = match config.tls {
            Some(TlsListener { addr, config }) => Some((
                TcpListener::bind(addr)
                    .await
                    .map_err(bind_error("TLS", addr))?,
                TlsAcceptor::from(config),
            )),
            None => None,
        };
        Ok(Self { udp, tcp, tls })
    }

    /// The UDP address listened on (with the port chosen for port 0); None without UDP.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
            .as_ref()
            .and_then(|socket| socket.local_addr().ok())
    }

    /// The TCP address listened on (with the port chosen for port 0); None without TCP.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The TLS address listened on (with the port chosen for port 0); None without TLS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The UDP socket, for the metrics' drop count and buffer sizing; None without UDP.
    pub fn udp_socket(&self) -> Option<&UdpSocket> {
        self.udp.as_ref()
    }

    /// Receives until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(
        self,
        sink: Arc<dyn Sink>,
        counters: Arc<Counters>,
    ) -> Result<(), SyslogError> {
        tracing::info!(
            udp = ?self.udp_addr(),
            tcp = ?self.tcp_addr(),
            tls = ?self.tls_addr(),
            "syslog receiver listening"
        );
        let udp = async {
            match &self.udp {
                Some(socket) => receive_datagrams(socket, &*sink, &counters).await,
                None => std::future::pending().await,
            }
        };
        let tcp = async {
            match self.tcp {
                Some(listener) => {
                    tcp::accept_connections(
                        listener,
                        None,
                        Arc::clone(&sink),
                        Arc::clone(&counters),
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        let tls = async {
            match self.tls {
                Some((listener, acceptor)) => {
                    tcp::accept_connections(
                        listener,
                        Some(acceptor),
                        Arc::clone(&sink),
                        Arc::clone(&counters),
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = udp => result,
            never = tcp => match never {},
            never = tls => match never {},
        }
    }
}

async fn receive_datagrams(
    socket: &UdpSocket,
    sink: &dyn Sink,
    counters: &Counters,
) -> Result<(), SyslogError> {
    let mut buffer = vec![0u8; DATAGRAM_BUFFER];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) if is_transient_socket_error(&error) => continue,
            Err(error) => return Err(SyslogError::Receive(error)),
        };
        if len > 0 {
            counters.deliver(&buffer[..len], peer.ip(), &Origin::UDP, sink);
        }
    }
}

fn bind_error(transport: &'static str, addr: SocketAddr) -> impl FnOnce(io::Error) -> SyslogError {
    move |source| SyslogError::Bind {
        transport,
        addr,
        source,
    }
}
