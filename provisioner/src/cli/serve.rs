//! `provisioner serve`: every listener of the service, until SIGINT/SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bootkit_dhcp::{FullConfig, Mode, Reservation};
use provisioner::boot::{BootOptions, DhcpOptions, HttpsOptions, KernelOptions, TftpOptions};
use provisioner::https::TlsFiles;
use provisioner::limits::{self, Limits, RateLimit};
use provisioner::node_ca::NodeCa;
use provisioner::server::{Protocols, RunningServer, ServeOptions};
use provisioner::store::{ArtifactRoots, Identity, Store};

#[derive(clap::Args)]
#[command(after_help = "Examples:
  # admin API and page on loopback, no boot service (try the CLI and the API):
  provisioner serve --db prov.db --admin-token-file /etc/provisioner/admin-token
  # a site: proxyDHCP beside the site's DHCP server, TFTP, boot HTTP and syslog on 10.0.0.2:
  provisioner serve --db /var/lib/provisioner/provisioner.db --advertise 10.0.0.2 --dhcp proxy \\
    --grpc 0.0.0.0:42113 --tls-cert /etc/provisioner/server.pem --tls-key /etc/provisioner/server-key.pem \\
    --admin-token-file /etc/provisioner/admin-token")]
pub struct ServeArgs {
    /// gRPC listen address (workers and device discovery).
    #[arg(help_heading = "Network", long, default_value = "127.0.0.1:42113")]
    grpc: SocketAddr,
    /// Admin API listen address.
    #[arg(help_heading = "Network", long, default_value = "127.0.0.1:42114")]
    http: SocketAddr,
    /// PEM certificate chain, leaf then CA: serve gRPC over TLS (with --tls-key). Nodes'
    /// command lines pin its CA (tinkerbell_ca_sha256=).
    #[arg(help_heading = "TLS & trust", long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The worker protocols to speak.
    #[arg(help_heading = "gRPC", long, value_enum, default_value_t = Protocols::Both)]
    protocols: Protocols,
    /// PEM private key for --tls-cert.
    #[arg(help_heading = "TLS & trust", long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve workers that present no node certificate, for any worker id they name (upstream
    /// tink-agent and tink v0.12 workers, which cannot enroll). Off by default; needed for
    /// plaintext gRPC (no --tls-cert). Logged at start, on the page and in /metrics.
    #[arg(help_heading = "gRPC", long)]
    allow_unauthenticated_workers: bool,
    /// PEM node CA certificate: signs the client certificates nodes enroll for on the
    /// onboarding stream (with --node-ca-key; `provisioner init` writes node-ca.pem).
    #[arg(
        help_heading = "TLS & trust",
        long,
        value_name = "PATH",
        requires = "node_ca_key"
    )]
    node_ca_cert: Option<PathBuf>,
    /// PEM private key of --node-ca-cert (`provisioner init` writes node-ca-key.pem).
    #[arg(
        help_heading = "TLS & trust",
        long,
        value_name = "PATH",
        requires = "node_ca_cert"
    )]
    node_ca_key: Option<PathBuf>,
    /// How long an enrolled node's credential (certificate or client secret) is valid; until
    /// then, the node cannot enroll again without an operator's approval.
    #[arg(help_heading = "TLS & trust", long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    node_cert_lifetime: Duration,
    /// Directory of the files profiles name (kernel, initramfs, OS image); relative profile
    /// paths resolve here. Created 0755 if missing [default: <database dir>/artifacts].
    #[arg(help_heading = "Store & artifacts", long, value_name = "DIR")]
    artifacts_dir: Option<PathBuf>,
    /// One more directory profiles may name absolute paths under (repeatable).
    #[arg(
        help_heading = "Store & artifacts",
        long = "artifacts-root",
        value_name = "DIR"
    )]
    artifacts_roots: Vec<PathBuf>,
    #[command(flatten)]
    admin: super::admin::AdminArgs,
    #[command(flatten)]
    boot: BootArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Bounds and rate limits (see provisioner/README.md, "Limits").
