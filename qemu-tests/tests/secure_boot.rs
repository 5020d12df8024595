//! Secure Boot for real: OVMF's Secure Boot build with a variable store holding a key set
//! made at test time (`bootkit_builder::secure_boot::KeySet`, what `bootkit-build keys`
//! writes), enrolled by `virt-fw-vars` (independent of the project). The firmware is the
//! judge: it runs the bootkit's UKI signed with the enrolled db key, and refuses an unsigned
//! one, one changed after signing, and one signed by a key it does not trust. Under Secure
//! Boot the kernel locks itself down, and the init must still load its (Debian-signed)
//! modules, the compressed ones included.
//!
//! The USB stick built with the db key in its config's `[secure_boot]` boots, installs
//! the test OS image (its loader signed with the same key), and the installed system boots
//! from the boot entry the installer wrote, all with Secure Boot on.
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
use bootkit_builder::SecureBootConfig;
use bootkit_builder::secure_boot::{KeyRole, KeySet, sign_pe};
use bootkit_builder::uki::{DEFAULT_STUB, UkiInputs, build_uki, os_release, read_layout};
use common::run;
use qemu_tests::secure_boot::REFUSED_MARKER;
use qemu_tests::{SecureBootVars, TestImage, Vm, VmConfig, repo_root, scaled, target_dir};

/// OVMF under TCG, then the kernel and the init.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The init's first line: the bootkit got control.
const INIT_STARTED: &str = "bootkit: starting in";
/// The kernel's own line when it locks itself down because the firmware booted it with
/// Secure Boot on (Debian's lockdown-on-Secure-Boot patch; needs a log level above `quiet`).
const LOCKED_DOWN: &str = "Kernel is locked down from EFI Secure Boot";
/// What the installed test OS prints when it boots.
const INSTALLED_MARKER: &str = "EMT-TEST-OS: booted under Secure Boot from the installed disk";
/// Firmware, the stick's UKI read over emulated USB, and the install itself, under TCG.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// The installer's line once the image is written and verified.
const INSTALLED: &str = " MB/s, sha256 ";
const BLANK_DISK_BYTES: u64 = 256 << 20;

/// The key set and the variable store it is enrolled in.
#[derive(Clone)]
struct Enrolled {
    work: PathBuf,
    keys: KeySet,
    vars: SecureBootVars,
}

struct Shared {
    work: PathBuf,
    vars: SecureBootVars,
    /// The test image as a UKI, unsigned.
    unsigned: PathBuf,
    /// The same, signed with the enrolled db key.
    signed: PathBuf,
}

/// The key set and the enrolled store, made once for all tests of this binary.
fn enrolled() -> Result<&'static Enrolled> {
    static ENROLLED: OnceLock<std::result::Result<Enrolled, String>> = OnceLock::new();
    ENROLLED
        .get_or_init(|| enroll().map_err(|err| format!("{err:#}")))
        .as_ref()
        .map_err(|err| anyhow!("enrolling the Secure Boot test keys: {err}"))
}

fn enroll() -> Result<Enrolled> {
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
    Ok(Enrolled { work, keys, vars })
}

/// [`enrolled`], and the test image's UKIs, made once for all tests of this binary.
fn shared() -> Result<&'static Shared> {
    static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| make_shared().map_err(|err| format!("{err:#}")))
        .as_ref()
        .map_err(|err| anyhow!("setting up the Secure Boot tests: {err}"))
}

fn make_shared() -> Result<Shared> {
    let Enrolled { work, keys, vars } = enrolled()?.clone();
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
    esp_with_files(&[(efi, "BOOTX64.EFI")], out)
}

/// [`esp_with`] for several files, each `(source, name in \EFI\BOOT)`.
fn esp_with_files(files: &[(&Path, &str)], out: &Path) -> Result<()> {
    let mut size = 8 << 20;
    for (source, _) in files {
        size += std::fs::metadata(source)?.len();
    }
    let file = std::fs::File::create(out)?;
    file.set_len(size)?;
    drop(file);
    let out = out.display().to_string();
    run("mkfs.vfat", &["-n", "ESP", &out])?;
    run("mmd", &["-i", &out, "::/EFI", "::/EFI/BOOT"])?;
    for (source, name) in files {
        run(
            "mcopy",
            &[
                "-i",
                &out,
                &source.display().to_string(),
                &format!("::/EFI/BOOT/{name}"),
            ],
        )?;
    }
    Ok(())
}

