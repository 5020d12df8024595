//! One GET on a fresh connection: TCP (to the proxy when one applies), a CONNECT tunnel for
//! https through a proxy, TLS, then hyper's HTTP/1.1 client. Every connection serves one
//! response: a download is a handful of requests (redirects, resumes), so pooling would only
//! add state.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{
    ACCEPT_ENCODING, HOST, HeaderMap, HeaderValue, PROXY_AUTHORIZATION, USER_AGENT,
};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use url::{Host, Position, Url};

use super::proxy::{Proxy, ProxySettings};
use super::tls::{self, Trust};
use super::{HttpError, HttpOptions};

const USER_AGENT_VALUE: &str = concat!("bootkit-install/", env!("CARGO_PKG_VERSION"));

/// Any byte stream hyper can run HTTP over: plain TCP, a proxy tunnel, TLS on either.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(super) struct Connector {
    proxy: ProxySettings,
    trust: Option<Trust>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

/// Where a URL points, in the forms each step needs.
struct Target {
    /// Host name or IP address without brackets: what DNS, TCP and TLS want.
    host: String,
    port: u16,
    /// `host[:port]` as the Host header and CONNECT want it (IPv6 in brackets).
    authority: String,
    tls: bool,
}

impl Connector {
    pub fn new(options: &HttpOptions) -> Result<Self, HttpError> {
        Ok(Self {
            proxy: options.proxy.clone(),
            trust: tls::load(options)?,
            connect_timeout: options.connect_timeout,
            response_timeout: options.stall_timeout,
        })
    }

    /// Sends `GET url` with `headers` and returns the response once its head arrived; the body
    /// streams from the returned response.
    pub async fn get(
        &self,
        url: &Url,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, HttpError> {
        let target = Target::of(url)?;
        let proxy = self.proxy.route(url)?;
        let shown_target = match &proxy {
            Some(proxy) => format!("{} through proxy {}", target.authority, proxy.address),
            None => target.authority.clone(),
        };
        let stream = timeout(self.connect_timeout, self.connect(&target, proxy.as_ref()))
            .await
            .map_err(|_| HttpError::ConnectTimeout {
                target: shown_target,
                timeout: self.connect_timeout,
            })??;
        let request = request(url, &target, proxy.as_ref(), headers)?;
        let (mut sender, connection) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|source| HttpError::Exchange {
                    url: url.to_string(),
                    source,
                })?;
        // The connection's own result is not needed: its failures surface as errors of the
        // response or of the body.
        tokio::spawn(connection);
        match timeout(self.response_timeout, sender.send_request(request)).await {
            Err(_) => Err(HttpError::NoResponse {
                url: url.to_string(),
                timeout: self.response_timeout,
            }),
            Ok(response) => response.map_err(|source| HttpError::Exchange {
                url: url.to_string(),
                source,
            }),
        }
    }

    async fn connect(
        &self,
        target: &Target,
        proxy: Option<&Proxy>,
    ) -> Result<Box<dyn Stream>, HttpError> {
        // Without trust there is no point in connecting.
        let trust = if target.tls {
            let trust = self.trust.as_ref();
            Some(trust.ok_or_else(|| HttpError::NoTrustedCertificates {
                server: target.host.clone(),
            })?)
        } else {
            None
        };
        let stream: Box<dyn Stream> = match proxy {
            None => Box::new(tcp(&target.host, target.port).await?),
            Some(proxy) => {
                let to_proxy = tcp(&proxy.host, proxy.port).await?;
                if target.tls {
                    Box::new(tunnel(to_proxy, proxy, &target.authority).await?)
                } else {
                    Box::new(to_proxy)
                }
            }
        };
        let Some(trust) = trust else {
            return Ok(stream);
        };
        let server_name =
            ServerName::try_from(target.host.clone()).map_err(|error| HttpError::InvalidUrl {
                url: target.authority.clone(),
                reason: format!("{} is not a valid TLS server name: {error}", target.host),
            })?;
        let tls_stream = TlsConnector::from(trust.config.clone())
            .connect(server_name, stream)
            .await
            .map_err(|error| tls::handshake_error(&target.host, trust, error))?;
        Ok(Box::new(tls_stream))
    }
}