#[derive(clap::Args)]
struct LimitArgs {
    /// The largest admin API request body, in bytes (413 beyond).
    #[arg(help_heading = "Limits", long, value_name = "BYTES", default_value_t = limits::DEFAULT_ADMIN_BODY_BYTES)]
    admin_body_limit: usize,
    /// The time budget of one admin API request (503 beyond).
    #[arg(help_heading = "Limits", long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    admin_request_timeout: Duration,
    /// The deepest nesting of YAML flow collections in an uploaded template (400 beyond).
    #[arg(help_heading = "Limits", long, value_name = "LEVELS", default_value_t = limits::DEFAULT_YAML_DEPTH)]
    yaml_depth_limit: usize,
    /// DHCP requests per client MAC: PER_SECOND/s:BURST, or off.
    #[arg(help_heading = "Limits", long, value_name = "RATE", default_value_t = RateLimit(Limits::default().dhcp_per_mac))]
    dhcp_rate_limit: RateLimit,
    /// Boot script requests per source IP: PER_SECOND/s:BURST, or off.
    #[arg(help_heading = "Limits", long, value_name = "RATE", default_value_t = RateLimit(Limits::default().boot_script_per_ip))]
    boot_script_rate_limit: RateLimit,
    /// Onboarding calls per source IP: PER_SECOND/s:BURST, or off.
    #[arg(help_heading = "Limits", long, value_name = "RATE", default_value_t = RateLimit(Limits::default().onboarding_per_ip))]
    onboarding_rate_limit: RateLimit,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            admin: limits::AdminLimits {
                body_bytes: self.admin_body_limit,
                request_timeout: self.admin_request_timeout,
                yaml_depth: self.yaml_depth_limit,
            },
            dhcp_per_mac: self.dhcp_rate_limit.0,
            boot_script_per_ip: self.boot_script_rate_limit.0,
            onboarding_per_ip: self.onboarding_rate_limit.0,
        }
    }
}

