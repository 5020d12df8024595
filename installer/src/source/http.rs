//! The HTTP(S) image source: a blocking [`Read`] over a download that resumes where it broke.
//!
//! The write pipeline is a chain of synchronous `Read` adapters, while the HTTP client (hyper 1
//! with rustls) is async. So the download runs on its own thread with a one-thread tokio runtime
//! and hands the body over a bounded channel: the network overlaps decompression and writing,
//! and a slow disk slows the download (TCP backpressure) instead of filling memory.
//!
//! When the connection drops or stalls the download resumes with `Range: bytes=N-`, guarded by
//! `If-Range` with a strong validator and by checking `Content-Range`, so bytes are never
//! duplicated or skipped and a file that changed on the server is an error instead of a mix of
//! two files. Without a strong validator it resumes only when the caller checks a known
//! checksum of the whole file; otherwise it restarts from byte zero and checks the part it
//! had delivered against that part's hash (see `transfer`).
//!
//! Why its own client on hyper, not the workspace's reqwest (which the registry and REST
//! clients share): this is one streaming GET per image that resumes with `Range`/`If-Range`
//! and checks `Content-Range`, with its own stall timeout, proxy and TLS rules, all written
//! against the connection here. reqwest could carry the same requests, but what it adds
//! (redirect following, a connection pool, its own proxy and TLS setup) this job does not
//! need, and the installer ships in the bootkit's initramfs, whose size every boot pays for.

mod connect;
mod proxy;
mod tls;
mod transfer;

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Bytes;
use tokio::sync::{mpsc, oneshot};
use url::Url;

pub use proxy::ProxySettings;
use transfer::Event;

/// How many body chunks may wait between the download and the reader. A chunk is what one
/// socket read returned (8 KiB up to hyper's 400 KiB buffer), so at most about 6 MiB wait.
const CHUNKS_IN_FLIGHT: usize = 16;

