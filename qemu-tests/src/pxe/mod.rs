//! Issue 6 end to end: PXE provisioning of three machines in QEMU, shared by
//! `tests/provisioning.rs` and the demo (`pxe-demo`, run by scripts/demo.sh).
//!
//! The site, all inside network namespaces the scenario creates (no route out):
//!
//! ```text
//!  namespace "pxe": bridge br0 10.213.60.1/24
//!   ├── provisioner serve (boot service: proxyDHCP, TFTP, HTTP, syslog; gRPC; admin API)
//!   ├── docker-registry 10.213.60.1:5000 with the action images       (both: crate::stack)
//!   ├── tap → VM A  SeaBIOS + iPXE ROM, registered by serial  → profile `edge`
//!   ├── tap → VM B  OVMF (UEFI),        registered by MAC     → profile `edge`
//!   ├── tap → VM C  OVMF (UEFI),        not registered        → profile `bootkit` (default)
//!   └── veth → namespace "site": dnsmasq 10.213.60.2, the site's DHCP server (addresses only)
//! ```
//!
//! The provisioner runs in proxyDHCP mode beside the site's DHCP server (OEP's design). Each
//! machine PXE-boots the bootkit (out/pxe-bootkit), is discovered, runs its profile's
//! workflow (image2disk writes the test OS image to its disk, then a reboot), PXE-boots again,
//! is answered with "boot your local disk" (no install loop), and boots its installed disk:
//! the test OS prints [`INSTALLED_MARKER`] and powers off. Then the provisioner must show each
//! node provisioned, with the right profile and identity, a timeline with `local-boot`, and
//! logs.
//!
//! Node trust is on as a site runs it by default (issue 15): `provisioner init` makes the
//! site CA and the node CA, gRPC serves TLS with the chain and without
//! `--allow-unauthenticated-workers`; the boot script pins the site CA
//! (`tinkerbell_ca_sha256=`), device discovery enrolls for a client certificate and the
//! tink-worker presents it. Each node must then hold an active certificate, and no call of
//! its agents may have been refused as unauthenticated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod admin;
mod checks;
mod fleet;

use admin::AdminApi;

use crate::error::{Error, Result};
use crate::netns::{Daemon, NetNs};
use crate::paths::{BUILD_CMD, SETUP_CMD, builder_binary, require, require_kernel_deb, target_dir};
use crate::stack::{ProfileSetup, Stack, StackOptions};
use crate::vm::OVMF_CODE;

/// What the installed test OS prints on its console when it boots from the disk.
pub const INSTALLED_MARKER: &str = "PXE-TEST-OS: booted from the installed disk";
/// The bootkit's init says this first, once per boot.
pub const BOOTKIT_STARTED: &str = "bootkit: starting in";
/// The profile of the two registered machines.
pub const REGISTERED_PROFILE: &str = "edge";
/// The default profile, for machines nobody registered.
pub const DEFAULT_PROFILE: &str = "bootkit";

const BRIDGE: &str = "br0";
const PROVISIONER_IP: &str = "10.213.60.1";
const PREFIX_LEN: u8 = 24;
const SITE_DHCP_CIDR: &str = "10.213.60.2/24";
/// dnsmasq's `--dhcp-range`: the site hands out addresses only, no PXE options.
const SITE_DHCP_RANGE: &str = "10.213.60.100,10.213.60.199,255.255.255.0,1h";
const REGISTRY_PORT: u16 = 5000;
const GRPC_PORT: u16 = 42113;
const ADMIN_PORT: u16 = 42114;

/// Legacy BIOS or UEFI firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// SeaBIOS; the NIC's iPXE option ROM network-boots.
    Bios,
    /// OVMF; the NIC's iPXE EFI driver network-boots.
    Uefi,
}

/// How the provisioner knows a machine before it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Registered by its SMBIOS serial.
    BySerial,
    /// Registered by its MAC.
    ByMac,
    /// Not at all: it gets the default profile.
    None,
}