/// The node-facing boot service. On when --advertise is given.
#[derive(clap::Args)]
struct BootArgs {
    /// This host's address as nodes reach it (URLs, DHCP next-server, grpc_authority,
    /// syslog_host). Switches the boot service on.
    #[arg(help_heading = "Network", long, value_name = "IP")]
    advertise: Option<Ipv4Addr>,
    /// DHCP: proxyDHCP beside the site's DHCP server, a full server, or none.
    #[arg(help_heading = "DHCP", long, value_enum, default_value_t = DhcpMode::Off)]
    dhcp: DhcpMode,
    /// Serve DHCP on this interface only (needed on hosts with several).
    #[arg(help_heading = "DHCP", long, value_name = "IF")]
    dhcp_interface: Option<String>,
    /// The DHCP server's listen address.
    #[arg(
        help_heading = "DHCP",
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:67"
    )]
    dhcp_listen: SocketAddr,
    /// Full mode: the addresses handed out, e.g. 10.0.0.100-10.0.0.199.
    #[arg(help_heading = "DHCP", long, value_name = "START-END")]
    dhcp_pool: Option<Pool>,
    /// Full mode: the subnet mask handed out.
    #[arg(help_heading = "DHCP", long, value_name = "MASK")]
    dhcp_netmask: Option<Ipv4Addr>,
    /// Full mode: the default gateway handed out.
    #[arg(help_heading = "DHCP", long, value_name = "IP")]
    dhcp_router: Option<Ipv4Addr>,
    /// Full mode: DNS servers handed out (repeatable or comma-separated).
    #[arg(help_heading = "DHCP", long, value_name = "IP", value_delimiter = ',')]
    dhcp_dns: Vec<Ipv4Addr>,
    /// Full mode: lease time (e.g. 1h, 30m).
    #[arg(help_heading = "DHCP", long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    dhcp_lease_time: Duration,
    /// Full mode: CSV of fixed addresses, `mac,ip,hostname` (hostname optional).
    #[arg(help_heading = "DHCP", long, value_name = "FILE")]
    dhcp_reservations: Option<PathBuf>,
    /// Full mode: keep leases across restarts in this file.
    #[arg(help_heading = "DHCP", long, value_name = "FILE")]
    dhcp_lease_file: Option<PathBuf>,
    /// TFTP for the iPXE binaries: an address or `off` [default: 0.0.0.0:69 with --dhcp,
    /// else off].
    #[arg(help_heading = "TFTP", long, value_name = "ADDR|off")]
    tftp: Option<Listen>,
    /// Directory holding ipxe.efi and undionly.kpxe (Debian's ipxe package).
    #[arg(
        help_heading = "TFTP",
        long,
        value_name = "DIR",
        default_value = "/usr/lib/ipxe"
    )]
    tftp_root: PathBuf,
    /// HTTP for iPXE scripts, artifacts and metadata: an address or `off`
    /// [default: 0.0.0.0:7080 with --advertise].
    #[arg(help_heading = "Boot HTTP", long, value_name = "ADDR|off")]
    boot_http: Option<Listen>,
    /// HTTPS for iPXE scripts and artifacts (with --boot-tls-cert and --boot-tls-key).
    #[arg(help_heading = "Boot HTTP", long, value_name = "ADDR", requires_all = ["boot_tls_cert", "boot_tls_key"])]
    boot_https: Option<SocketAddr>,
    /// PEM certificate chain of --boot-https.
    #[arg(
        help_heading = "Boot HTTP",
        long,
        value_name = "PATH",
        requires = "boot_https"
    )]
    boot_tls_cert: Option<PathBuf>,
    /// PEM private key of --boot-tls-cert.
    #[arg(
        help_heading = "Boot HTTP",
        long,
        value_name = "PATH",
        requires = "boot_https"
    )]
    boot_tls_key: Option<PathBuf>,
    /// Syslog (UDP and TCP) from nodes, stored per node: an address or `off`
    /// [default: 0.0.0.0:514 with --advertise].
    #[arg(help_heading = "Syslog", long, value_name = "ADDR|off")]
    syslog: Option<Listen>,
    /// Syslog over TLS (RFC 5425) from nodes, e.g. 0.0.0.0:6514, presenting the --tls-cert
    /// chain. A node's enrolled certificate attributes its lines to it (checked against
    /// --node-ca-cert); lines without one go by address and are stored marked unauthenticated.
    #[arg(
        help_heading = "Syslog",
        long,
        value_name = "ADDR",
        requires = "tls_cert"
    )]
    syslog_tls: Option<SocketAddr>,
    /// A console= for nodes' kernels (repeatable; the last one is /dev/console).
    #[arg(help_heading = "Node kernel command line", long = "console", value_name = "CONSOLE", default_values_t = KernelOptions::default().consoles)]
    consoles: Vec<String>,
    /// Serve metadata/user-data to requests without a node certificate by their source
    /// address (installed OSes' cloud-init). Spoofable by anyone on the LAN: without it,
    /// metadata goes only to the node presenting its enrollment certificate over
    /// --boot-https.
    #[arg(help_heading = "Boot HTTP", long)]
    metadata_by_address: bool,
    /// Whether workers use TLS to reach gRPC [default: true with --tls-cert].
    #[arg(help_heading = "Node kernel command line", long, value_name = "BOOL")]
    tinkerbell_tls: Option<bool>,
    /// The VLAN nodes' bootkits put their interface on.
    #[arg(help_heading = "Node kernel command line", long, value_name = "ID", value_parser = clap::value_parser!(u16).range(1..=4094))]
    vlan_id: Option<u16>,
    /// Appended to every node's kernel command line.
    #[arg(
        help_heading = "Node kernel command line",
        long,
        value_name = "ARGS",
        default_value = ""
    )]
    extra_kernel_args: String,
    /// UEFI HTTP boot (no TFTP, no iPXE): DHCP hands `HTTPClient` x64 firmware the URL of
    /// this UKI, served at /httpboot/bootkit.efi. Build it for the site with
    /// `bootkit-build uki --cmdline "$(curl -s http://ADVERTISE:7080/httpboot/cmdline)"`
    /// (and --sign-key/--sign-cert for Secure Boot).
    #[arg(long, value_name = "FILE", help_heading = "UEFI HTTP boot")]
    http_boot_uki: Option<PathBuf>,
    /// iPXE's UEFI x86-64 clients chain the --http-boot-uki UKI over HTTP instead of the
    /// profile's kernel and initramfs, which Secure Boot refuses (Debian signs them, not the
    /// site's db key). The node boots the UKI's baked command line (under Secure Boot
    /// systemd-stub ignores the loader's), so bake in /httpboot/cmdline; profiles' command
    /// lines do not apply. BIOS clients keep kernel and initramfs.
    #[arg(long, help_heading = "UEFI HTTP boot", requires = "http_boot_uki")]
    ipxe_uki: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DhcpMode {
    /// proxyDHCP: boot options only, beside the site's DHCP server.
    Proxy,
    /// A full DHCP server handing out addresses (--dhcp-pool ...).
    Full,
    /// No DHCP.
    Off,
}