impl Target {
    fn of(url: &Url) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        let host = match url.host() {
            Some(Host::Domain(name)) => name.to_owned(),
            Some(Host::Ipv4(address)) => address.to_string(),
            Some(Host::Ipv6(address)) => address.to_string(),
            None => return Err(invalid("it has no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid("it has no port"))?;
        let shown_host = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(port) => format!("{shown_host}:{port}"),
            None => shown_host.to_owned(),
        };
        Ok(Self {
            host,
            port,
            authority,
            tls: url.scheme() == "https",
        })
    }
}

/// The GET request: origin-form to the server itself, absolute-form to an HTTP proxy.
fn request(
    url: &Url,
    target: &Target,
    proxy: Option<&Proxy>,
    headers: HeaderMap,
) -> Result<Request<Empty<Bytes>>, HttpError> {
    let through_http_proxy = proxy.filter(|_| !target.tls);
    let request_target = match through_http_proxy {
        Some(_) => &url[..Position::AfterQuery],
        None => &url[Position::BeforePath..Position::AfterQuery],
    };
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(request_target)
        .header(HOST, &target.authority)
        .header(USER_AGENT, USER_AGENT_VALUE)
        // The sha256 to check is of the file as published: ask for its bytes as they are.
        .header(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    if let Some(authorization) = through_http_proxy.and_then(|proxy| proxy.authorization.clone()) {
        builder = builder.header(PROXY_AUTHORIZATION, authorization);
    }
    if let Some(request_headers) = builder.headers_mut() {
        request_headers.extend(headers);
    }
    builder
        .body(Empty::new())
        .map_err(|error| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: error.to_string(),
        })
}

/// TCP to `host:port`, trying each resolved address in turn.
async fn tcp(host: &str, port: u16) -> Result<TcpStream, HttpError> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(address) => vec![SocketAddr::new(address, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| HttpError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect(),
    };
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Requests are single small writes; Nagle would only delay them.
                stream
                    .set_nodelay(true)
                    .map_err(|source| HttpError::Connect {
                        address: address.to_string(),
                        source,
                    })?;
                return Ok(stream);
            }
            Err(error) => last_error = error,
        }
    }
    Err(HttpError::Connect {
        address: format!("{host}:{port}"),
        source: last_error,
    })
}

/// Asks an HTTP proxy for a tunnel to `authority` (CONNECT) and returns the tunnel.
async fn tunnel(
    to_proxy: TcpStream,
    proxy: &Proxy,
    authority: &str,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, HttpError> {
    let proxy_error = |source: hyper::Error| HttpError::Proxy {
        proxy: proxy.address.clone(),
        target: authority.to_owned(),
        source,
    };
    let (mut sender, connection) = http1::handshake(TokioIo::new(to_proxy))
        .await
        .map_err(proxy_error)?;
    // A 2xx answer to CONNECT hands the connection over as an upgrade; errors before that
    // surface through the response.
    tokio::spawn(connection.with_upgrades());
    let mut builder = Request::builder()
        .method(Method::CONNECT)
        .uri(authority)
        .header(HOST, authority)
        .header(USER_AGENT, USER_AGENT_VALUE);
    if let Some(authorization) = &proxy.authorization {
        builder = builder.header(PROXY_AUTHORIZATION, authorization.clone());
    }
    let connect_request =
        builder
            .body(Empty::<Bytes>::new())
            .map_err(|error| HttpError::InvalidUrl {
                url: authority.to_owned(),
                reason: error.to_string(),
            })?;
    let response = sender
        .send_request(connect_request)
        .await
        .map_err(proxy_error)?;
    if !response.status().is_success() {
        return Err(HttpError::ProxyRefused {
            proxy: proxy.address.clone(),
            target: authority.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let tunnel = hyper::upgrade::on(response).await.map_err(proxy_error)?;
    Ok(TokioIo::new(tunnel))
}
