//! Unified kernel images: systemd's EFI stub with the kernel, initramfs, command line and
//! os-release appended as PE sections, one file the firmware starts from the ESP.
//!
//! The sections are added by objcopy, as systemd documents for stubs before ukify (the
//! Debian 12 stub is systemd 252's): each new section gets a virtual address after the
//! stub's last one, page aligned, computed from the stub's own PE headers (its sections
//! move between systemd versions, so no address is hard-coded). The result is read back
//! and checked: every section at its planned address with its full size.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use goblin::pe::PE;

use crate::config::SecureBootConfig;
use crate::dirs::scratch_dir_in;
use crate::error::{BuildError, Result};
use crate::secure_boot::sign_pe;
use crate::tools::OBJCOPY;

/// Where Debian's systemd-boot-efi puts the x86-64 stub.
/// Where firmware looks for a bootloader on a disk it has no boot entry for: a UKI placed
/// here boots from any ESP.
pub const ESP_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";

/// Debian's systemd-boot-efi stub.
pub const DEFAULT_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// Sections start on page boundaries (what systemd's ukify does too).
const PAGE: u64 = 4096;

/// What goes into a UKI.
#[derive(Debug, Clone)]
pub struct UkiInputs<'a> {
    /// The systemd EFI stub (`linuxx64.efi.stub`).
    pub stub: &'a Path,
    /// The kernel image (`.linux`).
    pub kernel: &'a Path,
    /// The initramfs (`.initrd`).
    pub initrd: &'a Path,
    /// The kernel command line (`.cmdline`).
    pub cmdline: &'a str,
    /// /etc/os-release text naming the image (`.osrel`), shown by boot menus.
    pub os_release: &'a str,
}

/// A section of a PE image, as the firmware will load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeSection {
    /// The section name (`.text`, `.linux`, ...).
    pub name: String,
    /// Address relative to the image base (RVA).
    pub virtual_address: u64,
    /// Its size in memory.
    pub virtual_size: u64,
    /// Where its bytes are in the file, and how many there are (padded to FileAlignment).
    pub file_offset: u64,
    /// Its size in the file.
    pub file_size: u64,
}

impl PeSection {
    /// The end of the section in memory: loaders copy `virtual_size` bytes (the file size
    /// is padded to FileAlignment), or the file size when `virtual_size` is 0.
    pub fn end(&self) -> u64 {
        let size = if self.virtual_size == 0 {
            self.file_size
        } else {
            self.virtual_size
        };
        self.virtual_address + size
    }
}

/// A PE image's sections and its image base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeLayout {
    /// The address the image prefers to be loaded at.
    pub image_base: u64,
    /// The image's size in memory (`SizeOfImage`).
    pub size_of_image: u64,
    /// The sections, in header order.
    pub sections: Vec<PeSection>,
}

impl PeLayout {
    /// The section named `name`, if any.
    pub fn section(&self, name: &str) -> Option<&PeSection> {
        self.sections.iter().find(|section| section.name == name)
    }
}

/// Read the section table of a PE file.
pub fn read_layout(path: &Path) -> Result<PeLayout> {
    let data = fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    layout_of(&data).map_err(|reason| BuildError::Uki {
        path: path.to_path_buf(),
        reason,
    })
}