/// A listener flag's value: an address, or `off`.
#[derive(Debug, Clone, Copy)]
enum Listen {
    Off,
    At(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "off" {
            return Ok(Listen::Off);
        }
        text.parse()
            .map(Listen::At)
            .map_err(|_| format!("{text:?} is neither an address like 0.0.0.0:7080 nor `off`"))
    }
}

/// `flag` as given, or `default` when absent.
fn listen(flag: Option<Listen>, default: Option<SocketAddr>) -> Option<SocketAddr> {
    match flag {
        Some(Listen::Off) => None,
        Some(Listen::At(addr)) => Some(addr),
        None => default,
    }
}

#[derive(Debug, Clone, Copy)]
struct Pool {
    start: Ipv4Addr,
    end: Ipv4Addr,
}

impl FromStr for Pool {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = text
            .split_once('-')
            .and_then(|(start, end)| Some((start.trim().parse().ok()?, end.trim().parse().ok()?)));
        match parsed {
            Some((start, end)) if start <= end => Ok(Pool { start, end }),
            Some(_) => Err(format!("{text:?}: the pool's start comes after its end")),
            None => Err(format!(
                "{text:?} is not a range like 10.0.0.100-10.0.0.199"
            )),
        }
    }
}

impl BootArgs {
    fn any_boot_flag(&self) -> Option<&'static str> {
        [
            (self.dhcp != DhcpMode::Off, "--dhcp"),
            (self.tftp.is_some(), "--tftp"),
            (self.boot_http.is_some(), "--boot-http"),
            (self.boot_https.is_some(), "--boot-https"),
            (self.syslog.is_some(), "--syslog"),
            (self.syslog_tls.is_some(), "--syslog-tls"),
            (self.http_boot_uki.is_some(), "--http-boot-uki"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The boot service's options; `None` without --advertise.
    fn options(&self, grpc_tls: bool) -> anyhow::Result<Option<BootOptions>> {
        let Some(advertise) = self.advertise else {
            if let Some(flag) = self.any_boot_flag() {
                anyhow::bail!(
                    "{flag} needs --advertise IP: the address nodes reach this host at, which \
                     goes into their DHCP answers, boot scripts and kernel command lines"
                );
            }
            return Ok(None);
        };
        let dhcp = self.dhcp_options()?;
        let tftp_default = dhcp.is_some().then(|| SocketAddr::from(([0, 0, 0, 0], 69)));
        let https = match (self.boot_https, &self.boot_tls_cert, &self.boot_tls_key) {
            (Some(listen), Some(cert), Some(key)) => Some(HttpsOptions {
                listen,
                tls: TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                },
            }),
            _ => None,
        };
        Ok(Some(BootOptions {
            advertise,
            tftp: listen(self.tftp, tftp_default).map(|listen| TftpOptions {
                listen,
                root: self.tftp_root.clone(),
            }),
            dhcp,
            http: listen(self.boot_http, Some(SocketAddr::from(([0, 0, 0, 0], 7080)))),
            https,
            syslog: listen(self.syslog, Some(SocketAddr::from(([0, 0, 0, 0], 514)))),
            // serve() adds the --tls-cert pair, which is not a boot flag.
            syslog_tls: None,
            kernel: KernelOptions {
                consoles: self.consoles.clone(),
                tinkerbell_tls: self.tinkerbell_tls.unwrap_or(grpc_tls),
                // serve pins the --tls-cert chain's CA at start.
                tinkerbell_ca_sha256: None,
                vlan_id: self.vlan_id,
                extra_args: self.extra_kernel_args.clone(),
            },
            metadata_by_address: self.metadata_by_address,
            http_boot_uki: self.http_boot_uki()?,
            ipxe_uki: self.ipxe_uki,
        }))
    }

    /// --http-boot-uki, refused at start when it is not a file (rather than a 404 per node).
    fn http_boot_uki(&self) -> anyhow::Result<Option<PathBuf>> {
        let Some(uki) = &self.http_boot_uki else {
            return Ok(None);
        };
        anyhow::ensure!(
            uki.is_file(),
            "--http-boot-uki {}: no such file; build the site's UKI with `bootkit-build uki` \
             or give the path of an existing one",
            uki.display()
        );
        Ok(Some(uki.clone()))
    }

    fn dhcp_options(&self) -> anyhow::Result<Option<DhcpOptions>> {
        let mode = match self.dhcp {
            DhcpMode::Off => return Ok(None),
            DhcpMode::Proxy => {
                if self.dhcp_pool.is_some() || self.dhcp_reservations.is_some() {
                    anyhow::bail!(
                        "--dhcp-pool and --dhcp-reservations are for --dhcp full; proxyDHCP \
                         leaves addresses to the site's DHCP server"
                    );
                }
                Mode::Proxy
            }
            DhcpMode::Full => Mode::Full(self.full_config()?),
        };
        Ok(Some(DhcpOptions {
            listen: self.dhcp_listen,
            interface: self.dhcp_interface.clone(),
            mode,
        }))
    }

    fn full_config(&self) -> anyhow::Result<FullConfig> {
        let (Some(pool), Some(netmask)) = (self.dhcp_pool, self.dhcp_netmask) else {
            anyhow::bail!(
                "--dhcp full needs --dhcp-pool START-END and --dhcp-netmask MASK (the addresses \
                 to hand out)"
            );
        };
        let reservations = match &self.dhcp_reservations {
            Some(path) => read_reservations(path)?,
            None => Vec::new(),
        };
        Ok(FullConfig {
            pool_start: pool.start,
            pool_end: pool.end,
            netmask,
            router: self.dhcp_router,
            dns: self.dhcp_dns.clone(),
            lease_time: self.dhcp_lease_time,
            reservations,
            lease_file: self.dhcp_lease_file.clone(),
        })
    }
}

fn read_reservations(path: &Path) -> anyhow::Result<Vec<Reservation>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the DHCP reservations {} failed", path.display()))?;
    parse_reservations(&text)
        .with_context(|| format!("the DHCP reservations {} are not usable", path.display()))
}

