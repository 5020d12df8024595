//! A provisioner site on a bridge in a network namespace, as the bridged boot-path tests
//! (UEFI HTTP boot, PXE under Secure Boot) set it up: full-mode DHCP on the bridge, the
//! default ports, a site-wide kernel command line baked into the UKI.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::NetNs;
use qemu_tests::paths::builder_binary;
use qemu_tests::pxe;
use qemu_tests::stack::{ProfileSetup, Stack, StackOptions, pxe_bootkit_image};
use qemu_tests::vm::VmConfig;

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

    /// The value of the counter `name` on the admin API's `/metrics`, from inside `ns`.
    pub fn metric(&self, ns: &NetNs, name: &str) -> Result<u64> {
        let url = format!("http://{}/metrics", self.socket(ADMIN_PORT));
        let metrics = ns.within(move || -> Result<String> {
            Ok(reqwest::blocking::get(&url)?.error_for_status()?.text()?)
        })??;
        let value = metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .with_context(|| format!("the provisioner's /metrics has no {name}"))?;
        value
            .trim()
            .parse()
            .with_context(|| format!("{name} is not a count: {value:?}"))
    }

    /// A network namespace tagged `tag` with the site's bridge, and the stack options (its
    /// work directory among them) for [`Self::start_stack`].
    pub fn namespace(&self, tag: &str) -> Result<(NetNs, StackOptions)> {
        let ns = NetNs::create(tag)?;
        ns.add_bridge(BRIDGE, &format!("{}/24", self.ip()))?;
        let placeholder = StackOptions::new(
            self.socket(REGISTRY_PORT),
            self.socket(GRPC_PORT),
            Vec::<String>::new(),
        )?;
        Ok((ns, placeholder))
    }

    /// [`Self::start_stack`] with TFTP serving `tftp_root` (ipxe.efi and undionly.kpxe) and
    /// iPXE chaining the UKI (`--ipxe-uki`) instead of the profile's kernel and initramfs.
    pub fn start_ipxe_uki_stack(
        &self,
        ns: &NetNs,
        placeholder: StackOptions,
        uki: &Path,
        tftp_root: &Path,
    ) -> Result<Stack> {
        let tftp_root = tftp_root.display().to_string();
        self.start_stack(
            ns,
            placeholder,
            uki,
            &[
                "--tftp",
                "0.0.0.0:69",
                "--tftp-root",
                &tftp_root,
                "--ipxe-uki",
            ],
        )
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

/// Builds the UKI at `out` from out/pxe-bootkit with `cmdline`, signed with `signer`'s
/// (key, certificate) when given, as an operator does for Secure Boot.
pub fn build_uki(out: &Path, cmdline: &str, signer: Option<(&Path, &Path)>) -> Result<()> {
    let bootkit = pxe_bootkit_image()?;
    let mut command = Command::new(builder_binary());
    command
        .arg("uki")
        .arg("--kernel")
        .arg(&bootkit.kernel)
        .arg("--initrd")
        .arg(&bootkit.initrd)
        .args(["--cmdline", cmdline, "--out"])
        .arg(out);
    if let Some((key, cert)) = signer {
        command
            .arg("--sign-key")
            .arg(key)
            .arg("--sign-cert")
            .arg(cert);
    }
    let output = command.output().context("running bootkit-build uki")?;
    ensure!(
        output.status.success(),
        "bootkit-build uki failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// How a UEFI machine boots from the network: which of OVMF's IPv4 boot options is left on.
#[derive(Clone, Copy)]
pub enum NetworkBoot {
    /// UEFI HTTP boot only; OVMF's PXE (which would need TFTP) is switched off.
    HttpOnly,
    /// OVMF's PXE first, then HTTP boot.
    Pxe,
}

/// `config` with a virtio NIC on `tap` (MAC `mac`), first in the boot order, that OVMF boots
/// from as `boot` says: no iPXE option ROM (OVMF's own VirtioNetDxe drives it), no IPv6.
pub fn uefi_network_boot_nic(
    config: VmConfig,
    ns: &NetNs,
    tap: &str,
    mac: &str,
    boot: NetworkBoot,
) -> VmConfig {
    let ipv4_pxe = match boot {
        NetworkBoot::HttpOnly => "no",
        NetworkBoot::Pxe => "yes",
    };
    config
        .wrapped_in(&ns.exec_prefix())
        .arg("-netdev")
        .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
        .arg("-device")
        .arg(format!(
            "virtio-net-pci,netdev=n0,mac={mac},romfile=,bootindex=1"
        ))
        .arg("-fw_cfg")
        .arg(format!(
            "name=opt/org.tianocore/IPv4PXESupport,string={ipv4_pxe}"
        ))
        .arg("-fw_cfg")
        .arg("name=opt/org.tianocore/IPv6Support,string=no")
}
