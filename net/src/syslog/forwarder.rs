//! The forwarder: a bounded buffer that PID 1 pushes lines into without ever waiting, and a task
//! that sends them to the log host once the network is up.

use bootkit_common::error_chain;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use bootkit_common::backoff::{Backoff, Delays};
use bootkit_common::tls_pin::PinnedCa;

use super::format::{Facility, Severity, format_rfc5424};

/// The syslog port, for UDP (RFC 5426) and, by common practice, TCP.
pub const DEFAULT_PORT: u16 = 514;
/// The syslog-over-TLS port (RFC 5425).
pub const DEFAULT_TLS_PORT: u16 = 6514;
/// The CA bundle that TLS verifies the log host against when none is configured.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The node's client certificate (PEM) that device discovery writes at enrollment.
pub const DEFAULT_CLIENT_CERT_FILE: &str = "/run/bootkit/credentials/node.pem";
/// The node's private key (PEM) for [`DEFAULT_CLIENT_CERT_FILE`].
pub const DEFAULT_CLIENT_KEY_FILE: &str = "/run/bootkit/credentials/node-key.pem";
/// Lines kept while the log host cannot be reached.
pub const DEFAULT_CAPACITY: usize = 4096;
/// The largest buffer accepted; a larger configured capacity is reduced to it.
pub const MAX_CAPACITY: usize = 1 << 20;
/// The longest MSG kept, in bytes: RFC 5426 receivers must take 480 bytes and should take
/// 2048; it also bounds the buffer's memory to about capacity × this.
pub const MAX_MSG_LEN: usize = 2048;
/// APP-NAME of the forwarder's own lines (the count of dropped lines).
pub const FORWARDER_APP_NAME: &str = "syslog";

/// How lines travel to the log host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// One datagram per line (RFC 5426).
    #[default]
    Udp,
    /// A stream with octet-counting framing, `LEN SP MSG` (RFC 6587 section 3.4.1).
    ///
    /// TLS (RFC 5425) uses the same framing over a TLS stream: [`Transport::Tls`].
    Tcp,
    /// Octet-counted frames over TLS (RFC 5425), the log host's certificate verified against
    /// the CA pinned by [`ForwarderConfig::ca_sha256`] or else [`ForwarderConfig::ca_file`], and for [`ForwarderConfig::host`] (an IP address host must
    /// be in the certificate's IP SANs).
    Tls,
}

impl Transport {
    /// The port for this transport when none is given: 514 for UDP and TCP, 6514 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => DEFAULT_PORT,
            Transport::Tls => DEFAULT_TLS_PORT,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        })
    }
}

/// The default reconnection delays: 1 s doubling up to 60 s, each up to half shorter at random
/// so that many workers rebooting together do not hit the log host in step.
pub const RECONNECT_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(50);

