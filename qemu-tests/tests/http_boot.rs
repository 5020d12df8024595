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
//! Under Secure Boot (the second test) the site's key set from `bootkit-build keys` is
//! enrolled in OVMF's store, the UKI is signed with its db key, and the same HTTP boot must
//! start a kernel that reports Secure Boot on and get the bootkit ready.
//!
//! Needs root, and what scripts/setup.sh and scripts/build-bootkit.sh provide. Without them
//! the test says what is missing and passes, unless CI is set: then it fails.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::run;
use common::site::{
    ADMIN_PORT, BRIDGE, NetworkBoot, Site, blank_disk, build_uki, prerequisites_present,
    uefi_network_boot_nic,
};
use qemu_tests::SecureBootVars;
use qemu_tests::paths::builder_binary;
use qemu_tests::pxe::{self, BOOTKIT_STARTED};
use qemu_tests::secure_boot::REFUSED_MARKER;
use qemu_tests::vm::{OVMF_CODE, OVMF_CODE_SECBOOT, Vm, VmConfig, fresh_uefi_vars, scaled};

const SITE: Site = Site {
    subnet: "10.213.61",
};
const MAC: &str = "52:54:00:61:00:0d";
/// The node's blank disk, which the workflow writes the test OS image to.
const DISK_BYTES: u64 = 512 << 20;
/// What OVMF's HttpBootDxe prints when it starts (its boot option "UEFI HTTPv4").
const HTTP_BOOT_STARTED: &str = "Start HTTP Boot over IPv4";

#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots a machine"]
fn ovmf_http_boots_the_site_uki_without_tftp_installs_and_then_boots_its_disk() -> Result<()> {
    if !prerequisites_present("UEFI HTTP boot", OVMF_CODE)? {
        return Ok(());
    }
    let started = Instant::now();
    let (ns, placeholder) = SITE.namespace("httpboot")?;
    let cmdline = SITE.cmdline();
    let work_dir: PathBuf = placeholder.work_dir.clone();
    let uki = work_dir.join("bootkit.efi");
    build_uki(&uki, &cmdline, None)?;
    let uki_bytes = std::fs::metadata(&uki)?.len();
    // No TFTP server at all: HTTP boot must not need one.
    let mut stack = SITE.start_stack(&ns, placeholder, &uki, &["--tftp", "off"])?;

    ns.add_tap("taph", BRIDGE)?;
    let disk = work_dir.join("disk-http.raw");
    blank_disk(&disk, DISK_BYTES)?;
    let vars = work_dir.join("OVMF_VARS-http.fd");
    fresh_uefi_vars(&vars)?;
    let config = uefi_network_boot_nic(
        VmConfig::uefi("http-boot-node", vars).memory_mib(2048),
        &ns,
        "taph",
        MAC,
        NetworkBoot::HttpOnly,
    )
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

/// The kernel's line when the firmware started it with Secure Boot on.
const SECURE_BOOT_ON: &str = "secureboot: Secure boot enabled";
/// The bootkit's line once its agents are up.
const BOOTKIT_READY: &str = "bootkit: ready in";

#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: HTTP-boots a Secure Boot machine (minutes under TCG)"]
fn ovmf_http_boots_the_signed_site_uki_under_secure_boot_to_the_bootkit_ready() -> Result<()> {
    if !prerequisites_present("UEFI HTTP boot under Secure Boot", OVMF_CODE_SECBOOT)? {
        return Ok(());
    }
    let started = Instant::now();
    let (ns, placeholder) = SITE.namespace("httpsecboot")?;
    let work_dir: PathBuf = placeholder.work_dir.clone();

    // The site's key set, as an operator makes it, enrolled in the node's firmware; the UKI
    // signed with its db key.
    let keys = work_dir.join("keys");
    run(
        &builder_binary().display().to_string(),
        &[
            "keys",
            "--out",
            &keys.display().to_string(),
            "--common-name",
            "bootkit HTTP boot test",
        ],
    )?;
    let vars = SecureBootVars::enroll(&keys, &work_dir.join("OVMF_VARS.secboot.fd"))?;
    let (db_key, db_cert) = (keys.join("db.key"), keys.join("db.crt"));
    let uki = work_dir.join("bootkit.efi");
    build_uki(&uki, &SITE.cmdline(), Some((&db_key, &db_cert)))?;
    let _stack = SITE.start_stack(&ns, placeholder, &uki, &["--tftp", "off"])?;

    ns.add_tap("tapsbh", BRIDGE)?;
    let node_vars = vars.copy_for(&work_dir.join("OVMF_VARS.node.fd"))?;
    let config = uefi_network_boot_nic(
        VmConfig::uefi_secure_boot("http-secure-boot-node", node_vars).memory_mib(2048),
        &ns,
        "tapsbh",
        MAC,
        NetworkBoot::HttpOnly,
    );
    let mut vm = Vm::boot(config)?;
    vm.wait_for(HTTP_BOOT_STARTED, scaled(Duration::from_secs(120)))?;
    let (index, line) = vm.wait_for_any(
        &[BOOTKIT_READY, REFUSED_MARKER],
        scaled(Duration::from_secs(480)),
    )?;
    ensure!(
        index == 0,
        "the firmware did not HTTP-boot the signed UKI to the bootkit's ready line: {line}; \
         log: {}",
        vm.log_path().display()
    );
    ensure!(
        vm.console().contains(SECURE_BOOT_ON),
        "the kernel HTTP-booted from the signed UKI did not see Secure Boot on; log: {}",
        vm.log_path().display()
    );
    eprintln!(
        "bootkit ready {} s after the VM started; test {} s",
        vm.elapsed().as_secs(),
        started.elapsed().as_secs()
    );
    vm.kill();
    Ok(())
}
