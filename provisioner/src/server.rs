//! `provisioner serve`: the gRPC workflow service and the REST API, started together and
//! stopped together.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use tink_proto::current::workflow_service_server::WorkflowServiceServer as CurrentServer;
use tink_proto::legacy::workflow_service_server::WorkflowServiceServer as LegacyServer;

use crate::grpc::WorkflowServer;
use crate::store::Store;

/// PEM files of the gRPC server's certificate chain and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where to listen. Port 0 picks a free port; [`RunningServer`] tells which.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub grpc: SocketAddr,
    pub http: Option<SocketAddr>,
    /// TLS for gRPC; plaintext without it.
    pub tls: Option<TlsFiles>,
    pub protocols: Protocols,
    /// The admin API's authentication (and TLS).
    pub admin: crate::admin::AdminOptions,
    /// The node-facing boot service; `None` serves workflows and the admin API only.
    pub boot: Option<crate::boot::BootOptions>,
}

/// Which worker protocols the gRPC service speaks. One alone is for testing workers
/// against servers like real Tinkerbell ones, which speak one protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocols {
    #[default]
    Both,
    /// tinkerbell/tinkerbell v0.17+ only (GetAction).
    Current,
    /// tink v0.9 to v0.12 only (GetWorkflowContexts).
    Legacy,
}

/// A started server. Dropping it (or [`RunningServer::stop`]) shuts both listeners down.
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningServer {
    /// Binds both listeners and starts serving `store` in the background.
    pub async fn start(store: Arc<Store>, options: &ServeOptions) -> anyhow::Result<Self> {
        let grpc = bind(options.grpc, "gRPC").await?;
        let grpc_addr = grpc.local_addr()?;
        let http = match options.http {
            Some(addr) => Some(bind(addr, "HTTP").await?),
            None => None,
        };
        let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
        let tls = options.tls.as_ref().map(load_tls).transpose()?;
        let (shutdown, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(store, grpc, http, tls, options.protocols, async {
            // A dropped sender stops the server as well as a sent signal.
            let _ = stopped.await;
        }));
        tracing::info!(%grpc_addr, http_addr = ?http_addr, tls = options.tls.is_some(), protocols = ?options.protocols, "provisioner serving");
        Ok(Self {
            grpc_addr,
            http_addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// Stops serving and waits for both listeners to close.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.take();
        self.wait().await
    }

    /// Serves until a listener fails (or the server is stopped).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) => task.await.context("the server task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for {what} on {addr} failed; is the port free?"))
}

fn load_tls(files: &TlsFiles) -> anyhow::Result<ServerTlsConfig> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path)
            .with_context(|| format!("reading the TLS {what} {} failed", path.display()))
    };
    let identity = Identity::from_pem(read(&files.cert, "certificate")?, read(&files.key, "key")?);
    Ok(ServerTlsConfig::new().identity(identity))
}

async fn serve(
    store: Arc<Store>,
    grpc: TcpListener,
    http: Option<TcpListener>,
    tls: Option<ServerTlsConfig>,
    protocols: Protocols,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let http_task = http.map(|listener| {
        let router = crate::http::router(Arc::clone(&store));
        let mut stopped = http_stopped.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
                .context("the HTTP API server failed")
        })
    });
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .context("the TLS certificate or key is not usable")?;
    }
    let workflows = WorkflowServer::new(store);
    let router = match protocols {
        Protocols::Both => builder.add_service(workflows.into_service()),
        Protocols::Current => builder.add_service(CurrentServer::new(workflows)),
        Protocols::Legacy => builder.add_service(LegacyServer::new(workflows)),
    };
    let grpc_result = router
        .serve_with_incoming_shutdown(TcpIncoming::from(grpc), shutdown)
        .await
        .context("the gRPC server failed");
    let _ = stop_http.send(true);
    if let Some(task) = http_task {
        task.await.context("the HTTP API server panicked")??;
    }
    grpc_result
}
