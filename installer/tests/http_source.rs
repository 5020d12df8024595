//! The HTTP(S) image source against servers and proxies written here, on 127.0.0.1 only:
//! whole downloads, downloads that break or stall and resume, servers that cannot resume,
//! TLS trust, CONNECT and plain proxies, NO_PROXY, redirects and HTTP errors.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bootkit_installer::source::http::{self, HttpError, HttpOptions, ProxySettings};

/// Every socket read in the test servers gives up after this, so no test can hang on them.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(20);

/// Bytes that differ everywhere, so a duplicated or skipped block cannot go unnoticed.
fn image(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24).to_le_bytes()[0]
        })
        .collect()
}

const IMAGE_LEN: usize = 3 * 1024 * 1024 + 123;

fn options() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(10),
        stall_timeout: Duration::from_secs(10),
        ..HttpOptions::default()
    }
}

fn download(url: &str, options: &HttpOptions) -> Result<(Vec<u8>, u32), io::Error> {
    let mut reader = http::open(url, options).map_err(io::Error::other)?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    Ok((bytes, reader.resumes()))
}

/// Compares without printing megabytes when they differ.
fn assert_is_image(bytes: &[u8], image: &[u8]) {
    assert!(bytes == image, "the downloaded bytes differ from the image");
}

/// The `HttpError` behind a failed download, wherever it surfaced (open or read).
fn download_error(url: &str, options: &HttpOptions) -> String {
    match download(url, options) {
        Ok((bytes, _)) => panic!("the download of {url} succeeded with {} bytes", bytes.len()),
        Err(error) => error.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// A listener whose connections are handled on threads, all joined when it is dropped.

struct Listener {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let accept_thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut connections = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
                    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).unwrap();
                    let handle = Arc::clone(&handle);
                    connections.push(std::thread::spawn(move || handle(stream)));
                }
                for connection in connections {
                    let _ = connection.join();
                }
            }
        });
        Self {
            address,
            stop,
            accept_thread: Some(accept_thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every request head a test server or proxy received, in order; clones share the log.
#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<Request>>>);

impl RequestLog {
    fn record(&self, request: &Request) {
        self.0.lock().unwrap().push(request.clone());
    }

    fn all(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 server: one request per connection, answered as the test says.

#[derive(Clone, Debug)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or_default()
    }
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers = lines
        .filter_map(|header| header.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(Request { line, headers })
}

/// How a reply ends.
enum End {
    Complete,
    /// Close the connection after this many body bytes.
    CutAfter(usize),
    /// Send this many body bytes, then nothing until the client hangs up.
    StallAfter(usize),
}

struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    end: End,
}

impl Reply {
    fn status(status: &'static str) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            end: End::Complete,
        }
    }

    fn header(mut self, name: &str, value: impl ToString) -> Self {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    fn end(mut self, end: End) -> Self {
        self.end = end;
        self
    }

    /// Ends the reply to the first request (number 0) as `end`; the later ones complete.
    fn end_first(self, number: usize, end: End) -> Self {
        if number == 0 { self.end(end) } else { self }
    }

    fn write_to(self, stream: &mut impl ReadWrite) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        let sent = match self.end {
            End::Complete => self.body.len(),
            End::CutAfter(count) | End::StallAfter(count) => count,
        };
        stream.write_all(&self.body[..sent])?;
        stream.flush()?;
        if let End::StallAfter(_) = self.end {
            // Wait (bounded by the socket timeout) for the client to give up and hang up.
            let mut rest = [0u8; 1024];
            while matches!(stream.read(&mut rest), Ok(count) if count > 0) {}
        }
        Ok(())
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// What the server answers: called with each request and its number (0 for the first).
type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

struct Server {
    listener: Listener,
    requests: RequestLog,
}

impl Server {
    fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with_tls(None, handler)
    }

    fn start_with_tls(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let requests = RequestLog::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        let listener = Listener::start({
            let requests = requests.clone();
            move |tcp: TcpStream| {
                let mut stream: Box<dyn ReadWrite> = match &tls {
                    None => Box::new(tcp),
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
                        Box::new(rustls::StreamOwned::new(connection, tcp))
                    }
                };
                // A client that rejects the certificate ends here: nothing to answer.
                let Some(request) = read_request(&mut stream) else {
                    return;
                };
                let number = counter.fetch_add(1, Ordering::SeqCst);
                requests.record(&request);
                let _ = handler(&request, number).write_to(&mut stream);
            }
        });
        Self { listener, requests }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.listener.address)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.all()
    }
}

