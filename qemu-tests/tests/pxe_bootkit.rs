//! The PXE bootkit (out/pxe-bootkit) booted directly (QEMU -kernel/-initrd, no PXE yet)
//! against the provisioning stack on the host's loopback: containerd starts, device
//! discovery onboards the node, the tink-worker runs the profile's workflow (image2disk
//! writes the test OS image onto the VM's virtio disk, then the reboot action), the node ends
//! `provisioned` and the disk holds the image.
//!
//! QEMU, the registry and the provisioner all run in a network namespace the test creates
//! (only `lo` in it, no route out). The guest is on QEMU's user-mode network, where
//! `10.0.2.2` is the namespace's loopback: the stack listens there on the default ports and
//! the provisioner advertises `10.0.2.2`. (The restricted user network's guest forwards are
//! one connection each, not enough for gRPC clients that reconnect.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::paths::BUILD_CMD;
use qemu_tests::stack::{ProfileSetup, Stack, StackOptions, pxe_bootkit_image};
use qemu_tests::{NetNs, Vm, VmConfig, repo_root, require};

/// QEMU's MAC for the first NIC: the node's worker id.
const MAC: &str = "52:54:00:12:34:56";
/// The test OS image (scripts/build-bootkit.sh writes it; its .sha256sum sits beside it).
const TEST_OS: &str = "out/test-os/emt-test.raw";
const MIB: u64 = 1 << 20;

/// The host as the guest sees it on QEMU's user-mode network.
const HOST: &str = "10.0.2.2";
const REGISTRY_PORT: u16 = 5000;
const GRPC_PORT: u16 = 42113;
const ADMIN_PORT: u16 = 42114;
const HTTP_PORT: u16 = 7080;
const SYSLOG_PORT: u16 = 514;

#[test]
#[ignore = "needs root (network namespace, bridge) and QEMU: boots machines"]
fn the_pxe_bootkit_provisions_its_disk_and_reboots() -> Result<()> {
    let bootkit = pxe_bootkit_image()?;
    let raw = require("the test OS image", repo_root().join(TEST_OS), BUILD_CMD)?;
    let published = require(
        "the compressed test OS image",
        repo_root().join(format!("{TEST_OS}.zst")),
        BUILD_CMD,
    )?;

    let ns = NetNs::create("pxeboot")?;
    let local = |port: u16| format!("127.0.0.1:{port}");
    let profile = ProfileSetup::pxe_bootkit("default", published)?;
    let mut options = StackOptions::new(
        local(REGISTRY_PORT).parse()?,
        local(GRPC_PORT).parse()?,
        [
            "--grpc".to_string(),
            local(GRPC_PORT),
            "--http".into(),
            local(ADMIN_PORT),
            // The admin API is not what this test is about (and only the namespace reaches it).
            "--admin-insecure-no-auth".into(),
            "--advertise".into(),
            HOST.into(),
            "--boot-http".into(),
            local(HTTP_PORT),
            "--syslog".into(),
            local(SYSLOG_PORT),
            "--tftp".into(),
            "off".into(),
            // Plaintext gRPC: the node's worker presents no certificate here (the
            // provisioning test runs with TLS and node credentials).
            "--allow-unauthenticated-workers".into(),
        ],
    )?;
    options.serve_args.extend(profile.artifact_root_args());
    let mut stack = Stack::start(options, Some(&ns)).context("starting the provisioning stack")?;
    stack.setup_profile(&profile)?;

    let disk = stack.work_dir().join("disk.raw");
    File::create(&disk)?.set_len(256 * MIB)?;
    // Syslog is forwarded too, but behind the user network's NAT its lines arrive from
    // 127.0.0.1, which names no node: the bridged PXE test (provisioning.rs) checks node logs.
    let tinkerbell = format!(
        "grpc_authority={HOST}:{GRPC_PORT} worker_id={MAC} tinkerbell_tls=false \
         docker_registry={HOST}:{REGISTRY_PORT} insecure_registries={HOST}:{REGISTRY_PORT} \
         syslog_host={HOST} syslog_port={SYSLOG_PORT} syslog_transport=tcp"
    );
    let mut vm = Vm::boot(
        VmConfig::new("pxe_bootkit", bootkit.kernel, bootkit.initrd)
            .append(&bootkit.cmdline)
            .append_more(&tinkerbell)
            // One vCPU: with two, TCG on a loaded host has left runc and the shim spinning in
            // the guest kernel (soft lockups) once in three runs.
            .memory_mib(2048)
            .wrapped_in(&ns.exec_prefix())
            .arg("-netdev")
            .arg("user,id=n0")
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,romfile=,mac={MAC}"))
            .virtio_disk(&disk),
    )?;

    vm.wait_for("containerd: ready", Duration::from_secs(240))?;
    stack
        .wait_for_node_seen(MAC, Duration::from_secs(240))
        .with_context(|| {
            format!(
                "device discovery did not report the node; console:\n{}",
                vm.tail()
            )
        })?;
    let listed = stack.cli(&["node", "list"])?;
    ensure!(
        listed.contains(MAC),
        "node list does not show {MAC}:\n{listed}"
    );

    stack
        .wait_for_provisioned(MAC, Duration::from_secs(900))
        .with_context(|| format!("console:\n{}", vm.tail()))?;
    // The reboot action: the worker reboots the node, and -no-reboot ends QEMU.
    vm.wait_exit(Duration::from_secs(120))
        .context("the node did not reboot after its workflow")?;
    drop(vm);

    same_partitions(&raw, &disk)?;
    Ok(())
}

/// The disk holds the image: its boot code and everything from the first partition (1 MiB)
/// to the image's backup GPT (the last MiB). The GPT headers differ by design: the installer
/// moves the backup header to the end of the larger disk.
fn same_partitions(image: &Path, disk: &Path) -> Result<()> {
    let length = std::fs::metadata(image)?.len();
    compare(image, disk, 0, 440).context("the MBR boot code differs")?;
    compare(image, disk, MIB, length - 2 * MIB).context("the partitions differ")
}

fn compare(image: &Path, disk: &Path, offset: u64, length: u64) -> Result<()> {
    let mut expected = File::open(image)?;
    let mut actual = File::open(disk)?;
    expected.seek(SeekFrom::Start(offset))?;
    actual.seek(SeekFrom::Start(offset))?;
    let mib = usize::try_from(MIB).unwrap();
    let (mut want, mut got) = (vec![0u8; mib], vec![0u8; mib]);
    let mut done = 0;
    while done < length {
        let chunk = (length - done).min(MIB) as usize;
        expected.read_exact(&mut want[..chunk])?;
        actual.read_exact(&mut got[..chunk])?;
        if want[..chunk] != got[..chunk] {
            bail!(
                "{} and {} differ in the MiB at byte {}",
                image.display(),
                disk.display(),
                offset + done
            );
        }
        done += chunk as u64;
    }
    Ok(())
}
