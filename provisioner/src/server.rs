//! `provisioner serve`: every listener of the service, bound together before any of them
//! serves, and stopped together: gRPC (workflows and onboarding), the admin API, and the
//! node-facing boot service (DHCP, TFTP, HTTP and HTTPS, syslog).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use tink_proto::current::workflow_service_server::WorkflowServiceServer as CurrentServer;
use tink_proto::legacy::workflow_service_server::WorkflowServiceServer as LegacyServer;

use crate::boot::{Advertised, BootContext, BootOptions, KernelOptions, SyslogSink};
use crate::grpc::WorkflowServer;
use crate::https::TlsFiles;
use crate::metrics::Metrics;
use crate::onboarding::OnboardingServer;
use crate::store::Store;

/// How long listeners get to finish open requests once the server stops; then they are cut.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to listen. Port 0 picks a free port; [`RunningServer`] tells which.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The gRPC service (workflows, onboarding); usually 0.0.0.0:42113.
    pub grpc: SocketAddr,
    /// The admin API (HTTP, REST and metrics); None: off.
    pub http: Option<SocketAddr>,
    /// TLS for gRPC; plaintext without it.
    pub tls: Option<TlsFiles>,
    /// Which worker protocols the gRPC service speaks.
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
    /// Both protocols on one port, told apart per request (the default).
    #[default]
    Both,
    /// tinkerbell/tinkerbell v0.17+ only (GetAction).
    Current,
    /// tink v0.9 to v0.12 only (GetWorkflowContexts).
    Legacy,
}

/// A started server. Dropping it (or [`RunningServer::stop`]) shuts every listener down.
pub struct RunningServer {
    /// The gRPC service's bound address.
    pub grpc_addr: SocketAddr,
    /// The admin API.
    pub http_addr: Option<SocketAddr>,
    /// The node-facing plain HTTP listener.
    pub boot_http_addr: Option<SocketAddr>,
    /// The node-facing HTTPS listener.
    pub boot_https_addr: Option<SocketAddr>,
    /// The DHCP server.
    pub dhcp_addr: Option<SocketAddr>,
    /// The PXE boot server (4011) beside proxyDHCP.
    pub dhcp_boot_server_addr: Option<SocketAddr>,
    /// The TFTP server.
    pub tftp_addr: Option<SocketAddr>,
    /// The syslog receiver's UDP socket.
    pub syslog_udp_addr: Option<SocketAddr>,
    /// The syslog receiver's TCP listener.
    pub syslog_tcp_addr: Option<SocketAddr>,
    /// Shared by every listener.
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    syslog_writer: Option<std::thread::JoinHandle<()>>,
}

/// One listener's serving, named for errors ("the DHCP server (--dhcp-listen) failed").
type Service = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

impl RunningServer {
    /// Binds every configured listener, then starts serving `store` in the background.
    pub async fn start(store: Arc<Store>, options: &ServeOptions) -> anyhow::Result<Self> {
        let grpc = bind_tcp(options.grpc, "--grpc").await?;
        let admin = match options.http {
            Some(addr) => Some(bind_tcp(addr, "--http").await?),
            None => None,
        };
        let boot = match &options.boot {
            Some(boot) => Some(BoundBoot::bind(boot).await?),
            None => None,
        };
        let grpc_tls = options.tls.as_ref().map(load_tls).transpose()?;

        let metrics = Arc::new(Metrics::default());
        let (stopping, stop_requested) = watch::channel(false);
        let mut server = Self {
            grpc_addr: grpc.local_addr()?,
            http_addr: admin.as_ref().map(TcpListener::local_addr).transpose()?,
            boot_http_addr: None,
            boot_https_addr: None,
            dhcp_addr: None,
            dhcp_boot_server_addr: None,
            tftp_addr: None,
            syslog_udp_addr: None,
            syslog_tcp_addr: None,
            metrics,
            shutdown: None,
            task: None,
            syslog_writer: None,
        };
        let mut services = Vec::new();
        let mut artifact_base = None;
        if let (Some(boot), Some(boot_options)) = (boot, &options.boot) {
            let advertised = boot.record_addresses(&mut server, boot_options.advertise)?;
            artifact_base = advertised.http_base().or_else(|| advertised.https_base());
            services.extend(boot.start(
                &mut server,
                Arc::clone(&store),
                advertised,
                &boot_options.kernel,
                &stop_requested,
            )?);
        }
        services.push((
            "gRPC service (--grpc)",
            grpc_service(
                Arc::clone(&store),
                artifact_base,
                grpc,
                grpc_tls,
                options.protocols,
                stopped(&stop_requested),
            )?,
        ));
        if let Some(listener) = admin {
            let metrics = Arc::clone(&server.metrics);
            let shutdown = stopped(&stop_requested);
            let serving = admin_service(listener, store, metrics, &options.admin, shutdown);
            services.push(("admin API (--http)", serving));
        }

        let (shutdown, stop) = oneshot::channel();
        server.shutdown = Some(shutdown);
        server.task = Some(tokio::spawn(supervise(services, stop, stopping)));
        tracing::info!(
            grpc = %server.grpc_addr,
            admin = ?server.http_addr,
            boot_http = ?server.boot_http_addr,
            boot_https = ?server.boot_https_addr,
            dhcp = ?server.dhcp_addr,
            tftp = ?server.tftp_addr,
            syslog = ?server.syslog_udp_addr,
            grpc_tls = options.tls.is_some(),
            protocols = ?options.protocols,
            "provisioner serving"
        );
        Ok(server)
    }