/// `mac,ip[,hostname]` per line; blank lines, `#` comments and a `mac,...` header skipped.
fn parse_reservations(text: &str) -> anyhow::Result<Vec<Reservation>> {
    let mut reservations = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.is_empty() || line.starts_with('#') || fields[0].eq_ignore_ascii_case("mac") {
            continue;
        }
        let line_number = index + 1;
        let (mac, ip, hostname) = match fields.as_slice() {
            [mac, ip] => (*mac, *ip, None),
            [mac, ip, hostname] => (*mac, *ip, Some(*hostname).filter(|name| !name.is_empty())),
            _ => anyhow::bail!("line {line_number}: expected mac,ip[,hostname]"),
        };
        // Identity keeps well-formed MACs only, normalized.
        let Some(mac) = Identity::new(None, None, &[mac]).macs.pop() else {
            anyhow::bail!("line {line_number}, column mac: {mac:?} is not a MAC address");
        };
        let ip = ip.parse().map_err(|_| {
            anyhow::anyhow!("line {line_number}, column ip: {ip:?} is not an IPv4 address")
        })?;
        reservations.push(Reservation {
            mac,
            ip,
            hostname: hostname.map(str::to_string),
        });
    }
    Ok(reservations)
}

/// Creates the artifacts directory, records the roots for the CLI and the admin API, and logs
/// each stored profile whose files are outside them (served 403, not a failed start: an older
/// database may hold such profiles).
fn record_artifact_roots(
    store: &Store,
    dir: Option<PathBuf>,
    extra: Vec<PathBuf>,
) -> anyhow::Result<ArtifactRoots> {
    use std::os::unix::fs::DirBuilderExt;
    let roots = match dir {
        Some(dir) => ArtifactRoots::new(dir, extra),
        None => {
            let default = store.default_artifact_roots()?;
            ArtifactRoots::new(default.dir, extra)
        }
    };
    if !roots.dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&roots.dir)
            .with_context(|| {
                format!(
                    "creating the artifacts directory {}: pass --artifacts-dir DIR to use \
                     another one",
                    roots.dir.display()
                )
            })?;
    }
    store.set_artifact_roots(&roots)?;
    tracing::info!("profiles' files are served from {}", roots.describe());
    for profile in store.list_profiles()? {
        let files = [
            ("kernel", &profile.kernel),
            ("initramfs", &profile.initramfs),
            ("os_image", &profile.os_image),
        ];
        for (field, location) in files {
            if let Err(error) = roots.locate(field, location) {
                tracing::error!(
                    "profile {}'s {error}: nodes are refused this file until the profile is \
                     re-created",
                    profile.name
                );
            }
        }
    }
    Ok(roots)
}

