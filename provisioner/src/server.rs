//! `provisioner serve`: every listener of the service, bound together before any of them
//! serves, and stopped together: gRPC (workflows and onboarding), the admin API, and the
//! node-facing boot service (DHCP, TFTP, HTTP and HTTPS, syslog).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use tink_proto::current::workflow_service_server::WorkflowServiceServer as CurrentServer;
use tink_proto::legacy::workflow_service_server::WorkflowServiceServer as LegacyServer;

use crate::boot::{Advertised, BootContext, BootOptions, KernelOptions, SyslogSink};
use crate::grpc::WorkflowServer;
use crate::https::TlsFiles;
use crate::limits::{Limits, OnboardingLimit};
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
    /// The node CA (`--node-ca-cert/--node-ca-key`): signs enrolling nodes' certificates,
    /// and gRPC and boot HTTPS accept client certificates it issued. None: no node can
    /// present one.
    pub node_ca: Option<Arc<crate::node_ca::NodeCa>>,
    /// Serve worker calls that present no node certificate, for any worker id they name
    /// (upstream tink-agent and tink v0.12 workers, which cannot enroll). Off: such calls are
    /// UNAUTHENTICATED, and plaintext gRPC (no `tls`) is refused at start.
    pub allow_unauthenticated_workers: bool,
}

impl Default for ServeOptions {
    /// gRPC on a free loopback port, everything else off: callers switch on what they need.
    fn default() -> Self {
        Self {
            grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: None,
            tls: None,
            protocols: Protocols::default(),
            admin: crate::admin::AdminOptions::default(),
            boot: None,
            node_ca: None,
            allow_unauthenticated_workers: false,
        }
    }
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
    /// The syslog receiver's TLS listener (RFC 5425).
    pub syslog_tls_addr: Option<SocketAddr>,
    /// Shared by every listener.
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    syslog_writer: Option<std::thread::JoinHandle<()>>,
}

/// One listener's serving, named for errors ("the DHCP server (--dhcp-listen) failed").
type Service = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

impl RunningServer {
    /// Binds every configured listener, then starts serving `store` in the background, with
    /// the default [`Limits`].
    pub async fn start(store: Arc<Store>, options: &ServeOptions) -> anyhow::Result<Self> {
        Self::start_limited(store, options, &Limits::default()).await
    }