    /// Stops serving and waits for every listener to close.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.take();
        let result = self.wait().await;
        if let Some(writer) = self.syslog_writer.take() {
            // The writer ends once the receiver (holding its queue) is gone: it stores what
            // is queued first.
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| anyhow!("the syslog writer thread panicked"))?;
        }
        result
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
            // Dropping the supervisor's JoinSet aborts every listener.
            task.abort();
        }
    }
}

/// Resolves once the server is stopping.
fn stopped(stop_requested: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stop_requested = stop_requested.clone();
    async move {
        // A dropped sender means the supervisor is gone: stop as well.
        let _ = stop_requested.wait_for(|stop| *stop).await;
    }
}

/// Runs a listener that has no graceful shutdown (the UDP ones) until the server stops.
fn until_stopped<E>(
    serving: impl Future<Output = Result<(), E>> + Send + 'static,
    stop_requested: &watch::Receiver<bool>,
) -> Service
where
    E: std::error::Error + Send + Sync + 'static,
{
    let stopped = stopped(stop_requested);
    Box::pin(async move {
        tokio::select! {
            result = serving => result.map_err(anyhow::Error::from),
            () = stopped => Ok(()),
        }
    })
}

/// Runs every service until stopped or until one of them ends, which stops the others: a
/// provisioner missing one of its listeners would fail nodes in confusing ways.
async fn supervise(
    services: Vec<(&'static str, Service)>,
    stop: oneshot::Receiver<()>,
    stopping: watch::Sender<bool>,
) -> anyhow::Result<()> {
    let mut running = JoinSet::new();
    for (name, service) in services {
        running.spawn(async move { (name, service.await) });
    }
    let first_ended = tokio::select! {
        // Sent or dropped: either way the owner wants the server stopped.
        _ = stop => None,
        Some(ended) = running.join_next() => Some(ended),
    };
    let _ = stopping.send(true);
    let outcome = match first_ended {
        None => Ok(()),
        Some(Ok((name, Ok(())))) => Err(anyhow!(
            "the {name} stopped unexpectedly; stopping every listener"
        )),
        Some(Ok((name, Err(error)))) => {
            Err(error.context(format!("the {name} failed; stopping every listener")))
        }
        Some(Err(error)) => Err(anyhow!(
            "a listener's task panicked ({error}); stopping every listener"
        )),
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(ended) = running.join_next().await {
            if let Ok((name, Err(error))) = ended {
                tracing::warn!("the {name} failed while stopping: {error:#}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("listeners still busy after {DRAIN_TIMEOUT:?}; cutting them off");
        running.shutdown().await;
    }
    outcome
}

async fn bind_tcp(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} ({flag}) failed; is the port free?"))
}

fn load_tls(files: &TlsFiles) -> anyhow::Result<ServerTlsConfig> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path)
            .with_context(|| format!("reading the TLS {what} {} failed", path.display()))
    };
    let identity = Identity::from_pem(read(&files.cert, "certificate")?, read(&files.key, "key")?);
    Ok(ServerTlsConfig::new().identity(identity))
}

