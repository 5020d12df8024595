//! What the boot tests share: images built from imageconfigs/qemu-test.toml with per-test
//! services, VMs booted from them, and the host tools the tests drive.

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod site;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bootkit_builder::test_os::{TestOsSpec, build_signed_test_os};
use bootkit_builder::{ImageConfig, Overlay, Progress, SecureBootConfig, UsbConfig};
use bootkit_common::layout::SERVICES_DIR;
use qemu_tests::{
    TestImage, Vm, VmConfig, repo_root, require_init_binary, require_kernel_deb, target_dir,
};

/// Generous: TCG on a loaded 2-core machine; BOOTKIT_TEST_TIMEOUT_SCALE stretches it.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The qemu-test image config with the repository's paths resolved.
pub fn base_config() -> Result<ImageConfig> {
    require_kernel_deb()?;
    require_init_binary()?;
    let path = repo_root().join("imageconfigs/qemu-test.toml");
    ImageConfig::load(&path).with_context(|| format!("loading {}", path.display()))
}

/// A service definition injected into the rootfs.
pub fn service(name: &str, toml: &str) -> Overlay {
    Overlay::inline(&format!("{SERVICES_DIR}/{name}.toml"), toml)
}

/// Build `config` into target/qemu-images/<name>.
pub fn build(name: &str, config: &ImageConfig) -> Result<TestImage> {
    let out = images_dir().join(name);
    bootkit_builder::build_with(config, &out, &Progress::hidden())
        .with_context(|| format!("building the {name} test image"))?;
    Ok(TestImage::load_from(&out)?)
}

/// The qemu-test image plus the given services.
pub fn image_with_services(name: &str, services: &[Overlay]) -> Result<TestImage> {
    let mut config = base_config()?;
    config.overlay.extend(services.iter().cloned());
    build(name, &config)
}

/// The EMT-like test OS image printing `marker` when it boots, then the USB installer
/// stick carrying it with `install_toml`, built as a user would with
/// imageconfigs/usb-installer.toml, in `work`; returns the stick's image. With `signing`,
/// the stick's loader and the test OS image's loader are both signed with that key (the
/// config's `[secure_boot]`), so the stick and the installed system boot under Secure Boot.
pub fn build_usb_stick(
    work: &Path,
    marker: &str,
    install_toml: &str,
    signing: Option<&SecureBootConfig>,
) -> Result<PathBuf> {
    let spec = TestOsSpec {
        kernel_deb: require_kernel_deb()?,
        busybox: PathBuf::from("/bin/busybox"),
        marker: marker.to_string(),
        name: "emt-test".to_string(),
        stub: PathBuf::from(bootkit_builder::uki::DEFAULT_STUB),
    };
    let os = build_signed_test_os(&spec, signing, &work.join("os"), &Progress::hidden())
        .context("building the test OS image")?;
    let gz = os
        .compressed
        .iter()
        .find(|path| path.extension().is_some_and(|ext| ext == "gz"))
        .context("the test OS image has no .raw.gz")?
        .clone();

    let install_config = work.join("install.toml");
    std::fs::write(&install_config, install_toml)?;
    qemu_tests::require_installer_binary()?;
    let path = repo_root().join("imageconfigs/usb-installer.toml");
    let mut config =
        ImageConfig::load(&path).with_context(|| format!("loading {}", path.display()))?;
    config.usb = Some(UsbConfig {
        os_image: gz,
        sha256_file: None,
        bmap: Some(os.bmap.clone()),
        install_config,
    });
    config.secure_boot = signing.cloned();
    let out = work.join("stick");
    bootkit_builder::build_with(&config, &out, &Progress::hidden())
        .context("building the USB installer")?;
    Ok(out.join("usb.img"))
}

/// The machine the USB install tests boot, on firmware `config` (plain or Secure Boot
/// OVMF): the stick and the disk to install on, with room for the installer.
pub fn usb_install_machine(config: VmConfig, stick: &Path, disk: &Path) -> VmConfig {
    config
        .memory_mib(1536)
        .cpus(2)
        .usb_stick("stick", stick)
        .virtio_disk(disk)
}

pub fn images_dir() -> PathBuf {
    target_dir().join("qemu-images")
}

/// Boot `image` with its own command line plus `extra` words, a virtio NIC and 2 vCPUs.
pub fn boot(name: &str, image: &TestImage, extra: &str) -> Result<Vm> {
    boot_forwarding(name, image, extra, &[])
}

/// [`boot`], with guest-to-host TCP forwards (see `VmConfig::user_net_forwarding`).
pub fn boot_forwarding(
    name: &str,
    image: &TestImage,
    extra: &str,
    forwards: &[(u16, u16)],
) -> Result<Vm> {
    let config = VmConfig::new(name, &image.kernel, &image.initrd)
        .append(&image.cmdline)
        .append_more(extra)
        .cpus(2)
        .user_net_forwarding(forwards);
    Ok(Vm::boot(config)?)
}

/// Index of the first console line containing `pattern`, for ordering checks.
pub fn position(console: &str, pattern: &str) -> Option<usize> {
    console.lines().position(|line| line.contains(pattern))
}

/// The stdout of a host tool the test drives (sgdisk, debugfs, mtools), or an error with its
/// stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (scripts/setup.sh installs it)"))?;
    if !output.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