/// One machine of the scenario.
#[derive(Debug, Clone)]
pub struct Machine {
    /// A, B, C: names the VM, its tap and its console log.
    pub name: &'static str,
    /// BIOS or UEFI.
    pub platform: Platform,
    /// The NIC's MAC, `52:54:00:...`.
    pub mac: &'static str,
    /// SMBIOS type 1 (`-smbios type=1,serial=...,uuid=...`).
    pub serial: &'static str,
    /// SMBIOS type 1 UUID.
    pub uuid: &'static str,
    /// How the provisioner knows it before it boots.
    pub registration: Registration,
}

impl Machine {
    /// The profile the provisioner must give it.
    pub fn expected_profile(&self) -> &'static str {
        match self.registration {
            Registration::BySerial | Registration::ByMac => REGISTERED_PROFILE,
            Registration::None => DEFAULT_PROFILE,
        }
    }

    fn vm_name(&self) -> String {
        format!("pxe-node-{}", self.name.to_ascii_lowercase())
    }

    fn tap(&self) -> String {
        format!("tap{}", self.name.to_ascii_lowercase())
    }

    /// "A (BIOS, by serial)".
    pub fn label(&self) -> String {
        let firmware = match self.platform {
            Platform::Bios => "BIOS",
            Platform::Uefi => "UEFI",
        };
        let registration = match self.registration {
            Registration::BySerial => "by serial",
            Registration::ByMac => "by MAC",
            Registration::None => "unregistered",
        };
        format!("{} ({firmware}, {registration})", self.name)
    }
}

/// The scenario's three machines.
pub fn machines() -> [Machine; 3] {
    [
        Machine {
            name: "A",
            platform: Platform::Bios,
            mac: "52:54:00:60:00:0a",
            serial: "PXE-A-0001",
            uuid: "6e0d6a1a-0000-4000-8000-00000000000a",
            registration: Registration::BySerial,
        },
        Machine {
            name: "B",
            platform: Platform::Uefi,
            mac: "52:54:00:60:00:0b",
            serial: "PXE-B-0002",
            uuid: "6e0d6a1a-0000-4000-8000-00000000000b",
            registration: Registration::ByMac,
        },
        Machine {
            name: "C",
            platform: Platform::Uefi,
            mac: "52:54:00:60:00:0c",
            serial: "PXE-C-0003",
            uuid: "6e0d6a1a-0000-4000-8000-00000000000c",
            registration: Registration::None,
        },
    ]
}

/// How the scenario runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Machines running at once; the others start as earlier ones finish.
    pub jobs: usize,
    /// Print each machine's steps on stderr as they happen.
    pub show_progress: bool,
}

impl Options {
    /// `BOOTKIT_PXE_JOBS` machines at once (default: all three). Measured on a 2-core machine
    /// (TCG, 1 vCPU each): three at once take 88 to 114 s in all, one at a time 201 s; the
    /// machines mostly wait (firmware, DHCP, downloads), so overlapping them pays.
    pub fn from_env() -> Options {
        let jobs = std::env::var("BOOTKIT_PXE_JOBS")
            .ok()
            .and_then(|value| value.trim().parse::<usize>().ok())
            .filter(|&jobs| jobs > 0)
            .unwrap_or(3);
        Options {
            jobs,
            show_progress: false,
        }
    }
}

/// A step of a machine's provisioning, in the order they happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The firmware's network boot asked for an address.
    Pxe,
    /// The bootkit's init started.
    Bootkit,
    /// Device discovery reported the node to the provisioner.
    Discovered,
    /// The workflow reached this action, as the admin API shows it ("1/2: stream-os-image").
    Action(String),
    /// The machine network-boots a second time.
    Reboot,
    /// The provisioner answered that boot with its local disk.
    LocalBoot,
    /// The installed system printed its marker.
    LocalDisk,
    /// The provisioner shows the node provisioned.
    Provisioned,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Pxe => f.write_str("PXE"),
            Step::Bootkit => f.write_str("bootkit"),
            Step::Discovered => f.write_str("discovered"),
            Step::Action(action) => f.write_str(action),
            Step::Reboot => f.write_str("reboot"),
            Step::LocalBoot => f.write_str("local-boot script"),
            Step::LocalDisk => f.write_str("local disk"),
            Step::Provisioned => f.write_str("provisioned"),
        }
    }
}

