//! DHCP for network boot: the provisioner's answer to PXE firmware and to iPXE.
//!
//! # Modes
//!
//! - [`Mode::Proxy`] — proxyDHCP (PXE spec 2.1, §2.2.3; what dnsmasq's
//!   `dhcp-range=…,proxy` does): the site's own DHCP server hands out addresses, this server
//!   only adds boot information. A PXE client's DISCOVER on port 67 gets an OFFER with
//!   `yiaddr` 0.0.0.0, server identifier (54) = `server_ip`, vendor class (60) `PXEClient`,
//!   its machine identifier (97) echoed, the boot file, and vendor option 43 with
//!   PXE_DISCOVERY_CONTROL bit 3 set ("take the boot file from this offer, skip boot-server
//!   discovery"). Firmware that still asks the boot server sends a REQUEST to port 4011
//!   (the PXE boot server, bound beside port 67); it gets an ACK with the boot file, sent
//!   back to where the request came from. A REQUEST on port 67 naming us as server
//!   (option 54) is ACKed the same way. No address is ever handed out, and non-PXE DHCP
//!   traffic is ignored.
//! - [`Mode::Full`] — a DHCP server (RFC 2131) with a pool and reservations by MAC:
//!   DISCOVER → OFFER, REQUEST → ACK/NAK, RELEASE, DECLINE, INFORM. PXE clients get the
//!   same boot information in their OFFER/ACK; other clients get an address only. Bound
//!   leases survive a restart when [`FullConfig::lease_file`] is set.
//!
//! # Which boot file
//!
//! A client is a network-boot client when its vendor class (60) starts with `PXEClient` or
//! `HTTPClient`. Its architecture (93) picks the iPXE binary, as Tinkerbell smee does:
//! 0–5 and 20 → BIOS ([`BootFiles::bios`]), 6–9, 15 and 16 → UEFI x86 ([`BootFiles::uefi_x64`]),
//! anything else from [`BootFiles::other`], or no answer. The binary goes over TFTP:
//! `siaddr` = `server_ip`, file field and option 67 = the binary, option 66 = `server_ip`.
//! A UEFI HTTP boot client (vendor class `HTTPClient`, architecture 16 = x64 UEFI HTTP; UEFI
//! spec 2.10 §24.7, EDK2's HttpBootDxe) gets no TFTP and no iPXE: its OFFER/ACK carries
//! option 60 `HTTPClient` (HttpBootDxe treats only such offers as HTTP boot offers) and the
//! [`BootPolicy::http_boot_url`] URL as option 67 and in the file field, no option 66; in
//! proxy mode the site's DHCP server gives the address and this server's offer (`yiaddr`
//! 0.0.0.0) the URL, which HttpBootDxe combines ("DHCP only" + "proxy IP URI"). Other
//! `HTTPClient` architectures get no answer; when the policy has no URL for the client, full
//! mode gives it an address only (the firmware then moves on to its next boot entry at once).
//! A client that is iPXE already (user class 77 `iPXE`, or iPXE's option 175) gets the
//! [`BootDecision::Boot`] script URL as its boot file instead, so it never chainloads iPXE in
//! a loop. [`BootPolicy::decide`] is asked once per request; `Ignore` means no answer
//! (admission control).
//!
//! # Option 97 byte order
//!
//! The PXE spec does not say how the 16-byte GUID in option 97 is ordered; RFC 4578 points
//! at the EFI/SMBIOS layout, where the first three fields are little-endian, and iPXE
//! encodes it that way on purpose (`uuid_mangle` before storing option 97); PXE ROMs copy
//! the SMBIOS bytes, which have the same layout. [`PxeClient::uuid`] therefore swaps the
//! first three fields back, giving the same string as Linux's
//! `/sys/class/dmi/id/product_uuid` (what device discovery reports).
//!
//! # Replies
//!
//! A relayed request (giaddr set) is answered by unicast to giaddr:67 with giaddr kept and
//! option 82 echoed; otherwise a client with an address (ciaddr) gets unicast to ciaddr:68
//! and one without gets a broadcast to 255.255.255.255:68 (a NAK is always broadcast).
//! Broadcasting needs a route for 255.255.255.255: set [`Config::interface`] on hosts
//! without a default route or with several interfaces. Malformed packets are counted in
//! [`Counters::errors`] and dropped.

mod boot;
mod client;
mod leasefile;
mod leases;
pub mod rate;
mod reply;
mod server;
mod socket;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[cfg(feature = "fuzzing")]
pub use server::Answerer;
pub use server::Server;

/// What the server does.
#[derive(Debug, Clone)]
pub enum Mode {
    /// proxyDHCP (PXE spec): answer PXE clients' DISCOVERs with boot information only (no
    /// address), beside the site's own DHCP server; also the PXE boot server on port 4011.
    Proxy,
    /// A full DHCP server handing out addresses from a pool, with reservations.
    Full(FullConfig),
}

