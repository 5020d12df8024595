//! `provisioner serve`: every listener of the service, until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use provisioner::server::{Protocols, RunningServer, ServeOptions, TlsFiles};
use provisioner::store::Store;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address (workers).
    #[arg(long, default_value = "127.0.0.1:42113")]
    grpc: SocketAddr,
    /// REST API listen address.
    #[arg(long, default_value = "127.0.0.1:42114")]
    http: SocketAddr,
    /// PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The worker protocols to speak.
    #[arg(long, value_enum, default_value_t = Protocols::Both)]
    protocols: Protocols,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    admin: super::admin::AdminArgs,
}

pub fn serve(store: Store, args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let options = ServeOptions {
        grpc: args.grpc,
        http: Some(args.http),
        tls,
        protocols: args.protocols,
        admin: Default::default(),
        boot: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut server = RunningServer::start(Arc::new(store), &options).await?;
        tokio::select! {
            result = server.wait() => result,
            signal = stop_signal() => {
                signal?;
                tracing::info!("stopping on signal");
                server.stop().await
            }
        }
    })
}

async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("listening for SIGINT"),
        _ = terminate.recv() => Ok(()),
    }
}
