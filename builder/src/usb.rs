//! The USB installer stick: one image a user writes with `dd`, which boots the bootkit in
//! standalone mode and holds everything the installer needs.
//!
//! | # | name           | content                                                      |
//! |---|----------------|--------------------------------------------------------------|
//! | 1 | `BOOTKIT-ESP`  | FAT ESP, `\EFI\BOOT\BOOTX64.EFI` = the bootkit as a UKI       |
//! | 2 | `BOOTKIT-DATA` | ext4, label `BOOTKIT-DATA`: the OS image, `<os image>.sha256sum`, its bmap when given, `install.toml` |
//!
//! The ESP is not named `esp`: the installed OS's ESP is, and the installer must never
//! mistake the stick's for it. Inputs are checked before anything is made: the checksum
//! file must match the OS image (a wrong pairing fails here, not on site), the bmap must
//! parse and the install config must fit the installer's schema.

use bootkit_common::error_chain;
use std::fs;
use std::path::{Path, PathBuf};

use bootkit_common::checksum::Sha256Digest;
use bootkit_common::layout::{INSTALL_CONFIG_NAME, USB_DATA_LABEL, USB_ESP_NAME};

use crate::config::{SecureBootConfig, UsbConfig};
use crate::dirs::scratch_dir_in;
use crate::disk_image::{
    ESP_TYPE, LINUX_DATA_TYPE, PartitionSpec, PlacedPartition, assemble, derived_guid,
};
use crate::error::{BuildError, Result};
use crate::fs_image::{Ext4Options, FatFile, make_ext4, make_fat, volume_id};
use crate::install_check::check_install_config;
use crate::kernel::sha256_file;
use crate::progress::Progress;
use crate::publish::sibling;
use crate::reproducible::source_date_epoch;
use crate::secure_boot::sign_pe;
use crate::uki::ESP_LOADER;

/// The USB installer stick and the UKI on it.
#[derive(Debug, Clone)]
pub struct UsbOutput {
    /// `bootkit.efi`: the image as a UKI.
    pub efi: PathBuf,
    /// `usb.img`.
    pub image: PathBuf,
}

/// Free space on the data partition (the installer may leave its log there).
pub(crate) const DATA_HEADROOM: u64 = 32 << 20;
const ESP_HEADROOM: u64 = 2 << 20;

/// What goes on the stick.
#[derive(Debug, Clone, Copy)]
pub struct UsbInputs<'a> {
    /// The bootkit as a UKI.
    pub efi: &'a Path,
    /// The OS image as published (`.raw.gz`, `.raw.zst`, `.raw.xz` or `.raw`).
    pub os_image: &'a Path,
    /// The OS image's `sha256sum` file; `None` takes `<os_image>.sha256sum` when it
    /// exists, else one is written from the image.
    pub sha256_file: Option<&'a Path>,
    /// The bmap of the uncompressed image, checked and copied when given.
    pub bmap: Option<&'a Path>,
    /// The installer's config, checked and copied as `install.toml`.
    pub install_config: &'a Path,
}

impl UsbConfig {
    /// The inputs for a stick booting `efi`.
    pub fn inputs<'a>(&'a self, efi: &'a Path) -> UsbInputs<'a> {
        UsbInputs {
            efi,
            os_image: &self.os_image,
            sha256_file: self.sha256_file.as_deref(),
            bmap: self.bmap.as_deref(),
            install_config: &self.install_config,
        }
    }
}

/// Make the stick's image at `out`; returns where its partitions are.
pub fn build_usb(
    inputs: &UsbInputs<'_>,
    out: &Path,
    progress: &Progress,
) -> Result<Vec<PlacedPartition>> {
    let digest = check_inputs(inputs, progress)?;
    let out_dir = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(out_dir).map_err(BuildError::io(format!("create {}", out_dir.display())))?;
    let scratch = scratch_dir_in(out_dir, ".usb-")?;
    let staging = scratch.path().join("data");
    stage_data(inputs, digest, &staging)?;

    let seed = format!("bootkit usb {digest}");
    let epoch = source_date_epoch()?;
    let task = progress.task("making the USB stick's filesystems", None);
    let esp = scratch.path().join("esp.img");
    make_fat(
        &esp,
        "BOOTKIT",
        volume_id(derived_guid(&seed, "esp-volume")),
        &[FatFile {
            dest: ESP_LOADER,
            source: inputs.efi,
        }],
        ESP_HEADROOM,
        epoch,
    )?;
    let data = scratch.path().join("data.img");
    make_ext4(
        &data,
        &staging,
        &Ext4Options {
            label: USB_DATA_LABEL,
            uuid: derived_guid(&seed, "data-fs"),
            headroom: DATA_HEADROOM,
            epoch,
        },
    )?;
    task.finish();
    let staged = scratch.path().join("usb.img");
    let partitions = assemble(
        &staged,
        derived_guid(&seed, "disk"),
        &[
            PartitionSpec {
                name: USB_ESP_NAME.into(),
                type_guid: ESP_TYPE,
                unique_guid: derived_guid(&seed, "esp"),
                image: esp,
            },
            PartitionSpec {
                name: USB_DATA_LABEL.into(),
                type_guid: LINUX_DATA_TYPE,
                unique_guid: derived_guid(&seed, "data"),
                image: data,
            },
        ],
    )?;
    fs::rename(&staged, out).map_err(BuildError::io(format!("write {}", out.display())))?;
    progress.note(&format!(
        "USB installer image {} ({} MiB): write it with dd or bmaptool",
        out.display(),
        partitions.last().map_or(0, |p| (p.offset + p.size) >> 20) + 1
    ));
    Ok(partitions)
}