/// Workflows (both protocols, or one) and device discovery's onboarding services.
fn grpc_service(
    store: Arc<Store>,
    artifact_base: Option<String>,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    protocols: Protocols,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Service> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .context("the gRPC TLS certificate or key (--tls-cert, --tls-key) is not usable")?;
    }
    let onboarding = OnboardingServer::new(Arc::clone(&store), artifact_base);
    let builder = builder
        .add_service(onboarding.non_interactive())
        .add_service(onboarding.interactive());
    let workflows = WorkflowServer::new(store);
    let router = match protocols {
        Protocols::Both => builder.add_service(workflows.into_service()),
        Protocols::Current => builder.add_service(CurrentServer::new(workflows)),
        Protocols::Legacy => builder.add_service(LegacyServer::new(workflows)),
    };
    Ok(Box::pin(async move {
        router
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
            .await
            .map_err(anyhow::Error::from)
    }))
}

fn admin_service(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: &crate::admin::AdminOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Service {
    let options = options.clone();
    Box::pin(async move { crate::admin::serve(listener, store, metrics, &options, shutdown).await })
}

/// The boot service's sockets, bound before anything serves.
struct BoundBoot {
    http: Option<TcpListener>,
    https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    dhcp: Option<bootkit_dhcp::Server>,
    tftp: Option<bootkit_tftp::Server>,
    syslog: Option<bootkit_syslog_receiver::Receiver>,
}

impl BoundBoot {
    async fn bind(options: &BootOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            options.dhcp.is_none() || options.http.is_some() || options.https.is_some(),
            "DHCP hands iPXE the URL of its boot script: serve it with --boot-http or --boot-https"
        );
        let http = match options.http {
            Some(addr) => Some(bind_tcp(addr, "--boot-http").await?),
            None => None,
        };
        let https = match &options.https {
            Some(https) => {
                let listener = bind_tcp(https.listen, "--boot-https").await?;
                let config = crate::https::server_config(&https.tls.cert, &https.tls.key, None)
                    .context("the boot HTTPS certificate (--boot-tls-cert, --boot-tls-key)")?;
                Some((listener, config))
            }
            None => None,
        };
        let tftp = match &options.tftp {
            Some(tftp) => {
                crate::boot::check_tftp_root(&tftp.root)?;
                // Each transfer holds descriptors: the usual soft limit (1024) would cap
                // TFTP below its 1024 transfers. Logged either way; a refusal leaves the
                // cap sized from the soft limit, which the server logs too.
                if let Err(error) = bootkit_tftp::raise_open_files_limit() {
                    tracing::warn!(%error, "cannot raise the open-files limit; TFTP transfers are capped by the soft limit");
                }
                let config = bootkit_tftp::Config {
                    listen: tftp.listen,
                    root: tftp.root.clone(),
                    // The iPXE binaries may be links out of the root (Debian's ipxe
                    // package links ipxe.efi to /boot): those files, and only they.
                    outside: bootkit_tftp::link_targets_outside(
                        &tftp.root,
                        &[crate::boot::BIOS_BINARY, crate::boot::UEFI_X64_BINARY],
                    ),
                };
                Some(
                    bootkit_tftp::Server::bind(config).await.with_context(|| {
                        format!("starting TFTP on {} (--tftp) failed", tftp.listen)
                    })?,
                )
            }
            None => None,
        };
        let dhcp = match &options.dhcp {
            Some(dhcp) => {
                let config = bootkit_dhcp::Config {
                    listen: dhcp.listen,
                    interface: dhcp.interface.clone(),
                    server_ip: options.advertise,
                    mode: dhcp.mode.clone(),
                    boot_files: crate::boot::boot_files(),
                };
                Some(bootkit_dhcp::Server::bind(config).await.with_context(|| {
                    format!(
                        "starting DHCP on {} (--dhcp-listen, --dhcp-interface) failed",
                        dhcp.listen
                    )
                })?)
            }
            None => None,
        };
        let syslog = match options.syslog {
            Some(addr) => {
                let config = bootkit_syslog_receiver::Config {
                    udp: Some(addr),
                    tcp: Some(addr),
                };
                Some(
                    bootkit_syslog_receiver::Receiver::bind(config)
                        .await
                        .with_context(|| format!("starting syslog on {addr} (--syslog) failed"))?,
                )
            }
            None => None,
        };
        Ok(Self {
            http,
            https,
            dhcp,
            tftp,
            syslog,
        })
    }

    /// Records the bound addresses in `server`; what nodes are told follows from them.
    fn record_addresses(
        &self,
        server: &mut RunningServer,
        advertise: std::net::Ipv4Addr,
    ) -> anyhow::Result<Advertised> {
        server.boot_http_addr = self
            .http
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        server.boot_https_addr = self
            .https
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
            .transpose()?;
        server.dhcp_addr = self.dhcp.as_ref().map(bootkit_dhcp::Server::local_addr);
        server.dhcp_boot_server_addr = self
            .dhcp
            .as_ref()
            .and_then(bootkit_dhcp::Server::boot_server_addr);
        server.tftp_addr = self.tftp.as_ref().map(bootkit_tftp::Server::local_addr);
        server.syslog_udp_addr = self.syslog.as_ref().and_then(|syslog| syslog.udp_addr());
        server.syslog_tcp_addr = self.syslog.as_ref().and_then(|syslog| syslog.tcp_addr());
        Ok(Advertised {
            ip: advertise,
            http_port: server.boot_http_addr.map(|addr| addr.port()),
            https_port: server.boot_https_addr.map(|addr| addr.port()),
            grpc_port: server.grpc_addr.port(),
            syslog_port: server.syslog_udp_addr.map(|addr| addr.port()),
        })
    }

    /// The boot service's listeners, serving once the supervisor runs them.
    fn start(
        self,
        server: &mut RunningServer,
        store: Arc<Store>,
        advertised: Advertised,
        kernel: &KernelOptions,
        stop_requested: &watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<(&'static str, Service)>> {
        let context = Arc::new(BootContext {
            store: Arc::clone(&store),
            advertised: advertised.clone(),
            kernel: kernel.clone(),
            counters: Arc::clone(&server.metrics.http),
        });
        let metrics = &server.metrics;
        let mut services: Vec<(&'static str, Service)> = Vec::new();
        if let (Some(listener), Some(base)) = (self.http, advertised.http_base()) {
            let router = crate::boot::router(Arc::clone(&context), base);
            let shutdown = stopped(stop_requested);
            services.push((
                "boot HTTP server (--boot-http)",
                Box::pin(async move {
                    axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(anyhow::Error::from)
                }),
            ));
        }
        if let (Some((listener, config)), Some(base)) = (self.https, advertised.https_base()) {
            let router = crate::boot::router(Arc::clone(&context), base);
            let shutdown = stopped(stop_requested);
            services.push((
                "boot HTTPS server (--boot-https)",
                Box::pin(crate::https::serve_tls(listener, router, config, shutdown)),
            ));
        }
        if let Some(dhcp) = self.dhcp {
            let script_url = advertised
                .script_url()
                .context("DHCP needs the boot HTTP or HTTPS listener")?;
            let policy = Arc::new(crate::boot::StorePolicy::new(
                Arc::clone(&store),
                script_url,
            ));
            let serving = dhcp.serve(policy, Arc::clone(&metrics.dhcp));
            services.push((
                "DHCP server (--dhcp)",
                until_stopped(serving, stop_requested),
            ));
        }
        if let Some(tftp) = self.tftp {
            let serving = tftp.serve(Arc::clone(&metrics.tftp));
            services.push((
                "TFTP server (--tftp)",
                until_stopped(serving, stop_requested),
            ));
        }
        if let Some(syslog) = self.syslog {
            let (sink, writer) = SyslogSink::start(store, Arc::clone(&server.metrics.syslog_sink))
                .context("starting the syslog writer thread failed")?;
            server.syslog_writer = Some(writer);
            let serving = syslog.serve(sink, Arc::clone(&metrics.syslog));
            services.push((
                "syslog receiver (--syslog)",
                until_stopped(serving, stop_requested),
            ));
        }
        Ok(services)
    }
}