/// A Secure Boot machine with its own copy of the enrolled store and `disk` on virtio.
fn machine(shared: &Shared, name: &str, disk: &Path) -> Result<VmConfig> {
    Ok(machine_without_disk(shared, name)?.virtio_disk(disk))
}

/// A Secure Boot machine with its own copy of the enrolled store.
fn machine_without_disk(shared: &Shared, name: &str) -> Result<VmConfig> {
    let vars = shared
        .vars
        .copy_for(&shared.work.join(format!("{name}.vars.fd")))?;
    Ok(VmConfig::uefi_secure_boot(name, vars).cpus(2))
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

#[test]
#[ignore = "needs QEMU: installs from the USB stick and boots the installed disk under Secure Boot (minutes under TCG)"]
fn signed_usb_stick_installs_under_secure_boot_and_the_installed_system_boots() -> Result<()> {
    let enrolled = enrolled()?;
    let work = enrolled.work.join("usb-install");
    std::fs::create_dir_all(&work)?;
    let signing = SecureBootConfig {
        sign_key: enrolled.keys.key(KeyRole::Db),
        sign_cert: enrolled.keys.cert(KeyRole::Db),
    };
    let stick = common::build_usb_stick(
        &work,
        INSTALLED_MARKER,
        "hostname = \"edge-secure-boot\"\nafter = \"poweroff\"\n",
        Some(&signing),
    )?;
    let blank = work.join("target-disk.raw");
    std::fs::File::create(&blank)?.set_len(BLANK_DISK_BYTES)?;
    // One store for both boots: the installer's boot entry must be there for the second.
    let vars = enrolled.vars.copy_for(&work.join("OVMF_VARS.fd"))?;
    let machine = |name: &str| {
        common::usb_install_machine(VmConfig::uefi_secure_boot(name, &vars), &stick, &blank)
    };

    let mut install = Vm::boot(machine("secure-boot-usb-install"))?;
    let (index, line) = install
        .wait_for_any(
            &[INSTALLED, "bootkit-install: error:", REFUSED_MARKER],
            scaled(INSTALL_TIMEOUT),
        )
        .context("the installer did not report a finished install")?;
    ensure!(
        index == 0,
        "the signed stick did not install under Secure Boot: {line}"
    );
    let status = install.wait_exit(scaled(Duration::from_secs(60)))?;
    ensure!(status.success(), "QEMU exited with {status}");
    ensure!(
        install.console().contains("Secure Boot: on"),
        "the installer did not see Secure Boot on; log: {}",
        install.log_path().display()
    );
    drop(install);

    let mut installed = Vm::boot(machine("secure-boot-usb-installed"))?;
    let (index, line) = installed
        .wait_for_any(
            &[
                INSTALLED_MARKER,
                REFUSED_MARKER,
                "starting in standalone mode",
            ],
            scaled(INSTALL_TIMEOUT),
        )
        .context("the second boot neither started the installed system nor failed")?;
    ensure!(
        index == 0,
        "the installed system did not boot under Secure Boot: {line}; log: {}",
        installed.log_path().display()
    );
    Ok(())
}

/// The guest's view of the host on QEMU's user-mode network, where its TFTP server is.
const USER_NET_HOST: &str = "10.0.2.2";
/// What the test's iPXE script prints when `chain` fails (a failed download or the
/// firmware's LoadImage refusing the image; the console says which).
const IPXE_NOT_BOOTED: &str = "bootkit-test: chain failed";

#[test]
#[ignore = "needs QEMU: boots Debian's iPXE under Secure Boot three times (minutes under TCG)"]
fn signed_ipxe_chains_only_a_signed_uki_and_an_unsigned_ipxe_is_refused() -> Result<()> {
    let shared = shared()?;
    let ipxe = Path::new("/usr/lib/ipxe/ipxe.efi");
    ensure!(
        ipxe.is_file(),
        "{} is missing: scripts/setup.sh installs Debian's ipxe package",
        ipxe.display()
    );
    let keys = &enrolled()?.keys;
    let signed_ipxe = shared.work.join("ipxe.signed.efi");
    sign(ipxe, &signed_ipxe, keys)?;

    // What DHCP hands iPXE on the user-mode network: a script chaining a UKI over TFTP. iPXE
    // loads what it chains with the firmware's LoadImage, so the db decides.
    let tftp = shared.work.join("tftp");
    std::fs::create_dir_all(&tftp)?;
    std::fs::copy(&shared.signed, tftp.join("signed.efi"))?;
    std::fs::copy(&shared.unsigned, tftp.join("unsigned.efi"))?;
    let chain = |name: &str, uki: &str| -> Result<PathBuf> {
        let script = format!("{name}.ipxe");
        std::fs::write(
            tftp.join(&script),
            format!("#!ipxe\nchain tftp://{USER_NET_HOST}/{uki} || echo {IPXE_NOT_BOOTED}\n"),
        )?;
        Ok(PathBuf::from(script))
    };
    let ipxe_machine = |name: &str, loader: &Path, script: &Path| -> Result<Vm> {
        let esp = shared.work.join(format!("{name}.esp.img"));
        esp_with(loader, &esp)?;
        let config = machine_without_disk(shared, name)?
            .arg("-drive")
            .arg(format!("file={},format=raw,if=none,id=esp", esp.display()))
            .arg("-device")
            .arg("virtio-blk-pci,drive=esp,bootindex=0")
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,restrict=on,tftp={},bootfile={}",
                tftp.display(),
                script.display()
            ))
            .arg("-device")
            .arg("virtio-net-pci,netdev=n0,romfile=");
        Ok(Vm::boot(config)?)
    };

    let signed_script = chain("signed", "signed.efi")?;
    let unsigned_script = chain("unsigned", "unsigned.efi")?;
    std::thread::scope(|scope| -> Result<()> {
        let to_signed = scope.spawn(|| -> Result<()> {
            let mut vm = ipxe_machine("secure-boot-ipxe-signed", &signed_ipxe, &signed_script)?;
            let (index, line) = vm.wait_for_any(
                &["bootkit: ready in", IPXE_NOT_BOOTED, REFUSED_MARKER],
                scaled(BOOT_TIMEOUT * 2),
            )?;
            ensure!(
                index == 0,
                "signed iPXE did not boot the signed UKI to ready: {line}; log: {}",
                vm.log_path().display()
            );
            ensure!(
                vm.console().contains("secureboot: Secure boot enabled"),
                "the kernel chained by iPXE did not see Secure Boot on"
            );
            Ok(())
        });
        let to_unsigned = scope.spawn(|| -> Result<()> {
            let mut vm = ipxe_machine(
                "secure-boot-ipxe-unsigned-uki",
                &signed_ipxe,
                &unsigned_script,
            )?;
            let (index, line) = vm.wait_for_any(
                &[IPXE_NOT_BOOTED, INIT_STARTED, REFUSED_MARKER],
                scaled(BOOT_TIMEOUT * 2),
            )?;
            ensure!(
                index == 0,
                "signed iPXE chaining an unsigned UKI: expected the firmware to refuse it, got: {line}; log: {}",
                vm.log_path().display()
            );
            let console = vm.console();
            // iPXE ends each download's progress line with `ok`: the UKI arrived whole, and
            // what failed was booting it (the firmware's LoadImage, which iPXE reports as
            // `Could not boot: Exec format error`; the same UKI signed boots above).
            let downloaded = console.lines().any(|line| {
                line.starts_with(&format!("tftp://{USER_NET_HOST}/unsigned.efi..."))
                    && line.trim_end().ends_with("ok")
            });
            ensure!(
                downloaded && console.contains("Could not boot:"),
                "iPXE did not download the unsigned UKI and fail to boot it; log: {}",
                vm.log_path().display()
            );
            ensure!(
                !console.contains("EFI stub:"),
                "the unsigned UKI's kernel ran under Secure Boot"
            );
            Ok(())
        });
        let unsigned_ipxe = scope.spawn(|| -> Result<()> {
            let mut vm = ipxe_machine("secure-boot-ipxe-unsigned", ipxe, &signed_script)?;
            let (index, line) = vm.wait_for_any(
                &[REFUSED_MARKER, "iPXE initialising devices", INIT_STARTED],
                scaled(BOOT_TIMEOUT),
            )?;
            ensure!(
                index == 0 && line.contains("BdsDxe: failed to load"),
                "the firmware did not refuse Debian's unsigned iPXE: {line}"
            );
            Ok(())
        });
        for handle in [to_signed, to_unsigned, unsigned_ipxe] {
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow!("an iPXE check panicked")))?;
        }
        Ok(())
    })
}

