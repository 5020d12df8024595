//! pxe-load: simulates a rack of nodes PXE-booting against the provisioner — proxyDHCP, TFTP
//! fetch of the iPXE binary, the iPXE scripts over HTTP, device discovery and a workflow of
//! GetAction/ReportActionStatus — and reports completion time, per-step p50/p99 latency and
//! errors. `--steps dhcp-tftp` runs only the DHCP and TFTP part, so the same load can be
//! pointed at dnsmasq for comparison (bench/pxe.sh does both in one run).
//!
//! Each node uses its own source address (`--first-ip` + index), which the caller adds to
//! `--interface` beforehand; run it inside a network namespace.

mod dhcp;
mod node;
mod stats;
mod tftp;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};

/// Which part of the boot each simulated node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Steps {
    /// DHCP, TFTP, iPXE script, discovery and the workflow.
    Full,
    /// DHCP and TFTP only (what dnsmasq can serve too).
    DhcpTftp,
}

/// The command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "pxe-load",
    about = "Simulate N nodes PXE-booting against a provisioner"
)]
pub struct Args {
    /// The server under test (its address on --interface).
    #[arg(long)]
    pub server: Ipv4Addr,
    /// The interface the simulated nodes broadcast DHCP on.
    #[arg(long)]
    pub interface: String,
    /// First simulated node address; node i uses first-ip + i.
    #[arg(long)]
    pub first_ip: Ipv4Addr,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 500)]
    pub nodes: usize,
    /// Which part of the boot to run.
    #[arg(long, value_enum, default_value_t = Steps::Full)]
    pub steps: Steps,
    /// Nodes power on spread over this many milliseconds (a rack is not switched on at once).
    #[arg(long, default_value_t = 2000)]
    pub ramp_ms: u64,
    /// Fetch this file over TFTP instead of the one DHCP names.
    #[arg(long)]
    pub tftp_file: Option<String>,
    /// TFTP block size to ask for (RFC 2348), in bytes.
    #[arg(long, default_value_t = 1468)]
    pub blksize: u16,
    /// The server's DHCP port.
    #[arg(long, default_value_t = 67)]
    pub dhcp_port: u16,
    /// The server's PXE boot-server port (proxyDHCP).
    #[arg(long, default_value_t = 4011)]
    pub boot_server_port: u16,
    /// The server's TFTP port.
    #[arg(long, default_value_t = 69)]
    pub tftp_port: u16,
    /// The server's HTTP port (iPXE scripts).
    #[arg(long, default_value_t = 7080)]
    pub http_port: u16,
    /// The server's gRPC port (device discovery, workflows).
    #[arg(long, default_value_t = 42113)]
    pub grpc_port: u16,
    /// Actions per workflow (the template the provisioner was given).
    #[arg(long, default_value_t = 3)]
    pub actions: u64,
    /// Names this run in the report.
    #[arg(long, default_value = "provisioner")]
    pub label: String,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("pxe-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Ok(false): the run completed with failed nodes or lost reports.
fn run(args: Args) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(load(Arc::new(args.clone())))?;
    summary.print();
    let json = summary.json();
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(json["failed"] == 0 && json["reports_lost"] == 0)
}

async fn load(args: Arc<Args>) -> anyhow::Result<stats::Summary> {
    let hub = dhcp::Hub::bind(&args.interface).await?;
    let started = Instant::now();
    let spacing =
        Duration::from_millis(args.ramp_ms) / u32::try_from(args.nodes.max(1)).unwrap_or(u32::MAX);
    let tasks: Vec<_> = (0..args.nodes)
        .map(|index| {
            let node = node::Node::new(index, args.first_ip);
            let (hub, args) = (Arc::clone(&hub), Arc::clone(&args));
            let delay = spacing * u32::try_from(index).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                node.boot(hub, args).await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.context("a simulated node's task panicked")?);
    }
    Ok(stats::Summary {
        label: args.label.clone(),
        nodes: args.nodes,
        wall: started.elapsed(),
        outcomes,
    })
}
