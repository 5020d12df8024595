//! kexec into the installed system (`after = "kexec"`): OVMF boots the USB installer stick
//! with a blank virtio disk; the installer writes the EMT-like test OS image, loads the
//! kernel, initrd and command line of its UKI (`\EFI\BOOT\BOOTX64.EFI` on the installed ESP)
//! with kexec_file_load, and the init's reboot starts that kernel directly. The installed
//! system's marker must appear on the console without the firmware running a second time:
//! the machine may reboot (QEMU restarts it, as a server would), so a firmware reboot would
//! show OVMF's boot manager starting a boot option again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bootkit_builder::SecureBootConfig;
use bootkit_builder::secure_boot::{KeyRole, KeySet};
use qemu_tests::secure_boot::{REFUSED_MARKER, VIRT_FW_VARS};
use qemu_tests::{SecureBootVars, Vm, VmConfig, fresh_uefi_vars, scaled};

/// What the installed system's UKI prints before it powers off.
const INSTALLED_MARKER: &str = "EMT-TEST-OS: kexec reached the installed system";
/// UEFI under TCG is slow: firmware, a 10 MB UKI read over emulated USB, the install itself.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// From the loaded kernel to the marker: a kernel boot, no firmware.
const KEXEC_TIMEOUT: Duration = Duration::from_secs(120);
const BLANK_DISK_BYTES: u64 = 256 << 20;
/// OVMF's boot manager, once per boot option it starts: the one firmware banner on the
/// serial console (OVMF prints no version banner there).
const FIRMWARE_STARTS: &str = "BdsDxe: starting Boot";
/// The installer's line once the installed kernel is loaded.
const KERNEL_LOADED: &str = "kexec: loaded the installed system's kernel from";
/// The init's line just before reboot(LINUX_REBOOT_CMD_KEXEC).
const INIT_KEXEC: &str = "reboot: starting the kernel loaded for kexec";

/// The installer's line once the log is saved, just before it asks for the reboot.
const INSTALL_DONE: &str = "install done; running `reboot`";

#[test]
#[ignore = "needs QEMU: boots the bootkit and installs (minutes under TCG)"]
fn usb_install_then_kexec_starts_the_installed_system_without_the_firmware() -> Result<()> {
    let mut vm = boot_installer("kexec", "kexec")?;
    let (outcome, line) = vm
        .wait_for_any(
            &[
                KERNEL_LOADED,
                "kexec is not possible",
                "bootkit-install: error:",
            ],
            scaled(INSTALL_TIMEOUT),
        )
        .context("the installer did not finish the install")?;
    ensure!(outcome == 0, "the installer did not load a kernel: {line}");
    ensure!(
        line.contains(r"\EFI\BOOT\BOOTX64.EFI (UKI)"),
        "the kernel should come from the installed UKI: {line}"
    );
    vm.wait_for(INIT_KEXEC, scaled(common::STEP_TIMEOUT))
        .context("the init did not start the loaded kernel")?;
    vm.wait_for(INSTALLED_MARKER, scaled(KEXEC_TIMEOUT))
        .context("the kexec'd kernel did not start the installed system")?;
    let status = vm.wait_exit(scaled(common::STEP_TIMEOUT))?;
    ensure!(status.success(), "QEMU exited with {status}");
    let starts = vm.count(FIRMWARE_STARTS);
    ensure!(
        starts == 1,
        "the firmware started a boot option {starts} times (expected once, for the stick): \
         the installed system was reached through a firmware reboot, not kexec\n{}",
        vm.tail()
    );
    Ok(())
}

