//! DHCP for network boot. PLACEHOLDER: the contract below is fixed; bodies are being written.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// What the server does.
#[derive(Debug, Clone)]
pub enum Mode {
    /// proxyDHCP (PXE spec): answer PXE clients' DISCOVERs with boot information only (no
    /// address), beside the site's own DHCP server; also the PXE boot server on port 4011.
    Proxy,
    /// A full DHCP server handing out addresses from a pool, with reservations.
    Full(FullConfig),
}

#[derive(Debug, Clone)]
pub struct FullConfig {
    pub pool_start: Ipv4Addr,
    pub pool_end: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_time: Duration,
    pub reservations: Vec<Reservation>,
}

#[derive(Debug, Clone)]
pub struct Reservation {
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Usually 0.0.0.0:67. Port 0 (tests) picks a free port.
    pub listen: SocketAddr,
    /// Bind to this interface only (SO_BINDTODEVICE), as a DHCP server on a multi-homed host must.
    pub interface: Option<String>,
    /// The provisioner's address on the boot network: server identifier (54), siaddr/next-server.
    pub server_ip: Ipv4Addr,
    pub mode: Mode,
    /// Client architecture (option 93) → boot file name on TFTP.
    pub boot_files: BootFiles,
}

/// Which iPXE binary each client architecture gets over TFTP.
#[derive(Debug, Clone)]
pub struct BootFiles {
    /// BIOS (arch 0): `undionly.kpxe`.
    pub bios: String,
    /// UEFI x86-64 (arch 7, 9): `ipxe.efi` (or `snponly.efi`).
    pub uefi_x64: String,
    /// Other architectures by number (e.g. 11 → `snp-arm64.efi`).
    pub other: Vec<(u16, String)>,
}

/// A PXE client as the request describes it.
#[derive(Debug, Clone)]
pub struct PxeClient {
    pub mac: String,
    /// Option 93.
    pub arch: Option<u16>,
    /// Option 97 (client machine identifier), as a lower-case UUID string.
    pub uuid: Option<String>,
    /// User class (77) "iPXE" or option 175 present: the client is iPXE already.
    pub is_ipxe: bool,
    /// giaddr, when a relay forwarded the request.
    pub relay: Option<Ipv4Addr>,
}

/// The provisioner's decision for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    /// Boot it: non-iPXE clients get the TFTP binary for their arch, iPXE clients `script_url`.
    Boot { script_url: String },
    /// Do not answer (admission control: unknown node and no default profile).
    Ignore { reason: String },
}

/// Asked once per PXE request; must be quick (it runs on the DHCP task).
pub trait BootPolicy: Send + Sync + 'static {
    fn decide(&self, client: &PxeClient) -> BootDecision;
}

/// Counters for the provisioner's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub offers: AtomicU64,
    pub acks: AtomicU64,
    pub naks: AtomicU64,
    pub ignored: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("{0}")]
    Placeholder(String),
}

/// A bound DHCP server.
pub struct Server;

impl Server {
    /// Binds the sockets (so "port in use" and "no such interface" surface at start-up).
    pub async fn bind(_config: Config) -> Result<Self, DhcpError> {
        todo!("bootkit-dhcp is being written")
    }
    /// The DHCP socket's address (67, or what port 0 picked).
    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }
    /// The PXE boot server socket (4011) in proxy mode.
    pub fn boot_server_addr(&self) -> Option<SocketAddr> {
        todo!()
    }
    /// Serves until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(
        self,
        _policy: Arc<dyn BootPolicy>,
        _counters: Arc<Counters>,
    ) -> Result<(), DhcpError> {
        todo!()
    }
}
