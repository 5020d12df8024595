//! A provisioner site on a bridge in a network namespace, as the bridged boot-path tests
//! (UEFI HTTP boot, PXE under Secure Boot) set it up: full-mode DHCP on the bridge, the
//! default ports, a site-wide kernel command line baked into the UKI.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::NetNs;
use qemu_tests::pxe;
use qemu_tests::stack::{ProfileSetup, Stack, StackOptions};

/// The bridge the provisioner answers DHCP on and the node's tap joins.
pub const BRIDGE: &str = "br0";
pub const GRPC_PORT: u16 = 42113;
pub const ADMIN_PORT: u16 = 42114;
pub const BOOT_HTTP_PORT: u16 = 7080;
pub const REGISTRY_PORT: u16 = 5000;

/// A site on its own /24: the provisioner at `.1`, DHCP leases from `.100` to `.199`.
pub struct Site {
    /// The first three octets, e.g. `10.213.61`.
    pub subnet: &'static str,
}

impl Site {
    /// The provisioner's address, as nodes reach it.
    pub fn ip(&self) -> String {
        format!("{}.1", self.subnet)
    }

    pub fn socket(&self, port: u16) -> SocketAddr {
        format!("{}:{port}", self.ip())
            .parse()
            .expect("a subnet of three octets")
    }

    /// The site's kernel command line, as the README tells an operator to bake it into the
    /// UKI: the provisioner's addresses and the registry; the worker id is the node's MAC (the
    /// worker's fallback).
    pub fn cmdline(&self) -> String {
        let registry = self.socket(REGISTRY_PORT);
        format!(
            "grpc_authority={} syslog_host={} tinkerbell_tls=false \
             console=ttyS0,115200 docker_registry={registry} insecure_registries={registry}",
            self.socket(GRPC_PORT),
            self.ip()
        )
    }

    /// `provisioner serve` flags for this site, serving `uki` to UEFI HTTP boot clients; the
    /// caller adds its TFTP flags.
    pub fn serve_args(&self, uki: &Path) -> Vec<String> {
        let registry = self.socket(REGISTRY_PORT);
        let flags = [
            ("--grpc", self.socket(GRPC_PORT).to_string()),
            ("--http", self.socket(ADMIN_PORT).to_string()),
            ("--advertise", self.ip()),
            ("--dhcp", "full".to_string()),
            ("--dhcp-interface", BRIDGE.to_string()),
            ("--dhcp-pool", format!("{0}.100-{0}.199", self.subnet)),
            ("--dhcp-netmask", "255.255.255.0".to_string()),
            ("--boot-http", format!("0.0.0.0:{BOOT_HTTP_PORT}")),
            ("--syslog", "0.0.0.0:514".to_string()),
            ("--console", "ttyS0,115200".to_string()),
            (
                "--extra-kernel-args",
                format!("docker_registry={registry} insecure_registries={registry}"),
            ),
            ("--http-boot-uki", uki.display().to_string()),
        ];
        let mut args: Vec<String> = flags
            .into_iter()
            .flat_map(|(flag, value)| [flag.to_string(), value])
            .collect();
        // Plaintext gRPC: the worker has no pinned CA on a site-wide command line here.
        args.push("--allow-unauthenticated-workers".to_string());
        // The admin API (for /metrics) inside a namespace with no route out.
        args.push("--admin-insecure-no-auth".to_string());
        args
    }

    /// GET `path` on the boot HTTP listener from inside `ns`.
    pub fn boot_http_get(&self, ns: &NetNs, path: &str) -> Result<String> {
        let url = format!("http://{}{path}", self.socket(BOOT_HTTP_PORT));
        ns.within(move || -> Result<String> {
            let response = reqwest::blocking::get(&url)?.error_for_status()?;
            Ok(response.text()?)
        })?
    }

    /// Starts the stack in `ns` ([`Self::serve_args`] for `uki`, then `extra_flags`) with the
    /// default profile `bootkit`, which admits the unregistered node and installs the test OS
    /// image; checks that the site line the provisioner serves is the one `uki` was built with.
    pub fn start_stack(
        &self,
        ns: &NetNs,
        placeholder: StackOptions,
        uki: &Path,
        extra_flags: &[&str],
    ) -> Result<Stack> {
        let bootkit = ProfileSetup::pxe_bootkit("bootkit", pxe::test_os_image()?)?;
        let mut serve = self.serve_args(uki);
        serve.extend(extra_flags.iter().map(|flag| flag.to_string()));
        serve.extend(bootkit.artifact_root_args());
        let options = StackOptions {
            serve_args: serve,
            ..placeholder
        };
        let stack = Stack::start(options, Some(ns))?;
        stack.setup_profile(&bootkit)?;
        let served = self.boot_http_get(ns, "/httpboot/cmdline")?;
        ensure!(
            served.trim() == self.cmdline(),
            "the provisioner's site command line {:?} differs from the one baked into the UKI {:?}",
            served.trim(),
            self.cmdline()
        );
        Ok(stack)
    }
}

/// systemd's EFI stub, which `bootkit-build uki` builds the UKI from.
const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// Whether `test` can run: what the PXE scenario needs, systemd's EFI stub and the OVMF
/// build `firmware`. When something is missing it says what and returns false, unless CI is
/// set: then it fails.
pub fn prerequisites_present(test: &str, firmware: &str) -> Result<bool> {
    let mut missing = pxe::missing_prerequisites();
    for (what, path) in [
        ("systemd's EFI stub (systemd-boot-efi)", STUB),
        ("OVMF", firmware),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{what}: {path} (from scripts/setup.sh)"));
        }
    }
    if missing.is_empty() {
        return Ok(true);
    }
    let list = missing.join("\n  ");
    if std::env::var_os("CI").is_some() {
        bail!("the {test} test cannot run, missing:\n  {list}");
    }
    eprintln!("skipping the {test} test (CI is not set), missing:\n  {list}");
    Ok(false)
}

/// A blank disk of `bytes` at `path`, for the workflow to write the test OS image to.
pub fn blank_disk(path: &Path, bytes: u64) -> Result<()> {
    std::fs::File::create(path)
        .and_then(|file| file.set_len(bytes))
        .with_context(|| format!("creating the blank disk {}", path.display()))
}
