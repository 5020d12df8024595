//! The node-facing boot service: DHCP (bootkit-dhcp), TFTP (bootkit-tftp), the HTTP(S) iPXE
//! scripts, artifacts and metadata, and the syslog receiver (bootkit-syslog-receiver), on the
//! store.
//!
//! Boot flow: DHCP hands a PXE ROM the iPXE binary for its architecture (TFTP), and iPXE the
//! URL of `/ipxe/auto.ipxe`; that script chains to `/ipxe/boot.ipxe` with the node's identity,
//! which answers what this node boots (the profile's bootkit, its local disk, or nothing).

mod artifacts;
mod http;
pub mod http_boot;
mod metadata;
mod policy;
mod script;
mod served;
mod syslog_sink;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub use http::router;
pub use policy::StorePolicy;
pub use served::{BootContext, HttpCounters};
pub use syslog_sink::{SyslogSink, SyslogSinkCounters};

use crate::https::TlsFiles;

/// Where and how the boot service listens. `None` fields are off.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The provisioner's address as nodes reach it: in URLs, next-server, `grpc_authority`,
    /// `syslog_host`.
    pub advertise: Ipv4Addr,
    /// DHCP (proxy or full); None: the site's DHCP server answers alone.
    pub dhcp: Option<DhcpOptions>,
    /// TFTP for the iPXE binaries; None: no TFTP.
    pub tftp: Option<TftpOptions>,
    /// Plain HTTP for scripts, artifacts and metadata (Tinkerbell's 7080).
    pub http: Option<SocketAddr>,
    /// HTTPS for scripts and artifacts (Tinkerbell's 7443).
    pub https: Option<HttpsOptions>,
    /// UDP and TCP syslog (514).
    pub syslog: Option<SocketAddr>,
    /// Syslog over TLS (RFC 5425, 6514): the listener and the chain it presents (`serve`'s
    /// --tls-cert pair). Lines from a node's enrolled certificate go under that node.
    pub syslog_tls: Option<HttpsOptions>,
    /// The parameters put on every node's kernel command line.
    pub kernel: KernelOptions,
    /// Serve metadata to requests without a node certificate by their source address
    /// (`serve --metadata-by-address`: installed OSes' cloud-init; spoofable on a LAN).
    pub metadata_by_address: bool,
    /// UEFI HTTP boot: the site's UKI, handed by DHCP to `HTTPClient` x64 clients as
    /// [`http_boot::url`] (`serve --http-boot-uki`); None: such clients get no answer.
    pub http_boot_uki: Option<PathBuf>,
    /// iPXE's UEFI x86-64 clients chain [`Self::http_boot_uki`] over HTTP instead of the
    /// profile's kernel and initramfs (`serve --ipxe-uki`): under Secure Boot the firmware
    /// runs only binaries signed by a key in its db, which Debian's kernel is not. A flag of
    /// its own rather than implied by the UKI, as the node then boots the site's command line
    /// (no profile parameters, the MAC as worker id) and one bootkit for every profile; BIOS
    /// clients keep kernel and initramfs.
    pub ipxe_uki: bool,
}

impl BootOptions {
    /// Everything off but the address: callers switch on what they need.
    pub fn new(advertise: Ipv4Addr) -> Self {
        Self {
            advertise,
            dhcp: None,
            tftp: None,
            http: None,
            https: None,
            syslog: None,
            syslog_tls: None,
            kernel: KernelOptions::default(),
            metadata_by_address: false,
            http_boot_uki: None,
            ipxe_uki: false,
        }
    }
}

/// The DHCP listener of the boot service.
#[derive(Debug, Clone)]
pub struct DhcpOptions {
    /// Usually 0.0.0.0:67; port 0 (tests) picks a free port.
    pub listen: SocketAddr,
    /// Bind to this interface only (SO_BINDTODEVICE); None: every interface.
    pub interface: Option<String>,
    /// Proxy (boot options only, beside the site's DHCP) or full (addresses too).
    pub mode: bootkit_dhcp::Mode,
}

/// The TFTP listener of the boot service.
#[derive(Debug, Clone)]
pub struct TftpOptions {
    /// Usually 0.0.0.0:69; port 0 (tests) picks a free port.
    pub listen: SocketAddr,
    /// Holds the iPXE binaries (Debian's ipxe package: /usr/lib/ipxe).
    pub root: PathBuf,
}

/// A TLS listener of the boot service: HTTPS, or syslog over TLS.
#[derive(Debug, Clone)]
pub struct HttpsOptions {
    /// Usually 0.0.0.0:7443; port 0 (tests) picks a free port.
    pub listen: SocketAddr,
    /// The certificate chain and key it presents.
    pub tls: TlsFiles,
}