/// How downloads connect, whom they trust and how hard they try.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// A PEM file of CA certificates to trust for https (`--ca`).
    pub ca_file: Option<PathBuf>,
    /// PEM CA certificates given inline (image2disk's `TLS_CA_CERT`). With `ca_file`, both are
    /// trusted; with neither, the system bundle is.
    pub ca_pem: Option<Vec<u8>>,
    /// Proxies; the default is none, [`ProxySettings::from_env`] reads the usual variables.
    pub proxy: ProxySettings,
    /// How many times a broken or stalled download may resume before giving up.
    pub max_resumes: u32,
    /// The caller checks the whole file against a known checksum before using it (the
    /// installer's `--sha256`, checked before the partition table is written). Then a server
    /// without a strong `ETag` or `Last-Modified` may be resumed with a plain `Range`, as a mix
    /// of two files fails that check; without it such a download restarts from byte zero.
    pub whole_file_verified: bool,
    /// Limit for DNS, TCP, proxy tunnel and TLS handshake together.
    pub connect_timeout: Duration,
    /// How long to wait for a response head or for the next bytes of the body.
    pub stall_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            ca_pem: None,
            proxy: ProxySettings::direct(),
            max_resumes: 10,
            whole_file_verified: false,
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a download failed. Each message says what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The image URL cannot be parsed, is not `http`/`https`, carries credentials, or names a
    /// host that cannot be a TLS server name.
    #[error("invalid image URL {url}: {reason}; give an http:// or https:// URL")]
    InvalidUrl {
        /// The URL as given (without credentials, when it had some).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A proxy environment variable that applies to this URL holds a value the downloader
    /// cannot use (only `http://` proxies are).
    #[error(
        "{variable} is not usable as a proxy: {reason}; set it to http://[user:password@]host:port"
    )]
    UnusableProxy {
        /// The environment variable, such as `HTTPS_PROXY`.
        variable: String,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// The CA file given with `--ca` cannot be read.
    #[error("cannot read the CA file {}; give a readable PEM file with --ca", path.display())]
    CaFileUnreadable {
        /// The CA file as given.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The CA file or the inline CA certificates are not usable PEM certificates.
    #[error(
        "cannot use the {source_name}: {reason}; give PEM CA certificates (-----BEGIN CERTIFICATE-----)"
    )]
    CaInvalid {
        /// Where the certificates came from, such as `CA file /etc/ca.pem`.
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },
    /// An https URL, but no CA certificates to check the server against: no `--ca`, no
    /// `TLS_CA_CERT` and no system bundle.
    #[error(
        "cannot check the certificate of {server}: no CA certificates (no system bundle such as \
         /etc/ssl/certs/ca-certificates.crt); give the CA with --ca / TLS_CA_CERT"
    )]
    NoTrustedCertificates {
        /// The host name or address of the server.
        server: String,
    },
    /// rustls refused the TLS client configuration.
    #[error("cannot set up TLS: {0}")]
    TlsSetup(rustls::Error),
    /// The server's certificate is not signed by any trusted CA.
    #[error(
        "TLS with {server} failed: certificate not trusted by {trust} ({detail}): check --ca / TLS_CA_CERT"
    )]
    CertificateNotTrusted {
        /// The host name or address of the server.
        server: String,
        /// Which CA certificates were trusted, such as `the CA file /etc/ca.pem`.
        trust: String,
        /// Why rustls rejected the certificate.
        detail: String,
    },
    /// The TLS handshake failed for another reason: an expired certificate, a certificate for
    /// another name, a protocol mismatch or a broken connection.
    #[error("TLS with {server} failed: {detail}; {hint}")]
    Tls {
        /// The host name or address of the server.
        server: String,
        /// The TLS or I/O error.
        detail: String,
        /// What to check, for this kind of failure.
        hint: &'static str,
    },
    /// DNS lookup of the server (or the proxy) failed.
    #[error(
        "cannot resolve the host name {host}; check the name and the DNS server (/etc/resolv.conf)"
    )]
    Resolve {
        /// The host name looked up.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No resolved address of the server (or the proxy) accepted a TCP connection.
    #[error("cannot connect to {address}; check the network, the address and the proxy settings")]
    Connect {
        /// `host:port`, or the address that failed.
        address: String,
        /// The operating system's error for the last address tried.
        source: io::Error,
    },
    /// DNS, TCP, the proxy tunnel and the TLS handshake together took longer than
    /// [`HttpOptions::connect_timeout`].
    #[error("connecting to {target} timed out after {} s; check the network and the proxy settings", timeout.as_secs())]
    ConnectTimeout {
        /// `host[:port]`, with `through proxy …` when a proxy was used.
        target: String,
        /// The limit that ran out.
        timeout: Duration,
    },
    /// The connection to the proxy failed while asking it for a tunnel (`CONNECT`).
    #[error("the proxy {proxy} failed while opening a tunnel to {target}; check the proxy")]
    Proxy {
        /// The proxy's `host:port`.
        proxy: String,
        /// The `host:port` the tunnel was for.
        target: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The proxy answered `CONNECT` with a status other than success.
    #[error(
        "the proxy {proxy} refused the tunnel to {target} with HTTP {status}; check the proxy's \
         rules and the credentials in HTTPS_PROXY (http://user:password@host:port)"
    )]
    ProxyRefused {
        /// The proxy's `host:port`.
        proxy: String,
        /// The `host:port` the tunnel was for.
        target: String,
        /// The HTTP status code the proxy answered.
        status: u16,
    },
    /// The HTTP handshake or the request failed before a response arrived.
    #[error("the HTTP request for {url} failed; check the server and the network")]
    Exchange {
        /// The URL requested.
        url: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The server sent no response head within [`HttpOptions::stall_timeout`].
    #[error("{url} sent no response within {} s; check the server", timeout.as_secs())]
    NoResponse {
        /// The URL requested.
        url: String,
        /// The limit that ran out.
        timeout: Duration,
    },
    /// The server answered with an error status (or one the download cannot use).
    #[error("{url} answered HTTP {status} {reason}; {hint}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The status code's standard reason phrase, empty when it has none.
        reason: String,
        /// What to check, for this status.
        hint: &'static str,
    },
    /// A redirect has no usable `Location`, points to a scheme other than http(s), or there
    /// were too many redirects.
    #[error("cannot follow the redirect from {url}: {reason}")]
    Redirect {
        /// The URL that answered with the redirect.
        url: String,
        /// What is wrong with the redirect.
        reason: String,
    },
    /// No body bytes arrived for [`HttpOptions::stall_timeout`]; the download resumes, if it may.
    #[error("the download of {url} stalled at byte {offset}: no data for {} s", timeout.as_secs())]
    Stalled {
        /// The URL being downloaded.
        url: String,
        /// How many bytes of the file had arrived.
        offset: u64,
        /// The limit that ran out.
        timeout: Duration,
    },
    /// The connection broke while the body was arriving; the download resumes, if it may.
    #[error("the connection broke while downloading {url} at byte {offset}")]
    Body {
        /// The URL being downloaded.
        url: String,
        /// How many bytes of the file had arrived.
        offset: u64,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The body ended before the length the server announced; the download resumes, if it may.
    #[error("the download of {url} ended at byte {offset} of {expected}")]
    Truncated {
        /// The URL being downloaded.
        url: String,
        /// How many bytes of the file had arrived.
        offset: u64,
        /// The file's length as the server announced it, in bytes.
        expected: u64,
    },
    /// A resume was answered with a `Content-Range` that is unreadable or does not start at
    /// the requested byte.
    #[error(
        "the download of {url} cannot resume at byte {offset}: the server sent the range \
         \"{content_range}\"; use a server that answers Range requests correctly"
    )]
    RangeMismatch {
        /// The URL being downloaded.
        url: String,
        /// The byte the download was to resume at.
        offset: u64,
        /// The `Content-Range` header as received, empty when missing.
        content_range: String,
    },
    /// On a resume the file on the server turned out to differ from the one being downloaded:
    /// another `ETag` or `Last-Modified`, another length, or now shorter than what arrived.
    #[error("{url} changed on the server during the download ({what}); start the install again")]
    BodyChanged {
        /// The URL being downloaded.
        url: String,
        /// What changed, as a sentence.
        what: String,
    },
    /// The download broke again after [`HttpOptions::max_resumes`] resumes.
    #[error(
        "the download of {url} failed at byte {offset} after {resumes} resumes: {last}; check \
         the network, or allow more resumes"
    )]
    TooManyResumes {
        /// The URL being downloaded.
        url: String,
        /// How many bytes of the file had arrived.
        offset: u64,
        /// How many times the download resumed.
        resumes: u32,
        /// The failure that would have needed one more resume.
        last: Box<HttpError>,
    },
    /// The download thread or its tokio runtime could not be started.
    #[error("cannot start the download thread: {0}")]
    Worker(io::Error),
    /// The download thread ended without reporting a result: it panicked.
    #[error(
        "the download thread stopped without a result (it panicked); this is a bug, please report it"
    )]
    WorkerStopped,
}