/// Where and how to forward (`syslog_host=`, `syslog_port=` and the transport asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// An IP address (IPv6 with or without brackets) or a host name (see [`super`] on names).
    pub host: String,
    /// The log host's port: `syslog_port=`, or the transport's [`Transport::default_port`].
    pub port: u16,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// HOSTNAME of every line: the worker id or MAC. Can be changed later with
    /// [`Forwarder::set_hostname`]; lines take the value current when they are sent.
    pub hostname: String,
    /// The facility of every line ([`Facility::Daemon`] by default).
    pub facility: Facility,
    /// Lines buffered while the log host is unreachable; further lines are dropped and counted.
    pub capacity: usize,
    /// The delays between reconnection attempts ([`RECONNECT_BACKOFF`] by default).
    pub backoff: Backoff,
    /// The longest wait for resolving, connecting (with the TLS handshake), or sending one line.
    pub io_timeout: Duration,
    /// For [`Transport::Tls`]: the PEM bundle of CA certificates the log host's certificate
    /// must chain to; [`DEFAULT_CA_FILE`] when `None`. Read when the task first connects (and
    /// again on each retry until it could be used).
    pub ca_file: Option<PathBuf>,
    /// For [`Transport::Tls`]: trust exactly the CA whose DER has this SHA-256
    /// (`tinkerbell_ca_sha256=`: the receiver presents the same chain as the provisioner's
    /// gRPC), which must be in the chain the log host sends; overrides [`Self::ca_file`].
    pub ca_sha256: Option<[u8; 32]>,
    /// For [`Transport::Tls`]: the client certificate to present, once its files exist.
    /// None: never present one.
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate and its key, as PEM files that may appear after the forwarder
/// started (the node enrolls later in the boot). Looked for at each connection; when they
/// appear during a connection without them, the forwarder reconnects once to present them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ClientIdentity {
    /// The node's enrollment credential: [`DEFAULT_CLIENT_CERT_FILE`] and
    /// [`DEFAULT_CLIENT_KEY_FILE`].
    pub fn node_default() -> Self {
        ClientIdentity {
            cert: DEFAULT_CLIENT_CERT_FILE.into(),
            key: DEFAULT_CLIENT_KEY_FILE.into(),
        }
    }

    /// Both files exist (device discovery writes the key first, then the certificate).
    fn present(&self) -> bool {
        self.cert.is_file() && self.key.is_file()
    }

    fn load(
        &self,
    ) -> Result<
        (
            Vec<CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        ForwardError,
    > {
        bootkit_common::tls_pin::load_client_identity(&self.cert, &self.key).map_err(|source| {
            ForwardError::ClientIdentity {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: error_chain(&source),
            }
        })
    }
}

impl ForwarderConfig {
    /// UDP to `host`:514, facility daemon, no hostname yet.
    pub fn new(host: impl Into<String>) -> Self {
        ForwarderConfig {
            host: host.into(),
            port: DEFAULT_PORT,
            transport: Transport::Udp,
            hostname: String::new(),
            facility: Facility::Daemon,
            capacity: DEFAULT_CAPACITY,
            backoff: RECONNECT_BACKOFF,
            io_timeout: Duration::from_secs(10),
            ca_file: None,
            ca_sha256: None,
            client_identity: None,
        }
    }

    /// The CA bundle for TLS: [`Self::ca_file`] or [`DEFAULT_CA_FILE`].
    pub fn ca_file(&self) -> &Path {
        self.ca_file
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CA_FILE))
    }

    /// The host without the brackets of an IPv6 literal.
    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// What the sending task reports, for the caller to log (to the console: a report logged
/// through the forwarder itself would wait behind the lines it is about).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Sending to `peer`. For UDP this only proves a route, not that anyone listens.
    Connected {
        /// The log host's address connected to.
        peer: SocketAddr,
        /// The transport in use.
        transport: Transport,
        /// TLS only: whether the client certificate was presented.
        client_certificate: bool,
    },
    /// The log host cannot be reached; lines stay buffered and it is retried every `retry_in`
    /// or so, growing. Reported once per outage, not on every retry.
    Unreachable {
        /// Why the latest attempt failed.
        error: ForwardError,
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
    /// The buffer was full and `count` lines were dropped; a line saying so was just sent.
    Dropped {
        /// The number of lines dropped since the last such report.
        count: u64,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Connected {
                peer,
                transport,
                client_certificate,
            } => {
                write!(f, "forwarding logs to {peer} over {transport}")?;
                if *client_certificate {
                    write!(f, " with the node's client certificate")?;
                }
                Ok(())
            }
            Event::Unreachable { error, retry_in } => write!(
                f,
                "log host unreachable, buffering lines and retrying in {:.1}s: {error}",
                retry_in.as_secs_f64(),
                error = error_chain(error)
            ),
            Event::Dropped { count } => write!(f, "{}", dropped_message(*count)),
        }
    }
}

fn dropped_message(count: u64) -> String {
    format!("syslog forwarding: dropped {count} lines while the network was down")
}