/// The address pool and options of [`Mode::Full`].
#[derive(Debug, Clone)]
pub struct FullConfig {
    /// First address of the pool (inclusive).
    pub pool_start: Ipv4Addr,
    /// Last address of the pool (inclusive).
    pub pool_end: Ipv4Addr,
    /// Subnet mask given to clients (option 1).
    pub netmask: Ipv4Addr,
    /// Default gateway given to clients (option 3); None: no router option.
    pub router: Option<Ipv4Addr>,
    /// DNS servers given to clients (option 6), in order; empty: no DNS option.
    pub dns: Vec<Ipv4Addr>,
    /// How long a lease is granted for (option 51, whole seconds on the wire).
    pub lease_time: Duration,
    /// Reserved addresses may lie inside or outside the pool; the pool never hands them to
    /// another MAC.
    pub reservations: Vec<Reservation>,
    /// Where bound leases are kept across restarts (rewritten atomically on every change);
    /// `None` keeps them in memory only.
    pub lease_file: Option<PathBuf>,
}

/// A fixed address for one MAC, in [`FullConfig::reservations`].
#[derive(Debug, Clone)]
pub struct Reservation {
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The address this MAC always gets.
    pub ip: Ipv4Addr,
    /// Host name sent to the client (option 12); None: none sent.
    pub hostname: Option<String>,
}

/// What the DHCP server listens on and how it answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Usually 0.0.0.0:67. Port 0 (tests) picks a free port, and then the proxy-mode boot
    /// server picks a free port too instead of 4011.
    pub listen: SocketAddr,
    /// Bind to this interface only (SO_BINDTODEVICE), as a DHCP server on a multi-homed host must.
    pub interface: Option<String>,
    /// The provisioner's address on the boot network: server identifier (54), siaddr/next-server.
    pub server_ip: Ipv4Addr,
    /// Proxy (boot options only) or full (addresses too).
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
    /// The client's hardware address, lower-case `aa:bb:cc:dd:ee:ff`.
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
    Boot {
        /// The iPXE script iPXE clients chain-load (HTTP URL).
        script_url: String,
    },
    /// Do not answer (admission control: unknown node and no default profile).
    Ignore {
        /// Why, for the log.
        reason: String,
    },
}

/// Asked once per PXE request; must be quick (it runs on the DHCP task).
pub trait BootPolicy: Send + Sync + 'static {
    /// Decides whether and how `client` boots.
    fn decide(&self, client: &PxeClient) -> BootDecision;

    /// The `http://` URL of the EFI binary a UEFI HTTP boot client (vendor class
    /// `HTTPClient`, architecture 16) loads, asked after [`BootPolicy::decide`] said boot;
    /// `None` (the default): no HTTP boot for this client (off, or it should boot its disk):
    /// proxy mode does not answer it, full mode gives it an address only.
    fn http_boot_url(&self, client: &PxeClient) -> Option<String> {
        let _ = client;
        None
    }
}

/// Counters for the provisioner's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests, well-formed or not (replies heard on the wire are not counted).
    pub received: AtomicU64,
    /// DHCPOFFERs sent.
    pub offers: AtomicU64,
    /// DHCPACKs sent.
    pub acks: AtomicU64,
    /// DHCPNAKs sent.
    pub naks: AtomicU64,
    /// Requests deliberately left unanswered: policy said no, unknown architecture, pool
    /// exhausted, non-PXE traffic in proxy mode.
    pub ignored: AtomicU64,
    /// Malformed packets and failed sends.
    pub errors: AtomicU64,
    /// Requests dropped because their client MAC was over its rate limit
    /// ([`Server::limit_clients`]).
    pub rate_limited: AtomicU64,
}

/// Why the DHCP server cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The listening socket cannot be bound.
    #[error(
        "cannot bind the DHCP socket to {addr} (is another DHCP server, e.g. dnsmasq, running? ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    )]
    Bind {
        /// The address it was bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The socket cannot be tied to the configured interface (SO_BINDTODEVICE).
    #[error(
        "cannot bind the DHCP socket to interface {interface:?} (check the interface name with `ip link`; SO_BINDTODEVICE needs CAP_NET_RAW)"
    )]
    Interface {
        /// The interface name, as configured.
        interface: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The socket cannot be created or set up (reuse, broadcast, non-blocking) or has no local address.
    #[error("cannot set up the DHCP socket")]
    Socket(#[source] std::io::Error),
    /// Receiving failed while serving.
    #[error("DHCP socket failed while serving (restart the service)")]
    Serve(#[source] std::io::Error),
    /// The lease file exists but cannot be read.
    #[error("cannot read the DHCP lease file {path} (fix its permissions or remove it)")]
    LeaseFile {
        /// The lease file's path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The configuration contradicts itself (for example a pool whose start is after its end).
    #[error("invalid DHCP configuration: {0}")]
    Config(String),
}