    /// [`RunningServer::start`] with `limits`: the admin API's bounds and the node-facing
    /// rate limits.
    ///
    /// The admin API runs on a tokio runtime of its own (its own threads and blocking pool):
    /// a slow or hostile admin request can hold those, never the threads that serve DHCP,
    /// TFTP, boot HTTP and gRPC, which stay on the caller's runtime.
    pub async fn start_limited(
        store: Arc<Store>,
        options: &ServeOptions,
        limits: &Limits,
    ) -> anyhow::Result<Self> {
        let grpc = bind_tcp(options.grpc, "--grpc").await?;
        let admin = match options.http {
            Some(addr) => Some(bind_tcp(addr, "--http").await?),
            None => None,
        };
        let boot = match &options.boot {
            Some(boot) => Some(BoundBoot::bind(boot, options.node_ca.as_deref()).await?),
            None => None,
        };
        check_worker_auth(options)?;
        let node_ca_pem = options.node_ca.as_ref().map(|ca| ca.ca_pem().to_string());
        let grpc_tls = options
            .tls
            .as_ref()
            .map(|files| load_tls(files, node_ca_pem.as_deref()))
            .transpose()?;

        let metrics = Arc::new(Metrics::default());
        metrics
            .unauthenticated_workers_allowed
            .store(options.allow_unauthenticated_workers, Ordering::Relaxed);
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
            syslog_tls_addr: None,
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
            let boot_options = BootOptions {
                kernel: pin_site_ca(&boot_options.kernel, options.tls.as_ref())?,
                ..boot_options.clone()
            };
            services.extend(boot.start(
                &mut server,
                Arc::clone(&store),
                advertised,
                &boot_options,
                limits,
                &stop_requested,
            )?);
        }
        services.push((
            "gRPC service (--grpc)",
            grpc_service(
                OnboardingServer::new(Arc::clone(&store), artifact_base)
                    .with_node_ca(options.node_ca.clone())
                    // CreateNodes is an admin call: the admin token, whether or not the admin
                    // listener runs (None, refusing it, when no admin auth is configured).
                    .with_admin_auth(crate::admin::Auth::from_options(&options.admin).ok()),
                WorkflowServer::new(Arc::clone(&store), options.allow_unauthenticated_workers),
                grpc,
                grpc_tls,
                options.protocols,
                OnboardingLimit::new(
                    limits.onboarding_per_ip,
                    Arc::clone(&server.metrics.rate_limited),
                ),
                stopped(&stop_requested),
            )?,
        ));
        if let Some(listener) = admin {
            let metrics = Arc::clone(&server.metrics);
            let shutdown = stopped(&stop_requested);
            let serving = admin_service(
                listener,
                store,
                metrics,
                &options.admin,
                &limits.admin,
                shutdown,
            )?;
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
            syslog_tls = ?server.syslog_tls_addr,
            grpc_tls = options.tls.is_some(),
            protocols = ?options.protocols,
            unauthenticated_workers_allowed = options.allow_unauthenticated_workers,
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

/// Refuses plaintext gRPC unless the site allows unauthenticated workers (a worker without
/// TLS can present no certificate), and says loudly what that flag allows.
fn check_worker_auth(options: &ServeOptions) -> anyhow::Result<()> {
    if options.allow_unauthenticated_workers {
        tracing::warn!(
            "--allow-unauthenticated-workers: gRPC serves workers that present no node \
             certificate, for any worker id they name: any machine on the site network can \
             fetch any node's actions and report them done. Meant for upstream tink-agent / tink \
             v0.12 workers only"
        );
        return Ok(());
    }
    if options.tls.is_some() && options.node_ca.is_none() {
        tracing::warn!(
            "gRPC serves TLS without the node CA (--node-ca-cert, --node-ca-key): nodes cannot \
             enroll for a certificate, so every worker call will be UNAUTHENTICATED"
        );
    }
    anyhow::ensure!(
        options.tls.is_some(),
        "gRPC without TLS (no --tls-cert) cannot authenticate workers: serve TLS with \
         --tls-cert server.pem --tls-key server-key.pem (provisioner init makes them), or pass \
         --allow-unauthenticated-workers to serve upstream workers without credentials"
    );
    Ok(())
}

/// `kernel` with `tinkerbell_ca_sha256` set to the SHA-256 of the --tls-cert chain's CA (its
/// last certificate), which the bootkit's agents and the init's syslog forwarder pin (the boot
/// line carries it when gRPC or syslog speaks TLS); none without TLS files, when the operator
/// gave a pin, or when the chain has no CA (a single certificate).
fn pin_site_ca(kernel: &KernelOptions, tls: Option<&TlsFiles>) -> anyhow::Result<KernelOptions> {
    let mut kernel = kernel.clone();
    let Some(tls) = tls.filter(|_| kernel.tinkerbell_ca_sha256.is_none()) else {
        return Ok(kernel);
    };
    let chain = crate::https::read_certificates(&tls.cert)
        .context("the gRPC TLS certificate (--tls-cert)")?;
    match chain.as_slice() {
        [_leaf, .., ca] => {
            kernel.tinkerbell_ca_sha256 = Some(crate::node_ca::sha256_hex(ca.as_ref()));
        }
        _ => tracing::warn!(
            cert = %tls.cert.display(),
            "the gRPC certificate (--tls-cert) is a single certificate, no chain: there is no \
             CA to pin, so boot scripts carry no tinkerbell_ca_sha256 and nodes need the CA \
             another way (tinkerbell_ca= or the image). Give the full chain, leaf then CA \
             (provisioner init writes server.pem so)"
        ),
    }
    Ok(kernel)
}

/// gRPC's TLS: the --tls-cert chain (leaf then CA, so that nodes can pin the CA), and, with
/// the node CA, optional client certificates verified against it: enrollment (onboarding)
/// needs none, and the workflow service decides per call what a missing one means.
fn load_tls(files: &TlsFiles, node_ca_pem: Option<&str>) -> anyhow::Result<ServerTlsConfig> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path)
            .with_context(|| format!("reading the TLS {what} {} failed", path.display()))
    };
    let identity = Identity::from_pem(read(&files.cert, "certificate")?, read(&files.key, "key")?);
    let config = ServerTlsConfig::new().identity(identity);
    Ok(match node_ca_pem {
        Some(ca) => config
            .client_ca_root(tonic::transport::Certificate::from_pem(ca))
            .client_auth_optional(true),
        None => config,
    })
}