/// What happened to one machine, with times since its VM started.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The machine.
    pub machine: Machine,
    /// Each step seen and when, since its VM started, in order.
    pub steps: Vec<(Step, Duration)>,
    /// The VM's console log.
    pub console_log: PathBuf,
}

impl NodeReport {
    /// When `step` happened, if it did.
    pub fn time_of(&self, step: &Step) -> Option<Duration> {
        self.steps
            .iter()
            .find(|(seen, _)| seen == step)
            .map(|(_, at)| *at)
    }

    /// "node A (BIOS, by serial): PXE 14 s → bootkit 61 s → ...".
    pub fn summary(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(step, at)| format!("{step} {} s", at.as_secs()))
            .collect();
        format!("node {}: {}", self.machine.label(), steps.join(" → "))
    }
}

/// The scenario's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// One report per machine.
    pub nodes: Vec<NodeReport>,
    /// From the namespace's creation to the last check.
    pub total: Duration,
    /// `provisioner node list` at the end.
    pub node_table: String,
    /// The stack's directory: database, provisioner, registry and dnsmasq logs.
    pub work_dir: PathBuf,
}

/// What is missing to run the scenario, each with the command that provides it; empty when
/// everything is there.
pub fn missing_prerequisites() -> Vec<String> {
    let mut checks: Vec<(&str, PathBuf, &str)> = vec![
        (
            "the PXE bootkit",
            crate::repo_root()
                .join(crate::stack::PXE_BOOTKIT_DIR)
                .join("initramfs"),
            BUILD_CMD,
        ),
        (
            "the release provisioner",
            crate::stack::provisioner_binary(),
            BUILD_CMD,
        ),
        ("bootkit-build", builder_binary(), BUILD_CMD),
        (
            "the static bootkit-install",
            crate::installer_binary(),
            BUILD_CMD,
        ),
        ("the Debian kernel package", crate::kernel_deb(), SETUP_CMD),
        (
            "Debian's docker-registry",
            PathBuf::from(crate::stack::REGISTRY_PROGRAM),
            SETUP_CMD,
        ),
        (
            "dnsmasq (dnsmasq-base)",
            PathBuf::from("/usr/sbin/dnsmasq"),
            SETUP_CMD,
        ),
        ("OVMF", PathBuf::from(OVMF_CODE), SETUP_CMD),
        (
            "iPXE (ipxe)",
            PathBuf::from("/usr/lib/ipxe/ipxe.efi"),
            SETUP_CMD,
        ),
        (
            "iPXE (ipxe)",
            PathBuf::from("/usr/lib/ipxe/undionly.kpxe"),
            SETUP_CMD,
        ),
        (
            "iPXE's QEMU ROMs (ipxe-qemu)",
            PathBuf::from("/usr/lib/ipxe/qemu/efi-virtio.rom"),
            SETUP_CMD,
        ),
    ];
    checks.retain(|(_, path, _)| !path.exists());
    checks
        .into_iter()
        .map(|(what, path, how)| format!("{what}: {} (from {how})", path.display()))
        .collect()
}