fn layout_of(data: &[u8]) -> std::result::Result<PeLayout, String> {
    let pe = PE::parse(data).map_err(|err| format!("not a PE image: {err}"))?;
    let windows = pe
        .header
        .optional_header
        .ok_or("a PE image without an optional header cannot be started by firmware")?
        .windows_fields;
    let sections = pe
        .sections
        .iter()
        .map(|section| {
            Ok(PeSection {
                name: section
                    .name()
                    .map_err(|err| format!("unreadable section name: {err}"))?
                    .to_string(),
                virtual_address: u64::from(section.virtual_address),
                virtual_size: u64::from(section.virtual_size),
                file_offset: u64::from(section.pointer_to_raw_data),
                file_size: u64::from(section.size_of_raw_data),
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(PeLayout {
        image_base: windows.image_base,
        size_of_image: u64::from(windows.size_of_image),
        sections,
    })
}

/// One section to add: its name, the file holding its bytes, and where it goes.
#[derive(Debug)]
struct Planned {
    name: &'static str,
    source: PathBuf,
    size: u64,
    virtual_address: u64,
}

/// Sign the UKI (or any EFI binary) at `path` in place with `signing`'s key, so that
/// Secure Boot firmware trusting its certificate runs it.
pub fn sign_uki(path: &Path, signing: &SecureBootConfig) -> Result<()> {
    sign_pe(path, path, &signing.sign_key, &signing.sign_cert).map_err(|err| BuildError::Uki {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// Build a UKI at `out` and return its layout (checked against the plan). The file is
/// written next to `out` and renamed into place only once checked.
pub fn build_uki(inputs: &UkiInputs<'_>, out: &Path) -> Result<PeLayout> {
    if !inputs.stub.is_file() {
        return Err(BuildError::Missing {
            what: "systemd EFI stub",
            path: inputs.stub.to_path_buf(),
            hint: "install the Debian package systemd-boot-efi".into(),
        });
    }
    for (what, path) in [("kernel", inputs.kernel), ("initramfs", inputs.initrd)] {
        if !path.is_file() {
            return Err(BuildError::Missing {
                what,
                path: path.to_path_buf(),
                hint: "build it first (bootkit-build build CONFIG --out DIR)".into(),
            });
        }
    }
    let out_dir = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(out_dir).map_err(BuildError::io(format!("create {}", out_dir.display())))?;
    // tempfile's own default prefix: the name this directory has always had.
    let scratch = scratch_dir_in(out_dir, ".tmp")?;
    let cmdline = scratch.path().join("cmdline");
    fs::write(&cmdline, inputs.cmdline.trim())
        .map_err(BuildError::io(format!("write {}", cmdline.display())))?;
    let os_release = scratch.path().join("os-release");
    fs::write(&os_release, inputs.os_release)
        .map_err(BuildError::io(format!("write {}", os_release.display())))?;

    let stub = read_layout(inputs.stub)?;
    let plan = plan_sections(
        &stub,
        [
            (".osrel", os_release),
            (".cmdline", cmdline),
            (".linux", inputs.kernel.to_path_buf()),
            (".initrd", inputs.initrd.to_path_buf()),
        ],
    )?;
    let staged = scratch.path().join("uki.efi");
    add_sections(inputs.stub, stub.image_base, &plan, &staged)?;
    pin_timestamp(&staged)?;
    let layout = read_layout(&staged)?;
    check_layout(&layout, &stub, &plan).map_err(|reason| BuildError::Uki {
        path: out.to_path_buf(),
        reason,
    })?;
    fs::rename(&staged, out).map_err(BuildError::io(format!("write {}", out.display())))?;
    Ok(layout)
}

/// objcopy `stub` into `out` with the planned sections added at their addresses
/// (objcopy takes them absolute: image base + RVA).
fn add_sections(stub: &Path, image_base: u64, plan: &[Planned], out: &Path) -> Result<()> {
    let mut args: Vec<OsString> = Vec::new();
    for section in plan {
        let mut add = OsString::from(format!("{}=", section.name));
        add.push(&section.source);
        let address = image_base + section.virtual_address;
        args.extend([
            "--add-section".into(),
            add,
            "--change-section-vma".into(),
            format!("{}={address:#x}", section.name).into(),
        ]);
    }
    args.extend([stub.into(), out.into()]);
    OBJCOPY.run(&args, &[], "add the kernel sections to the EFI stub")
}

/// objcopy (binutils 2.40) stamps the PE header with the current time and has no option
/// against it: the stamp is set back to 0, as in systemd's stub, and the PE checksum it
/// covers recomputed, so the same inputs give the same UKI.
fn pin_timestamp(path: &Path) -> Result<()> {
    let mut data = fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    let fail = |reason: &str| BuildError::Uki {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let pe_offset = data
        .get(0x3c..0x40)
        .map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
        .ok_or_else(|| fail("too short for a PE image"))?;
    // COFF header after the "PE\0\0" signature: TimeDateStamp at +4; the optional header
    // follows the 20-byte COFF header, CheckSum at +64 in it.
    let timestamp = pe_offset + 8;
    let checksum = pe_offset + 24 + 64;
    if data.len() < checksum + 4 || data.get(pe_offset..pe_offset + 4) != Some(&b"PE\0\0"[..]) {
        return Err(fail("objcopy wrote something that is not a PE image"));
    }
    data[timestamp..timestamp + 4].fill(0);
    data[checksum..checksum + 4].fill(0);
    let sum = pe_checksum(&data);
    data[checksum..checksum + 4].copy_from_slice(&sum.to_le_bytes());
    fs::write(path, &data).map_err(BuildError::io(format!("write {}", path.display())))
}

/// The PE image checksum (the algorithm of imagehlp's CheckSumMappedFile): the one's
/// complement sum of the file's 16-bit words, folded to 16 bits, plus the file's length.
/// Hand-written: no maintained crate computes it, and it is these few lines.
#[expect(
    clippy::cast_possible_truncation,
    reason = "the folded sum fits 16 bits; the length is added modulo 2^32, as imagehlp does"
)]
fn pe_checksum(data: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_le_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u64::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(data.len() as u32)
}

/// Addresses for the new sections, one after the other, after the stub's last section.
fn plan_sections<const N: usize>(
    stub: &PeLayout,
    sections: [(&'static str, PathBuf); N],
) -> Result<Vec<Planned>> {
    let mut next = stub
        .sections
        .iter()
        .map(PeSection::end)
        .max()
        .unwrap_or(0)
        .next_multiple_of(PAGE);
    let mut plan = Vec::with_capacity(N);
    for (name, source) in sections {
        let size = fs::metadata(&source)
            .map_err(BuildError::io(format!("stat {}", source.display())))?
            .len();
        plan.push(Planned {
            name,
            source,
            size,
            virtual_address: next,
        });
        next = (next + size).next_multiple_of(PAGE);
    }
    Ok(plan)
}

/// The UKI keeps the stub's sections and has each planned one at its address, whole,
/// with no two sections overlapping.
fn check_layout(
    layout: &PeLayout,
    stub: &PeLayout,
    plan: &[Planned],
) -> std::result::Result<(), String> {
    for kept in &stub.sections {
        if layout.section(&kept.name).map(|s| s.virtual_address) != Some(kept.virtual_address) {
            return Err(format!(
                "objcopy moved or dropped the stub's {} section",
                kept.name
            ));
        }
    }
    for planned in plan {
        let section = layout
            .section(planned.name)
            .ok_or_else(|| format!("objcopy did not add the {} section", planned.name))?;
        if section.virtual_address != planned.virtual_address
            || section.virtual_size != planned.size
            || section.file_size < planned.size
        {
            return Err(format!(
                "section {} is at {:#x} with {} bytes, expected {:#x} with {} bytes",
                planned.name,
                section.virtual_address,
                section.virtual_size,
                planned.virtual_address,
                planned.size
            ));
        }
    }
    let mut ranges: Vec<(u64, u64, &str)> = layout
        .sections
        .iter()
        .map(|s| (s.virtual_address, s.end(), s.name.as_str()))
        .collect();
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[0].1 > pair[1].0 {
            return Err(format!("sections {} and {} overlap", pair[0].2, pair[1].2));
        }
    }
    let end = ranges.last().map_or(0, |range| range.1);
    if layout.size_of_image < end {
        return Err(format!(
            "SizeOfImage {:#x} does not cover the last section (ends at {end:#x})",
            layout.size_of_image
        ));
    }
    Ok(())
}

/// os-release text for a UKI: `NAME`, `ID`, `VERSION_ID` and `PRETTY_NAME`.
pub fn os_release(name: &str, id: &str, version: &str) -> String {
    format!(
        "NAME=\"{name}\"\nID={id}\nVERSION_ID=\"{version}\"\nPRETTY_NAME=\"{name} {version}\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// objcopy's checksum of the stub, recomputed: the algorithm matches binutils'.
    #[test]
    fn pe_checksum_matches_the_stubs_own() {
        let Ok(mut data) = fs::read(DEFAULT_STUB) else {
            panic!("{DEFAULT_STUB} missing: install systemd-boot-efi");
        };
        let pe_offset = u32::from_le_bytes(data[0x3c..0x40].try_into().unwrap()) as usize;
        let field = pe_offset + 24 + 64;
        let recorded = u32::from_le_bytes(data[field..field + 4].try_into().unwrap());
        data[field..field + 4].fill(0);
        assert_eq!(pe_checksum(&data), recorded);
    }
}
