//! Secure Boot for real: OVMF's Secure Boot build with a variable store holding a key set
//! made at test time (`bootkit_builder::secure_boot::KeySet`, what `bootkit-build keys`
//! writes), enrolled by `virt-fw-vars` (independent of the project). The firmware is the
//! judge: it runs the bootkit's UKI signed with the enrolled db key, and refuses an unsigned
//! one, one changed after signing, and one signed by a key it does not trust. Under Secure
//! Boot the kernel locks itself down, and the init must still load its (Debian-signed)
//! modules, the compressed ones included.
//!
//! One key set, one enrolled variable store and one signed UKI per test binary; every VM
//! boots its own copy of the store.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use bootkit_builder::secure_boot::{KeyRole, KeySet, sign_pe};
use bootkit_builder::uki::{DEFAULT_STUB, UkiInputs, build_uki, os_release, read_layout};
use common::run;
use qemu_tests::secure_boot::REFUSED_MARKER;
use qemu_tests::{SecureBootVars, TestImage, Vm, VmConfig, scaled, target_dir};

/// OVMF under TCG, then the kernel and the init.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The init's first line: the bootkit got control.
const INIT_STARTED: &str = "bootkit: starting in";
/// The kernel's own line when it locks itself down because the firmware booted it with
/// Secure Boot on (Debian's lockdown-on-Secure-Boot patch; needs a log level above `quiet`).
const LOCKED_DOWN: &str = "Kernel is locked down from EFI Secure Boot";

struct Shared {
    work: PathBuf,
    vars: SecureBootVars,
    /// The test image as a UKI, unsigned.
    unsigned: PathBuf,
    /// The same, signed with the enrolled db key.
    signed: PathBuf,
}

/// The key set, the enrolled store and the UKIs, made once for all tests of this binary.
fn shared() -> Result<&'static Shared> {
    static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| make_shared().map_err(|err| format!("{err:#}")))
        .as_ref()
        .map_err(|err| anyhow!("setting up the Secure Boot tests: {err}"))
}

fn make_shared() -> Result<Shared> {
    let work = target_dir().join("qemu-images/secure-boot");
    // Keys are made fresh each run (KeySet refuses to overwrite a set) and never committed.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let keys =
        KeySet::generate(&work.join("keys"), "bootkit test").context("making the key set")?;
    let vars = SecureBootVars::enroll(&keys.dir, &work.join("OVMF_VARS.secboot.fd"))?;
    let enrolled = vars.describe()?;
    ensure!(
        enrolled.contains("bootkit test db"),
        "virt-fw-vars does not list the test db certificate in the store:\n{enrolled}"
    );

    let image = TestImage::load()?;
    // Without `quiet`, so the kernel's lockdown notice reaches the console; poweroff
    // instead of a shell when something fails.
    let cmdline: Vec<&str> = image
        .cmdline
        .split_whitespace()
        .filter(|word| *word != "quiet")
        .collect();
    let cmdline = format!("{} bootkit.on_error=poweroff", cmdline.join(" "));
    let unsigned = work.join("bootkit.efi");
    make_uki(&image.kernel, &image.initrd, &cmdline, &unsigned)?;
    let signed = work.join("bootkit.signed.efi");
    sign(&unsigned, &signed, &keys)?;
    Ok(Shared {
        work,
        vars,
        unsigned,
        signed,
    })
}

fn make_uki(kernel: &Path, initrd: &Path, cmdline: &str, out: &Path) -> Result<()> {
    build_uki(
        &UkiInputs {
            stub: Path::new(DEFAULT_STUB),
            kernel,
            initrd,
            cmdline,
            os_release: &os_release("bootkit Secure Boot test", "bootkit", "0"),
        },
        out,
    )
    .with_context(|| format!("building the UKI {}", out.display()))?;
    Ok(())
}

/// Signs with the db key of `keys`, and checks the signature with `sbverify`.
fn sign(input: &Path, output: &Path, keys: &KeySet) -> Result<()> {
    sign_pe(
        input,
        output,
        &keys.key(KeyRole::Db),
        &keys.cert(KeyRole::Db),
    )
    .with_context(|| format!("signing {}", input.display()))?;
    let verify = Command::new("sbverify")
        .arg("--cert")
        .arg(keys.cert(KeyRole::Db))
        .arg(output)
        .output()
        .context("running sbverify (sbsigntool, scripts/setup.sh installs it)")?;
    ensure!(
        verify.status.success(),
        "sbverify rejects {}: {}",
        output.display(),
        String::from_utf8_lossy(&verify.stderr)
    );
    Ok(())
}

/// A FAT ESP holding `efi` as the removable-media loader `\EFI\BOOT\BOOTX64.EFI`, made with
/// dosfstools and mtools: a whole-disk FAT that OVMF's boot manager finds by itself.
fn esp_with(efi: &Path, out: &Path) -> Result<()> {
    let size = std::fs::metadata(efi)?.len() + (8 << 20);
    let file = std::fs::File::create(out)?;
    file.set_len(size)?;
    drop(file);
    let out = out.display().to_string();
    run("mkfs.vfat", &["-n", "ESP", &out])?;
    run("mmd", &["-i", &out, "::/EFI", "::/EFI/BOOT"])?;
    run(
        "mcopy",
        &[
            "-i",
            &out,
            &efi.display().to_string(),
            "::/EFI/BOOT/BOOTX64.EFI",
        ],
    )?;
    Ok(())
}