/// Why a line could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The log host's name could not be resolved.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The host as configured.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The log host's name resolved, but to no address.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The host as configured.
        host: String,
    },
    /// No address of the log host could be connected to (for UDP: no route to it yet); this
    /// is the last one tried.
    #[error("cannot connect to {peer} over {transport}")]
    Connect {
        /// The last address tried.
        peer: SocketAddr,
        /// The transport; [`Transport::Tls`] for the TCP connection under TLS.
        transport: Transport,
        /// The operating system's error.
        source: io::Error,
    },
    /// Writing a line failed, or, for TCP and TLS, reading from the idle connection did.
    #[error("cannot send to {peer}")]
    Send {
        /// The log host's address.
        peer: SocketAddr,
        /// The operating system's (or TLS) error.
        source: io::Error,
    },
    /// The log host closed the TCP or TLS connection.
    #[error("{peer} closed the connection")]
    Closed {
        /// The log host's address.
        peer: SocketAddr,
    },
    /// Resolving, connecting (with the TLS handshake) or sending one line took longer than
    /// [`ForwarderConfig::io_timeout`].
    #[error("{what} took longer than {timeout:?}")]
    Timeout {
        /// The step that timed out, e.g. `connecting to 192.0.2.1:514`.
        what: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
    /// The CA bundle for TLS is missing, unreadable, or holds no usable certificate. Retrying
    /// does not help until the file is fixed.
    #[error("cannot use CA file {path} for TLS: {reason}")]
    CaFile {
        /// The CA bundle's path.
        path: PathBuf,
        /// What is wrong with it, e.g. `the file is empty`.
        reason: String,
    },
    /// The client certificate or key exists but cannot be used. Retried at each connection
    /// (the files may be mid-write); until fixed, lines wait in the buffer.
    #[error(
        "cannot use the client certificate {cert} with key {key} for TLS: {reason}; \
         re-enroll the node (provisioner node reprovision) or remove the files"
    )]
    ClientIdentity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong with them.
        reason: String,
    },
    /// The host is not something a certificate can be checked against.
    #[error("{host} is not a valid TLS server name")]
    ServerName {
        /// The host, without the brackets of an IPv6 literal.
        host: String,
    },
    /// The log host's certificate does not verify: an unknown issuer, not valid for the host,
    /// expired, ...
    #[error("the TLS certificate of {host} ({peer}) does not verify: {reason}")]
    Certificate {
        /// The host the certificate was checked for, without IPv6 brackets.
        host: String,
        /// The log host's address.
        peer: SocketAddr,
        /// rustls's verification error.
        reason: rustls::Error,
    },
    /// The TLS handshake failed for another reason (no common protocol version or cipher suite,
    /// an alert from the host, the connection cut).
    #[error("TLS handshake with {host} ({peer}) failed")]
    Handshake {
        /// The host, without the brackets of an IPv6 literal.
        host: String,
        /// The log host's address.
        peer: SocketAddr,
        /// The handshake's error.
        source: io::Error,
    },
}

/// A line as pushed: formatted only when sent, so that it carries the hostname known then.
#[derive(Debug)]
struct Record {
    time: SystemTime,
    app: String,
    severity: Severity,
    msg: String,
}

/// What pushers and the sending task share.
#[derive(Debug)]
struct Shared {
    hostname: RwLock<String>,
    facility: Facility,
    /// Lines dropped and not yet reported to the log host.
    dropped: AtomicU64,
}

impl Shared {
    fn format(&self, record: &Record) -> String {
        // A poisoned lock only means a pusher panicked mid-update; the name is still a string.
        let hostname = self
            .hostname
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        format_rfc5424(
            self.facility,
            record.severity,
            record.time,
            &hostname,
            &record.app,
            &record.msg,
        )
    }
}

/// The pushing side: cheap to clone, usable from any thread, with or without a tokio runtime.
#[derive(Debug, Clone)]
pub struct Forwarder {
    lines: mpsc::Sender<Record>,
    shared: Arc<Shared>,
}