/// Debian's shim-signed package, downloaded (not installed) by scripts/setup.sh.
const SHIM_DEB: &str = ".cache/shim/shim-signed.deb";
/// Where the package keeps the Microsoft-signed shim.
const SHIM_IN_DEB: &str = "usr/lib/shim/shimx64.efi.signed";
/// What shim loads from its own directory when it is the removable-media loader.
const SHIM_SECOND_STAGE: &str = "grubx64.efi";

#[test]
#[ignore = "needs QEMU: boots Debian's Microsoft-signed shim under Secure Boot twice (minutes under TCG)"]
fn microsoft_signed_shim_boots_only_the_uki_signed_by_an_enrolled_mok() -> Result<()> {
    let shared = shared()?;
    let keys = &enrolled()?.keys;
    let deb = repo_root().join(SHIM_DEB);
    ensure!(
        deb.is_file(),
        "{} is missing: run scripts/setup.sh (it downloads Debian's shim-signed)",
        deb.display()
    );
    let unpacked = shared.work.join("shim-signed");
    run(
        "dpkg-deb",
        &[
            "-x",
            &deb.display().to_string(),
            &unpacked.display().to_string(),
        ],
    )?;
    let shim = unpacked.join(SHIM_IN_DEB);
    // Microsoft's keys only: the firmware itself would refuse the UKI; shim takes the site's
    // db certificate from MokList.
    let vars = SecureBootVars::microsoft_with_mok(
        &keys.cert(KeyRole::Db),
        &keys.owner.to_string(),
        &shared.work.join("OVMF_VARS.ms-mok.fd"),
    )?;
    let boot = |name: &str, uki: &Path| -> Result<Vm> {
        let esp = shared.work.join(format!("{name}.esp.img"));
        esp_with_files(&[(&shim, "BOOTX64.EFI"), (uki, SHIM_SECOND_STAGE)], &esp)?;
        let vars = vars.copy_for(&shared.work.join(format!("{name}.vars.fd")))?;
        Ok(Vm::boot(
            VmConfig::uefi_secure_boot(name, vars)
                .cpus(2)
                .virtio_disk(&esp),
        )?)
    };
    std::thread::scope(|scope| -> Result<()> {
        let signed = scope.spawn(|| -> Result<()> {
            let mut vm = boot("secure-boot-shim-mok", &shared.signed)?;
            let (index, line) = vm.wait_for_any(
                &["bootkit: ready in", REFUSED_MARKER, "Verification failed"],
                scaled(BOOT_TIMEOUT),
            )?;
            ensure!(
                index == 0,
                "shim did not boot the UKI signed by the MOK to ready: {line}; log: {}",
                vm.log_path().display()
            );
            ensure!(
                vm.console().contains("secureboot: Secure boot enabled"),
                "the kernel booted through shim did not see Secure Boot on"
            );
            Ok(())
        });
        let unsigned = scope.spawn(|| -> Result<()> {
            let mut vm = boot("secure-boot-shim-unsigned", &shared.unsigned)?;
            // shim draws its refusal in a dialog waiting for a key, with no newline after it.
            vm.wait_for_prompt("Verification failed", scaled(BOOT_TIMEOUT))
                .with_context(|| {
                    format!(
                        "shim did not refuse an unsigned UKI; log: {}",
                        vm.log_path().display()
                    )
                })?;
            ensure!(
                !vm.console().contains("EFI stub:"),
                "the unsigned UKI's kernel ran behind shim under Secure Boot"
            );
            Ok(())
        });
        for handle in [signed, unsigned] {
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a shim check panicked")))?;
        }
        Ok(())
    })
}
