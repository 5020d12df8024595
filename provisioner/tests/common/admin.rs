//! An admin listener served in-process on a free loopback port, stopped when dropped, and a
//! small HTTP client for it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use provisioner::admin::AdminOptions;
use provisioner::metrics::Metrics;
use provisioner::store::Store;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "0123456789abcdef0123456789abcdef-test-token";

pub fn token_options() -> AdminOptions {
    AdminOptions {
        token: Some(ADMIN_TOKEN.into()),
        ..Default::default()
    }
}

pub struct AdminServer {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl AdminServer {
    pub async fn start(db: &Path, options: AdminOptions) -> Self {
        Self::try_start(Arc::new(Store::open(db).unwrap()), options)
            .await
            .unwrap()
    }

    /// Starts serving; `serve`'s refusal to start comes back as the error.
    pub async fn try_start(store: Arc<Store>, options: AdminOptions) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::default());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let mut task = tokio::spawn({
            let store = Arc::clone(&store);
            let metrics = Arc::clone(&metrics);
            async move {
                provisioner::admin::serve(listener, store, metrics, &options, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        // A refusal returns at once; a server keeps running.
        if let Ok(result) =
            tokio::time::timeout(std::time::Duration::from_millis(200), &mut task).await
        {
            result??;
            anyhow::bail!("the admin server stopped right after starting");
        }
        Ok(Self {
            addr,
            store,
            metrics,
            shutdown: Some(shutdown),
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn client(&self) -> AdminClient {
        AdminClient::new(self.url(""), Some(ADMIN_TOKEN))
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shutdown.take();
        self.task.abort();
    }
}

/// JSON requests with an optional bearer token.
pub struct AdminClient {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    pub fn new(base: String, token: Option<&str>) -> Self {
        Self {
            client: super::http_client().build().expect("an HTTP client"),
            base,
            token: token.map(str::to_string),
        }
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Option<String>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", content_type).body(body);
        }
        request.send().await.unwrap()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self
            .raw(
                method,
                path,
                "application/json",
                body.map(|body| body.to_string()),
            )
            .await;
        json_of(response).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value)
}

/// PEM certificate and key.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// One GET over TLS to `addr` (trusting `ca_pem`, as "localhost"), optionally with a client
/// certificate and a token. The response's status code, or why there was none.
pub async fn https_get(
    addr: SocketAddr,
    ca_pem: &str,
    server_name: &str,
    client_certificate: Option<&Pem>,
    token: Option<&str>,
    path: &str,
) -> Result<u16, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client_certificate {
        Some(pem) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|error| error.to_string())?;
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let exchange = async {
        let mut tls = connector.connect(name, tcp).await?;
        let authorization = token
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|error| error.to_string())?;
    let response = String::from_utf8_lossy(&response);
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))
}
