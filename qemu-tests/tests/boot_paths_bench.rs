//! Issue 13 §3's measurement (run by bench/http_boot.sh; CI skips `bench_*`): the same
//! site UKI on the same UEFI machine, booted (a) by UEFI HTTP boot (OVMF's HttpBootDxe loads
//! the UKI named in the DHCP answer) and (b) by PXE → iPXE → UKI (OVMF's PXE loads Debian's
//! ipxe.efi over TFTP, iPXE's script chains the same UKI over HTTP: `--ipxe-uki`), one
//! provisioner serving both. Per boot it prints one `boot-path:` line: the time from the
//! firmware's line just before its first DHCP DISCOVER ("Start HTTP Boot over IPv4" /
//! "Start PXE over IPv4") to the init's first console line, and what the provisioner sent
//! (the change of its /metrics boot HTTP and TFTP byte counters, DHCP packets received
//! and iPXE scripts served). Each VM is stopped at
//! the init's first line; nothing is installed.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use common::site::{
    BRIDGE, NetworkBoot, Site, build_uki, prerequisites_present, uefi_network_boot_nic,
};
use qemu_tests::netns::NetNs;
use qemu_tests::pxe::BOOTKIT_STARTED;
use qemu_tests::vm::{OVMF_CODE, Vm, VmConfig, fresh_uefi_vars, scaled};

const SITE: Site = Site {
    subnet: "10.213.63",
};
/// Debian's ipxe package: the UEFI iPXE OVMF's PXE loads, and the BIOS one the TFTP root
/// must hold.
const IPXE_DIR: &str = "/usr/lib/ipxe";

/// One boot path: how the NIC is set up and the firmware's line before its first DHCP packet.
struct BootPath {
    name: &'static str,
    firmware_line: &'static str,
    network_boot: NetworkBoot,
}

const PATHS: [BootPath; 2] = [
    BootPath {
        name: "uefi-http",
        firmware_line: "Start HTTP Boot over IPv4",
        network_boot: NetworkBoot::HttpOnly,
    },
    BootPath {
        name: "pxe-ipxe",
        firmware_line: "Start PXE over IPv4",
        network_boot: NetworkBoot::Pxe,
    },
];

/// The provisioner's /metrics counters a boot moves, in the order of [`COUNTERS`].
type Counts = [u64; 4];
/// The /metrics counters each boot line reports the change of, under these names: bytes sent
/// over boot HTTP (the UKI; iPXE's scripts are counted apart) and TFTP, DHCP packets
/// received, iPXE scripts served.
const COUNTERS: [(&str, &str); 4] = [
    ("http_bytes", "provisioner_http_artifact_bytes_total"),
    ("tftp_bytes", "provisioner_tftp_sent_bytes_total"),
    ("dhcp_packets", "provisioner_dhcp_received_total"),
    ("ipxe_scripts", "provisioner_http_scripts_total"),
];

/// The [`COUNTERS`] now.
fn counts(ns: &NetNs) -> Result<Counts> {
    let mut counts = Counts::default();
    for (count, (_, metric)) in counts.iter_mut().zip(COUNTERS) {
        *count = SITE.metric(ns, metric)?;
    }
    Ok(counts)
}

#[test]
#[ignore = "bench (bench/http_boot.sh): needs root (network namespace, bridge) and QEMU"]
fn bench_uefi_http_boot_against_pxe_ipxe() -> Result<()> {
    if !prerequisites_present("boot paths bench", OVMF_CODE)? {
        return Ok(());
    }
    let runs: u32 = std::env::var("BENCH_RUNS")
        .ok()
        .map(|runs| runs.parse().context("BENCH_RUNS must be a number"))
        .transpose()?
        .unwrap_or(3);
    let (ns, placeholder) = SITE.namespace("bootpaths")?;
    let work_dir = placeholder.work_dir.clone();
    let tftp_root = work_dir.join("tftp");
    std::fs::create_dir_all(&tftp_root)?;
    for file in ["ipxe.efi", "undionly.kpxe"] {
        std::fs::copy(Path::new(IPXE_DIR).join(file), tftp_root.join(file))
            .with_context(|| format!("copying {IPXE_DIR}/{file} (the ipxe package)"))?;
    }
    let uki = work_dir.join("bootkit.efi");
    build_uki(&uki, &SITE.cmdline(), None)?;
    let _stack = SITE.start_ipxe_uki_stack(&ns, placeholder, &uki, &tftp_root)?;
    println!("boot-path: uki_bytes={}", std::fs::metadata(&uki)?.len());
    for run_index in 0..runs {
        for (path_index, path) in PATHS.iter().enumerate() {
            // A new MAC each boot: every boot is a first boot of an unknown machine.
            let mac = format!("52:54:00:63:{path_index:02x}:{run_index:02x}");
            let tap = format!("tapb{path_index}{run_index}");
            ns.add_tap(&tap, BRIDGE)?;
            let vars = work_dir.join(format!("OVMF_VARS-{}-{run_index}.fd", path.name));
            fresh_uefi_vars(&vars)?;
            let config = uefi_network_boot_nic(
                VmConfig::uefi(&format!("{}-{run_index}", path.name), vars).memory_mib(2048),
                &ns,
                &tap,
                &mac,
                path.network_boot,
            );
            let before = counts(&ns)?;
            let mut vm = Vm::boot(config)?;
            vm.wait_for(path.firmware_line, scaled(Duration::from_secs(120)))?;
            let dhcp_at = vm.elapsed();
            vm.wait_for(BOOTKIT_STARTED, scaled(Duration::from_secs(300)))?;
            let init_at = vm.elapsed();
            vm.kill();
            let after = counts(&ns)?;
            let moved: Vec<String> = COUNTERS
                .iter()
                .zip(after.iter().zip(before))
                .map(|((name, _), (after, before))| format!("{name}={}", after - before))
                .collect();
            println!(
                "boot-path: path={} run={} dhcp_to_init_ms={} {}",
                path.name,
                run_index + 1,
                (init_at - dhcp_at).as_millis(),
                moved.join(" ")
            );
        }
    }
    Ok(())
}
