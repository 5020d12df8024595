//! The HTTP(S) image source: a blocking [`Read`] over a download that resumes where it broke.
//!
//! The write pipeline is a chain of synchronous `Read` adapters, while the HTTP client (hyper 1
//! with rustls) is async. So the download runs on its own thread with a one-thread tokio runtime
//! and hands the body over a bounded channel: the network overlaps decompression and writing,
//! and a slow disk slows the download (TCP backpressure) instead of filling memory.
//!
//! When the connection drops or stalls the download resumes with `Range: bytes=N-`, guarded by
//! `If-Range` and by checking `Content-Range`, so bytes are never duplicated or skipped and a
//! file that changed on the server is an error instead of a mix of two files.
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
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a download failed. Each message says what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid image URL {url}: {reason}; give an http:// or https:// URL")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "{variable} is not usable as a proxy: {reason}; set it to http://[user:password@]host:port"
    )]
    UnusableProxy {
        variable: String,
        reason: &'static str,
    },
    #[error("cannot read the CA file {}; give a readable PEM file with --ca", path.display())]
    CaFileUnreadable { path: PathBuf, source: io::Error },
    #[error(
        "cannot use the {source_name}: {reason}; give PEM CA certificates (-----BEGIN CERTIFICATE-----)"
    )]
    CaInvalid { source_name: String, reason: String },
    #[error(
        "cannot check the certificate of {server}: no CA certificates (no system bundle such as \
         /etc/ssl/certs/ca-certificates.crt); give the CA with --ca / TLS_CA_CERT"
    )]
    NoTrustedCertificates { server: String },
    #[error("cannot set up TLS: {0}")]
    TlsSetup(rustls::Error),
    #[error(
        "TLS with {server} failed: certificate not trusted by {trust} ({detail}): check --ca / TLS_CA_CERT"
    )]
    CertificateNotTrusted {
        server: String,
        trust: String,
        detail: String,
    },
    #[error("TLS with {server} failed: {detail}; {hint}")]
    Tls {
        server: String,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "cannot resolve the host name {host}; check the name and the DNS server (/etc/resolv.conf)"
    )]
    Resolve { host: String, source: io::Error },
    #[error("cannot connect to {address}; check the network, the address and the proxy settings")]
    Connect { address: String, source: io::Error },
    #[error("connecting to {target} timed out after {} s; check the network and the proxy settings", timeout.as_secs())]
    ConnectTimeout { target: String, timeout: Duration },
    #[error("the proxy {proxy} failed while opening a tunnel to {target}; check the proxy")]
    Proxy {
        proxy: String,
        target: String,
        source: hyper::Error,
    },
    #[error(
        "the proxy {proxy} refused the tunnel to {target} with HTTP {status}; check the proxy's \
         rules and the credentials in HTTPS_PROXY (http://user:password@host:port)"
    )]
    ProxyRefused {
        proxy: String,
        target: String,
        status: u16,
    },
    #[error("the HTTP request for {url} failed; check the server and the network")]
    Exchange { url: String, source: hyper::Error },
    #[error("{url} sent no response within {} s; check the server", timeout.as_secs())]
    NoResponse { url: String, timeout: Duration },
    #[error("{url} answered HTTP {status} {reason}; {hint}")]
    Status {
        url: String,
        status: u16,
        reason: String,
        hint: &'static str,
    },
    #[error("cannot follow the redirect from {url}: {reason}")]
    Redirect { url: String, reason: String },
    #[error("the download of {url} stalled at byte {offset}: no data for {} s", timeout.as_secs())]
    Stalled {
        url: String,
        offset: u64,
        timeout: Duration,
    },
    #[error("the connection broke while downloading {url} at byte {offset}")]
    Body {
        url: String,
        offset: u64,
        source: hyper::Error,
    },
    #[error("the download of {url} ended at byte {offset} of {expected}")]
    Truncated {
        url: String,
        offset: u64,
        expected: u64,
    },
    #[error(
        "the download of {url} broke at byte {offset} and cannot resume: the server ignores \
         Range requests (it sent the whole file again); use a server that supports Range or a \
         steadier network"
    )]
    RangeNotSupported { url: String, offset: u64 },
    #[error(
        "the download of {url} cannot resume at byte {offset}: the server sent the range \
         \"{content_range}\"; use a server that answers Range requests correctly"
    )]
    RangeMismatch {
        url: String,
        offset: u64,
        content_range: String,
    },
    #[error("{url} changed on the server during the download ({what}); start the install again")]
    BodyChanged { url: String, what: String },
    #[error(
        "the download of {url} failed at byte {offset} after {resumes} resumes: {last}; check \
         the network, or allow more resumes"
    )]
    TooManyResumes {
        url: String,
        offset: u64,
        resumes: u32,
        last: Box<HttpError>,
    },
    #[error("cannot start the download thread: {0}")]
    Worker(io::Error),
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