/// Warns, naming the profile and the flag, about each stored profile this server cannot
/// serve as it was started: a file that is missing, or a file on this host while the boot
/// HTTP listener that serves files is off. Warnings, not a failed start: the operator may
/// be about to copy the file or fix the profile.
fn check_profiles(store: &Store, roots: &ArtifactRoots, boot: Option<&BootOptions>) {
    let profiles = match store.list_profiles() {
        Ok(profiles) => profiles,
        Err(error) => {
            tracing::warn!("the profiles could not be checked: {error}");
            return;
        }
    };
    let boot_http = boot.is_some_and(|boot| boot.http.is_some() || boot.https.is_some());
    for profile in profiles {
        let files = [
            ("kernel", &profile.kernel),
            ("initramfs", &profile.initramfs),
            ("os_image", &profile.os_image),
        ];
        for (field, location) in files {
            // Outside the roots: record_artifact_roots said so already.
            let Ok(Some(path)) = roots.locate(field, location) else {
                continue;
            };
            let file = path.root.join(&path.relative);
            if !file.is_file() {
                tracing::warn!(
                    "profile {}: its {field} {} does not exist: nodes with this profile fail \
                     to boot; copy the file there (--artifacts-dir is {}) or re-create the \
                     profile",
                    profile.name,
                    file.display(),
                    roots.dir.display()
                );
            }
            if !boot_http {
                tracing::warn!(
                    "profile {}: its {field} {} is a file on this host, which nodes fetch over \
                     boot HTTP, and boot HTTP is off: give --advertise IP (boot HTTP then listens \
                     on 0.0.0.0:7080; not --boot-http off), or use an http(s) URL in the profile",
                    profile.name,
                    file.display()
                );
            }
        }
    }
}

/// With the UKI served over HTTPS only, HTTP boot clients get an `https://` URL. Said at
/// start because the common firmware cannot fetch it: EDK2 2022.11 (Debian 12's OVMF)
/// offers only DHE and RSA key exchange with RSA certificates, and rustls does neither
/// (README, "UEFI HTTP boot"); the node then stops at "Could not retrieve NBP file size".
fn warn_https_only_http_boot(boot: &BootOptions) {
    if boot.http_boot_uki.is_some() && boot.http.is_none() && boot.https.is_some() {
        tracing::warn!(
            "--http-boot-uki is served over HTTPS only (--boot-http off): UEFI HTTP boot \
             clients get an https:// URL, which EDK2 firmware up to 2022.11 cannot fetch from \
             this server (it offers only DHE/RSA key exchange, rustls only ECDHE) and which \
             needs the site CA in the firmware's TlsCaCertificate variable; keep --boot-http \
             on for HTTP boot (Secure Boot still checks the UKI's signature)"
        );
    }
}

