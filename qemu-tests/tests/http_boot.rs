//! Issue 13 §3 in QEMU: UEFI HTTP boot, no TFTP and no iPXE. OVMF's own network stack
//! (VirtioNetDxe + HttpBootDxe; the NIC has no iPXE option ROM, OVMF's PXE is switched off)
//! asks the provisioner's DHCP server (full mode, `--tftp off`) as an `HTTPClient`, gets
//! the URL of the site's UKI, loads it over HTTP and starts it; the bootkit's init must start,
//! device discovery must report the node, its workflow must install the test OS and reboot,
//! and the next HTTP boot (an address, no boot file: the node is provisioned) must fall
//! through to the installed disk.
//!
//! The UKI is built here with `bootkit-build uki` from out/pxe-bootkit and the site's
//! command line, which must be what the provisioner itself says to bake in
//! (`/httpboot/cmdline`).
//!
//! Needs root, and what scripts/setup.sh and scripts/build-bootkit.sh provide. Without them
//! the test says what is missing and passes, unless CI is set: then it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::site::{
    ADMIN_PORT, BRIDGE, GRPC_PORT, REGISTRY_PORT, Site, blank_disk, prerequisites_present,
};
use qemu_tests::netns::NetNs;
use qemu_tests::paths::builder_binary;
use qemu_tests::pxe::{self, BOOTKIT_STARTED};
use qemu_tests::stack::{StackOptions, pxe_bootkit_image};
use qemu_tests::vm::{OVMF_CODE, Vm, VmConfig, fresh_uefi_vars, scaled};

const SITE: Site = Site {
    subnet: "10.213.61",
};
const MAC: &str = "52:54:00:61:00:0d";
/// The node's blank disk, which the workflow writes the test OS image to.
const DISK_BYTES: u64 = 512 << 20;
/// What OVMF's HttpBootDxe prints when it starts (its boot option "UEFI HTTPv4").
const HTTP_BOOT_STARTED: &str = "Start HTTP Boot over IPv4";

fn build_uki(out: &Path, cmdline: &str) -> Result<()> {
    let bootkit = pxe_bootkit_image()?;
    let output = Command::new(builder_binary())
        .arg("uki")
        .arg("--kernel")
        .arg(&bootkit.kernel)
        .arg("--initrd")
        .arg(&bootkit.initrd)
        .args(["--cmdline", cmdline, "--out"])
        .arg(out)
        .output()
        .context("running bootkit-build uki")?;
    ensure!(
        output.status.success(),
        "bootkit-build uki failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots a machine"]
fn ovmf_http_boots_the_site_uki_without_tftp_installs_and_then_boots_its_disk() -> Result<()> {
    if !prerequisites_present("UEFI HTTP boot", OVMF_CODE)? {
        return Ok(());
    }
    let started = Instant::now();
    let ns = NetNs::create("httpboot")?;
    ns.add_bridge(BRIDGE, &format!("{}/24", SITE.ip()))?;

    let cmdline = SITE.cmdline();
    let placeholder = StackOptions::new(
        SITE.socket(REGISTRY_PORT),
        SITE.socket(GRPC_PORT),
        Vec::<String>::new(),
    )?;
    let work_dir: PathBuf = placeholder.work_dir.clone();
    let uki = work_dir.join("bootkit.efi");
    build_uki(&uki, &cmdline)?;
    let uki_bytes = std::fs::metadata(&uki)?.len();
    // No TFTP server at all: HTTP boot must not need one.
    let mut stack = SITE.start_stack(&ns, placeholder, &uki, &["--tftp", "off"])?;

    ns.add_tap("taph", BRIDGE)?;
    let disk = work_dir.join("disk-http.raw");
    blank_disk(&disk, DISK_BYTES)?;
    let vars = work_dir.join("OVMF_VARS-http.fd");
    fresh_uefi_vars(&vars)?;
    let config = VmConfig::uefi("http-boot-node", vars)
        .memory_mib(2048)
        .wrapped_in(&ns.exec_prefix())
        .arg("-netdev")
        .arg("tap,id=n0,ifname=taph,script=no,downscript=no")
        // romfile= : no iPXE ROM, OVMF's own VirtioNetDxe drives the NIC.
        .arg("-device")
        .arg(format!(
            "virtio-net-pci,netdev=n0,mac={MAC},romfile=,bootindex=1"
        ))
        // Only HTTP boot over IPv4 is offered: no PXE (which would need TFTP), no IPv6.
        .arg("-fw_cfg")
        .arg("name=opt/org.tianocore/IPv4PXESupport,string=no")
        .arg("-fw_cfg")
        .arg("name=opt/org.tianocore/IPv6Support,string=no")
        // After the install the node is given no boot file, and OVMF goes on to the disk.
        .boot_disk(&disk, 2)
        .allow_reboot();
    let mut vm = Vm::boot(config)?;
    vm.wait_for(HTTP_BOOT_STARTED, scaled(Duration::from_secs(120)))?;
    let http_boot_at = vm.elapsed();
    vm.wait_for(BOOTKIT_STARTED, scaled(Duration::from_secs(300)))?;
    let init_at = vm.elapsed();
    let status = stack.wait_for_node_seen(MAC, Duration::from_secs(300))?;
    let seen_at = vm.elapsed();
    eprintln!("node: {}", status.detail.lines().next().unwrap_or_default());

    let log = stack.provisioner_log();
    assert!(
        log.contains("/httpboot/bootkit.efi"),
        "the DHCP answer did not name the UKI's URL; provisioner log: {}",
        stack.work_dir().join("provisioner.log").display()
    );
    let metrics = ns.within(move || -> Result<String> {
        Ok(
            reqwest::blocking::get(format!("http://{}/metrics", SITE.socket(ADMIN_PORT)))?
                .text()?,
        )
    })??;
    // The UKI went over the boot HTTP listener, whole (HttpBootDxe: HEAD, then one GET).
    let served_bytes: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("provisioner_http_artifact_bytes_total "))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        served_bytes >= uki_bytes,
        "the boot HTTP listener sent {served_bytes} bytes, the UKI has {uki_bytes}"
    );
    eprintln!(
        "UKI {uki_bytes} bytes, {served_bytes} sent over HTTP; HTTP boot started {} s, init {} s, \
         node seen {} s after the VM started; test {} s",
        http_boot_at.as_secs(),
        init_at.as_secs(),
        seen_at.as_secs(),
        started.elapsed().as_secs()
    );
    // The default profile's workflow writes the test OS image and reboots; the next HTTP
    // boot gets an address but no boot file, so the firmware boots the installed disk.
    stack.wait_for_node_state(MAC, "provisioned", Duration::from_secs(600))?;
    let provisioned_at = vm.elapsed();
    vm.wait_for(pxe::INSTALLED_MARKER, scaled(Duration::from_secs(300)))?;
    let console = vm.console();
    assert_eq!(
        console.matches(BOOTKIT_STARTED).count(),
        1,
        "the bootkit ran more than once (an install loop): {}",
        vm.log_path().display()
    );
    assert_eq!(
        console.matches(HTTP_BOOT_STARTED).count(),
        2,
        "the firmware HTTP-booted once to install and once more before its disk"
    );
    eprintln!(
        "provisioned {} s, installed disk booted {} s after the VM started; test {} s",
        provisioned_at.as_secs(),
        vm.elapsed().as_secs(),
        started.elapsed().as_secs()
    );
    vm.kill();
    Ok(())
}