/// A Secure Boot machine with its own copy of the enrolled store and `disk` on virtio.
fn machine(shared: &Shared, name: &str, disk: &Path) -> Result<VmConfig> {
    let vars = shared
        .vars
        .copy_for(&shared.work.join(format!("{name}.vars.fd")))?;
    Ok(VmConfig::uefi_secure_boot(name, vars)
        .cpus(2)
        .virtio_disk(disk))
}

#[test]
#[ignore = "needs QEMU: boots OVMF with Secure Boot and the bootkit (minutes under TCG)"]
fn signed_uki_boots_under_secure_boot_with_the_kernel_locked_down() -> Result<()> {
    let shared = shared()?;
    let esp = shared.work.join("esp-signed.img");
    esp_with(&shared.signed, &esp)?;
    let mut vm = Vm::boot(machine(shared, "secure-boot-signed", &esp)?)?;
    let (index, line) = vm.wait_for_any(
        &["bootkit: ready in", REFUSED_MARKER, "bootkit: error"],
        scaled(BOOT_TIMEOUT),
    )?;
    ensure!(index == 0, "the signed UKI did not boot to ready: {line}");
    let console = vm.console();
    for expected in [
        // The kernel saw the firmware's Secure Boot state...
        "secureboot: Secure boot enabled",
        // ...and locked itself down, which makes it enforce module signatures.
        LOCKED_DOWN,
        INIT_STARTED,
        "modules: loaded ",
    ] {
        ensure!(
            console.contains(expected),
            "`{expected}` is not on the console of the Secure Boot machine; log: {}",
            vm.log_path().display()
        );
    }
    // The kernel names every lockdown refusal `Lockdown: <program>: <what> is restricted`.
    ensure!(
        !console.contains("Lockdown: "),
        "the locked-down kernel refused something the bootkit did; log: {}",
        vm.log_path().display()
    );
    Ok(())
}

#[test]
#[ignore = "needs QEMU: boots OVMF with Secure Boot three times (minutes under TCG)"]
fn firmware_refuses_unsigned_tampered_and_foreign_ukis() -> Result<()> {
    let shared = shared()?;

    // One byte of the signed UKI's command line changed: the Authenticode digest covers it.
    let tampered = shared.work.join("bootkit.tampered.efi");
    std::fs::copy(&shared.signed, &tampered)?;
    let layout = read_layout(&tampered)?;
    let cmdline = layout
        .section(".cmdline")
        .context("the UKI has no .cmdline section")?;
    let mut bytes = std::fs::read(&tampered)?;
    let offset = usize::try_from(cmdline.file_offset)?;
    ensure!(
        bytes.get(offset..offset + 8) == Some(&b"console="[..]),
        "the .cmdline section does not start with the command line"
    );
    // `console=` becomes `consolE=`: still a plausible command line, no longer the signed one.
    bytes[offset + 6] = b'E';
    std::fs::File::create(&tampered)?.write_all(&bytes)?;

    // Signed, but by a db key the firmware never enrolled.
    let other = KeySet::generate(&shared.work.join("other-keys"), "someone else")
        .context("making the foreign key set")?;
    let foreign = shared.work.join("bootkit.foreign.efi");
    sign(&shared.unsigned, &foreign, &other)?;

    let cases = [
        ("secure-boot-unsigned", shared.unsigned.clone()),
        ("secure-boot-tampered", tampered),
        ("secure-boot-foreign", foreign),
    ];
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(name, efi)| scope.spawn(move || expect_refused(shared, name, efi)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a refusal check panicked")))
            })
            .collect()
    });
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|result| result.err().map(|err| format!("{err:#}")))
        .collect();
    ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

/// Boots `efi` from an ESP and expects OVMF to refuse it before the kernel starts.
fn expect_refused(shared: &Shared, name: &str, efi: &Path) -> Result<()> {
    let esp = shared.work.join(format!("{name}.esp.img"));
    esp_with(efi, &esp)?;
    let mut vm = Vm::boot(machine(shared, name, &esp)?)?;
    let (index, line) = vm
        .wait_for_any(&[REFUSED_MARKER, INIT_STARTED], scaled(BOOT_TIMEOUT))
        .with_context(|| format!("{name}: OVMF neither refused nor booted the UKI"))?;
    ensure!(
        index == 0,
        "{name}: the firmware booted a UKI it must refuse: {line}"
    );
    ensure!(
        line.contains("BdsDxe: failed to load"),
        "{name}: the refusal is not the boot manager's: {line}"
    );
    // The boot manager goes on to its other entries (the built-in shell is refused too:
    // OVMF's Secure Boot build does not trust its own unsigned shell) and ends waiting for a
    // key; nothing of the kernel or the init may appear meanwhile.
    vm.wait_for(
        "No bootable option or device was found",
        scaled(BOOT_TIMEOUT),
    )
    .with_context(|| format!("{name}: the boot manager did not give up"))?;
    let console = vm.console();
    ensure!(
        !console.contains(INIT_STARTED) && !console.contains("EFI stub:"),
        "{name}: the kernel or the init ran although the firmware refused the UKI; log: {}",
        vm.log_path().display()
    );
    Ok(())
}