/// The status page's URL for the admin listener at `addr`: the advertised address (or
/// localhost) for a listener on every address, which a browser cannot open.
fn page_url(addr: SocketAddr, tls: bool, advertise: Option<Ipv4Addr>) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        advertise.map_or_else(|| "localhost".to_string(), |ip| ip.to_string())
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("{scheme}://{host}:{}/", addr.port())
}

pub fn serve(store: Store, args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(provisioner::log_lines::Escaped(std::io::stderr))
        .init();
    let roots = record_artifact_roots(
        &store,
        args.artifacts_dir.clone(),
        args.artifacts_roots.clone(),
    )?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let mut boot = args.boot.options(tls.is_some())?;
    check_profiles(&store, &roots, boot.as_ref());
    if let Some(boot) = &boot {
        warn_https_only_http_boot(boot);
    }
    if let (Some(boot), Some(listen), Some(tls)) = (&mut boot, args.boot.syslog_tls, &tls) {
        boot.syslog_tls = Some(HttpsOptions {
            listen,
            tls: tls.clone(),
        });
    }
    if boot.is_some() && args.grpc.ip().is_loopback() {
        tracing::warn!(
            "gRPC listens on {} only, which nodes cannot reach; pass --grpc 0.0.0.0:42113",
            args.grpc
        );
    }
    let options = ServeOptions {
        grpc: args.grpc,
        http: Some(args.http),
        tls,
        protocols: args.protocols,
        admin: args.admin.options()?,
        boot,
        node_ca: match (&args.node_ca_cert, &args.node_ca_key) {
            (Some(cert), Some(key)) => Some(Arc::new(
                NodeCa::load(cert, key)?.with_lifetime(args.node_cert_lifetime),
            )),
            _ => None,
        },
        allow_unauthenticated_workers: args.allow_unauthenticated_workers,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut server =
            RunningServer::start_limited(Arc::new(store), &options, &args.limits.limits()).await?;
        if let Some(addr) = server.http_addr {
            let url = page_url(addr, options.admin.tls.is_some(), args.boot.advertise);
            tracing::info!("status page and admin API at {url} (`provisioner login {url}`)");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_parse_with_header_comments_and_optional_hostnames() {
        let reservations = parse_reservations(
            "mac,ip,hostname\n# rack 1\nAA-BB-CC-DD-EE-01, 10.0.0.11, node-1\n\naa:bb:cc:dd:ee:02,10.0.0.12\n",
        )
        .unwrap();
        let summary: Vec<(String, String, Option<String>)> = reservations
            .into_iter()
            .map(|r| (r.mac, r.ip.to_string(), r.hostname))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "aa:bb:cc:dd:ee:01".into(),
                    "10.0.0.11".into(),
                    Some("node-1".into())
                ),
                ("aa:bb:cc:dd:ee:02".into(), "10.0.0.12".into(), None),
            ]
        );
    }

    #[test]
    fn a_bad_reservation_names_its_line_and_column() {
        let error =
            parse_reservations("aa:bb:cc:dd:ee:01,10.0.0.11\nnot-a-mac,10.0.0.12\n").unwrap_err();
        assert!(error.to_string().contains("line 2, column mac"), "{error}");
        let error = parse_reservations("aa:bb:cc:dd:ee:01,10.0.0.300\n").unwrap_err();
        assert!(error.to_string().contains("line 1, column ip"), "{error}");
    }

    #[test]
    fn pools_and_listen_flags_parse_or_say_what_is_expected() {
        let pool: Pool = "10.0.0.100-10.0.0.199".parse().unwrap();
        assert_eq!(
            (pool.start.to_string(), pool.end.to_string()),
            ("10.0.0.100".into(), "10.0.0.199".into())
        );
        assert!(
            "10.0.0.199-10.0.0.100"
                .parse::<Pool>()
                .unwrap_err()
                .contains("after its end")
        );
        assert!(matches!("off".parse::<Listen>(), Ok(Listen::Off)));
        assert!("7080".parse::<Listen>().unwrap_err().contains("nor `off`"));
    }
}