/// Under Secure Boot the kernel is locked down and kexec_file_load checks the installed
/// kernel's own signature (not the UKI's): Debian's kernel is signed by Debian's Secure Boot
/// key, which the running Debian kernel does not trust for kexec (not among its built-in
/// keys), and the firmware's db holds only the test key here (the stick and the installed
/// UKI are signed with it). So the kernel refuses it, the installer says so and reboots
/// through the firmware, which starts the signed installed UKI.
#[test]
#[ignore = "needs QEMU: installs under Secure Boot (minutes under TCG)"]
fn under_secure_boot_an_untrusted_kernel_is_refused_and_the_firmware_reboots() -> Result<()> {
    let mut vm = boot_secure_boot_installer("kexec-secure-boot", false)?;
    let (outcome, line) = vm
        .wait_for_any(
            &[
                "kexec is not possible",
                KERNEL_LOADED,
                "bootkit-install: error:",
                REFUSED_MARKER,
            ],
            scaled(INSTALL_TIMEOUT),
        )
        .context("the installer did not finish the install")?;
    ensure!(
        vm.console().contains("Secure Boot: on"),
        "the installer did not see Secure Boot on"
    );
    ensure!(
        outcome == 0
            && line.contains("locked down")
            && line.contains("rebooting through the firmware"),
        "the locked-down kernel should refuse Debian's signature and the installer fall back: \
         {line}"
    );
    vm.wait_for(INSTALLED_MARKER, scaled(INSTALL_TIMEOUT))
        .context("the firmware reboot did not start the installed system")?;
    let starts = vm.count(FIRMWARE_STARTS);
    ensure!(
        starts == 2,
        "the firmware should have started the stick, then the installed system: {starts} \
         starts\n{}",
        vm.tail()
    );
    Ok(())
}

/// The kernel's own signature is checked against the platform keyring too, which holds the
/// firmware's db certificates: with the certificate that signed Debian's kernel (read from
/// the kernel package) added to db, the locked-down kernel kexecs it.
#[test]
#[ignore = "needs QEMU: installs and kexecs under Secure Boot (minutes under TCG)"]
fn under_secure_boot_a_kernel_signed_by_a_db_certificate_is_kexecd() -> Result<()> {
    let mut vm = boot_secure_boot_installer("kexec-secure-boot-trusted", true)?;
    let (outcome, line) = vm
        .wait_for_any(
            &[
                KERNEL_LOADED,
                "kexec is not possible",
                "bootkit-install: error:",
                REFUSED_MARKER,
            ],
            scaled(INSTALL_TIMEOUT),
        )
        .context("the installer did not finish the install")?;
    ensure!(
        outcome == 0,
        "the locked-down kernel did not load the installed kernel: {line}"
    );
    vm.wait_for(INSTALLED_MARKER, scaled(KEXEC_TIMEOUT))
        .context("the kexec'd kernel did not start the installed system")?;
    let starts = vm.count(FIRMWARE_STARTS);
    ensure!(
        starts == 1,
        "the firmware started a boot option {starts} times: not a kexec\n{}",
        vm.tail()
    );
    Ok(())
}

/// A fresh key set enrolled (plus, with `trust_debian_kernel`, the certificate that signed
/// Debian's kernel in db), a stick signed with its db key installing with `after = "kexec"`,
/// booted under Secure Boot on a blank disk, restarting on reboot.
fn boot_secure_boot_installer(name: &str, trust_debian_kernel: bool) -> Result<Vm> {
    let work = common::images_dir().join(name);
    // Keys are made fresh each run (KeySet refuses to overwrite a set) and never committed.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let keys =
        KeySet::generate(&work.join("keys"), "bootkit kexec test").context("making the key set")?;
    let enrolled = SecureBootVars::enroll(&keys.dir, &work.join("OVMF_VARS.enrolled.fd"))?;
    let vars = work.join("OVMF_VARS.secboot.fd");
    if trust_debian_kernel {
        let signer = debian_kernel_signer(&work)?;
        let owner = std::fs::read_to_string(keys.dir.join("owner-guid.txt"))?;
        run_tool(
            Command::new(VIRT_FW_VARS)
                .arg("--input")
                .arg(enrolled.path())
                .arg("--output")
                .arg(&vars)
                .args(["--add-db", owner.trim()])
                .arg(&signer),
        )?;
    } else {
        std::fs::copy(enrolled.path(), &vars)?;
    }
    let signing = SecureBootConfig {
        sign_key: keys.key(KeyRole::Db),
        sign_cert: keys.cert(KeyRole::Db),
    };
    let stick = common::build_usb_stick(
        &work,
        INSTALLED_MARKER,
        "after = \"kexec\"\n",
        Some(&signing),
    )?;
    let blank = work.join("target-disk.raw");
    std::fs::File::create(&blank)?.set_len(BLANK_DISK_BYTES)?;
    let config =
        common::usb_install_machine(VmConfig::uefi_secure_boot(name, &vars), &stick, &blank)
            .allow_reboot();
    Ok(Vm::boot(config)?)
}