/// The image as a file server answers for it: whole, or the range asked for.
fn serve(image: &[u8], request: &Request, etag: &str) -> Reply {
    let ranged = request
        .header("Range")
        .and_then(|range| range.strip_prefix("bytes="))
        .and_then(|range| range.strip_suffix('-'))
        .and_then(|start| start.parse::<usize>().ok());
    match ranged {
        Some(start) => Reply {
            body: image[start..].to_vec(),
            ..Reply::status("206 Partial Content")
                .header("ETag", etag)
                .header(
                    "Content-Range",
                    format!("bytes {start}-{}/{}", image.len() - 1, image.len()),
                )
        },
        None => Reply {
            body: image.to_vec(),
            ..Reply::status("200 OK").header("ETag", etag)
        },
    }
}

/// A server of a fresh test image: `reply` answers each request (with its number) for it.
fn image_server(
    reply: impl Fn(&[u8], &Request, usize) -> Reply + Send + Sync + 'static,
) -> (Arc<Vec<u8>>, Server) {
    let image = Arc::new(image(IMAGE_LEN));
    let server = Server::start({
        let image = Arc::clone(&image);
        move |request, number| reply(&image, request, number)
    });
    (image, server)
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP.

#[test]
fn whole_download_is_byte_identical() {
    let (image, server) = image_server(|image, request, _| serve(image, request, "\"v1\""));
    let mut reader = http::open(&server.url("http", "/os.raw.gz"), &options()).unwrap();
    assert_eq!(reader.content_length(), Some(IMAGE_LEN as u64));
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    assert_is_image(&bytes, &image);
    assert_eq!(reader.resumes(), 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].line, "GET /os.raw.gz HTTP/1.1");
    assert_eq!(requests[0].header("Accept-Encoding"), Some("identity"));
}

#[test]
fn a_connection_cut_halfway_resumes_with_a_range_request() {
    let (image, server) = image_server(|image, request, number| {
        serve(image, request, "\"v1\"").end_first(number, End::CutAfter(IMAGE_LEN / 2))
    });
    let (bytes, resumes) = download(&server.url("http", "/os.raw.gz"), &options()).unwrap();
    assert_is_image(&bytes, &image);
    assert!(resumes >= 1);
    let requests = server.requests();
    let resume = &requests[1];
    assert_eq!(
        resume.header("Range"),
        Some(format!("bytes={}-", IMAGE_LEN / 2).as_str())
    );
    assert_eq!(
        resume.header("If-Range"),
        Some("\"v1\""),
        "the resume is tied to the same file"
    );
}

#[test]
fn a_stalled_connection_resumes_with_a_range_request() {
    let (image, server) = image_server(|image, request, number| {
        serve(image, request, "\"v1\"").end_first(number, End::StallAfter(IMAGE_LEN / 3))
    });
    let options = HttpOptions {
        stall_timeout: Duration::from_secs(1),
        ..options()
    };
    let (bytes, resumes) = download(&server.url("http", "/os.raw.gz"), &options).unwrap();
    assert_is_image(&bytes, &image);
    assert!(resumes >= 1);
    assert_eq!(
        server.requests()[1].header("Range"),
        Some(format!("bytes={}-", IMAGE_LEN / 3).as_str())
    );
}