/// [`build_usb`], with `\EFI\BOOT\BOOTX64.EFI` (the UKI, which carries the kernel and
/// initramfs in its own sections) signed by `signing` when given. The UKI at
/// `inputs.efi` is left as it is: a signed copy goes on the stick.
pub fn build_signed_usb(
    inputs: &UsbInputs<'_>,
    signing: Option<&SecureBootConfig>,
    out: &Path,
    progress: &Progress,
) -> Result<Vec<PlacedPartition>> {
    let Some(signing) = signing else {
        return build_usb(inputs, out, progress);
    };
    let out_dir = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(out_dir).map_err(BuildError::io(format!("create {}", out_dir.display())))?;
    let scratch = scratch_dir_in(out_dir, ".usb-sign-")?;
    let signed = scratch.path().join("BOOTX64.EFI");
    sign_pe(inputs.efi, &signed, &signing.sign_key, &signing.sign_cert).map_err(|err| {
        BuildError::DiskImage {
            path: out.to_path_buf(),
            reason: format!("cannot sign the stick's {ESP_LOADER}: {err}"),
        }
    })?;
    build_usb(
        &UsbInputs {
            efi: &signed,
            ..*inputs
        },
        out,
        progress,
    )
}

/// Every input exists and is what it claims to be; returns the OS image's sha256.
fn check_inputs(inputs: &UsbInputs<'_>, progress: &Progress) -> Result<Sha256Digest> {
    for (what, path) in [
        ("bootkit UKI", Some(inputs.efi)),
        ("OS image", Some(inputs.os_image)),
        ("OS image checksum file", inputs.sha256_file),
        ("bmap", inputs.bmap),
        ("install config", Some(inputs.install_config)),
    ] {
        if let Some(path) = path.filter(|path| !path.is_file()) {
            return Err(BuildError::Missing {
                what,
                path: path.to_path_buf(),
                hint: "check the path (in an image config's [usb] section, paths are relative to the config file)"
                    .into(),
            });
        }
    }
    let digest = Sha256Digest::parse(&sha256_file(inputs.os_image, progress)?)?;
    let published_sums = sibling(inputs.os_image, "sha256sum");
    let given_sums = inputs
        .sha256_file
        .or_else(|| published_sums.is_file().then_some(published_sums.as_path()));
    if let Some(sums) = given_sums {
        check_sha256_file(sums, &file_name(inputs.os_image)?, digest)?;
    }
    if let Some(bmap) = inputs.bmap {
        check_bmap(bmap)?;
    }
    check_install_config(inputs.install_config)?;
    Ok(digest)
}

/// The data partition's files in `staging` (created): the OS image, its checksum file
/// (written from `digest`, named after the image), the bmap, `install.toml`.
fn stage_data(inputs: &UsbInputs<'_>, digest: Sha256Digest, staging: &Path) -> Result<()> {
    fs::create_dir(staging).map_err(BuildError::io(format!("create {}", staging.display())))?;
    let os_name = file_name(inputs.os_image)?;
    link_or_copy(inputs.os_image, &staging.join(&os_name))?;
    let sums = staging.join(format!("{os_name}.sha256sum"));
    fs::write(&sums, digest.sha256sum_line(&os_name))
        .map_err(BuildError::io(format!("write {}", sums.display())))?;
    if let Some(bmap) = inputs.bmap {
        link_or_copy(bmap, &staging.join(file_name(bmap)?))?;
    }
    link_or_copy(inputs.install_config, &staging.join(INSTALL_CONFIG_NAME))
}

pub(crate) fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| BuildError::Config(format!("{} does not name a file", path.display())))
}

/// A hard link keeps a multi-GB OS image from being copied once more; across filesystems
/// it is copied.
pub(crate) fn link_or_copy(source: &Path, dest: &Path) -> Result<()> {
    if fs::hard_link(source, dest).is_ok() {
        return Ok(());
    }
    fs::copy(source, dest)
        .map(drop)
        .map_err(BuildError::io(format!(
            "copy {} to {}",
            source.display(),
            dest.display()
        )))
}

/// The checksum file's line for the OS image (by the one `sha256sum` file rule) must give the
/// image's sha256.
pub(crate) fn check_sha256_file(path: &Path, os_name: &str, digest: Sha256Digest) -> Result<()> {
    let given = Sha256Digest::from_sha256sum_file(path, Some(os_name))?;
    if given != digest {
        return Err(BuildError::Config(format!(
            "{}: says sha256 {given}, but the OS image's is {digest}: the checksum file belongs to another image, or the image is damaged",
            path.display()
        )));
    }
    Ok(())
}

pub(crate) fn check_bmap(path: &Path) -> Result<()> {
    let text =
        fs::read_to_string(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    bootkit_common::bmap::Bmap::parse(&text)
        .map(drop)
        .map_err(|err| {
            BuildError::Config(format!(
                "{}: {err}",
                path.display(),
                err = error_chain(&err)
            ))
        })
}