/// The certificate in the Authenticode signature of the kernel package's vmlinuz (Debian's
/// "Secure Boot Signer ... - linux"), as PEM, written in `work`.
fn debian_kernel_signer(work: &Path) -> Result<PathBuf> {
    let deb = qemu_tests::require_kernel_deb()?;
    let unpacked = work.join("kernel-deb");
    std::fs::create_dir_all(&unpacked)?;
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards './boot/vmlinuz-*'",
        deb.display(),
        unpacked.display()
    );
    run_tool(Command::new("sh").args(["-c", &script]))?;
    let vmlinuz = std::fs::read_dir(unpacked.join("boot"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .next()
        .context("no vmlinuz in the kernel package")?;
    let signature = work.join("vmlinuz.p7");
    run_tool(
        Command::new("sbattach")
            .arg("--detach")
            .arg(&signature)
            .arg(&vmlinuz),
    )?;
    let pem = work.join("debian-kernel-signer.pem");
    run_tool(
        Command::new("openssl")
            .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
            .arg(&signature)
            .arg("-out")
            .arg(&pem),
    )?;
    Ok(pem)
}

fn run_tool(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?} (scripts/setup.sh installs it)"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Not a test: bench/kexec.sh runs it. The same machine installs twice, once with
/// `after = "kexec"` and once with `after = "reboot"`, and prints the time from the
/// installer's "install done" to the installed system's marker for each, and their ratio.
#[test]
#[ignore = "needs QEMU: a benchmark, run by bench/kexec.sh"]
fn bench_kexec_vs_reboot() -> Result<()> {
    let mut times = Vec::new();
    for after in ["kexec", "reboot"] {
        let mut vm = boot_installer(&format!("bench-{after}"), after)?;
        vm.wait_for(INSTALL_DONE, scaled(INSTALL_TIMEOUT))
            .context("the installer did not finish the install")?;
        let done = vm.elapsed();
        // The init's last line before reboot(2): the same service stop before it either way.
        vm.wait_for(
            "bootkit: reboot: stopping remaining processes",
            scaled(INSTALL_TIMEOUT),
        )?;
        vm.wait_for("bootkit: reboot", scaled(INSTALL_TIMEOUT))?;
        let rebooting = vm.elapsed();
        vm.wait_for(INSTALLED_MARKER, scaled(INSTALL_TIMEOUT))
            .context("the installed system did not start")?;
        let reached = vm.elapsed() - done;
        let firmware_starts = vm.count(FIRMWARE_STARTS);
        println!(
            "bench-kexec: after = \"{after}\": {:.2} s from install done to the installed \
             system's marker, {:.2} s of it from reboot(2) (firmware started a boot option \
             {firmware_starts} times)",
            reached.as_secs_f64(),
            (vm.elapsed() - rebooting).as_secs_f64()
        );
        times.push(reached);
    }
    println!(
        "bench-kexec: reboot / kexec = {:.2}",
        times[1].as_secs_f64() / times[0].as_secs_f64()
    );
    Ok(())
}

/// Builds a stick installing with `after` in its own directory, and boots it on a blank disk.
fn boot_installer(name: &str, after: &str) -> Result<Vm> {
    let work = common::images_dir().join(name);
    std::fs::create_dir_all(&work)?;
    let install_toml = format!("after = \"{after}\"\n");
    let stick = common::build_usb_stick(&work, INSTALLED_MARKER, &install_toml, None)?;
    let blank = work.join("target-disk.raw");
    std::fs::File::create(&blank)?.set_len(BLANK_DISK_BYTES)?;
    let vars = work.join("OVMF_VARS.fd");
    fresh_uefi_vars(&vars)?;
    Ok(Vm::boot(machine(name, &vars, &stick, &blank))?)
}

/// A machine that restarts on reboot, as a real one does: a reboot through the firmware
/// would boot the installed disk too, and only the banner count tells it from a kexec.
fn machine(name: &str, vars: &Path, stick: &Path, disk: &Path) -> VmConfig {
    common::usb_install_machine(VmConfig::uefi(name, vars), stick, disk).allow_reboot()
}