/// Runs the whole scenario; `Err` says which machine failed where, with its console log.
pub fn run(options: &Options) -> Result<Report> {
    let started = Instant::now();
    let say = |line: &str| {
        if options.show_progress {
            eprintln!("{line}");
        }
    };
    let os_image = test_os_image()?;
    say(&format!("OS image: {}", os_image.display()));

    // Declared first, dropped last: after the VMs and servers that run in them.
    let site_ns = NetNs::create("site")?;
    let ns = NetNs::create("pxe")?;
    ns.add_bridge(BRIDGE, &format!("{PROVISIONER_IP}/{PREFIX_LEN}"))?;
    ns.add_veth_to(BRIDGE, &site_ns, "eth0", SITE_DHCP_CIDR)?;

    let mut stack_options =
        StackOptions::new(socket(REGISTRY_PORT), socket(GRPC_PORT), serve_args())?;
    let work_dir = stack_options.work_dir.clone();
    let (api, admin_flags) = AdminApi::create(&ns, socket(ADMIN_PORT), &work_dir)?;
    stack_options.serve_args.extend(admin_flags);
    stack_options.serve_args.extend(site_pki(&work_dir)?);
    // The profiles name the bootkit in out/pxe-bootkit and the OS image beside the cached
    // image.
    let bootkit = ProfileSetup::pxe_bootkit(DEFAULT_PROFILE, os_image.clone())?;
    stack_options
        .serve_args
        .extend(bootkit.artifact_root_args());
    let mut site_dhcp = site_dhcp(&site_ns, &work_dir)?;
    say("starting the registry and the provisioner (proxyDHCP beside the site's dnsmasq)");
    let mut stack = Stack::start(stack_options, Some(&ns))?;
    set_up_profiles(&stack, &os_image)?;
    let machines = machines();
    register(&stack, &machines)?;

    let context = fleet::Context {
        ns: &ns,
        work_dir: &work_dir,
        stack: &mut stack,
        site_dhcp: &mut site_dhcp,
        api: &api,
        say: &say,
    };
    let nodes = fleet::run(context, machines.to_vec(), options.jobs)?;
    for node in &nodes {
        checks::check_node(&api, node, stack.work_dir())?;
    }
    let node_table = stack.cli(&["node", "list"])?;
    let table_file = work_dir.join("nodes.txt");
    std::fs::write(&table_file, &node_table)
        .map_err(Error::io(format!("writing {}", table_file.display())))?;
    Ok(Report {
        nodes,
        total: started.elapsed(),
        node_table,
        work_dir,
    })
}

fn socket(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 213, 60, 1], port))
}