/// The sending side: run it (on a tokio runtime) once the network is up, or hand it a
/// "network up" signal with [`ForwarderTask::run_when_up`].
#[derive(Debug)]
pub struct ForwarderTask {
    lines: mpsc::Receiver<Record>,
    shared: Arc<Shared>,
    config: ForwarderConfig,
}

impl Forwarder {
    /// The buffer and its sending task. Lines can be pushed from now on; they wait in the
    /// buffer until the task runs.
    pub fn new(config: ForwarderConfig) -> (Forwarder, ForwarderTask) {
        let (sender, receiver) = mpsc::channel(config.capacity.clamp(1, MAX_CAPACITY));
        let shared = Arc::new(Shared {
            hostname: RwLock::new(config.hostname.clone()),
            facility: config.facility,
            dropped: AtomicU64::new(0),
        });
        let forwarder = Forwarder {
            lines: sender,
            shared: shared.clone(),
        };
        let task = ForwarderTask {
            lines: receiver,
            shared,
            config,
        };
        (forwarder, task)
    }

    /// Queue one line from `app` (a stage or service name). Never blocks and never fails: when
    /// the buffer is full (or the task has ended) the line is dropped and counted; the oldest
    /// lines are kept, since they tell how the boot began. A MSG longer than [`MAX_MSG_LEN`]
    /// bytes is cut.
    pub fn push(&self, app: &str, severity: Severity, msg: &str) {
        let record = Record {
            time: SystemTime::now(),
            app: app.to_string(),
            severity,
            msg: truncate(msg, MAX_MSG_LEN).to_string(),
        };
        if self.lines.try_send(record).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Set the HOSTNAME for lines sent from now on, including those already buffered (e.g.
    /// once the MAC or worker id is known).
    pub fn set_hostname(&self, hostname: &str) {
        let mut current = self
            .shared
            .hostname
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = hostname.to_string();
    }

    /// Lines dropped and not yet reported to the log host.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let end = (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..end]
}

/// What [`ForwarderTask::run`] keeps across connections.
struct RunState {
    /// A line whose sending failed, sent first on the next connection.
    pending: Option<Record>,
    /// Where the reconnection delays stand: reset by a delivered line.
    delays: Delays,
    /// The last state reported, so that retries do not repeat it: events alternate between
    /// connected and unreachable, one per change.
    reported: Reported,
    /// The TLS client, built from the CA bundle once that could be read.
    tls: Option<TlsClient>,
}

/// The CA roots (read once) and the connector built from them, with or without the client
/// certificate.
struct TlsClient {
    /// None when the CA is pinned by hash ([`ForwarderConfig::ca_sha256`]).
    roots: Option<Arc<rustls::RootCertStore>>,
    connector: TlsConnector,
    client_certificate: bool,
}

/// How [`ForwarderTask::pump`] ended without an error.
enum Pumped {
    /// Every pusher is gone and every line is out.
    Drained,
    /// The client certificate appeared: reconnect at once to present it.
    Reconnect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    Nothing,
    Connected,
    Unreachable,
}

impl ForwarderTask {
    /// Wait until `network_up` says true, then [`run`](Self::run). Returns at once if the
    /// sender of `network_up` is dropped before that.
    pub async fn run_when_up(
        self,
        mut network_up: watch::Receiver<bool>,
        on_event: impl FnMut(Event),
    ) {
        if network_up.wait_for(|&up| up).await.is_ok() {
            self.run(on_event).await;
        }
    }

    /// Send buffered and future lines, reconnecting with backoff whenever the log host cannot
    /// be reached. Lines wait in the buffer meanwhile. Returns when every [`Forwarder`] is
    /// dropped and the buffer is drained.
    pub async fn run(mut self, mut on_event: impl FnMut(Event)) {
        let mut state = RunState {
            pending: None,
            delays: self.config.backoff.delays(),
            reported: Reported::Nothing,
            tls: None,
        };
        loop {
            let result = match Connection::open(&self.config, &mut state.tls).await {
                Ok(mut connection) => {
                    if state.reported != Reported::Connected {
                        state.reported = Reported::Connected;
                        on_event(Event::Connected {
                            peer: connection.peer(),
                            transport: self.config.transport,
                            client_certificate: connection.presents_client_certificate(),
                        });
                    }
                    let pumped = self.pump(&mut connection, &mut state, &mut on_event).await;
                    if pumped.is_ok() {
                        // Every line is out, or a reconnection follows: end the stream
                        // cleanly (TLS close_notify).
                        connection.shutdown(self.config.io_timeout).await;
                    }
                    pumped
                }
                Err(error) => Err(error),
            };
            let error = match result {
                Ok(Pumped::Drained) => return,
                Ok(Pumped::Reconnect) => {
                    // Reported afresh, so the log says the certificate is now presented.
                    state.reported = Reported::Nothing;
                    continue;
                }
                Err(error) => error,
            };
            let wait = state.delays.next_delay();
            if state.reported != Reported::Unreachable {
                state.reported = Reported::Unreachable;
                on_event(Event::Unreachable {
                    error,
                    retry_in: wait,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Send lines over `connection` until it fails (Err) or every pusher is gone (Ok). A line
    /// whose sending failed stays pending for the next connection.
    async fn pump(
        &mut self,
        connection: &mut Connection,
        state: &mut RunState,
        on_event: &mut impl FnMut(Event),
    ) -> Result<Pumped, ForwardError> {
        let timeout = self.config.io_timeout;
        // Only a TLS connection made without the certificate watches for it to appear.
        let identity = self.config.client_identity.as_ref().filter(|_| {
            matches!(
                connection,
                Connection::Tls {
                    client_certificate: false,
                    ..
                }
            )
        });
        loop {
            self.report_dropped(connection, on_event).await?;
            let record = match state.pending.take() {
                Some(record) => record,
                None => tokio::select! {
                    // A closed TCP connection is noticed while idle, before a line is written
                    // into it and lost.
                    closed = connection.closed() => return Err(closed),
                    next = self.lines.recv() => match next {
                        Some(record) => record,
                        None => return Ok(Pumped::Drained),
                    },
                },
            };
            // Looked for before every line (two stats, and only until the certificate is
            // presented): the first line after enrollment (the supervisor starting the
            // worker) must already go under the node's certificate, which a check at
            // intervals would let slip through unauthenticated.
            if identity.is_some_and(ClientIdentity::present) {
                state.pending = Some(record);
                return Ok(Pumped::Reconnect);
            }
            let line = self.shared.format(&record);
            if let Err(error) = connection.send(&line, timeout).await {
                state.pending = Some(record);
                return Err(error);
            }
            // Only a delivered line ends the backoff: a host that accepts connections and
            // closes them at once must not be reconnected to in a tight loop.
            state.delays.reset();
        }
    }

    /// Tell the log host how many lines were dropped, if any, before sending the next one.
    async fn report_dropped(
        &self,
        connection: &mut Connection,
        on_event: &mut impl FnMut(Event),
    ) -> Result<(), ForwardError> {
        let count = self.shared.dropped.load(Ordering::Relaxed);
        if count == 0 {
            return Ok(());
        }
        let notice = Record {
            time: SystemTime::now(),
            app: FORWARDER_APP_NAME.to_string(),
            severity: Severity::Warning,
            msg: dropped_message(count),
        };
        connection
            .send(&self.shared.format(&notice), self.config.io_timeout)
            .await?;
        // Subtracted, not zeroed: lines dropped while the notice was sent are reported next.
        self.shared.dropped.fetch_sub(count, Ordering::Relaxed);
        on_event(Event::Dropped { count });
        Ok(())
    }
}

/// An open path to the log host.
enum Connection {
    Udp {
        socket: UdpSocket,
        peer: SocketAddr,
    },
    Tcp {
        stream: TcpStream,
        peer: SocketAddr,
    },
    Tls {
        stream: Box<TlsStream<TcpStream>>,
        peer: SocketAddr,
        /// Whether the handshake presented [`ForwarderConfig::client_identity`].
        client_certificate: bool,
    },
}

impl Connection {
    /// Resolve the host (again each time: its address may have changed) and connect to the
    /// first address that accepts.
    /// For TLS, the CA bundle is read first (into `tls`, kept for later connections), and
    /// the client certificate is presented if its files exist now.
    async fn open(
        config: &ForwarderConfig,
        tls: &mut Option<TlsClient>,
    ) -> Result<Connection, ForwardError> {
        let timeout = config.io_timeout;
        let tls = match config.transport {
            Transport::Tls => {
                let connector = tls_client(config, tls)?;
                let host = config.bare_host();
                let name = ServerName::try_from(host.to_string()).map_err(|_| {
                    ForwardError::ServerName {
                        host: host.to_string(),
                    }
                })?;
                Some((connector, name))
            }
            _ => None,
        };
        let mut last_error = None;
        for peer in resolve(config).await? {
            let attempt = match (config.transport, &tls) {
                (Transport::Udp, _) => Self::open_udp(peer).await,
                (Transport::Tls, Some(((connector, client_certificate), name))) => {
                    Self::open_tls(peer, timeout, connector, name.clone(), config)
                        .await
                        .map(|stream| Connection::Tls {
                            stream: Box::new(stream),
                            peer,
                            client_certificate: *client_certificate,
                        })
                }
                _ => Self::open_tcp(peer, timeout).await,
            };
            match attempt {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ForwardError::NoAddress {
            host: config.host.clone(),
        }))
    }

    async fn open_udp(peer: SocketAddr) -> Result<Connection, ForwardError> {
        let local: SocketAddr = if peer.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let connect_error = |source| ForwardError::Connect {
            peer,
            transport: Transport::Udp,
            source,
        };
        let socket = UdpSocket::bind(local).await.map_err(connect_error)?;
        // Connecting fails at once when there is no route yet (network still down).
        socket.connect(peer).await.map_err(connect_error)?;
        Ok(Connection::Udp { socket, peer })
    }

    async fn open_tcp(peer: SocketAddr, timeout: Duration) -> Result<Connection, ForwardError> {
        let stream = connect_tcp(peer, timeout, Transport::Tcp).await?;
        Ok(Connection::Tcp { stream, peer })
    }

    /// TCP, then the TLS handshake, each within `timeout`.
    async fn open_tls(
        peer: SocketAddr,
        timeout: Duration,
        connector: &TlsConnector,
        name: ServerName<'static>,
        config: &ForwarderConfig,
    ) -> Result<TlsStream<TcpStream>, ForwardError> {
        let tcp = connect_tcp(peer, timeout, Transport::Tls).await?;
        let host = config.bare_host();
        let stream = within(
            timeout,
            || format!("TLS handshake with {host} ({peer})"),
            connector.connect(name, tcp),
        )
        .await?
        .map_err(|source| handshake_error(host, peer, source))?;
        Ok(stream)
    }

    /// Whether this is a TLS connection that presented the client certificate.
    fn presents_client_certificate(&self) -> bool {
        matches!(
            self,
            Connection::Tls {
                client_certificate: true,
                ..
            }
        )
    }

    fn peer(&self) -> SocketAddr {
        match self {
            Connection::Udp { peer, .. }
            | Connection::Tcp { peer, .. }
            | Connection::Tls { peer, .. } => *peer,
        }
    }

    async fn send(&mut self, line: &str, timeout: Duration) -> Result<(), ForwardError> {
        let peer = self.peer();
        let sent = match self {
            Connection::Udp { socket, .. } => {
                within(
                    timeout,
                    || format!("sending to {peer}"),
                    send_datagram(socket, line),
                )
                .await?
            }
            Connection::Tcp { stream, .. } => {
                within(
                    timeout,
                    || format!("sending to {peer}"),
                    write_octet_counted(stream, line),
                )
                .await?
            }
            Connection::Tls { stream, .. } => {
                within(
                    timeout,
                    || format!("sending to {peer}"),
                    write_octet_counted(stream.as_mut(), line),
                )
                .await?
            }
        };
        sent.map_err(|source| ForwardError::Send { peer, source })
    }

    /// Resolves when the log host closes the connection; never for UDP, which has none.
    /// Whatever the host sends is read and ignored.
    async fn closed(&mut self) -> ForwardError {
        match self {
            Connection::Udp { .. } => std::future::pending().await,
            Connection::Tcp { stream, peer } => read_until_closed(stream, *peer).await,
            Connection::Tls { stream, peer, .. } => read_until_closed(stream.as_mut(), *peer).await,
        }
    }

    /// Close the sending side, best effort and within `timeout`: for TLS this sends
    /// close_notify, so that the log host sees a clean end rather than a cut.
    async fn shutdown(&mut self, timeout: Duration) {
        let _ = match self {
            Connection::Udp { .. } => return,
            Connection::Tcp { stream, .. } => {
                tokio::time::timeout(timeout, stream.shutdown()).await
            }
            Connection::Tls { stream, .. } => {
                tokio::time::timeout(timeout, stream.shutdown()).await
            }
        };
    }
}

/// Read and ignore whatever the host sends until it closes the connection or it fails.
/// Cancel-safe: dropping it between reads loses nothing that matters.
async fn read_until_closed<R: AsyncRead + Unpin>(stream: &mut R, peer: SocketAddr) -> ForwardError {
    let mut discard = [0u8; 512];
    loop {
        match stream.read(&mut discard).await {
            Ok(0) => return ForwardError::Closed { peer },
            Ok(_) => continue,
            Err(source) => return ForwardError::Send { peer, source },
        }
    }
}

async fn connect_tcp(
    peer: SocketAddr,
    timeout: Duration,
    transport: Transport,
) -> Result<TcpStream, ForwardError> {
    within(
        timeout,
        || format!("connecting to {peer}"),
        TcpStream::connect(peer),
    )
    .await?
    .map_err(|source| ForwardError::Connect {
        peer,
        transport,
        source,
    })
}

/// The connector for this connection (and whether it presents the client certificate):
/// the cached one unless the certificate's files appeared (or went) since it was built.
fn tls_client(
    config: &ForwarderConfig,
    cached: &mut Option<TlsClient>,
) -> Result<(TlsConnector, bool), ForwardError> {
    let identity = config
        .client_identity
        .as_ref()
        .filter(|identity| identity.present());
    let roots = match cached {
        Some(client) if client.client_certificate == identity.is_some() => {
            return Ok((client.connector.clone(), client.client_certificate));
        }
        Some(client) => client.roots.clone(),
        None if config.ca_sha256.is_some() => None,
        None => Some(Arc::new(ca_roots(config.ca_file())?)),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| ForwardError::CaFile {
            path: config.ca_file().to_path_buf(),
            reason: format!("no TLS protocol version available: {error}"),
        })?;
    let builder = match (&roots, config.ca_sha256) {
        (Some(roots), _) => versions.with_root_certificates(Arc::clone(roots)),
        (None, Some(ca_sha256)) => versions
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCa::new(ca_sha256, provider))),
        // Unreachable by construction (no roots only with a pin); read the CA file anyway
        // rather than trusting nothing.
        (None, None) => versions.with_root_certificates(Arc::new(ca_roots(config.ca_file())?)),
    };
    let client_config = match identity {
        Some(identity) => {
            let (chain, key) = identity.load()?;
            builder.with_client_auth_cert(chain, key).map_err(|error| {
                ForwardError::ClientIdentity {
                    cert: identity.cert.clone(),
                    key: identity.key.clone(),
                    reason: format!("the key does not fit the certificate: {error}"),
                }
            })?
        }
        None => builder.with_no_client_auth(),
    };
    let client = cached.insert(TlsClient {
        roots,
        connector: TlsConnector::from(Arc::new(client_config)),
        client_certificate: identity.is_some(),
    });
    Ok((client.connector.clone(), client.client_certificate))
}

/// The CA certificates of the PEM bundle at `path`.
fn ca_roots(path: &Path) -> Result<rustls::RootCertStore, ForwardError> {
    let ca_error = |reason: String| ForwardError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    // Small and local (the initramfs or a mounted root): read without a blocking thread.
    let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
    let mut certificates = Vec::new();
    let mut pem_error = None;
    for item in CertificateDer::pem_slice_iter(&pem) {
        match item {
            Ok(certificate) => certificates.push(certificate),
            Err(error) => {
                // The reader does not move past a malformed section: stop there.
                pem_error = Some(error);
                break;
            }
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(ca_error(match (pem_error, ignored) {
            (Some(error), _) => format!("no usable certificate before a PEM error: {error}"),
            (None, 0) if pem.iter().all(u8::is_ascii_whitespace) => "the file is empty".into(),
            (None, 0) => "no PEM CERTIFICATE in it".into(),
            (None, ignored) => format!("none of its {ignored} certificates could be parsed"),
        }));
    }
    Ok(roots)
}

/// A failed handshake: a certificate that does not verify is told apart from other failures.
fn handshake_error(host: &str, peer: SocketAddr, source: io::Error) -> ForwardError {
    let certificate = source
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .filter(|error| matches!(error, rustls::Error::InvalidCertificate(_)));
    match certificate {
        Some(reason) => ForwardError::Certificate {
            host: host.to_string(),
            peer,
            reason: reason.clone(),
        },
        None => ForwardError::Handshake {
            host: host.to_string(),
            peer,
            source,
        },
    }
}

/// One line as one datagram. A "connection refused" is the ICMP answer to an earlier datagram
/// (nobody listening then), reported on this send and cleared by it without sending: this
/// line is sent again, as UDP syslog is fire and forget.
async fn send_datagram(socket: &UdpSocket, line: &str) -> io::Result<()> {
    match socket.send(line.as_bytes()).await {
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            socket.send(line.as_bytes()).await.map(drop)
        }
        result => result.map(drop),
    }
}

/// One line with RFC 6587 octet-counting framing: its length in bytes, a space, the line.
/// Generic over the stream: TCP, and TLS (RFC 5425, same framing). The stream is flushed, so
/// that a buffering stream (TLS) sends the frame now.
pub async fn write_octet_counted<W: AsyncWrite + Unpin>(
    stream: &mut W,
    line: &str,
) -> io::Result<()> {
    let frame = format!("{} {line}", line.len());
    stream.write_all(frame.as_bytes()).await?;
    stream.flush().await
}

async fn resolve(config: &ForwarderConfig) -> Result<Vec<SocketAddr>, ForwardError> {
    let host = config.bare_host();
    let lookup = tokio::net::lookup_host((host, config.port));
    let addresses: Vec<SocketAddr> = within(
        config.io_timeout,
        || format!("resolving {}", config.host),
        lookup,
    )
    .await?
    .map_err(|source| ForwardError::Resolve {
        host: config.host.clone(),
        source,
    })?
    .collect();
    if addresses.is_empty() {
        return Err(ForwardError::NoAddress {
            host: config.host.clone(),
        });
    }
    Ok(addresses)
}

/// `future`, or a timeout error saying `what` took too long.
async fn within<T>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    future: impl Future<Output = T>,
) -> Result<T, ForwardError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| ForwardError::Timeout {
            what: what(),
            timeout,
        })
}
