//! Proves the harness boots the real Debian kernel under TCG (or KVM with
//! BOOTKIT_QEMU_ACCEL=kvm), with an initramfs made by the harness's own cpio
//! helpers: a zstd-compressed base segment (busybox-static + /init) and an
//! uncompressed segment appended to it, the way tests inject files into the
//! bootkit image. Prints how long the boot took.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use qemu_tests::{CpioEntry, Vm, VmConfig, append_files, debian_vmlinuz, target_dir, write_newc};

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
read up idle < /proc/uptime
echo "smoke: init started at ${up} s guest uptime"
echo "smoke: appended segment says [$(/bin/busybox cat /etc/smoke-appended)]"
printf 'smoke: type a line> '
read line
echo "smoke: got [$line]"
/bin/busybox poweroff -f
"#;

#[test]
#[ignore = "needs QEMU: boots a kernel (minutes under TCG)"]
fn debian_kernel_boots_busybox_init_and_powers_off() -> Result<()> {
    let kernel = debian_vmlinuz()?;
    let busybox = std::fs::read("/bin/busybox")
        .context("reading /bin/busybox (install busybox-static with scripts/setup.sh)")?;

    let work = target_dir().join("qemu-tests-work");
    std::fs::create_dir_all(&work)?;
    let base = work.join("smoke-base.cpio.zst");
    let initrd = work.join("smoke-initramfs");
    let cpio = write_newc(
        &[
            CpioEntry::file("bin/busybox", busybox, 0o755),
            CpioEntry::file("init", INIT.as_bytes().to_vec(), 0o755),
            CpioEntry::dir("proc", 0o755),
            CpioEntry::char_dev("dev/console", 0o600, 5, 1),
        ],
        Vec::new(),
    )?;
    std::fs::write(&base, zstd::encode_all(&cpio[..], 3)?)?;
    append_files(
        &base,
        &initrd,
        &[("etc/smoke-appended", b"hello from segment 2", 0o644)],
    )?;

    let t0 = Instant::now();
    let mut vm = Vm::boot(
        VmConfig::new("harness_smoke", &kernel, &initrd)
            .append("console=ttyS0 panic=-1")
            .memory_mib(1024)
            // QEMU must accept the NIC arguments the bootkit tests use.
            .user_net(),
    )?;
    let line = vm.wait_for("smoke: init started", Duration::from_secs(300))?;
    let to_init = t0.elapsed();
    let appended = vm.wait_for("smoke: appended segment says", Duration::from_secs(30))?;
    assert!(appended.contains("[hello from segment 2]"), "{appended}");
    vm.wait_for_prompt("smoke: type a line>", Duration::from_secs(30))?;
    vm.send_line("typed by the harness")?;
    vm.wait_for("smoke: got [typed by the harness]", Duration::from_secs(30))?;
    let status = vm.wait_exit(Duration::from_secs(60))?;
    let total = t0.elapsed();
    assert!(status.success(), "qemu exit status {status}");
    assert!(
        vm.console().contains("Linux version"),
        "kernel console captured"
    );

    eprintln!(
        "harness smoke ({:?}): host time to /init {:.2} s ({}), to poweroff {:.2} s; log {}",
        vm_accel(),
        to_init.as_secs_f64(),
        line.trim(),
        total.as_secs_f64(),
        vm.log_path().display()
    );
    Ok(())
}

fn vm_accel() -> qemu_tests::Accel {
    qemu_tests::Accel::from_env()
}
