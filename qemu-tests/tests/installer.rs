//! The USB installer for real: OVMF (UEFI) boots the stick that `bootkit-build` made (the
//! bootkit as a UKI in standalone mode, the EMT-like test OS image on its data partition) with
//! a blank virtio disk attached. The installer must choose the blank disk and not the stick,
//! write and verify the image, apply the install config, write the UEFI boot entry, copy its
//! log back to the stick and power off. A second boot with both disks and the same variable
//! store must start the installed system: its marker on the console proves the boot entry
//! and the image.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::run;
use qemu_tests::{Vm, VmConfig, fresh_uefi_vars, scaled};

/// What the installed system's UKI prints before it powers off.
const INSTALLED_MARKER: &str = "EMT-TEST-OS: booted from the installed disk";
/// UEFI under TCG is slow: firmware, a 10 MB UKI read over emulated USB, the install itself.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
const BLANK_DISK_BYTES: u64 = 256 << 20;

/// The install config the stick carries: every kind of setting, so the test can find each in
/// the installed partitions.
const INSTALL_TOML: &str = r##"
hostname = "edge-qemu-01"
after = "poweroff"

[layout]
grow = 3
add = [{ name = "rootfs_b", size_mib = 24 }]

[[users]]
name = "edge"
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g edge@factory"]
sudo = true

[proxy]
http = "http://proxy.factory.test:3128"
no_proxy = "localhost,127.0.0.1"

[cloud_init]
user_data = """#cloud-config
runcmd:
  - echo provisioned-by-bootkit
"""
meta_data = "instance-id: edge-qemu-01"

[boot]
label = "EMT (bootkit test)"
"##;

#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn usb_installer_installs_the_image_and_the_boot_entry_starts_it() -> Result<()> {
    let work = common::images_dir().join("usb-installer");
    std::fs::create_dir_all(&work)?;
    let stick = common::build_usb_stick(&work, INSTALLED_MARKER, INSTALL_TOML, None)?;
    let blank = work.join("target-disk.raw");
    let disk = std::fs::File::create(&blank)?;
    disk.set_len(BLANK_DISK_BYTES)?;
    drop(disk);
    let vars = work.join("OVMF_VARS.fd");
    fresh_uefi_vars(&vars)?;

    let mut install = Vm::boot(machine("usb-installer-install", &vars, &stick, &blank))?;
    let (outcome, line) = install
        .wait_for_any(
            &[" MB/s, sha256 ", "bootkit-install: error:"],
            scaled(INSTALL_TIMEOUT),
        )
        .context("the installer did not report a finished install")?;
    ensure!(outcome == 0, "the installer failed: {line}");
    let status = install.wait_exit(scaled(Duration::from_secs(60)))?;
    let console = install.console();
    ensure!(status.success(), "QEMU exited with {status}");
    ensure!(
        console.contains("installed ") && console.contains(" on /dev/vda: "),
        "the installer did not install on the blank virtio disk"
    );
    for expected in ["sha256", "verified", "Boot0", "BootOrder"] {
        ensure!(
            console.contains(expected),
            "the installer's output lacks `{expected}`"
        );
    }
    drop(install);

    check_installed_disk(&blank)?;
    check_log_on_stick(&stick)?;

    let mut installed = Vm::boot(machine("usb-installer-reboot", &vars, &stick, &blank))?;
    installed
        .wait_for(INSTALLED_MARKER, scaled(INSTALL_TIMEOUT))
        .context("the second boot did not start the installed system")?;
    ensure!(
        !installed.console().contains("starting in standalone mode"),
        "the second boot started the installer again instead of the installed disk"
    );
    Ok(())
}

fn machine(name: &str, vars: &Path, stick: &Path, disk: &Path) -> VmConfig {
    common::usb_install_machine(VmConfig::uefi(name, vars), stick, disk)
}

/// The disk as the installer left it: the image's partitions plus the layout's, and the
/// install config's files in the root filesystem.
fn check_installed_disk(disk: &Path) -> Result<()> {
    let table = run("sgdisk", &["-p", &disk.display().to_string()])?;
    for name in ["esp", "rootfs", "edge_persistent", "rootfs_b"] {
        ensure!(
            table.contains(name),
            "partition {name} missing on the installed disk:\n{table}"
        );
    }
    let verify = run("sgdisk", &["-v", &disk.display().to_string()])?;
    ensure!(
        verify.contains("No problems found"),
        "sgdisk -v complains about the installed disk:\n{verify}"
    );
    let rootfs = work_file(disk, "rootfs.ext4");
    extract_partition(disk, 2, &rootfs)?;
    let rootfs = rootfs.display().to_string();
    let read = |path: &str| run("debugfs", &["-R", &format!("cat {path}"), &rootfs]);
    ensure!(
        read("/etc/hostname")?.trim() == "edge-qemu-01",
        "hostname not set"
    );
    ensure!(
        read("/home/edge/.ssh/authorized_keys")?.contains("edge@factory"),
        "the user's SSH key is missing"
    );
    ensure!(
        read("/etc/environment")?.contains("proxy.factory.test:3128"),
        "the proxy is missing from /etc/environment"
    );
    ensure!(
        read("/var/lib/cloud/seed/nocloud/user-data")?.contains("provisioned-by-bootkit"),
        "the cloud-init seed is missing"
    );
    Ok(())
}

/// The installer copies its log to the stick's data partition, even in success.
fn check_log_on_stick(stick: &Path) -> Result<()> {
    let data = work_file(stick, "data.ext4");
    extract_partition(stick, 2, &data)?;
    let data = data.display().to_string();
    let listing = run("debugfs", &["-R", "ls -l /", &data])?;
    ensure!(
        listing.contains("bootkit-install-"),
        "no installer log on the stick's data partition:\n{listing}"
    );
    Ok(())
}

fn work_file(beside: &Path, name: &str) -> PathBuf {
    beside.with_file_name(name)
}

/// Copies partition `number` of `disk` into the file `dest`, for debugfs: the host kernel of
/// CI machines reads no partition tables, so `losetup -P` would show no partitions.
fn extract_partition(disk: &Path, number: u32, dest: &Path) -> Result<()> {
    let info = run(
        "sgdisk",
        &["-i", &number.to_string(), &disk.display().to_string()],
    )?;
    let sector = |label: &str| -> Result<u64> {
        info.lines()
            .find_map(|line| line.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no `{label}` in sgdisk -i {number}:\n{info}"))
    };
    let (first, last) = (sector("First sector: ")?, sector("Last sector: ")?);
    let mut source = std::fs::File::open(disk)?;
    source.seek(SeekFrom::Start(first * 512))?;
    let mut target = std::fs::File::create(dest)?;
    std::io::copy(&mut source.take((last + 1 - first) * 512), &mut target)?;
    Ok(())
}