/// `provisioner init` in `work_dir/pki` (the site CA with a server certificate for the
/// bridge's address, and the node CA), and the flags that make `serve` use it: gRPC over TLS
/// with the chain, nodes enrolling for client certificates, and no unauthenticated workers
/// (`--allow-unauthenticated-workers` is not given), as a site runs by default.
fn site_pki(work_dir: &Path) -> Result<Vec<String>> {
    let pki = work_dir.join("pki");
    let output = Command::new(crate::stack::provisioner_binary())
        .arg("init")
        .arg("--dir")
        .arg(&pki)
        .args(["--ip", PROVISIONER_IP])
        .output()
        .map_err(Error::io("running `provisioner init`"))?;
    if !output.status.success() {
        return Err(Error::Other(format!(
            "provisioner init --dir {} failed ({}): {}",
            pki.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let file = |name: &str| pki.join(name).display().to_string();
    Ok(vec![
        "--tls-cert".to_string(),
        file("server.pem"),
        "--tls-key".to_string(),
        file("server-key.pem"),
        "--node-ca-cert".to_string(),
        file("node-ca.pem"),
        "--node-ca-key".to_string(),
        file("node-ca-key.pem"),
    ])
}

/// `provisioner serve`'s flags: everything node-facing on the bridge's address.
fn serve_args() -> Vec<String> {
    let registry = socket(REGISTRY_PORT);
    let flags = [
        ("--grpc", socket(GRPC_PORT).to_string()),
        ("--http", socket(ADMIN_PORT).to_string()),
        ("--advertise", PROVISIONER_IP.to_string()),
        ("--dhcp", "proxy".to_string()),
        ("--dhcp-interface", BRIDGE.to_string()),
        ("--tftp", "0.0.0.0:69".to_string()),
        ("--tftp-root", "/usr/lib/ipxe".to_string()),
        ("--boot-http", "0.0.0.0:7080".to_string()),
        ("--syslog", "0.0.0.0:514".to_string()),
        // Served: the boot line then sends syslog over TLS (RFC 5425) here, and the node's
        // certificate attributes the lines once it enrolled (earlier ones go by address).
        ("--syslog-tls", "0.0.0.0:6514".to_string()),
        (
            "--extra-kernel-args",
            format!("docker_registry={registry} insecure_registries={registry}"),
        ),
    ];
    flags
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
}

/// Debian's dnsmasq as the site's DHCP server in its own namespace: addresses only (no PXE
/// options, DNS off), so PXE clients get their boot file from the provisioner's proxyDHCP.
fn site_dhcp(site: &NetNs, work_dir: &Path) -> Result<Daemon> {
    let args: Vec<String> = vec![
        "--no-daemon".into(),
        "--conf-file=/dev/null".into(),
        "--pid-file=".into(),
        "--user=root".into(),
        "--port=0".into(),
        "--bind-interfaces".into(),
        "--interface=eth0".into(),
        "--no-ping".into(),
        "--log-dhcp".into(),
        format!("--dhcp-range={SITE_DHCP_RANGE}"),
        format!(
            "--dhcp-leasefile={}",
            work_dir.join("dnsmasq.leases").display()
        ),
        format!("--log-facility={}", work_dir.join("dnsmasq.log").display()),
    ];
    let mut daemon = site.spawn("the site's dnsmasq", "dnsmasq", &args)?;
    // A bad option or a busy port shows as an early exit.
    std::thread::sleep(Duration::from_millis(300));
    daemon.check_running()?;
    Ok(daemon)
}

/// The test OS image, built once into target/qemu-images/pxe-test-os with
/// `bootkit-build test-os-image` (again when bootkit-build is newer than it).
pub fn test_os_image() -> Result<PathBuf> {
    let builder = require("bootkit-build", builder_binary(), BUILD_CMD)?;
    let dir = target_dir().join("qemu-images").join("pxe-test-os");
    let image = dir.join("pxe-test-os.raw.zst");
    if image.exists() && !is_older(&image, &builder) {
        return Ok(image);
    }
    let output = Command::new(&builder)
        .arg("test-os-image")
        .arg("--kernel-deb")
        .arg(require_kernel_deb()?)
        .args([
            "--marker",
            INSTALLED_MARKER,
            "--name",
            "pxe-test-os",
            "--out",
        ])
        .arg(&dir)
        .output()
        .map_err(Error::io(format!("running {}", builder.display())))?;
    if !output.status.success() || !image.exists() {
        return Err(Error::Other(format!(
            "bootkit-build test-os-image failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(image)
}

fn is_older(file: &Path, than: &Path) -> bool {
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    match (modified(file), modified(than)) {
        (Some(file), Some(than)) => file < than,
        _ => true,
    }
}

/// `bootkit` (the default, for unregistered machines) and `edge` (for registered ones), both
/// the PXE bootkit and the test OS image; `edge` adds a kernel parameter, so the command
/// line shows which profile a machine booted.
fn set_up_profiles(stack: &Stack, os_image: &Path) -> Result<()> {
    let default = ProfileSetup::pxe_bootkit(DEFAULT_PROFILE, os_image.to_path_buf())?;
    stack.setup_profile(&default)?;
    let registered = ProfileSetup {
        name: REGISTERED_PROFILE.to_string(),
        cmdline: format!("bootkit.profile={REGISTERED_PROFILE}"),
        default: false,
        ..default
    };
    stack.setup_profile(&registered)
}

fn register(stack: &Stack, machines: &[Machine]) -> Result<()> {
    for machine in machines {
        let (flag, value) = match machine.registration {
            Registration::BySerial => ("--serial", machine.serial),
            Registration::ByMac => ("--mac", machine.mac),
            Registration::None => continue,
        };
        stack.cli(&[
            "node",
            "register",
            flag,
            value,
            "--profile",
            REGISTERED_PROFILE,
        ])?;
    }
    Ok(())
}