impl HttpError {
    /// Whether trying again later may succeed: network trouble and server hiccups, as opposed to
    /// answers that will not change (404, untrusted certificate, no Range support).
    fn is_transient(&self) -> bool {
        match self {
            HttpError::Resolve { .. }
            | HttpError::Connect { .. }
            | HttpError::ConnectTimeout { .. }
            | HttpError::Proxy { .. }
            | HttpError::Exchange { .. }
            | HttpError::NoResponse { .. }
            | HttpError::Stalled { .. }
            | HttpError::Body { .. }
            | HttpError::Truncated { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// A download being read. Reading blocks until the next bytes arrive; it must not be used from
/// inside an async runtime.
pub struct HttpReader {
    events: mpsc::Receiver<Event>,
    chunk: Bytes,
    state: ReadState,
    content_length: Option<u64>,
    resumes: Arc<AtomicU32>,
    worker: Option<JoinHandle<()>>,
}

enum ReadState {
    Streaming,
    Finished,
    /// The message of the error already returned, for any later read.
    Failed(String),
}

/// Starts downloading `url` and returns once the server answered: an error here means nothing
/// was downloaded (bad URL, connection, TLS, HTTP status).
pub fn open(url: &str, options: &HttpOptions) -> Result<HttpReader, HttpError> {
    let url = parse_url(url)?;
    let (head_sender, head) = oneshot::channel();
    let (event_sender, events) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let resumes = Arc::new(AtomicU32::new(0));
    let worker = std::thread::Builder::new()
        .name("http-download".to_owned())
        .spawn({
            let options = options.clone();
            let resumes = Arc::clone(&resumes);
            move || transfer::run(url, options, head_sender, event_sender, resumes)
        })
        .map_err(HttpError::Worker)?;
    let mut reader = HttpReader {
        events,
        chunk: Bytes::new(),
        state: ReadState::Streaming,
        content_length: None,
        resumes,
        worker: Some(worker),
    };
    let head = head
        .blocking_recv()
        .map_err(|_| HttpError::WorkerStopped)??;
    reader.content_length = head.content_length;
    Ok(reader)
}

fn parse_url(text: &str) -> Result<Url, HttpError> {
    let invalid = |reason: String| HttpError::InvalidUrl {
        url: text.to_owned(),
        reason,
    };
    let url = Url::parse(text).map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme {}: is not supported",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HttpError::InvalidUrl {
            url: format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
            reason: "credentials in the URL are not supported".to_owned(),
        });
    }
    Ok(url)
}

impl HttpReader {
    /// The size of the file, when the server said it.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// How many times the download resumed after a dropped or stalled connection so far.
    pub fn resumes(&self) -> u32 {
        self.resumes.load(Ordering::Relaxed)
    }

    fn fail(&mut self, error: HttpError) -> io::Error {
        self.state = ReadState::Failed(bootkit_common::error_chain(&error));
        io::Error::other(error)
    }
}

impl Read for HttpReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.chunk.is_empty() {
                let count = buf.len().min(self.chunk.len());
                buf[..count].copy_from_slice(&self.chunk[..count]);
                self.chunk = self.chunk.slice(count..);
                return Ok(count);
            }
            match &self.state {
                ReadState::Streaming => {}
                ReadState::Finished => return Ok(0),
                ReadState::Failed(message) => return Err(io::Error::other(message.clone())),
            }
            match self.events.blocking_recv() {
                Some(Event::Data(bytes)) => self.chunk = bytes,
                Some(Event::Finished) => self.state = ReadState::Finished,
                Some(Event::Failed(error)) => return Err(self.fail(error)),
                None => return Err(self.fail(HttpError::WorkerStopped)),
            }
        }
    }
}

impl Drop for HttpReader {
    fn drop(&mut self) {
        // Closing the channel stops the download thread at its next step; join it so no
        // download outlives its reader.
        self.events.close();
        if let Some(worker) = self.worker.take() {
            // A panic there was already reported as WorkerStopped to the reader.
            let _ = worker.join();
        }
    }
}