/// The provisioner's parameters on every node's kernel command line.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// One `console=` each, in order (the last one is /dev/console).
    pub consoles: Vec<String>,
    /// Whether the worker speaks TLS to the gRPC service.
    pub tinkerbell_tls: bool,
    /// `tinkerbell_ca_sha256=`: lowercase hex SHA-256 of the site CA certificate's DER, which
    /// the agents pin the gRPC chain to. `serve` sets it from the --tls-cert chain.
    pub tinkerbell_ca_sha256: Option<String>,
    /// `vlan_id=` on the command line: the VLAN the node's boot network is on; None: untagged.
    pub vlan_id: Option<u16>,
    /// Appended after the profile's own parameters.
    pub extra_args: String,
}

impl Default for KernelOptions {
    fn default() -> Self {
        Self {
            consoles: vec!["tty0".to_string(), "ttyS0,115200".to_string()],
            tinkerbell_tls: false,
            tinkerbell_ca_sha256: None,
            vlan_id: None,
            extra_args: String::new(),
        }
    }
}

/// The iPXE binaries a PXE ROM is handed over TFTP, by architecture.
pub const BIOS_BINARY: &str = "undionly.kpxe";
/// The iPXE binary of UEFI x86-64 clients.
pub const UEFI_X64_BINARY: &str = "ipxe.efi";

/// The boot files DHCP names; checked against the TFTP root at start-up.
pub fn boot_files() -> bootkit_dhcp::BootFiles {
    bootkit_dhcp::BootFiles {
        bios: BIOS_BINARY.to_string(),
        uefi_x64: UEFI_X64_BINARY.to_string(),
        other: Vec::new(),
    }
}

/// Refuses a TFTP root without the iPXE binaries DHCP will name, before any node asks.
pub fn check_tftp_root(root: &std::path::Path) -> anyhow::Result<()> {
    let missing: Vec<&str> = [BIOS_BINARY, UEFI_X64_BINARY]
        .into_iter()
        .filter(|name| !root.join(name).is_file())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the TFTP root {} lacks {}: install Debian's ipxe package (apt-get install ipxe) or pass \
         --tftp-root DIR holding the iPXE binaries",
        root.display(),
        missing.join(" and ")
    );
    Ok(())
}

/// Where nodes reach each service, known once every listener is bound (port 0 in tests).
#[derive(Debug, Clone)]
pub struct Advertised {
    /// The provisioner's address as nodes reach it.
    pub ip: Ipv4Addr,
    /// Port of the node-facing plain HTTP listener; None when it is off.
    pub http_port: Option<u16>,
    /// Port of the node-facing HTTPS listener; None when it is off.
    pub https_port: Option<u16>,
    /// Port of the gRPC service (workflows, onboarding).
    pub grpc_port: u16,
    /// Port of the syslog receiver (UDP and TCP); None when it is off.
    pub syslog_port: Option<u16>,
    /// Port of the syslog receiver's RFC 5425 TLS listener (`serve --syslog-tls`); None when
    /// it is off. When on, boot lines send syslog there (the node's certificate attributes
    /// the lines) instead of to [`Self::syslog_port`].
    pub syslog_tls_port: Option<u16>,
}

impl Advertised {
    /// `http://ip:port` of the plain HTTP listener; None when it is off.
    pub fn http_base(&self) -> Option<String> {
        self.http_port
            .map(|port| format!("http://{}:{port}", self.ip))
    }

    /// `https://ip:port` of the HTTPS listener; None when it is off.
    pub fn https_base(&self) -> Option<String> {
        self.https_port
            .map(|port| format!("https://{}:{port}", self.ip))
    }

    /// What DHCP hands iPXE clients: plain HTTP when served, since stock iPXE builds trust
    /// no private CA; HTTPS otherwise.
    pub fn script_url(&self) -> Option<String> {
        self.http_base()
            .or_else(|| self.https_base())
            .map(|base| format!("{base}/ipxe/auto.ipxe"))
    }

    /// What DHCP hands UEFI HTTP boot clients: plain HTTP when served (trusting a private
    /// CA over HTTPS needs the firmware's `TlsCaCertificate` variable set); HTTPS otherwise.
    pub fn http_boot_url(&self) -> Option<String> {
        self.http_base()
            .or_else(|| self.https_base())
            .map(|base| http_boot::url(&base))
    }

    /// `ip:port` of the gRPC service, as the worker's `grpc_authority` parameter.
    pub fn grpc_authority(&self) -> String {
        format!("{}:{}", self.ip, self.grpc_port)
    }
}