#[test]
fn a_server_ignoring_range_after_a_cut_restarts_from_zero() {
    // No validator at all: the download restarts from byte 0 and checks the part it had.
    let (image, server) = image_server(|image, _, number| {
        let whole = Reply {
            body: image.to_vec(),
            ..Reply::status("200 OK")
        };
        whole.end_first(number, End::CutAfter(IMAGE_LEN / 2))
    });
    let (bytes, resumes) = download(&server.url("http", "/os.raw.gz"), &options()).unwrap();
    assert_is_image(&bytes, &image);
    assert_eq!(resumes, 1);
    assert_eq!(server.requests()[1].header("Range"), None);
}

#[test]
fn a_file_that_changed_between_resumes_is_an_error() {
    let (_, server) = image_server(|image, request, number| {
        if number == 0 {
            serve(image, request, "\"v1\"").end(End::CutAfter(IMAGE_LEN / 2))
        } else {
            serve(image, request, "\"v2\"")
        }
    });
    let error = download_error(&server.url("http", "/os.raw.gz"), &options());
    assert!(error.contains("changed on the server"), "{error}");
}

#[test]
fn resumes_are_bounded() {
    let (_, server) = image_server(|image, request, number| {
        serve(image, request, "\"v1\"").end(End::CutAfter(1000 * (number + 1)))
    });
    let options = HttpOptions {
        max_resumes: 2,
        ..options()
    };
    let error = download_error(&server.url("http", "/os.raw.gz"), &options);
    assert!(error.contains("after 2 resumes"), "{error}");
    assert_eq!(
        server.requests().len(),
        3,
        "the first request and two resumes"
    );
}

#[test]
fn dropping_the_reader_mid_download_hangs_up() {
    let image = Arc::new(image(IMAGE_LEN));
    let client_hung_up = Arc::new(AtomicBool::new(false));
    let listener = Listener::start({
        let image = Arc::clone(&image);
        let client_hung_up = Arc::clone(&client_hung_up);
        move |mut stream: TcpStream| {
            let Some(_) = read_request(&mut stream) else {
                return;
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {IMAGE_LEN}\r\n\r\n");
            let mut rest = [0u8; 16];
            let outcome = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&image[..IMAGE_LEN / 2]))
                .and_then(|()| stream.read(&mut rest));
            // The client closing shows as end of file or as a reset of the writes; a socket
            // timeout (SOCKET_TIMEOUT) would mean it kept the connection open.
            let hung_up = match outcome {
                Ok(count) => count == 0,
                Err(error) => matches!(
                    error.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
            };
            client_hung_up.store(hung_up, Ordering::SeqCst);
        }
    });
    let options = HttpOptions {
        stall_timeout: Duration::from_secs(60),
        ..options()
    };
    let mut reader =
        http::open(&format!("http://{}/os.raw.gz", listener.address), &options).unwrap();
    let mut first = vec![0u8; 4096];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first, image[..4096]);
    drop(reader);
    drop(listener); // joins the connection thread
    assert!(
        client_hung_up.load(Ordering::SeqCst),
        "the download went on after the reader was dropped"
    );
}