/// Workflows (both protocols, or one) and device discovery's onboarding services.
fn grpc_service(
    onboarding: OnboardingServer,
    workflows: WorkflowServer,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    protocols: Protocols,
    onboarding_limit: OnboardingLimit,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Service> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .context("the gRPC TLS certificate or key (--tls-cert, --tls-key) is not usable")?;
    }
    // Onboarding answers unauthenticated callers: limited per source address.
    let builder = builder
        .add_service(InterceptedService::new(
            onboarding.non_interactive(),
            onboarding_limit.clone(),
        ))
        .add_service(InterceptedService::new(
            onboarding.interactive(),
            onboarding_limit,
        ));
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

/// Worker threads of the admin API's runtime: requests wait on the store and the blocking
/// pool, so two are plenty.
const ADMIN_WORKER_THREADS: usize = 2;

/// The admin runtime's blocking pool: parses, renders and imports at once. Bounded so that a
/// burst of uploads queues instead of starting hundreds of CPU-bound threads.
const ADMIN_BLOCKING_THREADS: usize = 4;

/// Serves the admin API on a runtime of its own, in its own thread; the returned service
/// ends when that thread's serving ends.
fn admin_service(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: &crate::admin::AdminOptions,
    limits: &crate::limits::AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Service> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(ADMIN_WORKER_THREADS)
        .max_blocking_threads(ADMIN_BLOCKING_THREADS)
        .thread_name("admin-api")
        .enable_all()
        .build()
        .context("starting the admin API's runtime failed")?;
    // The listener was registered with the caller's runtime; the admin runtime takes it over.
    let listener = listener
        .into_std()
        .context("handing the admin listener to its runtime failed")?;
    let options = options.clone();
    let limits = limits.clone();
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name("admin-api".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)
                    .context("the admin listener cannot join its runtime")?;
                crate::admin::serve_limited(listener, store, metrics, &options, &limits, shutdown)
                    .await
            });
            // Blocking work still running (a parse past its time budget) is not waited for.
            runtime.shutdown_background();
            let _ = done.send(result);
        })
        .context("starting the admin API's thread failed")?;
    Ok(Box::pin(async move {
        finished
            .await
            .unwrap_or_else(|_| Err(anyhow!("the admin API's thread panicked")))
    }))
}