#[test]
fn not_found_names_the_status_and_the_url() {
    let server = Server::start(|_, _| Reply::status("404 Not Found"));
    let url = server.url("http", "/missing.raw.gz");
    let error = http::open(&url, &options()).err().unwrap();
    assert!(
        matches!(error, HttpError::Status { status: 404, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("404"), "{message}");
    assert!(message.contains(&url), "{message}");
}

#[test]
fn redirects_are_followed_and_resumes_go_to_the_final_url() {
    let (image, server) = image_server(|image, request, number| match request.path() {
        "/latest.raw.gz" => Reply::status("302 Found").header("Location", "/v1/os.raw.gz"),
        _ if number == 1 => serve(image, request, "\"v1\"").end(End::CutAfter(IMAGE_LEN / 2)),
        _ => serve(image, request, "\"v1\""),
    });
    let (bytes, resumes) = download(&server.url("http", "/latest.raw.gz"), &options()).unwrap();
    assert_is_image(&bytes, &image);
    assert_eq!(resumes, 1);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(paths, ["/latest.raw.gz", "/v1/os.raw.gz", "/v1/os.raw.gz"]);
}

#[test]
fn redirect_loops_are_bounded() {
    let server =
        Server::start(|_, _| Reply::status("301 Moved Permanently").header("Location", "/again"));
    let error = download_error(&server.url("http", "/again"), &options());
    assert!(error.contains("redirects"), "{error}");
}

#[test]
fn a_refused_connection_names_the_address() {
    // Bind then drop a listener: nothing listens on that port any more.
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = download_error(&format!("http://{address}/os.raw.gz"), &options());
    assert!(
        error.contains(&format!("cannot connect to {address}")),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTPS.

struct TestCa {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        Self { certificate, key }
    }

    fn pem(&self) -> Vec<u8> {
        self.certificate.pem().into_bytes()
    }

    /// A server configuration with a certificate for 127.0.0.1 and localhost signed by this CA.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        let private_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], private_key)
        .unwrap();
        Arc::new(config)
    }
}

/// A test CA, and an HTTPS server of a fresh test image with a certificate it signed.
fn https_image_server() -> (TestCa, Arc<Vec<u8>>, Server) {
    let ca = TestCa::new("bootkit test CA");
    let image = Arc::new(image(IMAGE_LEN));
    let server = Server::start_with_tls(Some(ca.server_config()), {
        let image = Arc::clone(&image);
        move |request, _| serve(&image, request, "\"v1\"")
    });
    (ca, image, server)
}

/// Options that trust the CAs in a file holding `pem`; the file lives as long as the guard.
fn ca_file_options(pem: impl AsRef<[u8]>) -> (tempfile::NamedTempFile, HttpOptions) {
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), pem).unwrap();
    let options = HttpOptions {
        ca_file: Some(ca_file.path().to_owned()),
        ..options()
    };
    (ca_file, options)
}

#[test]
fn https_works_with_the_ca_given_inline() {
    let (ca, image, server) = https_image_server();
    let options = HttpOptions {
        ca_pem: Some(ca.pem()),
        ..options()
    };
    let (bytes, _) = download(&server.url("https", "/os.raw.gz"), &options).unwrap();
    assert_is_image(&bytes, &image);
}

#[test]
fn https_works_with_a_ca_file_and_a_host_name() {
    let (ca, image, server) = https_image_server();
    let (_ca_file, options) = ca_file_options(ca.pem());
    let url = format!(
        "https://localhost:{}/os.raw.gz",
        server.listener.address.port()
    );
    let (bytes, _) = download(&url, &options).unwrap();
    assert_is_image(&bytes, &image);
}

#[test]
fn https_without_the_ca_is_not_trusted() {
    let (_, _, server) = https_image_server();
    let error = download_error(&server.url("https", "/os.raw.gz"), &options());
    assert!(error.contains("check --ca / TLS_CA_CERT"), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert!(
            error.contains("not trusted by the system CA bundle"),
            "{error}"
        );
    }
}

#[test]
fn https_with_a_wrong_ca_file_is_not_trusted_and_names_the_file() {
    let (_, _, server) = https_image_server();
    let other_ca = TestCa::new("some other CA");
    let (ca_file, options) = ca_file_options(other_ca.pem());
    let error = download_error(&server.url("https", "/os.raw.gz"), &options);
    assert!(error.contains("certificate not trusted"), "{error}");
    assert!(
        error.contains(&ca_file.path().display().to_string()),
        "{error}"
    );
    assert!(error.contains("127.0.0.1"), "{error}");
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let (_ca_file, options) = ca_file_options("not a certificate\n");
    let error = http::open("https://127.0.0.1:9/os.raw.gz", &options)
        .err()
        .unwrap();
    assert!(matches!(error, HttpError::CaInvalid { .. }), "{error:?}");
    assert!(error.to_string().contains("no PEM CERTIFICATE"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Proxies.

/// An HTTP proxy: CONNECT opens a tunnel to the target; any other request is answered with
/// `image` (as a caching proxy would). It records every request head it receives.
struct Proxy {
    listener: Listener,
    requests: RequestLog,
}

impl Proxy {
    fn start(image: Arc<Vec<u8>>) -> Self {
        let requests = RequestLog::default();
        let listener = Listener::start({
            let requests = requests.clone();
            move |mut client: TcpStream| {
                let Some(request) = read_request(&mut client) else {
                    return;
                };
                requests.record(&request);
                match request.line.strip_prefix("CONNECT ") {
                    Some(rest) => {
                        let target = rest.split(' ').next().unwrap_or_default();
                        tunnel(client, target);
                    }
                    None => {
                        let _ = serve(&image, &request, "\"v1\"").write_to(&mut client);
                    }
                }
            }
        });
        Self { listener, requests }
    }

    fn url(&self, credentials: &str) -> String {
        format!("http://{credentials}{}", self.listener.address)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.all()
    }
}

fn tunnel(mut client: TcpStream, target: &str) {
    let Ok(mut server) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    server.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .unwrap();
    let (mut client_reader, mut server_writer) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut client_reader, &mut server_writer);
        let _ = server_writer.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

#[test]
fn https_through_a_connect_proxy_with_credentials() {
    let (ca, image, server) = https_image_server();
    let proxy = Proxy::start(Arc::new(Vec::new()));
    let options = HttpOptions {
        ca_pem: Some(ca.pem()),
        proxy: ProxySettings::new(None, Some(&proxy.url("user:s%40cret@")), ""),
        ..options()
    };
    let (bytes, _) = download(&server.url("https", "/os.raw.gz"), &options).unwrap();
    assert_is_image(&bytes, &image);
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].line,
        format!("CONNECT {} HTTP/1.1", server.listener.address)
    );
    // base64("user:s@cret")
    assert_eq!(
        seen[0].header("Proxy-Authorization"),
        Some("Basic dXNlcjpzQGNyZXQ=")
    );
    assert_eq!(
        server.requests().len(),
        1,
        "the request went through the tunnel to the server"
    );
}

#[test]
fn http_through_a_proxy_uses_the_absolute_form_and_no_dns() {
    let image = Arc::new(image(IMAGE_LEN));
    let proxy = Proxy::start(Arc::clone(&image));
    let options = HttpOptions {
        proxy: ProxySettings::new(Some(&proxy.url("")), None, ""),
        ..options()
    };
    // Only the proxy knows this name.
    let url = "http://images.bootkit.invalid:8080/os.raw.gz?v=1";
    let (bytes, _) = download(url, &options).unwrap();
    assert_is_image(&bytes, &image);
    let seen = proxy.requests();
    assert_eq!(seen[0].line, format!("GET {url} HTTP/1.1"));
    assert_eq!(seen[0].header("Host"), Some("images.bootkit.invalid:8080"));
}

#[test]
fn no_proxy_hosts_are_fetched_directly() {
    let (image, server) = image_server(|image, request, _| serve(image, request, "\"v1\""));
    let proxy = Proxy::start(Arc::new(b"the proxy's answer".to_vec()));
    let proxy_url = proxy.url("");
    let environment = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("NO_PROXY", "localhost, 127.0.0.0/8"),
    ];
    let options = HttpOptions {
        proxy: ProxySettings::from_lookup(|name| {
            environment
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.to_string())
        }),
        ..options()
    };
    let (bytes, _) = download(&server.url("http", "/os.raw.gz"), &options).unwrap();
    assert_is_image(&bytes, &image);
    assert!(
        proxy.requests().is_empty(),
        "the proxy was used: {:?}",
        proxy.requests()
    );
    assert_eq!(server.requests().len(), 1);
}