/// Syslog over TLS: the --tls-cert chain, and with the node CA, optional client
/// authentication (a certificate the node CA did not sign is refused; none is allowed, and
/// such lines are stored as unauthenticated).
fn syslog_tls_listener(
    tls: &crate::boot::HttpsOptions,
    node_ca: Option<&crate::node_ca::NodeCa>,
) -> anyhow::Result<bootkit_syslog_receiver::TlsListener> {
    let config = match node_ca {
        Some(ca) => crate::https::server_config_with_client_ca_pem(
            &tls.tls.cert,
            &tls.tls.key,
            ca.ca_pem(),
            "the node CA (--node-ca-cert)",
        ),
        None => crate::https::server_config(&tls.tls.cert, &tls.tls.key, None),
    }
    .context("the syslog TLS certificate (--tls-cert, --tls-key)")?;
    // The shared builder offers HTTP/1.1 by ALPN; syslog senders offer none, or "syslog".
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols.clear();
    Ok(bootkit_syslog_receiver::TlsListener {
        addr: tls.listen,
        config: Arc::new(config),
    })
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
    /// With `node_ca`, boot HTTPS accepts (does not require) the nodes' client certificates:
    /// metadata answers by them.
    async fn bind(
        options: &BootOptions,
        node_ca: Option<&crate::node_ca::NodeCa>,
    ) -> anyhow::Result<Self> {
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
                let config = match node_ca {
                    Some(ca) => crate::https::server_config_with_client_ca_pem(
                        &https.tls.cert,
                        &https.tls.key,
                        ca.ca_pem(),
                        "the node CA (--node-ca-cert)",
                    ),
                    None => crate::https::server_config(&https.tls.cert, &https.tls.key, None),
                }
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
        let syslog_tls = match &options.syslog_tls {
            Some(tls) => Some(syslog_tls_listener(tls, node_ca)?),
            None => None,
        };
        let syslog = if options.syslog.is_some() || syslog_tls.is_some() {
            let config = bootkit_syslog_receiver::Config {
                udp: options.syslog,
                tcp: options.syslog,
                tls: syslog_tls,
            };
            let receiver = bootkit_syslog_receiver::Receiver::bind(config)
                .await
                .context("starting syslog (--syslog, --syslog-tls) failed")?;
            Some(receiver)
        } else {
            None
        };
        Ok(Self {
            http,
            https,
            dhcp,
            tftp,
            syslog,
        })
    }

    /// Sizes the UDP sockets' receive buffers for a rack's burst and counts their drops in
    /// /metrics. Neither is needed to serve, so a refusal is logged and serving goes on.
    fn watch_udp_sockets(&self, metrics: &Metrics) {
        let dhcp = self.dhcp.iter().flat_map(bootkit_dhcp::Server::sockets);
        let tftp = self.tftp.iter().map(bootkit_tftp::Server::socket);
        let syslog = self
            .syslog
            .iter()
            .filter_map(bootkit_syslog_receiver::Receiver::udp_socket);
        let sockets = (dhcp.map(|socket| ("dhcp", socket)))
            .chain(tftp.map(|socket| ("tftp", socket)))
            .chain(syslog.map(|socket| ("syslog", socket)));
        for (name, socket) in sockets {
            if let Err(error) = crate::udp_drops::size_receive_buffer(
                name,
                socket,
                crate::udp_drops::RECEIVE_BUFFER,
            ) {
                tracing::warn!(socket = name, %error, "cannot size the UDP receive buffer; the kernel's default stays");
            }
            if let Err(error) = metrics.udp_drops.watch(name, socket) {
                tracing::warn!(socket = name, %error, "cannot count the UDP socket's drops; provisioner_udp_drops_total leaves it out");
            }
        }
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
        server.syslog_tls_addr = self.syslog.as_ref().and_then(|syslog| syslog.tls_addr());
        Ok(Advertised {
            ip: advertise,
            http_port: server.boot_http_addr.map(|addr| addr.port()),
            https_port: server.boot_https_addr.map(|addr| addr.port()),
            grpc_port: server.grpc_addr.port(),
            syslog_port: server.syslog_udp_addr.map(|addr| addr.port()),
            syslog_tls_port: server.syslog_tls_addr.map(|addr| addr.port()),
        })
    }

    /// The boot service's listeners, serving once the supervisor runs them.
    fn start(
        self,
        server: &mut RunningServer,
        store: Arc<Store>,
        advertised: Advertised,
        options: &BootOptions,
        limits: &Limits,
        stop_requested: &watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<(&'static str, Service)>> {
        let context = Arc::new(BootContext {
            store: Arc::clone(&store),
            advertised: advertised.clone(),
            kernel: options.kernel.clone(),
            counters: Arc::clone(&server.metrics.http),
            metadata_by_address: options.metadata_by_address,
            http_boot_uki: options.http_boot_uki.clone(),
            ipxe_uki: options.ipxe_uki,
        });
        let metrics = &server.metrics;
        self.watch_udp_sockets(metrics);
        let mut services: Vec<(&'static str, Service)> = Vec::new();
        // Both boot listeners share one budget per source address.
        let script_limit = limits.boot_script_per_ip.map(|rate| {
            crate::limits::BootScriptLimit::new(rate, Arc::clone(&server.metrics.rate_limited))
        });
        let limit_scripts = |router: axum::Router| match &script_limit {
            Some(limit) => router.layer(axum::middleware::from_fn_with_state(
                limit.clone(),
                crate::limits::limit_boot_scripts,
            )),
            None => router,
        };
        if let (Some(listener), Some(base)) = (self.http, advertised.http_base()) {
            let router = limit_scripts(crate::boot::router(Arc::clone(&context), base));
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
            let router = limit_scripts(crate::boot::router(Arc::clone(&context), base));
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
            let http_boot_url = options
                .http_boot_uki
                .is_some()
                .then(|| advertised.http_boot_url())
                .flatten();
            let policy = Arc::new(
                crate::boot::StorePolicy::new(Arc::clone(&store), script_url)
                    .with_http_boot_url(http_boot_url),
            );
            let serving = dhcp
                .limit_clients(limits.dhcp_per_mac)
                .serve(policy, Arc::clone(&metrics.dhcp));
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
                "syslog receiver (--syslog, --syslog-tls)",
                until_stopped(serving, stop_requested),
            ));
        }
        Ok(services)
    }
}
